//! The Basic scheme (RFC 7617): `Basic <base64(user-id ":" password)>`. Decoding only; checking the
//! password is the user database's job.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use crate::creds::Secret;

/// Standard alphabet; padding optional (some clients drop it), but no other leniency.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes the credentials after `Basic `. `None` for anything malformed: bad base64, no colon,
/// a user-id with control characters (RFC 7617 §2). The caller answers every one of these the
/// same way, so a client cannot tell which it was.
///
/// We announce `charset="UTF-8"`, but clients that predate it send ISO-8859-1 (Python `requests`
/// encodes both parts as latin-1): bytes that are not valid UTF-8 are read as ISO-8859-1 and
/// turned into UTF-8, the only reading under which they mean anything.
pub fn decode(token68: &[u8]) -> Option<(String, Secret)> {
    decode_within(token68, usize::MAX).ok()
}

/// Why a Basic value was refused before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    /// The user-id or the password is over the bound, counted in the bytes the client sent
    /// (before an ISO-8859-1 reading makes them longer).
    TooLong,
}

/// [`decode`], refusing a user-id or password of more than `max` bytes.
pub fn decode_within(token68: &[u8], max: usize) -> Result<(String, Secret), Refused> {
    let decoded = Zeroizing::new(B64.decode(token68).map_err(|_| Refused::Malformed)?);
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(Refused::Malformed)?;
    if colon > max || decoded.len() - colon - 1 > max {
        return Err(Refused::TooLong);
    }
    let user = utf8_or_latin1(&decoded[..colon]);
    if user.chars().any(char::is_control) {
        return Err(Refused::Malformed);
    }
    let password = Zeroizing::new(utf8_or_latin1(&decoded[colon + 1..]));
    Ok((user, Secret::new(password.as_bytes())))
}

fn utf8_or_latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// One row per token: the decoded text, and the user/password expected (None: refused).
    #[test]
    fn table() {
        type Row = (Vec<u8>, Option<(&'static str, &'static [u8])>);
        let rows: Vec<Row> = vec![
            (b64(b"alice:pw").into(), Some(("alice", b"pw"))),
            (b64(b"alice:p:w:").into(), Some(("alice", b"p:w:"))),
            (b64(b"alice:").into(), Some(("alice", b""))),
            (b64(b":pw").into(), Some(("", b"pw"))),
            (
                b64("jürgen:pässwörd".as_bytes()).into(),
                Some(("jürgen", "pässwörd".as_bytes())),
            ),
            (
                b64(b"alice:pw").trim_end_matches('=').into(),
                Some(("alice", b"pw")),
            ),
            (b64(b"nocolon").into(), None),
            (
                b64(b"j\xfcrgen:p\xe4:ss").into(),
                Some(("jürgen", "pä:ss".as_bytes())),
            ),
            (b64(b"a\x85b:pw").into(), None),
            (b64(b"a\x01b:pw").into(), None),
            (b"not base64!".to_vec(), None),
            (b"YWxpY2U6cHc=YQ==".to_vec(), None),
            (b"".to_vec(), None),
        ];
        for (token, want) in rows {
            let got = decode(&token);
            let got = got.as_ref().map(|(u, p)| (u.as_str(), p.expose()));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&token));
        }
    }
}
