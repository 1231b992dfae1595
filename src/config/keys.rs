//! The key table: every configuration key once, with its command-line flag, its help text and
//! whether a reload applies it.
//!
//! Defaults are not written here or anywhere else but in the embedded default config
//! (`default.toml`): `--help` and the man page read them from it at run time ([`flag_help`]), and a
//! test below holds the raw layer, `--print-config`, the flags and README's key table to this
//! table, so a key cannot be added, renamed or given a new default in one place only.

use std::sync::OnceLock;

use super::EMBEDDED_DEFAULT;
use crate::http::head::MAX_HEADERS_CAP;

/// What a reload (SIGHUP or a changed config file) does with a key's new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Put in force for new requests; open connections carry on.
    Applied,
    /// Takes effect only after a restart (a reload that changes it says so in a warning).
    Restart,
}

/// One configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key as written in a config file (and in `RawConfig`).
    pub name: &'static str,
    /// The long flag that sets it (`--FLAG`), where there is one.
    pub flag: Option<&'static str>,
    /// One line for `--help` and the man page; the default is appended from `default.toml`.
    pub help: &'static str,
    pub reload: Reload,
    /// What an empty default (`""`, `[]`) means, shown as `[default: …]`; else `none`.
    pub empty_default: Option<&'static str>,
    /// The values a number may take, both ends included; validation reads it from here.
    pub range: Option<(u64, u64)>,
}

const fn flag(name: &'static str, flag: &'static str, help: &'static str) -> Key {
    Key {
        name,
        flag: Some(flag),
        help,
        reload: Reload::Restart,
        empty_default: None,
        range: None,
    }
}

/// A key only a config file can set (tables, or rarely changed).
const fn file_only(name: &'static str, help: &'static str) -> Key {
    Key {
        name,
        flag: None,
        help,
        reload: Reload::Restart,
        empty_default: None,
        range: None,
    }
}

impl Key {
    const fn reloaded(self) -> Key {
        Key {
            reload: Reload::Applied,
            ..self
        }
    }

    const fn range(self, lo: u64, hi: u64) -> Key {
        Key {
            range: Some((lo, hi)),
            ..self
        }
    }

    const fn empty_means(self, text: &'static str) -> Key {
        Key {
            empty_default: Some(text),
            ..self
        }
    }
}

