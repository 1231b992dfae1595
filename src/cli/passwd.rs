//! `ringgate passwd FILE USER`: adds or updates one user in an htpasswd file (a bcrypt line) or,
//! with `--digest --realm R`, in an htdigest file (an MD5 and a SHA-256 HA1 line for `R`), or with
//! `--ntlm`, in an NT-hash file (`user:NTHASH`, the user matched without case as NTLM does).
//!
//! The file is rewritten whole, through a temporary file in the same folder that is synced and then
//! renamed over it, so a running ringgate (which rereads user files on SIGHUP and on change) only
//! ever reads the old or the new file, never half of one. Every other line (other users, other
//! realms, comments) is kept byte for byte; the user's old lines are replaced where the first of
//! them stood. The new file keeps the old one's permissions and, where allowed, its owner; a new
//! file is created `0600`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::auth::digest::{self, Hash};

/// bcrypt reads at most 72 bytes of a password; a longer one would be silently cut.
const BCRYPT_MAX_PASSWORD: usize = 72;
/// A Digest password has no such limit; this only refuses the absurd.
const MAX_PASSWORD: usize = 4096;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The htpasswd (or, with --digest, htdigest) file; created if missing.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The user to add or update.
    #[arg(value_name = "USER")]
    pub user: String,
    /// Write HA1 lines (MD5 and SHA-256) for --realm into an htdigest-format file instead.
    #[arg(long, requires = "realm")]
    pub digest: bool,
    /// Write a `user:NTHASH` line (MD4 of the UTF-16LE password) for NTLM instead.
    #[arg(long, conflicts_with_all = ["digest", "realm", "cost"])]
    pub ntlm: bool,
    /// The Digest realm the lines are for (the proxy's `realm`).
    #[arg(long, value_name = "REALM")]
    pub realm: Option<String>,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
    /// bcrypt cost (4-31); each step doubles the time of a first check.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
    pub cost: u32,
}

/// Why `passwd` failed: the first kind is the caller's input (exit 2), the second the system's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl Error {
    fn io(path: &Path, source: io::Error) -> Error {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Says whether a line of the file is one of the user's (to be replaced).
type LineOfUser<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// Runs the command; returns what to tell the user on success.
pub fn run(args: &Args) -> Result<String, Error> {
    check_name("user name", &args.user, false)?;
    if let Some(realm) = &args.realm {
        check_name("realm", realm, true)?;
    }
    let password = read_password(args.password_stdin)?;
    let limit = if args.digest || args.ntlm {
        MAX_PASSWORD
    } else {
        BCRYPT_MAX_PASSWORD
    };
    if password.is_empty() {
        return Err(Error::Usage("the password is empty".into()));
    }
    if password.len() > limit {
        return Err(Error::Usage(format!(
            "the password is {} bytes; at most {limit} can be {}",
            password.len(),
            if args.digest || args.ntlm {
                "used"
            } else {
                "hashed by bcrypt"
            }
        )));
    }
    let target = resolve(&args.file)?;
    let old = match fs::read(&target) {
        Ok(bytes) => Some(
            String::from_utf8(bytes)
                .map_err(|_| Error::Usage(format!("{}: not UTF-8 text", target.display())))?,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&target, e)),
    };
    let (lines, is_ours): (Vec<String>, LineOfUser<'_>) = match &args.realm {
        Some(realm) if args.digest => (
            [Hash::Md5, Hash::Sha256]
                .into_iter()
                .map(|hash| {
                    let ha1 = digest::ha1(hash, &args.user, realm, password.as_bytes());
                    format!(
                        "{}:{realm}:{}",
                        args.user,
                        String::from_utf8_lossy(&ha1.hex())
                    )
                })
                .collect(),
            Box::new(|line| htdigest_key(line) == Some((&args.user, realm))),
        ),
        _ if args.ntlm => {
            let hash = crate::auth::ntlm::nt_hash(&password);
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            let key = crate::creds::nthash::key(&args.user);
            (
                vec![format!("{}:{hex}", args.user)],
                Box::new(move |line| {
                    htpasswd_key(line).is_some_and(|u| crate::creds::nthash::key(u) == key)
                }),
            )
        }
        _ => {
            let hash = bcrypt::non_truncating_hash(password.as_bytes(), args.cost)
                .map_err(|e| Error::Usage(format!("cannot hash the password: {e}")))?;
            (
                vec![format!("{}:{hash}", args.user)],
                Box::new(|line| htpasswd_key(line) == Some(&args.user)),
            )
        }
    };
    let (text, replaced) = splice(old.as_deref().unwrap_or(""), &lines, is_ours);
    write_atomically(&target, text.as_bytes())?;
    Ok(format!(
        "{} {} in {}",
        if replaced { "updated" } else { "added" },
        args.user,
        target.display()
    ))
}

/// A name goes into a `:`-separated line: no colon (the realm of an htdigest line may have some,
/// as Apache allows), no control character, not empty.
fn check_name(what: &str, name: &str, colons: bool) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::Usage(format!("the {what} is empty")));
    }
    if !colons && name.contains(':') {
        return Err(Error::Usage(format!("the {what} may not contain `:`")));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "the {what} may not contain control characters"
        )));
    }
    Ok(())
}

