//! Negotiate (RFC 4559): a SPNEGO token carrying a Kerberos AP-REQ, accepted through GSS-API
//! against the keytab, on the verifier threads (the call reads the keytab and writes the replay
//! cache: file I/O a worker must not wait on). A token that is NTLMSSP under the word
//! `Negotiate` goes to the NTLM handshake instead, when NTLM is served.
//!
//! Like NTLM the identity is the connection's: a completed context opens the connection's
//! [`Session`](super::Session) (never cached for other connections), a context that asks for another leg waits
//! in the connection's handshake for it, and the acceptor's last token (mutual authentication)
//! goes on the response to the request that authenticated. A replayed token is refused by
//! Kerberos' replay cache, which all verifier threads share.

use std::net::IpAddr;

use super::{ConnAuth, Decision, Gate};
use crate::observe::labels::{ChallengeReason, Scheme};

/// The longest decoded token accepted: Active Directory tickets carry the user's groups (the
/// PAC) and reach tens of KiB; Windows' own limit is 64 KiB (`MaxTokenSize`).
pub const MAX_TOKEN: usize = 65_535;

/// The throttle's user key for Negotiate tries (whose user is known only once they succeed).
#[cfg(feature = "negotiate")]
const NEGOTIATE_KEY: u64 = 0x6e65_676f_7469_6174;

/// What Negotiate needs process-wide: the acceptor credential (the keytab).
#[cfg(feature = "negotiate")]
pub(super) struct NegotiateShared {
    acceptor: std::sync::Arc<crate::sys::gss::Acceptor>,
    strip_realm: bool,
    lifetime: std::time::Duration,
}

/// Without the `negotiate` feature the config refuses Negotiate, so none is ever made.
#[cfg(not(feature = "negotiate"))]
pub(super) enum NegotiateShared {}

impl NegotiateShared {
    #[cfg(feature = "negotiate")]
    pub fn new(config: &crate::config::Config) -> Result<NegotiateShared, super::StartError> {
        use super::StartError;
        let n = &config.negotiate;
        if let Some(k) = &n.keytab {
            std::fs::File::open(k)
                .map_err(|e| StartError::Negotiate(format!("keytab {}: {e}", k.display())))?;
        }
        let rcache = replay_cache(n.rcache_dir.as_deref()).map_err(StartError::Negotiate)?;
        let acceptor = crate::sys::gss::Acceptor::new(
            n.service.as_deref(),
            n.keytab.as_deref(),
            Some(&rcache),
        )
        .map_err(|e| StartError::Negotiate(format!("cannot acquire the acceptor: {e}")))?;
        tracing::info!(
            service = n.service.as_deref().unwrap_or("any key in the keytab"),
            keytab = %n.keytab.as_deref().map_or("KRB5_KTNAME or the system keytab".into(), |k| k.display().to_string()),
            rcache,
            "negotiate ready"
        );
        Ok(NegotiateShared {
            acceptor: std::sync::Arc::new(acceptor),
            strip_realm: n.strip_realm,
            lifetime: config.ntlm_handshake,
        })
    }

    #[cfg(not(feature = "negotiate"))]
    pub fn new(_: &crate::config::Config) -> Result<NegotiateShared, super::StartError> {
        Err(super::StartError::Negotiate(
            "this build has no Negotiate (cargo feature negotiate)".into(),
        ))
    }
}

/// The replay cache's krb5 name, in `dir` (else `KRB5RCACHEDIR`, else krb5's `/var/tmp`), after
/// checking that the directory takes a file: a replay cache that cannot be written makes every
/// Negotiate request fail, which is better found at start.
#[cfg(feature = "negotiate")]
fn replay_cache(dir: Option<&std::path::Path>) -> Result<String, String> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => std::env::var_os("KRB5RCACHEDIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/var/tmp".into()),
    };
    // A new file with a random name (never through a planted link), removed at once.
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("the kernel's random source is available");
    let probe = dir.join(format!(
        ".ringgate-probe-{:016x}",
        u64::from_le_bytes(random)
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("replay cache directory {}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    // Named by the uid, as krb5's own default (`krb5_EUID.rcache2`) is.
    Ok(format!(
        "file2:{}/ringgate_{}.rcache2",
        dir.display(),
        crate::sys::euid()
    ))
}

/// The user name a principal stands for: `alice@CORP.EXAMPLE`, or `alice` with the realm
/// stripped (at the last `@` not escaped with `\`, as krb5 writes enterprise names).
pub fn user_name(principal: &str, strip_realm: bool) -> &str {
    if !strip_realm {
        return principal;
    }
    let bytes = principal.as_bytes();
    let mut at = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'@' => at = Some(i),
            _ => {}
        }
        i += 1;
    }
    at.map_or(principal, |at| &principal[..at])
}

impl Gate {
    /// One Negotiate leg: NTLMSSP goes to the NTLM handshake, anything else to GSS-API.
    pub(super) async fn negotiate_leg(
        &self,
        conn: &mut ConnAuth,
        token: &[u8],
        peer: IpAddr,
    ) -> Decision {
        let message = match decode(token) {
            Ok(m) => m,
            Err(reason) => {
                conn.handshake = None;
                return self.refuse_as(&mut conn.session, reason, Some(Scheme::Negotiate));
            }
        };
        if super::ntlm::is_ntlmssp(&message) {
            if self.shared.ntlm.is_none() {
                conn.handshake = None;
                return self.refuse_as(
                    &mut conn.session,
                    ChallengeReason::UnsupportedScheme,
                    Some(Scheme::Negotiate),
                );
            }
            return self
                .ntlm_message(conn, &message, peer, Scheme::Negotiate)
                .await;
        }
        let Some(n) = &self.shared.negotiate else {
            conn.handshake = None;
            return self.refuse_as(
                &mut conn.session,
                ChallengeReason::UnsupportedScheme,
                Some(Scheme::Negotiate),
            );
        };
        self.accept(n, conn, message, peer).await
    }

