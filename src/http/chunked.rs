//! The chunked transfer coding (RFC 9112 §7.1), scanned strictly and incrementally, and
//! re-stated as it passes.
//!
//! A forward proxy needs to know where a chunked body *ends*, and must refuse any framing that
//! another parser could read differently (request smuggling). [`ChunkedScanner`] is given the
//! bytes as they arrive and rewrites them in place: it says how many belong to the body and
//! leaves at the front of the buffer what is to be passed on. What it passes on is what it
//! understood, not what it was sent: chunk extensions are dropped (each size line re-emitted as
//! its digits), trailer fields RFC 9110 §6.5.1 forbids in a trailer section are dropped
//! ([`FORBIDDEN_TRAILERS`]), and in [`Output::Data`] mode only the content is left (de-chunked,
//! for an HTTP/1.0 client). A pure state machine: no I/O, no allocation; a rewrite never makes
//! the bytes longer, so it works in the receive buffer itself, and when nothing is dropped the
//! bytes are not moved at all.
//!
//! Strictness, each a known smuggling shape: chunk sizes are 1–16 hex digits (no sign, no `0x`, no
//! spaces before the size, no overflow); lines end in CRLF (a bare CR or a bare LF is an error);
//! the CRLF after chunk data is required; extensions must follow the grammar of §7.1.1 (`;` name
//! [`=` token or quoted-string], so an unbalanced quote is an error) and are bounded; trailer
//! fields are bounded, may not contain control characters, and may not be folded.

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk size")]
    BadSize,
    #[error("chunk size overflows")]
    SizeOverflow,
    #[error("chunk line not ended by CRLF")]
    BadLineEnd,
    #[error("chunk extension invalid or too long")]
    BadExtension,
    #[error("chunk data not followed by CRLF")]
    MissingDataEnd,
    #[error("invalid trailer field")]
    BadTrailer,
    #[error("trailer section too large")]
    TrailerTooLarge,
}

/// Longest chunk extension accepted on one size line.
pub const MAX_EXTENSION: usize = 1024;
/// Largest trailer section accepted.
pub const MAX_TRAILERS: usize = 16 * 1024;

/// Trailer fields never passed on (lowercase). RFC 9110 §6.5.1: a trailer must not carry fields
/// needed for message framing, routing, request modifiers, authentication, response control or
/// caching, or the content's own description; a recipient that merged them into the head would
/// be steered by them. This is that list made concrete (§6.5.2: a proxy may drop trailers).
pub const FORBIDDEN_TRAILERS: [&str; 29] = [
    "content-length",
    "transfer-encoding",
    "host",
    "trailer",
    "te",
    "connection",
    "keep-alive",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "authorization",
    "www-authenticate",
    "set-cookie",
    "cookie",
    "content-type",
    "content-encoding",
    "content-range",
    "cache-control",
    "expect",
    "max-forwards",
    "pragma",
    "range",
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    "warning",
];

/// Whether a trailer field named `name` is dropped.
pub fn is_forbidden_trailer(name: &[u8]) -> bool {
    FORBIDDEN_TRAILERS
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
}

/// What a rewrite leaves of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Still chunked: sizes, data, allowed trailer fields; no extensions.
    Chunked,
    /// The content only (for a recipient that does not understand chunked, e.g. HTTP/1.0).
    Data,
}

/// The outcome of one [`ChunkedScanner::rewrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes of the input taken (belonging to the body). Less than the input when the body ended
    /// inside it (what follows is the next message), or when it ends in a trailer line not yet
    /// complete: those bytes must come again at the front of the next input.
    pub consumed: usize,
    /// Bytes at the front of the buffer to pass on.
    pub kept: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a size line; no digit yet.
    SizeStart,
    /// Reading hex digits.
    Size,
    /// After the digits: optional whitespace, then `;` extensions or CR.
    AfterSize,
    /// After `;`: whitespace, then an extension name.
    ExtStart,
    ExtName,
    /// After a name: whitespace, then `=`, `;` or CR.
    ExtAfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtEscape,
    /// After a value: whitespace, then `;` or CR.
    ExtAfterValue,
    /// Saw CR ending a size line; LF must follow.
    SizeLf,
    /// Chunk data: `remaining` bytes left.
    Data,
    /// After data: CR, then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Saw CR ending a trailer line (`empty`: it was the final empty line).
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Scans one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    output: Output,
    state: State,
    size: u64,
    digits: u8,
    remaining: u64,
    extension: usize,
    trailers: usize,
    /// In the current trailer line: a colon seen, whether the name had a character, its length.
    colon: bool,
    named: bool,
    name_len: usize,
    /// Bytes of an incomplete trailer line already scanned, handed back unconsumed: the next
    /// input starts with them again.
    held: usize,
}

