//! The Negotiate client side of `tunnels --negotiate NAME`: a fresh SPNEGO token per tunnel from
//! the credential cache (`KRB5CCNAME`), made with ringgate's GSS-API binding as curl
//! `--proxy-negotiate` makes one (mutual authentication asked; one new authenticator each, so the
//! proxy's replay cache sees no repeats).

use base64::Engine;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A token for the host-based `service` (`HTTP@localhost`), base64.
pub fn token(service: &str) -> Result<String, String> {
    ringgate::sys::gss::initiate(service)
        .map(|t| B64.encode(t))
        .map_err(|e| format!("gss_init_sec_context for {service}: {e}"))
}