    #[cfg(not(feature = "negotiate"))]
    async fn accept(
        &self,
        n: &NegotiateShared,
        _: &mut ConnAuth,
        _: Vec<u8>,
        _: IpAddr,
    ) -> Decision {
        match *n {}
    }

    /// Runs the leg on the verifier pool and turns its outcome into the connection's state.
    #[cfg(feature = "negotiate")]
    async fn accept(
        &self,
        n: &NegotiateShared,
        conn: &mut ConnAuth,
        message: Vec<u8>,
        peer: IpAddr,
    ) -> Decision {
        use super::Session;
        use super::handshake::{Handshake, Leg};
        use crate::creds::throttle::Outcome;
        use crate::sys::gss::Step;
        use std::rc::Rc;
        use std::time::{Duration, Instant};

        conn.session = None;
        // A context that asked for this leg, if it is still young; anything else starts anew.
        let context = match conn.handshake.take().map(|h| *h) {
            Some(Handshake {
                scheme: Scheme::Negotiate,
                leg: Leg::Gss(context),
                started,
                ..
            }) if started.elapsed() <= n.lifetime => Some(context),
            _ => None,
        };
        // Refused tokens slow their client down like wrong passwords (a junk-token flood must not
        // keep the verifier queue full); the user is not known before the check, so all of one
        // client's Negotiate tries share one key.
        let Some(mut pending) = self.await_turn(peer, NEGOTIATE_KEY).await else {
            return Decision::Busy;
        };
        let acceptor = n.acceptor.clone();
        let answer = match self
            .shared
            .verifier
            .run(move || acceptor.accept(context, &message))
        {
            Ok(answer) => answer,
            Err(_) => {
                pending.outcome = Outcome::Void;
                return Decision::Busy;
            }
        };
        // The call reads local files only; this bound guards against a stuck file system. A
        // context still in the job when the connection goes away is deleted with the job's
        // answer.
        let step = match monoio::time::timeout(Duration::from_secs(10), answer.recv_async()).await {
            Ok(Ok(step)) => step,
            Ok(Err(_)) => {
                pending.outcome = Outcome::Void;
                tracing::warn!(%peer, "negotiate check lost (its verifier thread ended)");
                return Decision::Busy;
            }
            Err(_) => {
                pending.outcome = Outcome::Void;
                tracing::warn!(%peer, "negotiate check did not answer within 10 s");
                return Decision::Busy;
            }
        };
        let now = Instant::now();
        match step {
            Ok(Step::Complete { principal, token }) => {
                pending.outcome = Outcome::Right;
                self.metrics.auth_check(Some(Scheme::Negotiate), true);
                let user = user_name(&principal, n.strip_realm);
                tracing::debug!(%peer, user, "authenticated (negotiate)");
                conn.session = Some(Session {
                    user: Rc::from(user),
                    shown: None,
                    scheme: Scheme::Negotiate,
                    id: 0,
                    generation: self.shared.users.snapshot().generation,
                    expires: now + self.shared.session_ttl,
                });
                if !token.is_empty() {
                    conn.handshake = Some(Handshake::new(Scheme::Negotiate, &token, Leg::Mutual));
                }
                Decision::Allow
            }
            Ok(Step::Continue { context, token }) => {
                pending.outcome = Outcome::Void;
                conn.handshake = Some(Handshake::new(Scheme::Negotiate, &token, Leg::Gss(context)));
                Decision::Continue
            }
            Err(e) => {
                tracing::debug!(%peer, major = e.major, minor = e.minor, error = %e.message, "negotiate token refused");
                self.metrics.auth_check(Some(Scheme::Negotiate), false);
                self.log_failure(peer, ChallengeReason::TokenRefused.name(), now);
                Decision::Deny {
                    reason: ChallengeReason::TokenRefused,
                }
            }
        }
    }
}

/// A token68's bytes, within [`MAX_TOKEN`].
fn decode(token: &[u8]) -> Result<Vec<u8>, ChallengeReason> {
    use base64::Engine;
    if token.len() > MAX_TOKEN.div_ceil(3) * 4 {
        return Err(ChallengeReason::TooLong);
    }
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| ChallengeReason::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realms_are_stripped_at_the_last_unescaped_at() {
        for (principal, strip, want) in [
            ("alice@CORP.EXAMPLE", false, "alice@CORP.EXAMPLE"),
            ("alice@CORP.EXAMPLE", true, "alice"),
            ("alice", true, "alice"),
            ("HTTP/proxy.corp@CORP", true, "HTTP/proxy.corp"),
            (
                r"alice\@home.example@CORP.EXAMPLE",
                true,
                r"alice\@home.example",
            ),
            (r"alice\@home", true, r"alice\@home"),
        ] {
            assert_eq!(user_name(principal, strip), want, "{principal}");
        }
    }

    #[test]
    fn tokens_are_bounded_and_base64() {
        assert_eq!(decode(b"YWJj"), Ok(b"abc".to_vec()));
        assert_eq!(decode(b"YWJ!"), Err(ChallengeReason::Malformed));
        assert_eq!(
            decode(&vec![b'A'; MAX_TOKEN * 2]),
            Err(ChallengeReason::TooLong)
        );
    }
}
