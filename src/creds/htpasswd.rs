//! The htpasswd file format: `user:hash` per line, `#` comments and blank lines ignored. A pure
//! parser over the file's text; reading the file and naming it in errors is the caller's job.

use super::password_hash::{HashError, PasswordHash};

/// One user line.
#[derive(Debug)]
pub struct Line {
    /// 1-based line number, for errors that point the operator at the line.
    pub number: usize,
    pub user: String,
    pub hash: PasswordHash,
}

/// What is wrong with a line; [`ParseError`] adds where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("expected user:hash")]
    NoColon,
    #[error("empty user name")]
    EmptyUser,
    #[error("user name has control characters")]
    ControlInName,
    #[error("user `{0}` appears twice")]
    Duplicate(String),
    #[error(transparent)]
    Hash(#[from] HashError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct ParseError {
    pub line: usize,
    pub error: LineError,
}

/// Parses a whole file. The first bad line fails it: a half-loaded user file is a surprise nobody
/// wants at 3 a.m.
pub fn parse(text: &str, allow_plain: bool) -> Result<Vec<Line>, ParseError> {
    let mut lines: Vec<Line> = Vec::new();
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
        let (user, field) = line.split_once(':').ok_or(fail(LineError::NoColon))?;
        if user.is_empty() {
            return Err(fail(LineError::EmptyUser));
        }
        if user.chars().any(char::is_control) {
            return Err(fail(LineError::ControlInName));
        }
        if lines.iter().any(|l| l.user == user) {
            return Err(fail(LineError::Duplicate(user.to_owned())));
        }
        let hash = PasswordHash::parse(field, allow_plain).map_err(|e| fail(e.into()))?;
        lines.push(Line {
            number,
            user: user.to_owned(),
            hash,
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_users_skipping_comments_and_blank_lines() {
        let text = "# team\n\nalice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\r\n  \nbob:$apr1$lZL6V/ci$eIMz/iKDkbtys/uU7LEK00\n";
        let lines = parse(text, false).unwrap();
        let users: Vec<_> = lines.iter().map(|l| (l.user.as_str(), l.number)).collect();
        assert_eq!(users, [("alice", 3), ("bob", 5)]);
        assert!(lines[0].hash.verify(b"secret"));
        assert!(lines[1].hash.verify(b"password"));
    }

    #[test]
    fn plain_passwords_may_contain_colons() {
        let lines = parse("carol:pa:ss:word\n", true).unwrap();
        assert!(lines[0].hash.verify(b"pa:ss:word"));
    }

    /// One row per bad file: the text and the error, with its line.
    #[test]
    fn bad_lines_are_named() {
        for (text, line, error) in [
            (
                "ok:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\nnocolon\n",
                2,
                LineError::NoColon,
            ),
            (
                ":{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
                1,
                LineError::EmptyUser,
            ),
            ("a\x01b:x", 1, LineError::ControlInName),
            ("a:plain", 1, LineError::Hash(HashError::Unknown)),
            (
                "a:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n#\na:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
                3,
                LineError::Duplicate("a".into()),
            ),
            (
                "a:$2y$10$x",
                1,
                LineError::Hash(HashError::Malformed("bcrypt")),
            ),
        ] {
            assert_eq!(
                parse(text, false).unwrap_err(),
                ParseError { line, error },
                "{text:?}"
            );
        }
    }
}
