//! NTLM checks delegated to Samba (`ntlm_backend = "winbind"`): ringgate keeps the handshake and
//! sends only the check of a type 3 (the server challenge, the client's responses, user and
//! domain) to a small pool of `ntlm_auth --helper-protocol=ntlm-server-1` processes, each behind
//! its own thread. One request and one reply per check, so no helper is held for a handshake, and
//! a client that starts handshakes and never finishes them costs no helper at all (the failure
//! squid's users meet with a helper per handshake).
//!
//! The queue is bounded (full: the caller answers 503), a check has a deadline (a helper that
//! misses it is killed and started again, and the check fails), and a helper that dies is started
//! again on the next check.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// One check, in the terms of the ntlm-server-1 protocol.
pub struct Check {
    pub challenge: [u8; 8],
    pub lm: Vec<u8>,
    pub nt: Vec<u8>,
    pub user: String,
    pub domain: String,
}

/// What a helper said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Yes,
    No,
    /// No answer: the helper failed, died or missed the deadline.
    Failed,
}

struct Job {
    check: Check,
    reply: flume::Sender<Verdict>,
}

/// The queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// A handle to the helper pool, shared by all workers.
pub struct Winbind {
    jobs: flume::Sender<Job>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `key: value` line, or `key:: base64` when the value is not plain printable ASCII.
fn field(out: &mut String, key: &str, value: &str) {
    if value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') && !value.starts_with(' ') {
        out.push_str(&format!("{key}: {value}\n"));
    } else {
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, value);
        out.push_str(&format!("{key}:: {b64}\n"));
    }
}

/// The request for one check.
pub fn request(c: &Check) -> String {
    let mut out = String::new();
    out.push_str(&format!("LANMAN-Challenge: {}\n", hex(&c.challenge)));
    out.push_str(&format!("NT-Response: {}\n", hex(&c.nt)));
    if !c.lm.is_empty() {
        out.push_str(&format!("LANMAN-Response: {}\n", hex(&c.lm)));
    }
    field(&mut out, "Username", &c.user);
    field(&mut out, "NT-Domain", &c.domain);
    out.push_str(".\n");
    out
}

/// A running helper.
struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    pending: Vec<u8>,
}

