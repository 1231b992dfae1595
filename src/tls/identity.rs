//! The user name a verified client certificate stands for (`tls_client_cert_user`): its subject's
//! common name, else its first e-mail, else its first DNS subject alternative name.

use x509_cert::Certificate;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

/// The longest name taken from a certificate (the same bound as a password's user part).
const MAX_NAME: usize = 256;

/// `id-at-commonName` (RFC 4519).
const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The user `der` (a certificate rustls already verified against `tls_client_ca`) names, or
/// `None` when it names none fit to be one (no CN, e-mail or DNS name; control characters).
pub fn user_of(der: &[u8]) -> Option<String> {
    let cert = Certificate::from_der(der).ok()?;
    let tbs = &cert.tbs_certificate;
    let cn = tbs
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find_map(|atv| {
            (atv.oid == CN)
                .then(|| text(atv.value.tag(), atv.value.value()))
                .flatten()
        });
    let name = cn.or_else(|| {
        let (_, san) = tbs.get::<SubjectAltName>().ok()??;
        let pick = |want_mail: bool| {
            san.0.iter().find_map(|g| match g {
                GeneralName::Rfc822Name(s) if want_mail => Some(s.to_string()),
                GeneralName::DnsName(s) if !want_mail => Some(s.to_string()),
                _ => None,
            })
        };
        pick(true).or_else(|| pick(false))
    })?;
    fit(&name).then_some(name)
}

/// The text of a directory string in the encodings certificates use for names.
fn text(tag: Tag, bytes: &[u8]) -> Option<String> {
    match tag {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(bytes).ok().map(str::to_owned)
        }
        _ => None,
    }
}

/// A name rules and log lines can carry: not empty, bounded, no control characters.
fn fit(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(params: rcgen::CertificateParams) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn common_name_first_then_mail_then_dns() {
        let mut p = rcgen::CertificateParams::new(vec!["host.example".into()]).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        assert_eq!(user_of(&cert(p)).as_deref(), Some("alice"));

        let mut p = rcgen::CertificateParams::new(vec!["host.example".into()]).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.subject_alt_names.push(rcgen::SanType::Rfc822Name(
            "bob@corp.example".try_into().expect("ia5"),
        ));
        assert_eq!(user_of(&cert(p)).as_deref(), Some("bob@corp.example"));

        let mut p = rcgen::CertificateParams::new(vec!["host.example".into()]).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        assert_eq!(user_of(&cert(p)).as_deref(), Some("host.example"));
    }

    #[test]
    fn unfit_names_and_garbage_name_nobody() {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "evil\nname");
        assert_eq!(user_of(&cert(p)), None);
        assert_eq!(user_of(b"not a certificate"), None);
        assert_eq!(user_of(&[]), None);
    }
}
