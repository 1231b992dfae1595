//! Typed labels: the closed sets that metrics count by and the access log names (why a 407, why a
//! dial failed, which limit refused, how a request ended). Each is an enum with `ALL` (every
//! variant once, in declaration order, so `variant as usize` indexes arrays of counters) and
//! `name()` (the fixed text scraped and logged). Counting by a label is an array index: no string
//! is compared or built on the way.

/// Declares a label enum: `Variant => "name",` per line.
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant once, in declaration order (`ALL[v as usize] == v`).
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The label's fixed text.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }
    };
}

label_enum! {
    /// A proxy authentication scheme.
    pub enum Scheme {
        Basic => "basic",
        Digest => "digest",
        /// Connection-bound: a three-leg handshake authenticates the connection, not a request.
        Ntlm => "ntlm",
        /// Connection-bound: a Kerberos ticket through SPNEGO (RFC 4559).
        Negotiate => "negotiate",
        /// Connection-bound, never offered in a 407: a client certificate a TLS listener verified
        /// (`tls_client_cert_user`).
        Certificate => "certificate",
    }
}

label_enum! {
    /// The kind of listener a client connection came in on (the JSON access log's `listener`).
    pub enum ListenerKind {
        /// `listen`: plain HTTP to the proxy.
        Plain => "plain",
        /// `listen_proxy_protocol`: plain HTTP behind a PROXY protocol header.
        ProxyProtocol => "proxy_protocol",
        /// `listen_tls`: HTTP inside TLS to the proxy.
        Tls => "tls",
    }
}

label_enum! {
    /// Why a TLS handshake with a client failed.
    pub enum TlsFailure {
        /// Not finished within `tls_handshake_timeout_secs`.
        Timeout => "timeout",
        /// The client closed (or reset) before the handshake's end.
        Closed => "closed",
        /// Not TLS at all (plain HTTP to the TLS port) or not a well-formed TLS message.
        NotTls => "not_tls",
        /// Well-formed but wrong: unexpected messages, a failed Finished check.
        Protocol => "protocol",
        /// No common version, cipher suite or application protocol.
        Incompatible => "incompatible",
        /// A client certificate missing, or not from `tls_client_ca`.
        ClientCertificate => "client_certificate",
        /// The client refused ours (an alert: unknown CA, wrong host name).
        AlertReceived => "alert_received",
        /// A socket error on our side of the handshake.
        Io => "io",
        Other => "other",
    }
}

label_enum! {
    /// Why a request got a 407.
    pub enum ChallengeReason {
        NoCredentials => "no credentials",
        Repeated => "repeated credentials",
        UnsupportedScheme => "unsupported scheme",
        Wrong => "wrong credentials",
        Malformed => "malformed credentials",
        TooLong => "credentials too long",
        SessionExpired => "session expired",
        PasswordChanged => "session ended by a password change",
        TooManyChallenges => "too many challenges",
        /// A correct Digest response to a nonce past its lifetime (or not this process's): the
        /// 407 says `stale=true`.
        StaleNonce => "stale nonce",
        /// A Digest nonce count not higher than one already accepted for its nonce.
        Replayed => "replayed nonce count",
        /// A Digest `uri` that is not this request's target.
        UriMismatch => "uri does not match the request",
        /// A Digest answer for another realm or challenge (`realm`, `opaque`).
        NotOurs => "answer to another challenge",
        /// An NTLM type 1 answered with its type 2: the handshake's second leg, not a failure.
        Handshake => "handshake continues",
        /// An NTLM type 3 on a connection with no handshake under way, or after it expired.
        NoHandshake => "answer without a handshake",
        /// An NTLMv1 or LM answer while `ntlm_allow_v1` is off (LM: always).
        WeakNtlm => "ntlmv1 or lm refused",
        /// An NTLMv2 answer whose timestamp is outside `ntlm_clock_skew_secs`.
        ClockSkew => "timestamp outside the window",
        /// A Negotiate token GSS-API refused (bad, expired, for another service, replayed).
        TokenRefused => "negotiate token refused",
        /// No path gives this reason now; kept so the scrape keeps its `reason="other"` series.
        Other => "other",
    }
}

label_enum! {
    /// Why a dial failed.
    pub enum DialErrorKind {
        Resolve => "resolve",
        NoAddress => "no_address",
        Refused => "refused",
        Unreachable => "unreachable",
        Timeout => "timeout",
        ResolveTimeout => "resolve_timeout",
        Other => "other",
        Denied => "denied",
        ResolverBusy => "resolver_busy",
    }
}

label_enum! {
    /// Which policy layer denied.
    pub enum DenialKind {
        Client => "client",
        Port => "port",
        Destination => "destination",
        Loop => "loop",
        Rule => "rule",
    }
}

label_enum! {
    /// Which limit refused a connection or a tunnel.
    pub enum LimitKind {
        MaxConnections => "max_connections",
        /// Open connections, or new connections per second, from one client address.
        PerClient => "per_client",
        TunnelsPerUser => "tunnels_per_user",
    }
}

label_enum! {
    /// How a request or tunnel ended: the access log's termination. Each names whose doing the
    /// end was: the client's (`client_*`, `auth_failed`), the origin's (`upstream_*`), the policy's
    /// (`denied_acl`), a limit's (`limit`), or this proxy's own resources (`local_error`).
    pub enum Termination {
        /// A forwarded request answered by the origin, in full.
        Completed => "completed",
        /// A forwarded request the origin answered before taking all of its body.
        UpstreamEarlyAnswer => "upstream_early_answer",
        /// A tunnel both sides finished (EOF each way).
        Closed => "closed",
        /// A tunnel that moved no byte either way for the idle timeout.
        IdleTimeout => "idle_timeout",
        /// The client sent something the proxy refuses (400, 405, 414, 431) or failed mid-tunnel.
        ClientError => "client_error",
        /// The client did not send its head or body in time (408).
        ClientTimeout => "client_timeout",
        /// The origin could not be reached or answered badly (502), or failed mid-tunnel.
        UpstreamError => "upstream_error",
        /// The origin, or its name's resolution, took too long (504).
        UpstreamTimeout => "upstream_timeout",
        /// Denied by the access policy (403).
        DeniedAcl => "denied_acl",
        /// Proxy authentication failed (407).
        AuthFailed => "auth_failed",
        /// Refused by a limit or a full queue (429, 503).
        Limit => "limit",
        /// A local resource ran out (pipes, fds).
        LocalError => "local_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::Method;

    /// `ALL[i] as usize == i` and no two names alike, for one label enum.
    fn check<T: Copy + std::fmt::Debug>(
        all: &[T],
        index: impl Fn(T) -> usize,
        name: impl Fn(T) -> &'static str,
    ) {
        let mut seen = std::collections::HashSet::new();
        for (i, v) in all.iter().enumerate() {
            assert_eq!(index(*v), i, "{v:?} out of place in ALL");
            assert!(seen.insert(name(*v)), "{:?} named twice", name(*v));
            assert!(!name(*v).is_empty());
        }
    }

    macro_rules! check_all {
        ($($t:ty),+) => {$(
            check(&<$t>::ALL, |v| v as usize, <$t>::name);
        )+};
    }

    #[test]
    fn every_label_enum_lists_each_variant_once_with_a_unique_name() {
        check_all!(
            ChallengeReason,
            DialErrorKind,
            DenialKind,
            LimitKind,
            Termination,
            Method
        );
    }
}