impl Helper {
    fn spawn(command: &[String]) -> io::Result<Helper> {
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("helper without pipes"));
        };
        Ok(Helper {
            child,
            stdin,
            stdout,
            pending: Vec::new(),
        })
    }

    /// One line of the reply, within `deadline`.
    fn line(&mut self, deadline: Instant) -> io::Result<String> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
            if self.pending.len() > 64 * 1024 {
                return Err(io::Error::other("helper reply line too long"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !crate::sys::wait_readable(self.stdout.as_fd(), left)? {
                return Err(io::ErrorKind::TimedOut.into());
            }
            let mut chunk = [0u8; 4096];
            match self.stdout.read(&mut chunk)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                n => self.pending.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn ask(&mut self, request: &str, deadline: Instant) -> io::Result<Verdict> {
        self.stdin.write_all(request.as_bytes())?;
        self.stdin.flush()?;
        let mut verdict = None;
        let mut content = false;
        loop {
            let line = self.line(deadline)?;
            if line == "." {
                // ntlm_auth ends a refusal with two dots: the second is read here, before the
                // next reply's content, and skipped (every reply has a line before its dot).
                if content {
                    break;
                }
                continue;
            }
            content = true;
            if let Some(v) = line.strip_prefix("Authenticated: ") {
                verdict = Some(if v == "Yes" {
                    Verdict::Yes
                } else {
                    Verdict::No
                });
            } else if let Some(e) = line.strip_prefix("Authentication-Error: ") {
                tracing::debug!(error = e, "ntlm_auth refused");
            }
        }
        Ok(verdict.unwrap_or(Verdict::Failed))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Winbind {
    /// Starts `helpers` threads, each keeping one `command` process, behind a queue of `queue`
    /// checks; each check must be answered within `timeout`. The first helper is started at once,
    /// so that a command that cannot run stops the start-up.
    pub fn start(
        command: Vec<String>,
        helpers: usize,
        queue: usize,
        timeout: Duration,
    ) -> io::Result<Winbind> {
        if command.is_empty() {
            return Err(io::Error::other("ntlm_auth_command is empty"));
        }
        let first = Helper::spawn(&command)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", command[0])))?;
        let (jobs, rx) = flume::bounded::<Job>(queue);
        let mut first = Some(first);
        for i in 0..helpers.max(1) {
            let rx = rx.clone();
            let command = command.clone();
            let mut helper = if i == 0 { first.take() } else { None };
            std::thread::Builder::new()
                .name(format!("ringgate-ntlm{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        let deadline = Instant::now() + timeout;
                        let request = request(&job.check);
                        // A helper found dead (it died since its last check, or was killed)
                        // is replaced and asked again, once: the check is idempotent. One
                        // that hangs is not: the deadline is spent.
                        let mut verdict = Verdict::Failed;
                        for _attempt in 0..2 {
                            let h = match helper.as_mut() {
                                Some(h) => h,
                                None => match Helper::spawn(&command) {
                                    Ok(h) => helper.insert(h),
                                    Err(e) => {
                                        tracing::warn!(error = %e, "cannot start ntlm_auth");
                                        break;
                                    }
                                },
                            };
                            match h.ask(&request, deadline) {
                                Ok(v) => {
                                    verdict = v;
                                    break;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "ntlm_auth helper failed; restarting it");
                                    helper = None;
                                    if e.kind() == io::ErrorKind::TimedOut {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = job.reply.send(verdict);
                    }
                })?;
        }
        Ok(Winbind { jobs })
    }

    /// Queues a check; the verdict arrives on the receiver.
    pub fn submit(&self, check: Check) -> Result<flume::Receiver<Verdict>, Busy> {
        let (reply, answer) = flume::bounded(1);
        self.jobs.try_send(Job { check, reply }).map_err(|_| Busy)?;
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_follow_ntlm_server_1() {
        let c = Check {
            challenge: [1, 2, 3, 4, 5, 6, 7, 8],
            lm: vec![],
            nt: vec![0xab; 3],
            user: "alice".into(),
            domain: "Düsseldorf".into(),
        };
        assert_eq!(
            request(&c),
            "LANMAN-Challenge: 0102030405060708\nNT-Response: ababab\nUsername: alice\n\
             NT-Domain:: RMO8c3NlbGRvcmY=\n.\n"
        );
    }

    #[test]
    fn a_fake_helper_is_asked_restarted_and_timed_out() {
        // A shell helper: says Yes to user "yes", No otherwise, hangs for "hang", dies for "die".
        let script = r#"while read -r line; do
            case "$line" in
              "Username: hang") sleep 5 ;;
              "Username: die") exit 0 ;;
              Username:*) user="${line#Username: }" ;;
              .) if [ "$user" = yes ]; then echo "Authenticated: Yes"; echo .; else printf 'Authenticated: No\n.\n.\n'; fi ;;
            esac
          done"#;
        let pool = Winbind::start(
            vec!["sh".into(), "-c".into(), script.into()],
            1,
            4,
            Duration::from_millis(500),
        )
        .unwrap();
        let ask = |user: &str| {
            pool.submit(Check {
                challenge: [0; 8],
                lm: vec![],
                nt: vec![1; 24],
                user: user.into(),
                domain: "D".into(),
            })
            .unwrap()
            .recv()
            .unwrap()
        };
        assert_eq!(ask("yes"), Verdict::Yes);
        assert_eq!(ask("no"), Verdict::No);
        assert_eq!(
            ask("yes"),
            Verdict::Yes,
            "the refusal's second dot is skipped"
        );
        // A helper that dies mid-check is replaced and asked again, which dies again.
        assert_eq!(ask("die"), Verdict::Failed);
        assert_eq!(ask("yes"), Verdict::Yes, "restarted after dying");
        assert_eq!(ask("hang"), Verdict::Failed);
        assert_eq!(ask("yes"), Verdict::Yes, "restarted after hanging");
    }
}