/// The password, from standard input's first line or typed twice at the terminal.
fn read_password(from_stdin: bool) -> Result<Zeroizing<String>, Error> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::io(Path::new("standard input"), e))?;
        let end = line.trim_end_matches(['\n', '\r']).len();
        line.truncate(end);
        return Ok(line);
    }
    if !io::stdin().is_terminal() {
        return Err(Error::Usage(
            "standard input is not a terminal: pipe the password with --password-stdin".into(),
        ));
    }
    let tty = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(Zeroizing::new)
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot read a password from the terminal ({e}); use --password-stdin"
                ))
            })
    };
    let first = tty("New password: ")?;
    let again = tty("Re-type new password: ")?;
    if *first != *again {
        return Err(Error::Usage("the passwords do not match".into()));
    }
    Ok(first)
}

/// The user of an htpasswd line (`None` for comments and blank lines).
fn htpasswd_key(line: &str) -> Option<&str> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
        return None;
    }
    line.split_once(':').map(|(user, _)| user)
}

/// The user and realm of an htdigest line (the realm may hold colons; user and hash may not).
fn htdigest_key(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_end_matches(['\n', '\r', ' ', '\t']);
    if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
        return None;
    }
    let (user, rest) = line.split_once(':')?;
    let (realm, _) = rest.rsplit_once(':')?;
    Some((user, realm))
}

/// `old` with every line `is_ours` says is the user's removed and `new` put where the first of
/// them was (at the end if none was). Other lines are kept as they were. Returns whether any line
/// was replaced.
fn splice(old: &str, new: &[String], is_ours: impl Fn(&str) -> bool) -> (String, bool) {
    let mut out = String::with_capacity(old.len() + 256);
    let mut placed = false;
    for line in old.split_inclusive('\n') {
        if is_ours(line) {
            if !placed {
                new.iter().for_each(|l| {
                    out.push_str(l);
                    out.push('\n');
                });
                placed = true;
            }
            continue;
        }
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push('\n');
        }
    }
    if !placed {
        new.iter().for_each(|l| {
            out.push_str(l);
            out.push('\n');
        });
    }
    (out, placed)
}

/// The file to write: a symbolic link's target (so the link stays a link), else the path.
fn resolve(path: &Path) -> Result<PathBuf, Error> {
    match fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(path.to_owned()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Replaces `target` with `contents` through a synced temporary file renamed over it.
fn write_atomically(target: &Path, contents: &[u8]) -> Result<(), Error> {
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{}: not a file name", target.display())))?;
    let old = match fs::metadata(target) {
        Ok(m) if m.is_file() => Some(m),
        Ok(_) => {
            return Err(Error::Usage(format!(
                "{}: not a regular file",
                target.display()
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(target, e)),
    };
    let temp = dir.join(format!(
        ".{}.ringgate-passwd.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(contents)?;
        if let Some(m) = &old {
            keep_owner(&file, m);
            file.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        file.sync_all()?;
        fs::rename(&temp, target)?;
        // The rename itself is durable once the folder is synced.
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(|e| Error::io(target, e))
}

/// Gives the new file the old one's owner and group where this process may (root may; anyone may
/// keep their own uid and pick a group they are in). Where it may not, says so: the new file is
/// then the writer's, which a proxy running as the old owner may not be able to read.
fn keep_owner(file: &File, old: &fs::Metadata) {
    let Ok(now) = file.metadata() else { return };
    if (now.uid(), now.gid()) == (old.uid(), old.gid()) {
        return;
    }
    if let Err(e) = std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())) {
        eprintln!(
            "ringgate: warning: cannot keep the file's owner {}:{} ({e}); it is now {}:{}",
            old.uid(),
            old.gid(),
            now.uid(),
            now.gid()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_the_users_lines_in_place_and_keeps_the_rest() {
        let old = "# users\nbob:x\nalice:old\ncarol:y\nalice:older\nno newline at end";
        let (text, replaced) = splice(old, &["alice:new".into()], |l| {
            htpasswd_key(l) == Some("alice")
        });
        assert!(replaced);
        assert_eq!(
            text,
            "# users\nbob:x\nalice:new\ncarol:y\nno newline at end\n"
        );
        let (text, replaced) = splice("bob:x\r\n", &["dave:z".into()], |l| {
            htpasswd_key(l) == Some("dave")
        });
        assert!(!replaced);
        assert_eq!(text, "bob:x\r\ndave:z\n");
    }

    #[test]
    fn htdigest_lines_are_matched_by_user_and_realm_even_with_colons_in_the_realm() {
        assert_eq!(
            htdigest_key("alice:a:b realm:0123\n"),
            Some(("alice", "a:b realm"))
        );
        assert_eq!(htdigest_key("# alice:r:x"), None);
        assert_eq!(htdigest_key("  \n"), None);
        assert_eq!(htdigest_key("alice"), None);
    }

    #[test]
    fn names_with_colons_or_control_characters_are_refused() {
        assert!(check_name("user name", "a:b", false).is_err());
        assert!(check_name("user name", "a\nb", false).is_err());
        assert!(check_name("user name", "", false).is_err());
        assert!(check_name("realm", "a:b", true).is_ok());
        assert!(check_name("user name", "DOMAIN\\élise", false).is_ok());
    }
}
