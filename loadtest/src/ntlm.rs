//! The NTLM client side of `tunnels --ntlm NAME`: a type 1 as curl sends it, and an NTLMv2 type 3
//! answering the type 2 of the 407, for `DOMAIN\user:password` credentials. The messages are
//! ringgate's own client (`ringgate::auth::ntlm::client`), which its unit tests hold to the
//! MS-NLMP vectors.

use base64::Engine;
use ringgate::auth::ntlm::{self, client, flags};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// curl's type 1 (flags 0x00088206, no names), base64.
pub const NEGOTIATE: &str = "TlRMTVNTUAABAAAABoIIAAAAAAAAAAAAAAAAAAAAAAA=";

pub struct NtlmClient {
    user: String,
    domain: String,
    hash: [u8; 16],
    counter: u64,
}

impl NtlmClient {
    /// From `DOMAIN\user:password` or `user:password`.
    pub fn new(credentials: &str) -> NtlmClient {
        let (who, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (domain, user) = who.split_once('\\').unwrap_or(("", who));
        NtlmClient {
            user: user.to_owned(),
            domain: domain.to_owned(),
            hash: ntlm::nt_hash(password),
            counter: 0,
        }
    }

    /// The type 3 (base64) answering the type 2 in a 407 head (under `NTLM` or `Negotiate`), or
    /// `None` if it has none.
    pub fn answer(&mut self, head: &str) -> Option<String> {
        let token = head.lines().find_map(|l| {
            l.strip_prefix("Proxy-Authenticate: NTLM ")
                .or_else(|| l.strip_prefix("Proxy-Authenticate: Negotiate "))
        })?;
        let type2 = B64.decode(token.trim()).ok()?;
        let (challenge, info) = client::read_challenge(&type2)?;
        // Names in UTF-16 only if the server chose UNICODE: curl's type 1 offers OEM alone, and
        // a server that kept to OEM (Samba's, behind squid) reads UTF-16 names as one letter.
        let names = ntlm::charset(client::chosen_flags(&type2)?);
        self.counter += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let nt = client::v2_response(
            &self.hash,
            &self.user,
            &self.domain,
            &challenge,
            &self.counter.to_le_bytes(),
            ntlm::filetime(now),
            &info,
        );
        Some(B64.encode(client::authenticate(
            &[0; 24],
            &nt,
            &self.domain,
            &self.user,
            "LOADTEST",
            names | flags::EXTENDED_SESSION_SECURITY | flags::NTLM,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type 2 choosing `flags`, made by ringgate's server side.
    fn type2(flags: u32) -> String {
        let target = ntlm::Target {
            domain: "D".into(),
            computer: "PROXY".into(),
            dns_domain: String::new(),
            dns_computer: "proxy".into(),
        };
        let mut m = Vec::new();
        ntlm::write_challenge(&mut m, flags, &[7; 8], &target);
        format!("Proxy-Authenticate: NTLM {}\r\n", B64.encode(m))
    }

    #[test]
    fn names_follow_the_charset_the_server_chose() {
        let mut c = NtlmClient::new("D\\bob:pw");
        // ringgate's type 3 parser reads the names in the charset the type 3's flags claim, and
        // refuses UTF-16 read as OEM (NULs are control characters) and OEM read as UTF-16 (an odd
        // length): a name that reads back as "bob" was written in the charset named.
        for chosen in [flags::OEM, flags::UNICODE] {
            let type3 = B64
                .decode(c.answer(&type2(chosen | flags::NTLM)).unwrap())
                .unwrap();
            let a = ntlm::parse_authenticate(&type3).unwrap();
            assert_eq!(a.flags & (flags::UNICODE | flags::OEM), chosen);
            assert_eq!((&*a.user, &*a.domain), ("bob", "D"));
        }
    }

    #[test]
    fn credentials_split_into_domain_user_and_hash() {
        // MS-NLMP §4.2.2.1.2.
        let c = NtlmClient::new("Domain\\User:Password");
        let hex: String = c.hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a4f49c406510bdcab6824ee7c30fd852");
        assert_eq!((&*c.domain, &*c.user), ("Domain", "User"));
        assert_eq!(
            B64.decode(NEGOTIATE).unwrap()[12..16],
            0x0008_8206u32.to_le_bytes()
        );
    }
}
