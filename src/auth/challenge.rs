//! The `407 Proxy Authentication Required` responses, rendered once at start-up for the configured
//! realm and written from then on as shared immutable bytes: answering a challenge never formats
//! or allocates. Schemes whose challenge carries a fresh value (a Digest nonce) will format it into
//! the connection's own buffer instead.

/// Whether the connection stays open after the 407, and how the response says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1: persistent by default, no header needed.
    KeepAlive,
    /// HTTP/1.0 client that asked for keep-alive: say `Connection: keep-alive`.
    KeepAlive10,
    /// `Connection: close`, and the proxy closes.
    Close,
}

const BODY: &str = "proxy authentication required\n";

/// The rendered 407s, one per [`Persistence`].
pub struct Challenges {
    full: [&'static [u8]; 3],
}

impl Challenges {
    /// Renders the challenges for `realm` (validated by config: no control characters).
    ///
    /// The bytes are leaked on purpose: they live as long as the process (or until a realm change
    /// at reload, a few hundred bytes), and `&'static` lets the io driver own them without a copy.
    pub fn render(realm: &str) -> Challenges {
        let one = |p| -> &'static [u8] { Box::leak(render_one(realm, p).into_boxed_slice()) };
        Challenges {
            full: [
                one(Persistence::KeepAlive),
                one(Persistence::KeepAlive10),
                one(Persistence::Close),
            ],
        }
    }

    /// The response to write; `head_only` for a `HEAD` request (same headers, no body).
    pub fn get(&self, persistence: Persistence, head_only: bool) -> &'static [u8] {
        let full = self.full[persistence as usize];
        if head_only {
            &full[..full.len() - BODY.len()]
        } else {
            full
        }
    }
}

/// One 407 response for `realm`.
pub fn render_one(realm: &str, persistence: Persistence) -> Vec<u8> {
    let connection = match persistence {
        Persistence::KeepAlive => "",
        Persistence::KeepAlive10 => "Connection: keep-alive\r\n",
        Persistence::Close => "Connection: close\r\n",
    };
    format!(
        "HTTP/1.1 407 Proxy Authentication Required\r\nServer: ringgate\r\n\
         Proxy-Authenticate: Basic realm=\"{}\", charset=\"UTF-8\"\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{connection}\r\n{BODY}",
        quote(realm),
        BODY.len()
    )
    .into_bytes()
}

/// Escapes `"` and `\` for a quoted-string (RFC 9110 §5.6.4).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn challenge_names_the_realm_once_and_frames_its_body() {
        let c = Challenges::render("corp \"egress\" \\ gw");
        let full = text(c.get(Persistence::KeepAlive, false));
        assert!(full.starts_with("HTTP/1.1 407 Proxy Authentication Required\r\n"));
        assert!(full.contains(
            "\r\nProxy-Authenticate: Basic realm=\"corp \\\"egress\\\" \\\\ gw\", charset=\"UTF-8\"\r\n"
        ));
        assert_eq!(full.matches("realm=").count(), 1);
        let (head, body) = full.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(!head.contains("Connection:"));
    }

    #[test]
    fn persistence_variants_say_what_happens_next() {
        let c = Challenges::render("r");
        assert!(
            text(c.get(Persistence::KeepAlive10, false)).contains("\r\nConnection: keep-alive\r\n")
        );
        assert!(text(c.get(Persistence::Close, false)).contains("\r\nConnection: close\r\n"));
        let head = text(c.get(Persistence::Close, true));
        assert!(head.ends_with("Connection: close\r\n\r\n"), "{head}");
        assert!(head.contains("Content-Length: 30"));
    }
}
