//! The chunked scanner against a model: a whole-input parser written from RFC 9112 §7.1 (with
//! the scanner's stated leniencies and bounds), and the scanner fed the same bytes in pieces of
//! fuzzer-chosen sizes, as a socket delivers them. Both must agree on where the body ends, on the
//! content, and on refusing. The chunked output is then scanned again: it must be a body that
//! carries the same content, with no extensions and no forbidden trailer.
//!
//! The first byte chooses the piece sizes; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::http::chunked::{
    ChunkedScanner, MAX_EXTENSION, MAX_TRAILERS, Output, is_forbidden_trailer,
};

#[derive(Debug, PartialEq)]
enum Model {
    /// The body ends after this many bytes, with this content and these trailer lines (those
    /// passed on); whether any size line had an extension.
    Done(usize, Vec<u8>, Vec<Vec<u8>>, bool),
    /// More bytes are needed.
    Incomplete,
    Refused,
}

fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whole-input reading of a chunked body.
fn model(s: &[u8]) -> Model {
    let mut i = 0;
    let mut content = Vec::new();
    let mut extensions = false;
    let at = |i: usize| s.get(i).copied();
    macro_rules! need {
        ($i:expr) => {
            match at($i) {
                Some(b) => b,
                None => return Model::Incomplete,
            }
        };
    }
    loop {
        // chunk-size: 1–16 hex digits.
        let start = i;
        while need!(i).is_ascii_hexdigit() {
            i += 1;
            if i - start > 16 {
                return Model::Refused;
            }
        }
        if i == start {
            return Model::Refused;
        }
        let size = u64::from_str_radix(std::str::from_utf8(&s[start..i]).unwrap(), 16).unwrap();
        // BWS after the size, then extensions or the CRLF.
        while matches!(need!(i), b' ' | b'\t') {
            i += 1;
        }
        if need!(i) == b';' {
            extensions = true;
            i += 1;
            let ext_start = i;
            // Every byte after the first `;`, the CR included, counts toward the bound, and the
            // byte past it is refused whatever it is.
            macro_rules! need {
                ($i:expr) => {
                    match at($i) {
                        None => return Model::Incomplete,
                        Some(_) if $i >= ext_start + MAX_EXTENSION => return Model::Refused,
                        Some(b) => b,
                    }
                };
            }
            // *( BWS name [ BWS "=" BWS value ] BWS ";" ) up to CR.
            loop {
                while matches!(need!(i), b' ' | b'\t') {
                    i += 1;
                }
                let n = i;
                while tchar(need!(i)) {
                    i += 1;
                }
                if i == n {
                    return Model::Refused;
                }
                while matches!(need!(i), b' ' | b'\t') {
                    i += 1;
                }
                if need!(i) == b'=' {
                    i += 1;
                    while matches!(need!(i), b' ' | b'\t') {
                        i += 1;
                    }
                    if need!(i) == b'"' {
                        i += 1;
                        loop {
                            match need!(i) {
                                b'"' => break,
                                b'\\' => {
                                    i += 1;
                                    match need!(i) {
                                        b'\t' | b' '..=b'~' | 0x80..=0xff => {}
                                        _ => return Model::Refused,
                                    }
                                }
                                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => {}
                                _ => return Model::Refused,
                            }
                            i += 1;
                        }
                        i += 1;
                    } else {
                        let v = i;
                        while tchar(need!(i)) {
                            i += 1;
                        }
                        if i == v {
                            return Model::Refused;
                        }
                    }
                    while matches!(need!(i), b' ' | b'\t') {
                        i += 1;
                    }
                }
                match need!(i) {
                    b';' => i += 1,
                    b'\r' => break,
                    _ => return Model::Refused,
                }
            }
        }
        if need!(i) != b'\r' {
            return Model::Refused;
        }
        if need!(i + 1) != b'\n' {
            return Model::Refused;
        }
        i += 2;
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if s.len() - i < size {
            return Model::Incomplete;
        }
        content.extend_from_slice(&s[i..i + size]);
        i += size;
        if need!(i) != b'\r' || need!(i + 1) != b'\n' {
            return Model::Refused;
        }
        i += 2;
    }
    // Trailer section: field lines, then an empty line.
    let mut trailers = Vec::new();
    let mut counted = 0;
    loop {
        if need!(i) == b'\r' {
            return if need!(i + 1) == b'\n' {
                Model::Done(i + 2, content, trailers, extensions)
            } else {
                Model::Refused
            };
        }
        let line = i;
        let mut name = 0;
        while tchar(need!(i)) {
            i += 1;
            name += 1;
            counted += 1;
            if counted > MAX_TRAILERS {
                return Model::Refused;
            }
        }
        if name == 0 || need!(i) != b':' {
            return Model::Refused;
        }
        loop {
            match need!(i) {
                b'\r' => break,
                b'\t' | b' '..=b'~' | 0x80..=0xff => {}
                _ => return Model::Refused,
            }
            i += 1;
            counted += 1;
            if counted > MAX_TRAILERS {
                return Model::Refused;
            }
        }
        if need!(i + 1) != b'\n' {
            return Model::Refused;
        }
        i += 2;
        if !is_forbidden_trailer(&s[line..line + name]) {
            trailers.push(s[line..i].to_vec());
        }
    }
}

