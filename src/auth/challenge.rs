//! The `407 Proxy Authentication Required` responses, rendered once at start-up (and at reload) for
//! the configured realm and schemes, one `Proxy-Authenticate` field per scheme (per algorithm for
//! Digest) in the configured order. Without Digest the whole response is shared immutable bytes;
//! with it, the fixed pieces are, and the fresh nonce is copied between them into the
//! connection's own buffer: answering a challenge never formats or allocates.

use super::digest::{Algorithm, NONCE_LEN};
use crate::observe::labels::Scheme;

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
// `write_continue` says so in its Content-Length.
const _: () = assert!(BODY.len() == 30);

/// What a 407 offers: the schemes in order, and for Digest one challenge per algorithm.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    pub realm: &'a str,
    pub schemes: &'a [Scheme],
    pub digest_algorithms: &'a [Algorithm],
    /// Digest's `opaque`: a per-process random value clients return unchanged.
    pub opaque: &'a str,
}

impl Offer<'_> {
    /// Basic only, for `realm`.
    pub fn basic(realm: &str) -> Offer<'_> {
        Offer {
            realm,
            schemes: &[Scheme::Basic],
            digest_algorithms: &[],
            opaque: "",
        }
    }
}

/// One 407, cut where the fresh part goes: between two pieces come a nonce and the rest of its
/// parameter (`"`, or `", stale=true`). One piece: nothing fresh, written as it is.
struct Template {
    pieces: Box<[&'static [u8]]>,
}

/// The rendered 407s, one per [`Persistence`].
pub struct Challenges {
    full: [Template; 3],
}

impl Challenges {
    /// Renders the challenges for `offer` (the realm validated by config: no control characters).
    ///
    /// The bytes are leaked on purpose: they live as long as the process (or until a realm change
    /// at reload, a few hundred bytes), and `&'static` lets the io driver own them without a copy.
    pub fn render(offer: &Offer<'_>) -> Challenges {
        let one = |p| Template {
            pieces: render_pieces(offer, p)
                .into_iter()
                .map(|piece| -> &'static [u8] { Box::leak(piece.into_boxed_slice()) })
                .collect(),
        };
        Challenges {
            full: [
                one(Persistence::KeepAlive),
                one(Persistence::KeepAlive10),
                one(Persistence::Close),
            ],
        }
    }

    /// The whole response when nothing in it is fresh (no Digest offered); `head_only` for a
    /// `HEAD` request (same headers, no body).
    pub fn fixed(&self, persistence: Persistence, head_only: bool) -> Option<&'static [u8]> {
        match &*self.full[persistence as usize].pieces {
            [full] => Some(strip_body(full, head_only)),
            _ => None,
        }
    }

    /// Appends the response to `out` with `nonce` in every Digest challenge (and `stale=true` when
    /// `stale`). Nothing is allocated when `out` has room.
    pub fn write(
        &self,
        persistence: Persistence,
        head_only: bool,
        nonce: &[u8; NONCE_LEN],
        stale: bool,
        out: &mut Vec<u8>,
    ) {
        let pieces = &self.full[persistence as usize].pieces;
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(nonce);
                out.extend_from_slice(if stale { b"\", stale=true" } else { b"\"" });
            }
            let last = i + 1 == pieces.len();
            out.extend_from_slice(if last {
                strip_body(piece, head_only)
            } else {
                piece
            });
        }
    }
}

/// Appends a 407 that goes on with a handshake: one `Proxy-Authenticate: <scheme> <token>` field
/// and `Proxy-Support: Session-Based-Authentication` (RFC 4559 §6).
pub fn write_continue(
    persistence: Persistence,
    head_only: bool,
    scheme: &str,
    token: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(
        b"HTTP/1.1 407 Proxy Authentication Required\r\nServer: ringgate\r\nProxy-Authenticate: ",
    );
    out.extend_from_slice(scheme.as_bytes());
    out.push(b' ');
    out.extend_from_slice(token);
    out.extend_from_slice(b"\r\nProxy-Support: Session-Based-Authentication\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 30\r\n");
    out.extend_from_slice(match persistence {
        Persistence::KeepAlive => b"",
        Persistence::KeepAlive10 => b"Connection: keep-alive\r\n",
        Persistence::Close => b"Connection: close\r\n",
    });
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(BODY.as_bytes());
    }
}

fn strip_body(full: &'static [u8], head_only: bool) -> &'static [u8] {
    if head_only {
        &full[..full.len() - BODY.len()]
    } else {
        full
    }
}

/// One 407 for `offer`, a fixed nonce in its Digest challenges (for tests and benches).
pub fn render_one(offer: &Offer<'_>, persistence: Persistence) -> Vec<u8> {
    let mut out = Vec::new();
    let pieces = render_pieces(offer, persistence);
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(&[b'N'; NONCE_LEN]);
            out.push(b'"');
        }
        out.extend_from_slice(piece);
    }
    out
}

