//! The raw layer: the file format as serde reads it, every key optional so that layers (embedded
//! default → `--config` file → flags) can be laid over one another before validation.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ConfigError, DnsResolver, IoDriver, RelayKind};
use crate::policy::{Action, RuleSpec};

/// The file format, and one layer of configuration: every key optional, so layers can be merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<Vec<String>>,
    pub workers: Option<usize>,
    pub io_driver: Option<IoDriver>,
    pub relay: Option<RelayKind>,
    pub backlog: Option<u32>,
    pub pipe_size: Option<usize>,
    pub pipe_pool: Option<usize>,
    pub copy_buffer: Option<usize>,
    pub max_head_bytes: Option<usize>,
    pub max_target_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub header_timeout_secs: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub resolver_threads: Option<usize>,
    pub resolver_queue: Option<usize>,
    pub log_level: Option<String>,
    pub realm: Option<String>,
    pub htpasswd: Option<Vec<String>>,
    pub htdigest: Option<Vec<String>>,
    pub auth_schemes: Option<Vec<String>>,
    pub digest_algorithms: Option<Vec<String>>,
    pub digest_nonce_ttl_secs: Option<u64>,
    pub ntlm_users: Option<Vec<String>>,
    pub ntlm_domain: Option<String>,
    pub ntlm_allow_v1: Option<bool>,
    pub ntlm_handshake_secs: Option<u64>,
    pub ntlm_clock_skew_secs: Option<u64>,
    pub ntlm_backend: Option<String>,
    pub ntlm_auth_command: Option<Vec<String>>,
    pub ntlm_helpers: Option<usize>,
    pub ntlm_helper_timeout_secs: Option<u64>,
    pub keytab: Option<String>,
    pub negotiate_service: Option<String>,
    pub negotiate_strip_realm: Option<bool>,
    pub negotiate_rcache_dir: Option<String>,
    pub users: Option<Vec<String>>,
    pub htpasswd_plaintext: Option<bool>,
    pub users_watch_secs: Option<u64>,
    pub credential_ttl_secs: Option<u64>,
    pub failed_credential_ttl_secs: Option<u64>,
    pub credential_cache_entries: Option<usize>,
    pub verifier_threads: Option<usize>,
    pub verifier_queue: Option<usize>,
    pub auth_failure_delay_ms: Option<u64>,
    pub auth_failure_delay_max_ms: Option<u64>,
    pub session_ttl_secs: Option<u64>,
    pub auth_guess_rate_per_client: Option<u32>,
    pub max_password_bytes: Option<usize>,
    pub max_challenges_per_connection: Option<u32>,
    pub client_ipv6_prefix: Option<u8>,
    pub discard_body_bytes: Option<u64>,
    pub keepalive_timeout_secs: Option<u64>,
    pub via: Option<String>,
    pub forwarded_for: Option<bool>,
    pub response_timeout_secs: Option<u64>,
    pub upstream_idle_secs: Option<u64>,
    pub upstream_pool_size: Option<usize>,
    pub upstream_pool_per_host: Option<usize>,
    pub open_proxy: Option<bool>,
    pub clients: Option<Vec<String>>,
    pub connect_ports: Option<Vec<String>>,
    pub allow_dest: Option<Vec<String>>,
    pub default_action: Option<Action>,
    pub groups: Option<BTreeMap<String, Vec<String>>>,
    pub rules: Option<Vec<RuleSpec>>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<u32>,
    pub listen_proxy_protocol: Option<Vec<String>>,
    pub proxy_protocol_from: Option<Vec<String>>,
    pub listen_tls: Option<Vec<String>>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub tls_client_ca: Option<String>,
    pub tls_client_cert_user: Option<bool>,
    pub tls_handshake_timeout_secs: Option<u64>,
    pub dns_resolver: Option<DnsResolver>,
    pub resolv_conf: Option<String>,
    pub dns_servers: Option<Vec<String>>,
    pub dns_ttl_secs: Option<u64>,
    pub dns_negative_ttl_secs: Option<u64>,
    pub dns_timeout_ms: Option<u64>,
    pub dns_cache_entries: Option<usize>,
    pub bind_source: Option<Vec<String>>,
    pub max_connection_rate_per_client: Option<u32>,
    pub max_tunnels_per_user: Option<u32>,
    pub user_bandwidth_bytes_per_sec: Option<u64>,
    pub admin: Option<String>,
    pub access_log: Option<String>,
    pub access_log_format: Option<crate::observe::log::Format>,
}

