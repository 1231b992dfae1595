//! `--print-config`: the effective configuration rendered back into the raw layer's TOML.

use super::{Config, RawConfig};

/// A path as written, or `""` for none.
fn path_or_empty(p: Option<&std::path::Path>) -> String {
    p.map_or(String::new(), |p| p.display().to_string())
}

impl Config {
    /// The effective configuration as TOML (what `--print-config` shows); it parses back to `self`.
    pub fn to_toml(&self) -> String {
        let raw = RawConfig {
            listen: Some(self.listen.iter().map(ToString::to_string).collect()),
            workers: Some(self.workers),
            io_driver: Some(self.io_driver),
            relay: Some(self.relay),
            backlog: Some(self.backlog),
            pipe_size: Some(self.pipe_size),
            pipe_pool: Some(self.pipe_pool),
            copy_buffer: Some(self.copy_buffer),
            max_head_bytes: Some(self.max_head_bytes),
            max_target_bytes: Some(self.max_target_bytes),
            max_headers: Some(self.max_headers),
            header_timeout_secs: Some(self.header_timeout.as_secs()),
            connect_timeout_secs: Some(self.connect_timeout.as_secs()),
            idle_timeout_secs: Some(self.idle_timeout.as_secs()),
            shutdown_grace_secs: Some(self.shutdown_grace.as_secs()),
            resolver_threads: Some(self.resolver_threads),
            resolver_queue: Some(self.resolver_queue),
            log_level: Some(self.log_level.clone()),
            realm: Some(self.realm.clone()),
            htpasswd: Some(
                self.users
                    .htpasswd
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            ),
            htdigest: Some(
                self.users
                    .htdigest
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            ),
            auth_schemes: Some(
                self.auth_schemes
                    .iter()
                    .map(|s| s.name().to_owned())
                    .collect(),
            ),
            digest_algorithms: Some(
                self.digest_algorithms
                    .iter()
                    .map(|a| a.name().to_owned())
                    .collect(),
            ),
            digest_nonce_ttl_secs: Some(self.digest_nonce_ttl.as_secs()),
            ntlm_users: Some(
                self.users
                    .ntlm
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            ),
            ntlm_domain: Some(self.ntlm_domain.clone()),
            ntlm_allow_v1: Some(self.ntlm_allow_v1),
            ntlm_handshake_secs: Some(self.ntlm_handshake.as_secs()),
            ntlm_clock_skew_secs: Some(self.ntlm_clock_skew.as_secs()),
            ntlm_backend: Some(
                if self.users.ntlm_delegated {
                    "winbind"
                } else {
                    "local"
                }
                .to_owned(),
            ),
            ntlm_auth_command: Some(self.ntlm_auth_command.clone()),
            ntlm_helpers: Some(self.ntlm_helpers),
            ntlm_helper_timeout_secs: Some(self.ntlm_helper_timeout.as_secs()),
            keytab: Some(path_or_empty(self.negotiate.keytab.as_deref())),
            negotiate_service: Some(self.negotiate.service.clone().unwrap_or_default()),
            negotiate_strip_realm: Some(self.negotiate.strip_realm),
            negotiate_rcache_dir: Some(path_or_empty(self.negotiate.rcache_dir.as_deref())),
            // Passwords are never printed; the comment below says what was left out.
            users: Some(Vec::new()),
            htpasswd_plaintext: Some(self.users.allow_plain),
            users_watch_secs: Some(self.users_watch.map_or(0, |d| d.as_secs())),
            credential_ttl_secs: Some(self.credential_ttl.as_secs()),
            failed_credential_ttl_secs: Some(self.failed_credential_ttl.as_secs()),
            credential_cache_entries: Some(self.credential_cache_entries),
            verifier_threads: Some(self.verifier_threads),
            verifier_queue: Some(self.verifier_queue),
            auth_failure_delay_ms: Some(self.auth_failure_delay.as_millis() as u64),
            auth_failure_delay_max_ms: Some(self.auth_failure_delay_max.as_millis() as u64),
            session_ttl_secs: Some(self.session_ttl_secs.map_or(0, |d| d.as_secs())),
            auth_guess_rate_per_client: Some(self.auth_guess_rate_per_client),
            max_password_bytes: Some(self.max_password_bytes),
            max_challenges_per_connection: Some(self.max_challenges_per_connection),
            client_ipv6_prefix: Some(self.client_ipv6_prefix),
            discard_body_bytes: Some(self.discard_body_bytes),
            keepalive_timeout_secs: Some(self.keepalive_timeout.as_secs()),
            via: Some(self.via.clone().unwrap_or_default()),
            forwarded_for: Some(self.forwarded_for),
            response_timeout_secs: Some(self.response_timeout.as_secs()),
            upstream_idle_secs: Some(self.upstream_idle.as_secs()),
            upstream_pool_size: Some(self.upstream_pool_size),
            upstream_pool_per_host: Some(self.upstream_pool_per_host),
            open_proxy: Some(self.policy.open_proxy),
            clients: Some(self.policy.clients.clone()),
            connect_ports: Some(self.policy.connect_ports.clone()),
            allow_dest: Some(self.policy.allow_dest.clone()),
            default_action: Some(self.policy.default_action),
            groups: Some(self.policy.groups.clone()),
            rules: Some(self.policy.rules.clone()),
            max_connections: Some(self.max_connections),
            max_connections_per_client: Some(self.max_connections_per_client),
            listen_proxy_protocol: Some(
                self.listen_proxy_protocol
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
            proxy_protocol_from: Some(self.proxy_protocol_from.clone()),
            listen_tls: Some(self.listen_tls.iter().map(ToString::to_string).collect()),
            tls_cert: Some(path_or_empty(self.tls.cert.as_deref())),
            tls_key: Some(path_or_empty(self.tls.key.as_deref())),
            tls_client_ca: Some(path_or_empty(self.tls.client_ca.as_deref())),
            tls_client_cert_user: Some(self.tls.client_cert_user),
            tls_handshake_timeout_secs: Some(self.tls.handshake_timeout.as_secs()),
            dns_resolver: Some(self.dns_resolver),
            resolv_conf: Some(self.resolv_conf.clone()),
            dns_servers: Some(self.dns_servers.iter().map(ToString::to_string).collect()),
            dns_ttl_secs: Some(self.dns_ttl.as_secs()),
            dns_negative_ttl_secs: Some(self.dns_negative_ttl.as_secs()),
            dns_timeout_ms: Some(self.dns_timeout.as_millis() as u64),
            dns_cache_entries: Some(self.dns_cache_entries),
            bind_source: Some(self.bind_source.iter().map(ToString::to_string).collect()),
            max_connection_rate_per_client: Some(self.max_connection_rate_per_client),
            max_tunnels_per_user: Some(self.max_tunnels_per_user),
            user_bandwidth_bytes_per_sec: Some(self.user_bandwidth_bytes_per_sec),
            admin: Some(self.admin.map(|a| a.to_string()).unwrap_or_default()),
            access_log: Some(self.access_log.clone()),
            access_log_format: Some(self.access_log_format),
        };
        let mut out = String::new();
        if !self.users.inline.is_empty() {
            let names: Vec<&str> = self.users.inline.iter().map(|(n, _)| n.as_str()).collect();
            out.push_str(&format!(
                "# users: {} given ({}) but not shown: passwords are never printed\n",
                names.len(),
                names.join(", ")
            ));
        }
        match toml::to_string(&raw) {
            Ok(text) => out.push_str(&text),
            Err(e) => out.push_str(&format!("# cannot render config: {e}\n")),
        }
        out
    }
}
