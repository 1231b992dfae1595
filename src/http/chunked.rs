//! The chunked transfer coding (RFC 9112 §7.1), scanned strictly and incrementally.
//!
//! A forward proxy needs to know where a chunked body *ends*, and must refuse any framing that
//! another parser could read differently (request smuggling). [`ChunkedScanner`] is fed the bytes
//! as they arrive and says how many of them belong to the body; those bytes can be passed on
//! verbatim, since everything ambiguous was refused. A pure state machine: no I/O, no allocation.
//!
//! Strictness, each a known smuggling shape: chunk sizes are 1–16 hex digits (no sign, no `0x`, no
//! spaces before the size, no overflow); lines end in CRLF (a bare CR or a bare LF is an error);
//! the CRLF after chunk data is required; extensions and trailer fields are bounded, may not
//! contain control characters, and trailer fields may not be folded.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a size line; no digit yet.
    SizeStart,
    /// Reading hex digits.
    Size,
    /// After the digits: optional whitespace, then `;` extensions or CR.
    AfterSize,
    /// Inside extensions, until CR.
    Extension,
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
    state: State,
    size: u64,
    digits: u8,
    remaining: u64,
    extension: usize,
    trailers: usize,
    /// In the current trailer line: a colon seen, and whether the name had a character.
    colon: bool,
    named: bool,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedScanner {
    pub fn new() -> ChunkedScanner {
        ChunkedScanner {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            remaining: 0,
            extension: 0,
            trailers: 0,
            colon: false,
            named: false,
        }
    }

    /// Whether the whole body, trailers and final CRLF included, has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds `input`; returns how many of its bytes belong to the body. Fewer than `input.len()`
    /// only when the body ended inside `input` (what follows is the next message).
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                break;
            }
            if self.state == State::Data {
                // Skip data in bulk: the only state not handled byte by byte.
                let take =
                    (input.len() - i).min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                i += take;
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.byte(input[i])?;
            i += 1;
        }
        Ok(i)
    }

    fn byte(&mut self, b: u8) -> Result<(), ChunkError> {
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
            State::Extension => match b {
                b'\r' => State::SizeLf,
                b'\t' | b' '..=b'~' | 0x80..=0xff => {
                    self.extension += 1;
                    if self.extension > MAX_EXTENSION {
                        return Err(ChunkError::BadExtension);
                    }
                    State::Extension
                }
                _ => return Err(ChunkError::BadExtension),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(ChunkError::BadLineEnd);
                }
                self.end_size_line()
            }
            // Consumed in bulk by `feed`, never byte by byte.
            State::Data => State::Data,
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
                State::Extension
            }
            b'\r' => State::SizeLf,
            _ => return Err(ChunkError::BadSize),
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
                _ if is_tchar(b) => self.named = true,
                _ => return Err(ChunkError::BadTrailer),
            }
        } else if !matches!(b, b'\t' | b' '..=b'~' | 0x80..=0xff) {
            return Err(ChunkError::BadTrailer);
        }
        Ok(())
    }
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

    /// Scans `body` whole; Ok(bytes of the body) once done.
    fn scan(body: &[u8]) -> Result<Option<usize>, ChunkError> {
        let mut s = ChunkedScanner::new();
        let n = s.feed(body)?;
        Ok(s.is_done().then_some(n))
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
            (
                b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-B: two words\r\n\r\n",
                Ok(Some(41)),
            ),
            (b"000\r\n\r\n", Ok(Some(7))),
            (b"5\r\nhel", Ok(None)),
            (b"5\r\nhello\r\n0\r\n", Ok(None)),
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

    #[test]
    fn any_split_of_the_input_gives_the_same_answer() {
        let body = b"5;e=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\nNEXT";
        let whole = body.len() - 4;
        for cut in 0..=body.len() {
            let mut s = ChunkedScanner::new();
            let a = s.feed(&body[..cut]).unwrap();
            let b = s.feed(&body[cut..]).unwrap();
            assert!(s.is_done(), "cut at {cut}");
            assert_eq!(a + b, whole, "cut at {cut}");
        }
        let mut s = ChunkedScanner::new();
        let mut n = 0;
        for b in body.iter() {
            n += s.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(n, whole, "byte by byte");
    }

    /// Random bytes (a fixed xorshift sequence) never panic the scanner, and never make it claim
    /// more bytes than it was given.
    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"0123456789abcdefABCDEF;=\" \t\r\nX:-";
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut s = ChunkedScanner::new();
            if let Ok(n) = s.feed(&input) {
                assert!(n <= input.len());
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
        let mut s = ChunkedScanner::new();
        assert_eq!(s.feed(b"ffffffff\r\n").unwrap(), 10);
        let block = vec![b'z'; 1 << 20];
        for _ in 0..4095 {
            assert_eq!(s.feed(&block).unwrap(), block.len());
        }
        assert!(!s.is_done());
    }
}