impl RawConfig {
    /// Parses one TOML layer; `origin` names it in errors (a path, or "embedded default").
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let syntax = |key: String, reason: String| ConfigError::Syntax {
            origin: origin.to_owned(),
            key,
            reason,
        };
        let de = toml::de::Deserializer::parse(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(0);
            syntax(format!("(line {line})"), one_line(e.message()))
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            // serde quotes the offending value, and under `users` that holds passwords.
            let reason = if key == "users" || key.starts_with("users[") {
                "expected a list of \"NAME:PASSWORD\" strings".to_owned()
            } else {
                one_line(e.inner().message())
            };
            syntax(key, reason)
        })
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Lays `top` over `self`: every key `top` sets wins.
    pub fn overlay(self, top: RawConfig) -> RawConfig {
        macro_rules! pick {
            ($($f:ident),*) => { RawConfig { $($f: top.$f.or(self.$f)),* } };
        }
        pick!(
            listen,
            workers,
            io_driver,
            relay,
            backlog,
            pipe_size,
            pipe_pool,
            copy_buffer,
            max_head_bytes,
            max_target_bytes,
            max_headers,
            header_timeout_secs,
            connect_timeout_secs,
            idle_timeout_secs,
            shutdown_grace_secs,
            resolver_threads,
            resolver_queue,
            log_level,
            realm,
            htpasswd,
            htdigest,
            auth_schemes,
            digest_algorithms,
            digest_nonce_ttl_secs,
            ntlm_users,
            ntlm_domain,
            ntlm_allow_v1,
            ntlm_handshake_secs,
            ntlm_clock_skew_secs,
            ntlm_backend,
            ntlm_auth_command,
            ntlm_helpers,
            ntlm_helper_timeout_secs,
            keytab,
            negotiate_service,
            negotiate_strip_realm,
            negotiate_rcache_dir,
            users,
            htpasswd_plaintext,
            users_watch_secs,
            credential_ttl_secs,
            failed_credential_ttl_secs,
            credential_cache_entries,
            verifier_threads,
            verifier_queue,
            auth_failure_delay_ms,
            auth_failure_delay_max_ms,
            session_ttl_secs,
            auth_guess_rate_per_client,
            max_password_bytes,
            max_challenges_per_connection,
            client_ipv6_prefix,
            discard_body_bytes,
            keepalive_timeout_secs,
            via,
            forwarded_for,
            response_timeout_secs,
            upstream_idle_secs,
            upstream_pool_size,
            upstream_pool_per_host,
            open_proxy,
            clients,
            connect_ports,
            allow_dest,
            default_action,
            groups,
            rules,
            max_connections,
            max_connections_per_client,
            listen_proxy_protocol,
            proxy_protocol_from,
            listen_tls,
            tls_cert,
            tls_key,
            tls_client_ca,
            tls_client_cert_user,
            tls_handshake_timeout_secs,
            dns_resolver,
            resolv_conf,
            dns_servers,
            dns_ttl_secs,
            dns_negative_ttl_secs,
            dns_timeout_ms,
            dns_cache_entries,
            bind_source,
            max_connection_rate_per_client,
            max_tunnels_per_user,
            user_bandwidth_bytes_per_sec,
            admin,
            access_log,
            access_log_format
        )
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
