//! The htdigest file format: `user:realm:HA1` per line, as Apache's `htdigest` writes it (HA1 is
//! `MD5(user:realm:password)` in hex), and the same line with a SHA-256 HA1 (64 hex digits); a
//! file may hold both for one user. `#` comments and blank lines are ignored. Only lines for the
//! configured realm count. A pure parser; reading the file is the caller's job.

use crate::auth::digest::{Hash, Sum};

/// One user's HA1s for the realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based number of the user's first line, for errors.
    pub number: usize,
    pub user: String,
    pub md5: Option<Sum>,
    pub sha256: Option<Sum>,
}

/// What is wrong with a line; [`ParseError`] adds where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("expected user:realm:hash")]
    Fields,
    #[error("empty user name")]
    EmptyUser,
    #[error("user name has control characters")]
    ControlInName,
    #[error("the hash is neither 32 (MD5) nor 64 (SHA-256) hex digits")]
    Hash,
    #[error("user `{0}` has two {1} lines for this realm")]
    Duplicate(String, &'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct ParseError {
    pub line: usize,
    pub error: LineError,
}

/// Parses a whole file, keeping the lines of `realm`. The first bad line (of any realm) fails it.
pub fn parse(text: &str, realm: &str) -> Result<Vec<Line>, ParseError> {
    let mut users: Vec<Line> = Vec::new();
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
        // The realm may contain colons; the user and the hash may not.
        let (user, rest) = line.split_once(':').ok_or(fail(LineError::Fields))?;
        let (line_realm, hex) = rest.rsplit_once(':').ok_or(fail(LineError::Fields))?;
        if user.is_empty() {
            return Err(fail(LineError::EmptyUser));
        }
        if user.chars().any(char::is_control) {
            return Err(fail(LineError::ControlInName));
        }
        let (hash, name) = match hex.len() {
            32 => (Hash::Md5, "MD5"),
            64 => (Hash::Sha256, "SHA-256"),
            _ => return Err(fail(LineError::Hash)),
        };
        let sum = Sum::from_hex(hash, hex.as_bytes()).ok_or(fail(LineError::Hash))?;
        if line_realm != realm {
            continue;
        }
        let entry = match users.iter_mut().find(|l| l.user == user) {
            Some(entry) => entry,
            None => {
                users.push(Line {
                    number,
                    user: user.to_owned(),
                    md5: None,
                    sha256: None,
                });
                let last = users.len() - 1;
                &mut users[last]
            }
        };
        let slot = match hash {
            Hash::Md5 => &mut entry.md5,
            Hash::Sha256 => &mut entry.sha256,
        };
        if slot.replace(sum).is_some() {
            return Err(fail(LineError::Duplicate(user.to_owned(), name)));
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::digest::ha1;

    #[test]
    fn keeps_the_realms_lines_and_both_hashes() {
        let md5 = ha1(Hash::Md5, "alice", "corp", b"pw").hex();
        let sha = ha1(Hash::Sha256, "alice", "corp", b"pw").hex();
        let other = ha1(Hash::Md5, "bob", "elsewhere", b"pw").hex();
        let md5 = std::str::from_utf8(&md5).unwrap();
        let sha = std::str::from_utf8(&sha).unwrap();
        let other = std::str::from_utf8(&other).unwrap();
        let text = format!(
            "# users\n\nalice:corp:{md5}\r\nbob:elsewhere:{other}\nalice:corp:{sha}\n\
             carol:corp:{}\n",
            md5.to_uppercase()
        );
        let lines = parse(&text, "corp").unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].user, "alice");
        assert_eq!(lines[0].number, 3);
        assert_eq!(lines[0].md5, Some(ha1(Hash::Md5, "alice", "corp", b"pw")));
        assert_eq!(
            lines[0].sha256,
            Some(ha1(Hash::Sha256, "alice", "corp", b"pw"))
        );
        assert_eq!(lines[1].user, "carol");
        assert!(lines[1].sha256.is_none());
        // A realm with colons.
        let text = format!("dave:a:b:{md5}\n");
        assert_eq!(parse(&text, "a:b").unwrap()[0].user, "dave");
    }

    #[test]
    fn bad_lines_are_named() {
        let md5 = "0123456789abcdef0123456789abcdef";
        for (text, line, error) in [
            ("nocolon\n".to_owned(), 1, LineError::Fields),
            ("a:b\n".to_owned(), 1, LineError::Fields),
            (format!(":r:{md5}"), 1, LineError::EmptyUser),
            (format!("a\x01:r:{md5}"), 1, LineError::ControlInName),
            ("a:r:0123".to_owned(), 1, LineError::Hash),
            (format!("a:r:{}", md5.replace('0', "g")), 1, LineError::Hash),
            (
                format!("a:r:{md5}\n#\na:r:{md5}\n"),
                3,
                LineError::Duplicate("a".into(), "MD5"),
            ),
        ] {
            assert_eq!(
                parse(&text, "r").unwrap_err(),
                ParseError { line, error },
                "{text:?}"
            );
        }
    }
}
