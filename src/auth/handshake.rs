//! The connection-bound scheme: NTLM's three legs on one client connection.
//!
//! A type 1 gets a 407 carrying a type 2 with a fresh random server challenge, remembered in the
//! connection's [`ConnAuth`] (boxed: a connection that never starts a handshake carries one null
//! pointer). The type 3 that follows on the same connection is checked against that challenge and
//! nothing else, and ends the handshake whatever its outcome, so an answer cannot be tried twice,
//! replayed on another connection (which has another challenge, or none), or kept past
//! `ntlm_handshake_secs`. A connection closed midway takes its handshake with it: no state is kept
//! anywhere else. The identity it yields is the connection's [`Session`], never cached for other
//! connections.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use super::ntlm::{self, Malformed};
use super::{ConnAuth, Decision, Gate, Session};
use crate::creds::throttle::Outcome;
use crate::creds::winbind::{self, Winbind};
use crate::observe::labels::{ChallengeReason, Scheme};

/// A connection-bound handshake between its legs: NTLM between its type 2 and its type 3, or a
/// Negotiate context that needs another leg; or, once done, the acceptor's last token for the
/// response that follows (Negotiate's mutual authentication).
#[derive(Debug)]
pub struct Handshake {
    /// The word its tokens travel under: `NTLM`, or `Negotiate` (Kerberos, or NTLMSSP wrapped in
    /// that word by clients that offer both).
    pub(super) scheme: Scheme,
    pub(super) started: Instant,
    /// The server's token, base64, for the 407 (or the success response).
    token: Box<[u8]>,
    pub(super) leg: Leg,
}

/// Where a handshake stands.
#[derive(Debug)]
pub(super) enum Leg {
    /// An NTLM type 2 was sent with this challenge; its type 3 is awaited.
    Ntlm { challenge: [u8; 8] },
    /// A GSS-API context that asked for another leg.
    #[cfg(feature = "negotiate")]
    Gss(crate::sys::gss::Context),
    /// Authenticated: the token goes on the success response. Only GSS-API makes one (built
    /// without `negotiate`, e.g. for the fuzz targets, nothing does).
    #[cfg_attr(not(feature = "negotiate"), allow(dead_code))]
    Mutual,
}

impl Handshake {
    pub(super) fn new(scheme: Scheme, token: &[u8], leg: Leg) -> Box<Handshake> {
        let token = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, token);
        Box::new(Handshake {
            scheme,
            started: Instant::now(),
            token: token.into_bytes().into_boxed_slice(),
            leg,
        })
    }

    /// The base64 token the 407 carries.
    pub fn token(&self) -> &[u8] {
        &self.token
    }

    /// The scheme word of its `Proxy-Authenticate` field.
    pub fn word(&self) -> &'static str {
        match self.scheme {
            Scheme::Negotiate => "Negotiate",
            _ => "NTLM",
        }
    }
}

/// What NTLM needs process-wide (from the config).
pub(super) struct NtlmShared {
    pub target: ntlm::Target,
    pub allow_v1: bool,
    pub lifetime: Duration,
    pub skew: Duration,
    /// `ntlm_backend = "winbind"`: the helper pool that checks type 3s.
    pub winbind: Option<Winbind>,
    pub helper_timeout: Duration,
}

impl NtlmShared {
    pub fn new(config: &crate::config::Config) -> std::io::Result<NtlmShared> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let host = if host.is_empty() {
            "ringgate".to_owned()
        } else {
            host
        };
        let (short, dns_domain) = host.split_once('.').unwrap_or((&host, ""));
        let computer: String = short.to_uppercase().chars().take(15).collect();
        let winbind = match config.users.ntlm_delegated {
            true => Some(Winbind::start(
                config.ntlm_auth_command.clone(),
                config.ntlm_helpers,
                config.verifier_queue,
                config.ntlm_helper_timeout,
            )?),
            false => None,
        };
        Ok(NtlmShared {
            winbind,
            helper_timeout: config.ntlm_helper_timeout,
            target: ntlm::Target {
                domain: config.ntlm_domain.to_uppercase(),
                computer,
                dns_domain: dns_domain.to_owned(),
                dns_computer: host.clone(),
            },
            allow_v1: config.ntlm_allow_v1,
            lifetime: config.ntlm_handshake,
            skew: config.ntlm_clock_skew,
        })
    }
}

