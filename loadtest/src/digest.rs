//! A Digest (RFC 7616) client as a long-running one behaves: it learns a nonce from a 407 once and
//! then answers every new request with it, counting `nc` up, until the proxy says `stale=true`.
//! Only what the benchmarks need: `qop=auth`, MD5 or SHA-256, the first Digest challenge.

use md5::Digest as _;

/// One client's Digest state: the challenge it answers and its next nonce count.
pub struct DigestClient {
    user: String,
    password: String,
    challenge: Option<Challenge>,
    nc: u32,
    cnonce: u64,
}

struct Challenge {
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: String,
}

impl DigestClient {
    /// `credentials` is `user:password`; `seed` makes the client's cnonces its own.
    pub fn new(credentials: &str, seed: u64) -> DigestClient {
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        DigestClient {
            user: user.to_owned(),
            password: password.to_owned(),
            challenge: None,
            nc: 0,
            cnonce: seed << 32,
        }
    }

    pub fn has_nonce(&self) -> bool {
        self.challenge.is_some()
    }

    /// Takes the first Digest challenge of a 407 head; false when it has none.
    pub fn learn(&mut self, head: &str) -> bool {
        let Some(value) = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let value = value.trim();
            (name.eq_ignore_ascii_case("proxy-authenticate")
                && value.len() > 7
                && value[..7].eq_ignore_ascii_case("digest "))
            .then(|| value[7..].to_owned())
        }) else {
            return false;
        };
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = "MD5".to_owned();
        for (k, v) in params(&value) {
            match k.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "opaque" => opaque = Some(v),
                "algorithm" => algorithm = v,
                _ => {}
            }
        }
        match (realm, nonce) {
            (Some(realm), Some(nonce)) => {
                self.challenge = Some(Challenge {
                    realm,
                    nonce,
                    opaque,
                    algorithm,
                });
                self.nc = 0;
                true
            }
            _ => false,
        }
    }

    /// The `Proxy-Authorization` line (with its CRLF) for `method uri`, using the next `nc`.
    pub fn header(&mut self, method: &str, uri: &str) -> Result<String, String> {
        let c = self.challenge.as_ref().ok_or("no Digest challenge yet")?;
        self.nc += 1;
        self.cnonce += 1;
        let nc = format!("{:08x}", self.nc);
        let cnonce = format!("{:016x}", self.cnonce);
        let credentials = format!("{}:{}", self.user, self.password);
        let response = response(
            &c.algorithm,
            &credentials,
            &c.realm,
            method,
            uri,
            &c.nonce,
            &nc,
            &cnonce,
        )?;
        let opaque = c
            .opaque
            .as_ref()
            .map_or(String::new(), |o| format!(", opaque=\"{o}\""));
        Ok(format!(
            "Proxy-Authorization: Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
             algorithm={}, response=\"{response}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\"{opaque}\r\n",
            self.user, c.realm, c.nonce, c.algorithm
        ))
    }
}

/// The `qop=auth` response (RFC 7616 §3.4.1) for `user:password` (`credentials`).
#[allow(clippy::too_many_arguments)]
fn response(
    algorithm: &str,
    credentials: &str,
    realm: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
) -> Result<String, String> {
    let h = |s: &str| -> Result<String, String> {
        Ok(match algorithm.to_ascii_uppercase().as_str() {
            "MD5" => hex(&md5::Md5::digest(s.as_bytes())),
            "SHA-256" => hex(&sha2::Sha256::digest(s.as_bytes())),
            other => return Err(format!("algorithm {other} not supported by loadtest")),
        })
    };
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let ha1 = h(&format!("{user}:{realm}:{password}"))?;
    let ha2 = h(&format!("{method}:{uri}"))?;
    h(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
}

/// `k=v` or `k="v"` pairs of a challenge, commas inside quotes kept.
fn params(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = list.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (q[..end].to_owned(), q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((k, v));
        rest = tail.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_first_digest_challenge_and_counts_up() {
        let head = "HTTP/1.1 407 x\r\nProxy-Authenticate: Basic realm=\"b\"\r\n\
                    Proxy-Authenticate: Digest realm=\"r, x\", qop=\"auth\", algorithm=MD5, nonce=\"abc\", opaque=\"op\"\r\n\
                    Proxy-Authenticate: Digest realm=\"r\", algorithm=SHA-256, nonce=\"def\"\r\n\r\n";
        let mut c = DigestClient::new("u:p", 1);
        assert!(c.learn(head));
        let one = c.header("CONNECT", "h:1").unwrap();
        assert!(one.contains("realm=\"r, x\""), "{one}");
        assert!(one.contains("nonce=\"abc\""), "{one}");
        assert!(one.contains("nc=00000001"), "{one}");
        assert!(one.contains("opaque=\"op\""), "{one}");
        assert!(c.header("CONNECT", "h:1").unwrap().contains("nc=00000002"));
    }

    #[test]
    fn rfc_7616_examples() {
        // RFC 7616 §3.9.1, MD5 and SHA-256.
        let args = |algorithm| {
            response(
                algorithm,
                "Mufasa:Circle of Life",
                "http-auth@example.org",
                "GET",
                "/dir/index.html",
                "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                "00000001",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            )
            .unwrap()
        };
        assert_eq!(args("MD5"), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            args("SHA-256"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }
}