/// Every key, in the order of `default.toml`.
pub static KEYS: &[Key] = &[
    flag(
        "listen",
        "listen",
        "Address to listen on, IPv4 or [IPv6]:port (repeatable)",
    ),
    flag(
        "workers",
        "workers",
        "Worker threads; 0 = one per available core",
    ),
    flag("io_driver", "io-driver", "io driver"),
    flag("relay", "relay", "Tunnel relay"),
    flag("backlog", "backlog", "listen(2) backlog"),
    flag("pipe_size", "pipe-size", "Relay pipe capacity in bytes"),
    flag(
        "pipe_pool",
        "pipe-pool",
        "Empty pipes kept per worker for reuse",
    ),
    flag(
        "copy_buffer",
        "copy-buffer",
        "Per-worker buffer of the copy relay in bytes",
    )
    .range(1024, 16 << 20),
    flag(
        "max_head_bytes",
        "max-head-bytes",
        "Largest request head, else 431",
    )
    .range(256, 1 << 20),
    flag(
        "max_target_bytes",
        "max-target-bytes",
        "Longest request-target, else 414",
    ),
    flag("max_headers", "max-headers", "Most header fields, else 431")
    .range(1, MAX_HEADERS_CAP as u64),
    flag(
        "header_timeout_secs",
        "header-timeout",
        "Seconds a client has to send a complete head",
    ),
    flag(
        "connect_timeout_secs",
        "connect-timeout",
        "Seconds to resolve and connect to a CONNECT target, else 504",
    ),
    flag(
        "idle_timeout_secs",
        "idle-timeout",
        "Seconds a tunnel or a forwarded body may sit with no bytes moving",
    ),
    flag(
        "shutdown_grace_secs",
        "shutdown-grace",
        "Seconds open tunnels get to finish on SIGTERM/SIGINT",
    )
    .range(0, 24 * 3600),
    flag(
        "resolver_threads",
        "resolver-threads",
        "Threads for getaddrinfo (dns_resolver = \"system\")",
    )
    .range(1, 256),
    flag(
        "resolver_queue",
        "resolver-queue",
        "getaddrinfo lookups waiting for or on those threads at once, beyond which 503",
    )
    .range(1, 1_000_000),
    flag(
        "log_level",
        "log-level",
        "Log filter: error, warn, info, debug, trace, or tracing directives",
    ),
    flag(
        "realm",
        "realm",
        "Realm named in Proxy-Authenticate challenges",
    ),
    flag(
        "htpasswd",
        "htpasswd",
        "htpasswd file of proxy users (repeatable); turns proxy authentication on",
    ),
    flag(
        "htdigest",
        "htdigest",
        "htdigest file of Digest users, MD5 and/or SHA-256 HA1 lines (repeatable); turns proxy authentication on",
    ),
    flag(
        "auth_schemes",
        "auth-schemes",
        "Schemes the 407 offers, in order (basic, digest, ntlm, negotiate; comma-separated)",
    )
    .empty_means("every scheme whose kind of user source is set: negotiate (keytab), digest (htdigest), ntlm (ntlm_users), then basic (htpasswd, users)"),
    flag(
        "digest_algorithms",
        "digest-algorithms",
        "Digest algorithms offered, one challenge each, in order (comma-separated)",
    ),
    flag(
        "digest_nonce_ttl_secs",
        "digest-nonce-ttl",
        "Seconds a Digest nonce is accepted; then a right answer is told stale=true",
    )
    .range(1, 86_400),
    flag(
        "ntlm_users",
        "ntlm-users",
        "NT-hash file of NTLM users, user:NTHASH or smbpasswd lines (repeatable); turns proxy authentication on",
    ),
    flag(
        "ntlm_domain",
        "ntlm-domain",
        "NetBIOS domain the NTLM challenge names; a client must name it or no domain",
    ),
    flag(
        "ntlm_allow_v1",
        "ntlm-allow-v1",
        "Accept NTLMv1 answers (weak: crackable from one captured handshake); LM answers never",
    ),
    flag(
        "ntlm_handshake_secs",
        "ntlm-handshake-secs",
        "Seconds an NTLM handshake may take from type 1 to type 3",
    )
    .range(1, 3600),
    flag(
        "ntlm_clock_skew_secs",
        "ntlm-clock-skew",
        "Seconds an NTLMv2 answer's timestamp may differ from this clock",
    )
    .range(1, 129_600),
    flag(
        "ntlm_backend",
        "ntlm-backend",
        "Who checks NTLM answers: local (ntlm_users, users) or winbind (Samba's ntlm_auth helpers)",
    ),
    file_only(
        "ntlm_auth_command",
        "The ntlm_auth command line each winbind helper runs (ntlm-server-1 protocol)",
    ),
    file_only(
        "ntlm_helpers",
        "ntlm_auth helper processes (one thread each) for the winbind backend",
    )
    .range(1, 64),
    file_only(
        "ntlm_helper_timeout_secs",
        "Seconds a delegated NTLM check may take; then it fails and its helper is restarted",
    )
    .range(1, 60),
    flag(
        "keytab",
        "keytab",
        "Kerberos keytab holding HTTP/<proxy host> for Negotiate; turns Negotiate on",
    )
    .empty_means("KRB5_KTNAME, else the system keytab, when auth_schemes lists negotiate"),
    flag(
        "negotiate_service",
        "negotiate-service",
        "Service principal Negotiate accepts tickets for (HTTP/proxy.corp, or HTTP@proxy.corp)",
    )
    .empty_means("any key in the keytab"),
    flag(
        "negotiate_strip_realm",
        "negotiate-strip-realm",
        "Name Negotiate users without their realm (alice, not alice@CORP.EXAMPLE)",
    ),
    flag(
        "negotiate_rcache_dir",
        "negotiate-rcache-dir",
        "Directory of Kerberos' replay cache, which refuses a Negotiate token seen before; must be writable",
    )
    .empty_means("KRB5RCACHEDIR, else /var/tmp"),
    flag(
        "users",
        "user",
        "A proxy user as NAME:PASSWORD (repeatable); turns proxy authentication on",
    ),
    flag(
        "htpasswd_plaintext",
        "htpasswd-plaintext",
        "Accept plain-text passwords in htpasswd files",
    ),
    flag(
        "users_watch_secs",
        "users-watch",
        "Seconds between checks of the user files (htpasswd, htdigest) for changes; 0 = SIGHUP only",
    )
    .range(0, 3600),
    flag(
        "credential_ttl_secs",
        "credential-ttl",
        "Seconds a verified credential is trusted without hashing again",
    ),
    flag(
        "failed_credential_ttl_secs",
        "failed-credential-ttl",
        "Seconds a wrong credential is remembered as wrong; 0 = not at all",
    )
    .range(0, 3600),
    flag(
        "credential_cache_entries",
        "credential-cache-entries",
        "Verified credentials each worker caches",
    )
    .range(1, 10_000_000),
    flag(
        "verifier_threads",
        "verifier-threads",
        "Threads that run slow password hashes",
    )
    .range(1, 64),
    flag(
        "verifier_queue",
        "verifier-queue",
        "Credential checks that may wait for a verifier thread, else 503",
    )
    .range(1, 1_000_000),
    flag(
        "auth_failure_delay_ms",
        "auth-failure-delay",
        "Milliseconds of delay for repeated auth failures from one address; 0 = off",
    )
    .range(0, 60_000),
    flag(
        "auth_failure_delay_max_ms",
        "auth-failure-delay-max",
        "Longest such delay in milliseconds",
    )
    .range(0, 600_000),
    flag(
        "auth_guess_rate_per_client",
        "auth-guess-rate-per-client",
        "New wrong guesses per second per client and worker, all users; 0 = none",
    )
    .range(0, 1_000_000),
    flag(
        "session_ttl_secs",
        "session-ttl",
        "Seconds an authenticated connection may omit credentials; 0 = the credential TTL",
    ),
    flag(
        "max_password_bytes",
        "max-password-bytes",
        "Longest Basic user name or password checked; longer ones get 407",
    )
    .range(1, 65_536),
    flag(
        "max_challenges_per_connection",
        "max-challenges-per-connection",
        "407s one connection may receive; the last one closes it",
    )
    .range(1, 1_000_000),
    flag(
        "client_ipv6_prefix",
        "client-ipv6-prefix",
        "Leading bits that identify an IPv6 client for limits and the throttle",
    )
    .range(0, 128),
    flag(
        "discard_body_bytes",
        "discard-body-bytes",
        "Largest request body read and dropped to keep a connection after a 407",
    )
    .range(0, 1 << 30),
    flag(
        "keepalive_timeout_secs",
        "keepalive-timeout",
        "Seconds a kept-alive client connection may wait between requests",
    ),
    flag(
        "via",
        "via",
        "Pseudonym in the `Via` field added to forwarded messages; \"\" = none",
    ),
    flag(
        "forwarded_for",
        "forwarded-for",
        "Add `X-Forwarded-For: CLIENT` to forwarded requests",
    ),
    flag(
        "response_timeout_secs",
        "response-timeout",
        "Seconds a forwarded request may wait for the origin's response head, else 504",
    ),
    flag(
        "upstream_idle_secs",
        "upstream-idle",
        "Seconds an idle origin connection is kept for reuse",
    ),
    flag(
        "upstream_pool_size",
        "upstream-pool-size",
        "Idle origin connections kept per worker; 0 = no reuse",
    )
    .range(0, 1_000_000),
    flag(
        "upstream_pool_per_host",
        "upstream-pool-per-host",
        "Idle origin connections kept per worker for one host and port",
    )
    .range(0, 1_000_000),
    flag(
        "clients",
        "client",
        "Client networks that may use the proxy (repeatable)",
    )
    .reloaded()
    .empty_means("any with auth, else loopback"),
    flag(
        "open_proxy",
        "open-proxy",
        "Allow clients beyond loopback without authentication",
    )
    .reloaded(),
    flag(
        "connect_ports",
        "connect-ports",
        "Ports CONNECT may reach: `any`, or a list such as `443,8443,9000-9100`",
    )
    .reloaded(),
    flag(
        "allow_dest",
        "allow-dest",
        "Destination networks exempt from the built-in denials (loopback, link-local…) (repeatable)",
    )
    .reloaded(),
    file_only(
        "default_action",
        "What happens when no rule matches: \"allow\" or \"deny\"",
    )
    .reloaded(),
    file_only("groups", "Named lists of users, for rules").reloaded(),
    file_only("rules", "[[rules]] tables, first match wins").reloaded(),
    flag(
        "max_connections",
        "max-connections",
        "Open client connections in all, beyond which new ones get 503; 0 = from the fd limit",
    )
    .range(0, 100_000_000),
    flag(
        "max_connections_per_client",
        "max-connections-per-client",
        "Open connections from one client address, beyond which new ones get 429; 0 = no limit",
    ),
    flag(
        "max_connection_rate_per_client",
        "max-connection-rate-per-client",
        "New connections per second from one client address, beyond which 429; 0 = no limit",
    ),
    flag(
        "max_tunnels_per_user",
        "max-tunnels-per-user",
        "Open tunnels of one user, beyond which 429; 0 = no limit",
    ),
    flag(
        "user_bandwidth_bytes_per_sec",
        "user-bandwidth",
        "Tunnel bytes per second of one user, both directions together; 0 = no limit",
    ),
    flag(
        "listen_proxy_protocol",
        "listen-proxy-protocol",
        "Also listen on ADDR for connections that start with a PROXY protocol header (repeatable)",
    ),
    flag(
        "proxy_protocol_from",
        "proxy-protocol-from",
        "Sources trusted to send PROXY protocol headers (repeatable)",
    ),
    flag(
        "listen_tls",
        "listen-tls",
        "Also listen on ADDR for clients that speak TLS to the proxy, https://proxy (repeatable)",
    ),
    flag(
        "tls_cert",
        "tls-cert",
        "PEM certificate of the TLS listeners, its chain after it",
    )
    .reloaded(),
    flag("tls_key", "tls-key", "PEM private key of tls_cert").reloaded(),
    flag(
        "tls_client_ca",
        "tls-client-ca",
        "PEM CA certificates; set, TLS clients must present a certificate one of them issued",
    )
    .reloaded()
    .empty_means("no client certificates"),
    flag(
        "tls_client_cert_user",
        "tls-client-cert-user",
        "A verified client certificate's subject CN (else its e-mail or DNS name) is the user",
    ),
    flag(
        "tls_handshake_timeout_secs",
        "tls-handshake-timeout",
        "Seconds a TLS client has to finish its handshake",
    )
    .range(1, 300),
    flag(
        "dns_resolver",
        "dns-resolver",
        "Name resolution: ringgate's own (resolv.conf, /etc/hosts) or getaddrinfo",
    ),
    flag(
        "resolv_conf",
        "resolv-conf",
        "resolv.conf the own resolver reads",
    ),
    flag(
        "dns_servers",
        "dns-server",
        "A name server the own resolver asks instead of resolv.conf's, IP:PORT (repeatable)",
    )
    .empty_means("resolv.conf's"),
    flag(
        "dns_ttl_secs",
        "dns-ttl",
        "Seconds a system resolver answer is kept",
    )
    .range(0, 86_400),
    flag(
        "dns_negative_ttl_secs",
        "dns-negative-ttl",
        "Seconds \"no such name\" or a failed lookup is remembered",
    )
    .range(0, 3600),
    flag(
        "dns_timeout_ms",
        "dns-timeout",
        "Milliseconds one name server has to answer (unless resolv.conf sets timeout)",
    )
    .range(10, 60_000),
    file_only("dns_cache_entries", "Names each worker caches")
    .range(1, 10_000_000),
    flag(
        "bind_source",
        "bind-source",
        "A local address upstream connections are made from, in turn (repeatable)",
    )
    .empty_means("the kernel chooses"),
    flag(
        "admin",
        "admin",
        "Serve /metrics, /healthz and /readyz on ADDR (e.g. 127.0.0.1:9090)",
    )
    .empty_means("off"),
    flag(
        "access_log",
        "access-log",
        "Access log: \"stdout\" or a file path (reopened on SIGUSR1)",
    )
    .empty_means("off"),
    flag(
        "access_log_format",
        "access-log-format",
        "Access log format",
    ),
];