/// The scanner, given `body` in pieces; what it passed on, and where it stopped.
fn scan(body: &[u8], output: Output, mut piece: impl FnMut() -> usize) -> (Model, Vec<u8>) {
    let mut scanner = ChunkedScanner::new(output);
    let mut out = Vec::new();
    // What the scanner handed back unconsumed, given again at the front with more bytes.
    let mut pending: Vec<u8> = Vec::new();
    let mut fed = 0;
    loop {
        let n = piece().min(body.len() - fed);
        pending.extend_from_slice(&body[fed..fed + n]);
        fed += n;
        let mut buf = pending.clone();
        let scanned = match scanner.rewrite(&mut buf) {
            Ok(s) => s,
            Err(_) => return (Model::Refused, out),
        };
        assert!(scanned.kept <= scanned.consumed && scanned.consumed <= buf.len());
        out.extend_from_slice(&buf[..scanned.kept]);
        if scanner.is_done() {
            let left = pending.len() - scanned.consumed;
            return (Model::Done(fed - left, Vec::new(), Vec::new(), false), out);
        }
        pending.drain(..scanned.consumed);
        assert!(
            pending.len() <= MAX_TRAILERS + 2,
            "held back {}",
            pending.len()
        );
        if fed == body.len() {
            return (Model::Incomplete, out);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [seed, body @ ..] = data else { return };
    let expected = model(body);
    // Pieces of 1..=16 bytes, in a pattern the seed picks; then the whole input at once.
    let mut k = u32::from(*seed);
    let pieces = move || {
        k = k.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        1 + (k >> 16) as usize % 16
    };
    for (output, split) in [
        (Output::Data, true),
        (Output::Data, false),
        (Output::Chunked, true),
    ] {
        let mut p = pieces;
        let (seen, out) = if split {
            scan(body, output, &mut p)
        } else {
            scan(body, output, || usize::MAX)
        };
        match (&expected, &seen) {
            (Model::Done(end, content, trailers, _), Model::Done(at, ..)) => {
                assert_eq!(end, at, "end of body ({output:?})");
                if output == Output::Data {
                    assert_eq!(content, &out, "content ({output:?})");
                } else {
                    // The re-stated body is one the model reads the same, without extensions.
                    assert_eq!(
                        model(&out),
                        Model::Done(out.len(), content.clone(), trailers.clone(), false)
                    );
                }
            }
            (Model::Incomplete, Model::Incomplete) | (Model::Refused, Model::Refused) => {}
            (m, s) => panic!("model {m:?}, scanner {s:?} ({output:?}, split {split})"),
        }
    }
});