/// The pieces of one 407: every `Proxy-Authenticate` field in the offer's order, each Digest
/// challenge ending a piece right after `nonce="`.
fn render_pieces(offer: &Offer<'_>, persistence: Persistence) -> Vec<Vec<u8>> {
    let connection = match persistence {
        Persistence::KeepAlive => "",
        Persistence::KeepAlive10 => "Connection: keep-alive\r\n",
        Persistence::Close => "Connection: close\r\n",
    };
    let realm = quote(offer.realm);
    let mut pieces = Vec::new();
    let mut cur =
        String::from("HTTP/1.1 407 Proxy Authentication Required\r\nServer: ringgate\r\n");
    for scheme in offer.schemes {
        match scheme {
            Scheme::Basic => cur.push_str(&format!(
                "Proxy-Authenticate: Basic realm=\"{realm}\", charset=\"UTF-8\"\r\n"
            )),
            Scheme::Ntlm => cur.push_str("Proxy-Authenticate: NTLM\r\n"),
            Scheme::Negotiate => cur.push_str("Proxy-Authenticate: Negotiate\r\n"),
            Scheme::Certificate => {}
            Scheme::Digest => {
                for algorithm in offer.digest_algorithms {
                    cur.push_str(&format!(
                        "Proxy-Authenticate: Digest realm=\"{realm}\", qop=\"auth\", algorithm={}, nonce=\"",
                        algorithm.name()
                    ));
                    pieces.push(std::mem::take(&mut cur).into_bytes());
                    cur.push_str(&format!(
                        ", opaque=\"{}\", charset=UTF-8, userhash=true\r\n",
                        offer.opaque
                    ));
                }
            }
        }
    }
    cur.push_str(&format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{connection}\r\n{BODY}",
        BODY.len()
    ));
    pieces.push(cur.into_bytes());
    pieces
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
        let c = Challenges::render(&Offer::basic("corp \"egress\" \\ gw"));
        let full = text(c.fixed(Persistence::KeepAlive, false).unwrap());
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
        let c = Challenges::render(&Offer::basic("r"));
        assert!(
            text(c.fixed(Persistence::KeepAlive10, false).unwrap())
                .contains("\r\nConnection: keep-alive\r\n")
        );
        assert!(
            text(c.fixed(Persistence::Close, false).unwrap()).contains("\r\nConnection: close\r\n")
        );
        let head = text(c.fixed(Persistence::Close, true).unwrap());
        assert!(head.ends_with("Connection: close\r\n\r\n"), "{head}");
        assert!(head.contains("Content-Length: 30"));
    }

    #[test]
    fn several_schemes_each_get_a_field_in_order_with_the_nonce_in_each_digest_one() {
        let offer = Offer {
            realm: "r",
            schemes: &[Scheme::Digest, Scheme::Basic],
            digest_algorithms: &[Algorithm::SHA256, Algorithm::MD5],
            opaque: "OPQ",
        };
        let c = Challenges::render(&offer);
        assert!(c.fixed(Persistence::KeepAlive, false).is_none());
        let nonce = [b'x'; NONCE_LEN];
        let mut out = b"kept".to_vec();
        c.write(Persistence::KeepAlive, false, &nonce, false, &mut out);
        let full = text(&out[4..]);
        let fields: Vec<&str> = full
            .lines()
            .filter_map(|l| l.strip_prefix("Proxy-Authenticate: "))
            .collect();
        let n = "x".repeat(NONCE_LEN);
        assert_eq!(
            fields,
            [
                format!(
                    "Digest realm=\"r\", qop=\"auth\", algorithm=SHA-256, nonce=\"{n}\", opaque=\"OPQ\", charset=UTF-8, userhash=true"
                ),
                format!(
                    "Digest realm=\"r\", qop=\"auth\", algorithm=MD5, nonce=\"{n}\", opaque=\"OPQ\", charset=UTF-8, userhash=true"
                ),
                "Basic realm=\"r\", charset=\"UTF-8\"".to_owned(),
            ]
        );
        assert!(full.ends_with(BODY));
        let mut stale = Vec::new();
        c.write(Persistence::Close, true, &nonce, true, &mut stale);
        let stale = text(&stale);
        assert_eq!(
            stale
                .matches(&format!("nonce=\"{n}\", stale=true, opaque"))
                .count(),
            2
        );
        assert!(stale.ends_with("Connection: close\r\n\r\n"), "{stale}");
        assert_eq!(
            render_one(&offer, Persistence::KeepAlive).len(),
            full.len(),
            "render_one is the same response"
        );
    }
}