/// The key named `name`.
pub fn get(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// Whether a reload puts a new value of `name` in force (else it needs a restart).
pub fn applied_on_reload(name: &str) -> bool {
    get(name).is_some_and(|k| k.reload == Reload::Applied)
}

/// The embedded default config as a table, parsed once.
pub fn defaults() -> &'static toml::Table {
    static TABLE: OnceLock<toml::Table> = OnceLock::new();
    // The embedded default parses (a unit test says so); an empty table only hides defaults.
    TABLE.get_or_init(|| EMBEDDED_DEFAULT.parse().unwrap_or_default())
}

/// A key's default as a flag value (`127.0.0.1:3128`, `auto`, `443`; list items joined with
/// `, `), or what an empty one means; `None` for switches and tables (nothing to show).
pub fn default_text(key: &Key) -> Option<String> {
    fn plain(v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
            other => other.to_string(),
        }
    }
    let value = defaults().get(key.name)?;
    match value {
        toml::Value::Boolean(_) | toml::Value::Table(_) => None,
        v => match plain(v) {
            empty if empty.is_empty() => Some(key.empty_default.unwrap_or("none").to_owned()),
            text => Some(text),
        },
    }
}

/// The help of `name`'s flag: the table's line and the default from `default.toml`.
pub fn flag_help(name: &str) -> String {
    let Some(key) = get(name) else {
        return format!("(undocumented key {name})");
    };
    let range = key
        .range
        .map(|(lo, hi)| format!(" ({lo}–{hi})"))
        .unwrap_or_default();
    match default_text(key) {
        Some(d) => format!("{}{range} [default: {d}]", key.help),
        None => format!("{}{range}", key.help),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cli::Cli;
    use crate::config::{Machine, RawConfig};
    use clap::{CommandFactory, Parser};

    fn names(it: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut v: Vec<String> = it.into_iter().collect();
        v.sort();
        v
    }

    fn table_names() -> Vec<String> {
        names(KEYS.iter().map(|k| k.name.to_owned()))
    }

    #[test]
    fn every_key_is_in_the_table_once_and_in_raw_config_default_toml_and_print_config() {
        assert_eq!(
            table_names().len(),
            KEYS.len(),
            "a key is in the table twice"
        );
        // RawConfig's serde fields: every one, `None` included, as JSON object keys.
        let raw = match serde_json::to_value(RawConfig::default()).unwrap() {
            serde_json::Value::Object(map) => names(map.keys().cloned()),
            other => panic!("RawConfig serialised as {other}"),
        };
        assert_eq!(raw, table_names(), "RawConfig fields vs the key table");
        assert_eq!(
            names(defaults().keys().cloned()),
            table_names(),
            "default.toml vs the key table"
        );
        let machine = Machine {
            cores: 2,
            pipe_max_size: Some(1 << 20),
        };
        let printed = crate::config::Config::load(None, RawConfig::default(), &machine)
            .unwrap()
            .to_toml()
            .parse::<toml::Table>()
            .unwrap();
        assert_eq!(
            names(printed.keys().cloned()),
            table_names(),
            "--print-config vs the key table"
        );
        // The order of the table is default.toml's, so the two read alike.
        let order: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
        let toml_order: Vec<&str> = EMBEDDED_DEFAULT
            .lines()
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
            .filter(|k| !k.starts_with('#'))
            .collect();
        assert_eq!(order, toml_order);
    }

    /// The flags of `Cli` that set configuration keys (not `--config`, `--print-config`, help…).
    fn config_flags() -> BTreeMap<String, clap::Arg> {
        Cli::command()
            .get_arguments()
            .filter(|a| {
                !matches!(
                    a.get_id().as_str(),
                    "config" | "print_config" | "help" | "version"
                )
            })
            .map(|a| (a.get_long().unwrap().to_owned(), a.clone()))
            .collect()
    }

    /// What the flags' layer sets, as TOML.
    fn layer_of(args: &[String]) -> toml::Table {
        let cli =
            Cli::try_parse_from(std::iter::once("ringgate".to_owned()).chain(args.iter().cloned()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        toml::to_string(&cli.layer()).unwrap().parse().unwrap()
    }

    /// The core of the check: each flag's help shows the default from default.toml, and that text
    /// given as the flag sets exactly its own key to exactly that default.
    #[test]
    fn every_flag_sets_its_key_and_its_help_shows_the_embedded_default() {
        let flags = config_flags();
        let from_table: Vec<String> = names(KEYS.iter().filter_map(|k| k.flag.map(str::to_owned)));
        assert_eq!(
            names(flags.keys().cloned()),
            from_table,
            "Cli flags vs the key table"
        );
        let mut wrong = Vec::new();
        for key in KEYS {
            let Some(long) = key.flag else { continue };
            let arg = &flags[long];
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let default = &defaults()[key.name];
            let is_switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
            let (args, expected): (Vec<String>, toml::Value) = if is_switch {
                assert_eq!(
                    default,
                    &toml::Value::Boolean(false),
                    "--{long} is a switch"
                );
                (vec![format!("--{long}")], toml::Value::Boolean(true))
            } else {
                let Some(shown) = help
                    .rsplit_once("[default: ")
                    .and_then(|(_, d)| d.strip_suffix(']'))
                else {
                    wrong.push(format!("--{long}: help {help:?} shows no default"));
                    continue;
                };
                match default {
                    toml::Value::Array(items) if items.is_empty() => {
                        if shown != key.empty_default.unwrap_or("none") {
                            wrong.push(format!("--{long} shows {shown:?} for an empty default"));
                        }
                        (
                            vec![format!("--{long}"), "x".into()],
                            toml::Value::Array(vec!["x".into()]),
                        )
                    }
                    toml::Value::String(s) if s.is_empty() => {
                        if shown != key.empty_default.unwrap_or("none") {
                            wrong.push(format!("--{long} shows {shown:?} for an empty default"));
                        }
                        (vec![format!("--{long}"), String::new()], default.clone())
                    }
                    toml::Value::Array(_) => (
                        shown
                            .split(", ")
                            .flat_map(|v| [format!("--{long}"), v.to_owned()])
                            .collect(),
                        default.clone(),
                    ),
                    _ => (vec![format!("--{long}"), shown.to_owned()], default.clone()),
                }
            };
            let layer = layer_of(&args);
            let expected = toml::Table::from_iter([(key.name.to_owned(), expected)]);
            if layer != expected {
                wrong.push(format!(
                    "--{long} (help {help:?}) sets {layer}, default.toml has {expected}"
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "flags whose help disagrees with default.toml:\n{}",
            wrong.join("\n")
        );
    }

    #[test]
    fn readme_key_table_has_every_key_with_its_default() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let rows: BTreeMap<String, String> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| key | default |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split(" | ").collect();
                let cell = |i: usize| cells[i].trim_matches(|c| c == '|' || c == ' ' || c == '`');
                (cell(0).to_owned(), cell(1).to_owned())
            })
            .collect();
        assert_eq!(
            names(rows.keys().cloned()),
            table_names(),
            "README's key table"
        );
        for (key, shown) in &rows {
            let written: toml::Table = format!("{key} = {shown}")
                .parse()
                .unwrap_or_else(|e| panic!("README's default of {key} ({shown}) is not TOML: {e}"));
            assert_eq!(
                written.get(key),
                defaults().get(key),
                "README's default of {key} vs default.toml"
            );
        }
    }

    /// A range README's meaning column states, as `(LO–HI`, is the table's.
    #[test]
    fn ranges_readme_states_are_the_tables() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let mut checked = 0;
        for key in KEYS {
            let Some((lo, hi)) = key.range else { continue };
            let Some(row) = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", key.name)))
            else {
                continue;
            };
            for (before, after) in row.split('(').skip(1).filter_map(|p| p.split_once('–')) {
                let digits = |s: &str| -> Option<u64> {
                    let d: String = s.chars().take_while(char::is_ascii_digit).collect();
                    d.parse().ok()
                };
                if before.chars().all(|c| c.is_ascii_digit())
                    && let (Some(l), Some(h)) = (digits(before), digits(after))
                {
                    assert_eq!((l, h), (lo, hi), "README's range of {}", key.name);
                    checked += 1;
                }
            }
        }
        assert!(checked >= 5, "{checked} ranges checked in README");
    }

    #[test]
    fn reload_behaviour_is_the_tables() {
        let applied: Vec<&str> = KEYS
            .iter()
            .filter(|k| k.reload == Reload::Applied)
            .map(|k| k.name)
            .collect();
        assert_eq!(
            applied,
            [
                "clients",
                "open_proxy",
                "connect_ports",
                "allow_dest",
                "default_action",
                "groups",
                "rules",
                "tls_cert",
                "tls_key",
                "tls_client_ca"
            ]
        );
        assert!(applied_on_reload("rules") && !applied_on_reload("listen"));
        assert!(!applied_on_reload("no_such_key"));
    }
}