impl ChunkedScanner {
    pub fn new(output: Output) -> ChunkedScanner {
        ChunkedScanner {
            output,
            state: State::SizeStart,
            size: 0,
            digits: 0,
            remaining: 0,
            extension: 0,
            trailers: 0,
            colon: false,
            named: false,
            name_len: 0,
            held: 0,
        }
    }

    /// Whether the whole body, trailers and final CRLF included, has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `buf` and rewrites it in place (see [`Scanned`]): `buf[..kept]` is what to pass on,
    /// `buf[consumed..]` is not part of what was taken. A trailer line is passed on or dropped
    /// whole, so one still incomplete at the end of `buf` is left unconsumed; the caller gives it
    /// again, followed by more bytes (it is at most [`MAX_TRAILERS`] long).
    pub fn rewrite(&mut self, buf: &mut [u8]) -> Result<Scanned, ChunkError> {
        let keep_framing = self.output == Output::Chunked;
        // An incomplete trailer line handed back last time starts `buf`; its bytes were scanned.
        let mut r = std::mem::take(&mut self.held).min(buf.len());
        let mut line = 0;
        let mut w = 0;
        while r < buf.len() {
            match self.state {
                State::Done => break,
                State::Data => {
                    // Data in bulk: the only state not handled byte by byte.
                    let take =
                        (buf.len() - r).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                    if w != r {
                        buf.copy_within(r..r + take, w);
                    }
                    w += take;
                    r += take;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                _ => {}
            }
            let b = buf[r];
            let before = self.state;
            self.byte(b)?;
            match (before, self.state) {
                (State::TrailerStart, State::Trailer) => line = r,
                (_, State::Trailer | State::TrailerLf { empty: false }) => {}
                (State::TrailerLf { empty: false }, State::TrailerStart) => {
                    // A whole trailer line: passed on, or dropped with its name.
                    let name = &buf[line..line + self.name_len];
                    if keep_framing && !is_forbidden_trailer(name) {
                        buf.copy_within(line..=r, w);
                        w += r + 1 - line;
                    }
                }
                (before, after) if keep_framing && is_kept_framing(before, after) => {
                    buf[w] = b;
                    w += 1;
                }
                _ => {}
            }
            r += 1;
        }
        let mut consumed = r;
        if matches!(
            self.state,
            State::Trailer | State::TrailerLf { empty: false }
        ) {
            self.held = r - line;
            consumed = line;
        }
        Ok(Scanned { consumed, kept: w })
    }

    fn byte(&mut self, b: u8) -> Result<(), ChunkError> {
        if matches!(
            self.state,
            State::ExtStart
                | State::ExtName
                | State::ExtAfterName
                | State::ExtValueStart
                | State::ExtToken
                | State::ExtQuoted
                | State::ExtEscape
                | State::ExtAfterValue
        ) {
            return self.extension_byte(b);
        }
        self.state = match self.state {
            State::SizeStart | State::Size => match hex(b) {
                Some(d) => {
                    self.digits += 1;
                    if self.digits > 16 {
                        return Err(ChunkError::SizeOverflow);
                    }
                    self.size = (self.size << 4) | u64::from(d);
                    State::Size
                }
                None if self.state == State::SizeStart => return Err(ChunkError::BadSize),
                None => return self.after_size(b),
            },
            State::AfterSize => return self.after_size(b),
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                self.end_size_line()
            }
            // Consumed in bulk by `rewrite`, never byte by byte; extensions handled above.
            state @ (State::Data
            | State::ExtStart
            | State::ExtName
            | State::ExtAfterName
            | State::ExtValueStart
            | State::ExtToken
            | State::ExtQuoted
            | State::ExtEscape
            | State::ExtAfterValue) => state,
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkError::MissingDataEnd),
            },
            State::DataLf => match b {
                b'\n' => State::SizeStart,
                _ => return Err(ChunkError::MissingDataEnd),
            },
            State::TrailerStart => match b {
                b'\r' => State::TrailerLf { empty: true },
                // A line starting with whitespace would be obs-fold.
                b' ' | b'\t' => return Err(ChunkError::BadTrailer),
                _ => {
                    self.colon = false;
                    self.named = false;
                    self.name_len = 0;
                    self.trailer_byte(b)?;
                    State::Trailer
                }
            },
            State::Trailer => match b {
                b'\r' if self.colon && self.named => State::TrailerLf { empty: false },
                b'\r' => return Err(ChunkError::BadTrailer),
                _ => {
                    self.trailer_byte(b)?;
                    State::Trailer
                }
            },
            State::TrailerLf { empty } => match (b, empty) {
                (b'\n', true) => State::Done,
                (b'\n', false) => State::TrailerStart,
                _ => return Err(ChunkError::BadLineEnd),
            },
            State::Done => State::Done,
        };
        Ok(())
    }

    fn after_size(&mut self, b: u8) -> Result<(), ChunkError> {
        self.state = match b {
            b' ' | b'\t' => State::AfterSize,
            b';' => {
                self.extension = 0;
                State::ExtStart
            }
            b'\r' => State::SizeLf,
            _ => return Err(ChunkError::BadSize),
        };
        Ok(())
    }

    /// One byte of `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )` after the
    /// first `;` (RFC 9112 §7.1.1), up to the CR that ends the size line.
    fn extension_byte(&mut self, b: u8) -> Result<(), ChunkError> {
        use State::*;
        self.extension += 1;
        if self.extension > MAX_EXTENSION {
            return Err(ChunkError::BadExtension);
        }
        let ws = matches!(b, b' ' | b'\t');
        self.state = match (self.state, b) {
            (ExtStart, _) if ws => ExtStart,
            (ExtStart, _) if is_tchar(b) => ExtName,
            (ExtName, _) if is_tchar(b) => ExtName,
            (ExtName | ExtAfterName, _) if ws => ExtAfterName,
            (ExtName | ExtAfterName, b'=') => ExtValueStart,
            (ExtValueStart, _) if ws => ExtValueStart,
            (ExtValueStart, b'"') => ExtQuoted,
            (ExtValueStart | ExtToken, _) if is_tchar(b) => ExtToken,
            (ExtQuoted, b'"') => ExtAfterValue,
            (ExtQuoted, b'\\') => ExtEscape,
            (ExtQuoted, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff) => ExtQuoted,
            (ExtEscape, b'\t' | b' '..=b'~' | 0x80..=0xff) => ExtQuoted,
            (ExtToken | ExtAfterValue, _) if ws => ExtAfterValue,
            (ExtName | ExtAfterName | ExtToken | ExtAfterValue, b';') => ExtStart,
            (ExtName | ExtAfterName | ExtToken | ExtAfterValue, b'\r') => SizeLf,
            _ => return Err(ChunkError::BadExtension),
        };
        Ok(())
    }

    fn end_size_line(&mut self) -> State {
        let size = std::mem::take(&mut self.size);
        self.digits = 0;
        if size == 0 {
            State::TrailerStart
        } else {
            self.remaining = size;
            State::Data
        }
    }

    fn trailer_byte(&mut self, b: u8) -> Result<(), ChunkError> {
        self.trailers += 1;
        if self.trailers > MAX_TRAILERS {
            return Err(ChunkError::TrailerTooLarge);
        }
        if !self.colon {
            match b {
                b':' if self.named => self.colon = true,
                _ if is_tchar(b) => {
                    self.named = true;
                    self.name_len += 1;
                }
                _ => return Err(ChunkError::BadTrailer),
            }
        } else if !matches!(b, b'\t' | b' '..=b'~' | 0x80..=0xff) {
            return Err(ChunkError::BadTrailer);
        }
        Ok(())
    }
}