/// The database name a type 3's user and domain stand for, or `None` when they name another
/// domain: `DOMAIN\user` (the configured domain, any case), bare `user`, or `user@domain` with no
/// domain field (the domain being the configured one, or a DNS name starting with it).
fn account<'a>(user: &'a str, domain: &str, ours: &str) -> Option<&'a str> {
    let same = |d: &str| d.to_uppercase() == ours.to_uppercase();
    if !domain.is_empty() {
        return same(domain).then_some(user);
    }
    match user.rsplit_once('@') {
        Some((name, upn)) => {
            let first = upn.split('.').next().unwrap_or("");
            (!name.is_empty() && same(first)).then_some(name)
        }
        None => Some(user),
    }
}

fn now_filetime() -> u64 {
    ntlm::filetime(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

impl Gate {
    /// A type 1: starts a handshake on this connection (replacing any under way) and asks for the
    /// 407 that carries its type 2.
    pub(super) fn ntlm_negotiate(
        &self,
        conn: &mut ConnAuth,
        message: &[u8],
        via: Scheme,
    ) -> Decision {
        let Some(n) = &self.shared.ntlm else {
            return self.refuse_as(&mut conn.session, ChallengeReason::UnsupportedScheme, None);
        };
        conn.session = None;
        conn.handshake = None;
        let client_flags = match ntlm::parse_negotiate(message) {
            Ok(f) => f,
            Err(_) => {
                return self.refuse_as(
                    &mut conn.session,
                    ChallengeReason::Malformed,
                    Some(Scheme::Ntlm),
                );
            }
        };
        let mut challenge = [0u8; 8];
        // As for every key: the kernel's random source does not fail once initialised.
        getrandom::fill(&mut challenge).expect("the kernel's random source is available");
        let mut type2 = Vec::with_capacity(160);
        ntlm::write_challenge(
            &mut type2,
            ntlm::challenge_flags(client_flags),
            &challenge,
            &n.target,
        );
        conn.handshake = Some(Handshake::new(via, &type2, Leg::Ntlm { challenge }));
        Decision::Continue
    }

    /// A type 3 (sent under the word `via`): checks it against this connection's handshake,
    /// which it ends.
    pub(super) async fn judge_ntlm(
        &self,
        conn: &mut ConnAuth,
        message: &[u8],
        peer: IpAddr,
        via: Scheme,
    ) -> Decision {
        let Some(n) = &self.shared.ntlm else {
            return self.refuse_as(&mut conn.session, ChallengeReason::UnsupportedScheme, None);
        };
        let handshake = conn.handshake.take();
        conn.session = None;
        let refuse = |gate: &Gate, session: &mut Option<Session>, reason| {
            gate.refuse_as(session, reason, Some(Scheme::Ntlm))
        };
        let now = Instant::now();
        let challenge = match handshake.as_deref() {
            Some(Handshake {
                leg: Leg::Ntlm { challenge },
                scheme,
                started,
                ..
            }) if *scheme == via && now.duration_since(*started) <= n.lifetime => *challenge,
            _ => return refuse(self, &mut conn.session, ChallengeReason::NoHandshake),
        };
        let a = match ntlm::parse_authenticate(message) {
            Ok(a) => a,
            Err(Malformed::TooLong) => {
                return refuse(self, &mut conn.session, ChallengeReason::TooLong);
            }
            Err(_) => return refuse(self, &mut conn.session, ChallengeReason::Malformed),
        };
        if a.nt.len() <= 24 && !(a.nt.len() == 24 && n.allow_v1) {
            // LM only (no NT answer), anonymous (none at all) or NTLMv1 while it is off.
            return refuse(self, &mut conn.session, ChallengeReason::WeakNtlm);
        }
        let v2 = if a.nt.len() > 24 {
            match ntlm::v2_shape(a.nt) {
                Some(v2) => Some(v2),
                None => return refuse(self, &mut conn.session, ChallengeReason::Malformed),
            }
        } else {
            None
        };
        if a.user.len() > self.shared.max_password_bytes {
            return refuse(self, &mut conn.session, ChallengeReason::TooLong);
        }
        let Some(name) = account(&a.user, &a.domain, &n.target.domain) else {
            self.metrics.auth_check(Some(Scheme::Ntlm), false);
            self.log_failure(peer, "ntlm domain not served", now);
            return Decision::Deny {
                reason: ChallengeReason::Wrong,
            };
        };
        let name_key = {
            use std::hash::BuildHasher;
            self.names.hash_one(crate::creds::nthash::key(name))
        };
        let Some(mut pending) = self.await_turn(peer, name_key).await else {
            return Decision::Busy;
        };
        if let Some(pool) = &n.winbind {
            let check = winbind::Check {
                challenge,
                lm: a.lm.to_vec(),
                nt: a.nt.to_vec(),
                user: a.user.clone(),
                domain: a.domain.clone(),
            };
            let verdict = match pool.submit(check) {
                Ok(answer) => {
                    // The helper has its own deadline; this one only guards against a lost reply.
                    let wait = n.helper_timeout + Duration::from_secs(1);
                    match monoio::time::timeout(wait, answer.recv_async()).await {
                        Ok(Ok(v)) => v,
                        _ => winbind::Verdict::Failed,
                    }
                }
                Err(winbind::Busy) => {
                    pending.outcome = Outcome::Void;
                    return Decision::Busy;
                }
            };
            let now = Instant::now();
            if verdict != winbind::Verdict::Yes {
                if verdict == winbind::Verdict::Failed {
                    pending.outcome = Outcome::Void;
                }
                self.metrics.auth_check(Some(Scheme::Ntlm), false);
                self.log_failure(peer, ChallengeReason::Wrong.name(), now);
                return Decision::Deny {
                    reason: ChallengeReason::Wrong,
                };
            }
            pending.outcome = Outcome::Right;
            return self.ntlm_admitted(conn, &a, Rc::from(name), 0, now, peer);
        }
        let db = self.shared.users.snapshot();
        let record = db.ntlm(name);
        // An unknown user costs the same computation as a known one.
        let hash = record.map_or([0; 16], |r| r.hash);
        let right = match v2 {
            Some(_) => {
                let ntowf = ntlm::ntowf_v2(&hash, &a.user, &a.domain);
                ntlm::verify_v2(&ntowf, &challenge, a.nt)
            }
            None => ntlm::verify_v1(&hash, &challenge, &a),
        };
        let now = Instant::now();
        let (Some(record), true) = (record, right) else {
            self.metrics.auth_check(Some(Scheme::Ntlm), false);
            self.log_failure(peer, ChallengeReason::Wrong.name(), now);
            return Decision::Deny {
                reason: ChallengeReason::Wrong,
            };
        };
        if let Some(v2) = v2
            && !ntlm::within(v2.timestamp, now_filetime(), n.skew)
        {
            // The password was right; the clock (or an old capture) was not.
            pending.outcome = Outcome::Void;
            return refuse(self, &mut conn.session, ChallengeReason::ClockSkew);
        }
        pending.outcome = Outcome::Right;
        self.ntlm_admitted(conn, &a, Rc::from(&*record.name), record.id, now, peer)
    }

    /// Opens the connection's session for the account `user` (entry `id`; 0: checked by Samba,
    /// no local entry), shown in logs as the client sent it.
    fn ntlm_admitted(
        &self,
        conn: &mut ConnAuth,
        a: &ntlm::Authenticate<'_>,
        user: Rc<str>,
        id: u64,
        now: Instant,
        peer: IpAddr,
    ) -> Decision {
        self.metrics.auth_check(Some(Scheme::Ntlm), true);
        let shown: Rc<str> = if a.domain.is_empty() {
            Rc::from(&*a.user)
        } else {
            Rc::from(format!("{}\\{}", a.domain, a.user))
        };
        tracing::debug!(%peer, user = %shown, "authenticated (ntlm)");
        conn.session = Some(Session {
            user,
            shown: Some(shown),
            scheme: Scheme::Ntlm,
            id,
            generation: self.shared.users.snapshot().generation,
            expires: now + self.shared.session_ttl,
        });
        Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::account;

    #[test]
    fn accounts_are_read_in_the_forms_clients_send() {
        for (user, domain, want) in [
            ("alice", "", Some("alice")),
            ("alice", "CORP", Some("alice")),
            ("alice", "corp", Some("alice")),
            ("alice", "OTHER", None),
            ("alice@corp", "", Some("alice")),
            ("alice@corp.example", "", Some("alice")),
            ("alice@other.example", "", None),
            ("@corp", "", None),
        ] {
            assert_eq!(account(user, domain, "CORP"), want, "{user} {domain}");
        }
    }
}
