//! NT-hash user files for NTLM: `user:NTHASH` lines (32 hex digits, as `ringgate passwd --ntlm`
//! writes them) and Samba's `smbpasswd` format (`user:uid:LMHASH:NTHASH:[flags]:LCT-…:`), in one
//! file or several. `#` comments and blank lines are ignored. An smbpasswd account that is disabled
//! (`D` flag) or has no NT password (`NO PASSWORD…`, `XXXX…`) is skipped: it cannot answer NTLM.
//! User names are matched without regard to case, as Windows does. A pure parser.

use crate::auth::ntlm::hash_from_hex;

/// One user's NT hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub number: usize,
    pub user: String,
    pub hash: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("expected user:NTHASH or an smbpasswd line (user:uid:LM:NT:[flags]:LCT:)")]
    Fields,
    #[error("empty user name")]
    EmptyUser,
    #[error("user name has control characters")]
    ControlInName,
    #[error("the NT hash is not 32 hex digits")]
    Hash,
    #[error("user `{0}` is listed twice (names are compared without case)")]
    Duplicate(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct ParseError {
    pub line: usize,
    pub error: LineError,
}

/// The key a user name is looked up by: lower case.
pub fn key(name: &str) -> String {
    name.to_lowercase()
}

/// Parses a whole file; the first bad line fails it.
pub fn parse(text: &str) -> Result<Vec<Line>, ParseError> {
    let mut out: Vec<Line> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let fail = |error| ParseError {
            line: number,
            error,
        };
        let line = raw.trim_end_matches(['\r', ' ', '\t']);
        if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let (user, hex) = match fields.as_slice() {
            [user, hex] => (*user, Some(*hex)),
            // smbpasswd: the uid is a number, the flags are bracketed.
            [user, uid, _lm, nt, flags, ..]
                if uid.parse::<u32>().is_ok() && flags.starts_with('[') =>
            {
                let usable = !flags.contains('D')
                    && !nt.starts_with("NO PASSWORD")
                    && !nt.bytes().all(|b| b == b'X');
                (*user, usable.then_some(*nt))
            }
            _ => return Err(fail(LineError::Fields)),
        };
        if user.is_empty() {
            return Err(fail(LineError::EmptyUser));
        }
        if user.chars().any(char::is_control) {
            return Err(fail(LineError::ControlInName));
        }
        let Some(hex) = hex else { continue };
        let hash = hash_from_hex(hex).ok_or(fail(LineError::Hash))?;
        if out.iter().any(|l| key(&l.user) == key(user)) {
            return Err(fail(LineError::Duplicate(user.to_owned())));
        }
        out.push(Line {
            number,
            user: user.to_owned(),
            hash,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ntlm::nt_hash;

    const PASSWORD: &str = "a4f49c406510bdcab6824ee7c30fd852"; // NT hash of "Password"

    #[test]
    fn both_formats_are_read() {
        let text = format!(
            "# users\n\nalice:{PASSWORD}\r\n\
             bob:1001:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:{}:[U          ]:LCT-65F0A1B2:\n\
             off:1002:XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX:{PASSWORD}:[DU         ]:LCT-65F0A1B2:\n\
             nopw:1003:NO PASSWORDXXXXXXXXXXXXXXXXXXXXX:NO PASSWORDXXXXXXXXXXXXXXXXXXXXX:[NU         ]:LCT-0:\n",
            PASSWORD.to_uppercase()
        );
        let lines = parse(&text).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!((lines[0].number, &*lines[0].user), (3, "alice"));
        assert_eq!(lines[0].hash, nt_hash("Password"));
        assert_eq!((lines[1].number, &*lines[1].user), (4, "bob"));
        assert_eq!(lines[1].hash, nt_hash("Password"));
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line, error) in [
            ("nocolon".to_owned(), 1, LineError::Fields),
            ("a:b:c".to_owned(), 1, LineError::Fields),
            (format!(":{PASSWORD}"), 1, LineError::EmptyUser),
            (format!("a\x01:{PASSWORD}"), 1, LineError::ControlInName),
            ("a:0123".to_owned(), 1, LineError::Hash),
            (
                format!("a:{}", PASSWORD.replace('a', "g")),
                1,
                LineError::Hash,
            ),
            (
                format!("Alice:{PASSWORD}\n#\nalice:{PASSWORD}\n"),
                3,
                LineError::Duplicate("alice".into()),
            ),
            (
                format!("a:x:LM:{PASSWORD}:[U ]:LCT-0:"),
                1,
                LineError::Fields,
            ),
        ] {
            assert_eq!(
                parse(&text).unwrap_err(),
                ParseError { line, error },
                "{text:?}"
            );
        }
    }
}