/// Whether a framing byte that moved the scanner from `before` to `after` is passed on when the
/// output stays chunked: the size digits, the CRLF ending a size line, the CRLF after data, and
/// the final empty line. Whitespace after the size and extensions are not; trailer lines are
/// judged whole by `rewrite`.
fn is_kept_framing(before: State, after: State) -> bool {
    matches!(
        (before, after),
        (State::SizeStart | State::Size, State::Size)
            | (_, State::SizeLf)
            | (State::SizeLf | State::DataCr | State::DataLf, _)
            | (State::TrailerStart, State::TrailerLf { empty: true })
            | (State::TrailerLf { empty: true }, State::Done)
    )
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Token characters (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a scanner as the relay does: `input` arrives in pieces cut at `cuts`; what a
    /// rewrite leaves unconsumed comes again in front of the next piece. Returns what was passed
    /// on and, once done, how many bytes of `input` the body took.
    fn drive(
        input: &[u8],
        output: Output,
        cuts: &[usize],
    ) -> Result<(Vec<u8>, Option<usize>), ChunkError> {
        let mut s = ChunkedScanner::new(output);
        let mut out = Vec::new();
        let mut carry: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut bounds: Vec<usize> = cuts.to_vec();
        bounds.push(input.len());
        for end in bounds {
            carry.extend_from_slice(&input[fed..end]);
            fed = end;
            let got = s.rewrite(&mut carry)?;
            out.extend_from_slice(&carry[..got.kept]);
            carry.drain(..got.consumed);
            if s.is_done() {
                return Ok((out, Some(fed - carry.len())));
            }
        }
        Ok((out, None))
    }

    /// Scans `body` whole; Ok(bytes of the body) once done.
    fn scan(body: &[u8]) -> Result<Option<usize>, ChunkError> {
        drive(body, Output::Chunked, &[]).map(|(_, n)| n)
    }

    /// One row per body: the bytes and the outcome (Some(n): done after n bytes; None: needs more).
    #[test]
    fn table() {
        type Row<'a> = (&'a [u8], Result<Option<usize>, ChunkError>);
        let rows: &[Row] = &[
            (b"0\r\n\r\n", Ok(Some(5))),
            (b"5\r\nhello\r\n0\r\n\r\n", Ok(Some(15))),
            (b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1", Ok(Some(15))),
            (b"A\r\n0123456789\r\n0\r\n\r\n", Ok(Some(20))),
            (
                b"a;name=value;x=\"q\"\r\n0123456789\r\n0\r\n\r\n",
                Ok(Some(37)),
            ),
            (b"5 ;ext\r\nhello\r\n0\r\n\r\n", Ok(Some(20))),
            (b"5 ; a = b ; c\r\nhello\r\n0\r\n\r\n", Ok(Some(27))),
            (b"5;a=\"q\\\"x;\"\r\nhello\r\n0\r\n\r\n", Ok(Some(25))),
            (
                b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-B: two words\r\n\r\n",
                Ok(Some(41)),
            ),
            (b"000\r\n\r\n", Ok(Some(7))),
            (b"5\r\nhel", Ok(None)),
            (b"5\r\nhello\r\n0\r\n", Ok(None)),
            (b"5\r\nhello\r\n0\r\nX-Half: y", Ok(None)),
            (b"", Ok(None)),
            (b"-5\r\nhello\r\n0\r\n\r\n", Err(ChunkError::BadSize)),
            (b"+5\r\nhello\r\n0\r\n\r\n", Err(ChunkError::BadSize)),
            (b"0x5\r\nhello\r\n0\r\n\r\n", Err(ChunkError::BadSize)),
            (b" 5\r\nhello\r\n0\r\n\r\n", Err(ChunkError::BadSize)),
            (b"\r\n", Err(ChunkError::BadSize)),
            (b"5g\r\nhello\r\n", Err(ChunkError::BadSize)),
            (b"10000000000000000\r\n", Err(ChunkError::SizeOverflow)),
            (b"5\nhello\r\n0\r\n\r\n", Err(ChunkError::BadSize)),
            (b"5\rhello", Err(ChunkError::BadLineEnd)),
            (b"5\r\nhelloX\r\n0\r\n\r\n", Err(ChunkError::MissingDataEnd)),
            (b"5\r\nhello\n0\r\n\r\n", Err(ChunkError::MissingDataEnd)),
            (b"5;a\x00b\r\nhello", Err(ChunkError::BadExtension)),
            (b"5;a\nb\r\nhello", Err(ChunkError::BadExtension)),
            // Extensions follow the grammar, or the body is refused.
            (
                b"5;x=\"unbalanced\r\nhello\r\n0\r\n\r\n",
                Err(ChunkError::BadExtension),
            ),
            (b"5;x=\"a\r\n\"\r\nhello", Err(ChunkError::BadExtension)),
            (b"5;\r\nhello\r\n0\r\n\r\n", Err(ChunkError::BadExtension)),
            (b"5;=v\r\nhello", Err(ChunkError::BadExtension)),
            (b"5;a=\r\nhello", Err(ChunkError::BadExtension)),
            (b"5;a b\r\nhello", Err(ChunkError::BadExtension)),
            (b"5;a=b c\r\nhello", Err(ChunkError::BadExtension)),
            (b"5;a=\"q\"x\r\nhello", Err(ChunkError::BadExtension)),
            (b"5;a=\"\x01\"\r\nhello", Err(ChunkError::BadExtension)),
            (b"0\r\n folded: x\r\n\r\n", Err(ChunkError::BadTrailer)),
            (b"0\r\nNoColon\r\n\r\n", Err(ChunkError::BadTrailer)),
            (b"0\r\n: novalue\r\n\r\n", Err(ChunkError::BadTrailer)),
            (b"0\r\nBad Name: x\r\n\r\n", Err(ChunkError::BadTrailer)),
            (b"0\r\nX: a\rb\r\n\r\n", Err(ChunkError::BadLineEnd)),
            (b"0\r\n\rX", Err(ChunkError::BadLineEnd)),
        ];
        for (body, want) in rows {
            assert_eq!(&scan(body), want, "{:?}", String::from_utf8_lossy(body));
        }
    }

    /// One row per body: what is passed on when the output stays chunked, and when it is only
    /// the content.
    #[test]
    fn rewrite_table() {
        let rows: &[(&[u8], &[u8], &[u8])] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (
                b"5;a=1;b=\"x y\"\r\nhello\r\n7 ;q\r\n, world\r\n0;last\r\n\r\n",
                b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
                b"hello, world",
            ),
            (b"A \t\r\n0123456789\r\n000\r\n\r\n", b"A\r\n0123456789\r\n000\r\n\r\n", b"0123456789"),
            (
                b"2\r\nok\r\n0\r\nContent-Length: 5\r\nX-Ok: 1\r\nHOST: evil\r\nx-b: 2\r\n\r\n",
                b"2\r\nok\r\n0\r\nX-Ok: 1\r\nx-b: 2\r\n\r\n",
                b"ok",
            ),
            (
                b"0\r\nTransfer-Encoding: chunked\r\nTrailer: x\r\nSet-Cookie: s=1\r\nAuthorization: Basic x\r\n\r\n",
                b"0\r\n\r\n",
                b"",
            ),
            (b"0\r\n\r\nGET / HTTP/1.1\r\n", b"0\r\n\r\n", b""),
        ];
        for (input, chunked, data) in rows {
            let text = String::from_utf8_lossy(input);
            let (out, done) = drive(input, Output::Chunked, &[]).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(chunked),
                "{text:?}"
            );
            assert!(done.is_some(), "{text:?}");
            let (out, _) = drive(input, Output::Data, &[]).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(data),
                "{text:?}"
            );
        }
        // Every forbidden name is dropped, whatever its case; others pass.
        for name in FORBIDDEN_TRAILERS {
            let body = format!("0\r\n{}: v\r\nX-Keep: k\r\n\r\n", name.to_ascii_uppercase());
            let (out, _) = drive(body.as_bytes(), Output::Chunked, &[]).unwrap();
            assert_eq!(out, b"0\r\nX-Keep: k\r\n\r\n", "{name}");
        }
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_answer() {
        let body = b"5;e=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\nHost: h\r\n\r\nNEXT";
        let whole = body.len() - 4;
        for output in [Output::Chunked, Output::Data] {
            let (want, n) = drive(body, output, &[]).unwrap();
            assert_eq!(n, Some(whole));
            for cut in 0..=body.len() {
                assert_eq!(
                    drive(body, output, &[cut]).unwrap(),
                    (want.clone(), n),
                    "cut at {cut}"
                );
            }
            let every: Vec<usize> = (1..body.len()).collect();
            assert_eq!(
                drive(body, output, &every).unwrap(),
                (want, n),
                "byte by byte"
            );
        }
    }

    /// Random bytes (a fixed xorshift sequence) never panic the scanner, never make it claim
    /// more bytes than it was given, and never make the output longer than the input.
    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"0123456789abcdefABCDEF;=\" \t\r\nX:-\\";
        for i in 0..20_000 {
            let len = (next() % 40) as usize;
            let mut input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let output = if i % 2 == 0 {
                Output::Chunked
            } else {
                Output::Data
            };
            let mut s = ChunkedScanner::new(output);
            if let Ok(got) = s.rewrite(&mut input) {
                assert!(got.consumed <= input.len());
                assert!(got.kept <= got.consumed + s.held);
            }
        }
    }

    #[test]
    fn long_extensions_and_trailers_are_bounded() {
        let long_ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(MAX_EXTENSION + 1));
        assert_eq!(scan(long_ext.as_bytes()), Err(ChunkError::BadExtension));
        let big_trailer = format!("0\r\nX: {}\r\n\r\n", "v".repeat(MAX_TRAILERS));
        assert_eq!(
            scan(big_trailer.as_bytes()),
            Err(ChunkError::TrailerTooLarge)
        );
    }

    #[test]
    fn a_huge_chunk_is_counted_not_buffered() {
        let mut s = ChunkedScanner::new(Output::Chunked);
        let mut line = *b"ffffffff\r\n";
        assert_eq!(
            s.rewrite(&mut line).unwrap(),
            Scanned {
                consumed: 10,
                kept: 10
            }
        );
        let mut block = vec![b'z'; 1 << 20];
        for _ in 0..4095 {
            let got = s.rewrite(&mut block).unwrap();
            assert_eq!((got.consumed, got.kept), (block.len(), block.len()));
        }
        assert!(!s.is_done());
    }
}
