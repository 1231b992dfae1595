//! The Digest scheme (RFC 7616) on the proxy's side: the parameter list a client sends, its
//! validation, the response computation, and the nonces.
//!
//! Everything here is a pure function of its inputs except [`Nonces`], whose books are shared by
//! all workers: a nonce any worker minted is judged by whichever worker the client's next
//! connection lands on (Python's urllib retries a 407 on a new connection).
//!
//! Only `qop="auth"` is offered and accepted. `auth-int` would hash the request body into the
//! response, so the proxy would have to hold a whole body before forwarding its first byte (and
//! CONNECT has no body at all); no client this proxy serves sends it (curl, urllib, browsers do
//! not), so it is refused like any other malformed value.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The hash function of an algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    Md5,
    Sha256,
}

impl Hash {
    /// Output length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Hash::Md5 => 16,
            Hash::Sha256 => 32,
        }
    }
}

/// A Digest algorithm: a hash, and whether the session variant (`-sess`) hashes the client's
/// nonce into HA1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithm {
    pub hash: Hash,
    pub sess: bool,
}

impl Algorithm {
    pub const MD5: Algorithm = Algorithm {
        hash: Hash::Md5,
        sess: false,
    };
    pub const SHA256: Algorithm = Algorithm {
        hash: Hash::Sha256,
        sess: false,
    };
    pub const ALL: [Algorithm; 4] = [
        Algorithm::SHA256,
        Algorithm {
            hash: Hash::Sha256,
            sess: true,
        },
        Algorithm::MD5,
        Algorithm {
            hash: Hash::Md5,
            sess: true,
        },
    ];

    /// The name on the wire and in the config.
    pub const fn name(self) -> &'static str {
        match (self.hash, self.sess) {
            (Hash::Md5, false) => "MD5",
            (Hash::Md5, true) => "MD5-sess",
            (Hash::Sha256, false) => "SHA-256",
            (Hash::Sha256, true) => "SHA-256-sess",
        }
    }

    /// Parses a name, case-insensitively (RFC 7616 §3.3 tokens; clients differ in case).
    /// SHA-512-256 is not supported: no client this proxy serves sends it.
    pub fn parse(name: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// A hash output (up to SHA-256's 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sum {
    bytes: [u8; 32],
    len: u8,
}

impl std::fmt::Debug for Sum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).unwrap_or("?"))
    }
}

impl Sum {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// Lower-case hex (RFC 7616 §3.4.1's `LHEX`), in a fixed buffer.
    pub fn hex(&self) -> HexSum {
        let mut out = HexSum {
            text: [0; 64],
            len: self.len * 2,
        };
        for (i, b) in self.as_bytes().iter().enumerate() {
            out.text[2 * i] = HEX[(b >> 4) as usize];
            out.text[2 * i + 1] = HEX[(b & 15) as usize];
        }
        out
    }

    /// Decodes hex of exactly `hash`'s length (either case).
    pub fn from_hex(hash: Hash, text: &[u8]) -> Option<Sum> {
        if text.len() != 2 * hash.output_len() {
            return None;
        }
        let mut sum = Sum {
            bytes: [0; 32],
            len: hash.output_len() as u8,
        };
        for (i, pair) in text.chunks_exact(2).enumerate() {
            sum.bytes[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(sum)
    }

    /// All zero bits, of `hash`'s length: what an unknown user is checked against.
    pub const fn zero(hash: Hash) -> Sum {
        Sum {
            bytes: [0; 32],
            len: hash.output_len() as u8,
        }
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &Sum) -> bool {
        self.len == other.len && bool::from(self.as_bytes().ct_eq(other.as_bytes()))
    }
}

/// A [`Sum`] in lower-case hex.
pub struct HexSum {
    text: [u8; 64],
    len: u8,
}

impl std::ops::Deref for HexSum {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.text[..self.len as usize]
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `H(part ":" part ":" …)`.
pub fn sum(hash: Hash, parts: &[&[u8]]) -> Sum {
    fn run<D: sha2::Digest>(parts: &[&[u8]], out: &mut [u8; 32]) {
        let mut d = D::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                d.update(b":");
            }
            d.update(p);
        }
        let done = d.finalize();
        out[..done.len()].copy_from_slice(&done);
    }
    let mut bytes = [0; 32];
    match hash {
        Hash::Md5 => run::<Md5>(parts, &mut bytes),
        Hash::Sha256 => run::<Sha256>(parts, &mut bytes),
    }
    Sum {
        bytes,
        len: hash.output_len() as u8,
    }
}

/// HA1 of a user with a known password: `H(username ":" realm ":" password)`.
pub fn ha1(hash: Hash, user: &str, realm: &str, password: &[u8]) -> Sum {
    sum(hash, &[user.as_bytes(), realm.as_bytes(), password])
}

/// What a client sends for `userhash=true`: `H(username ":" realm)`.
pub fn userhash(hash: Hash, user: &str, realm: &str) -> Sum {
    sum(hash, &[user.as_bytes(), realm.as_bytes()])
}

/// The `response` a client that knows the password computes for `qop=auth` (RFC 7616 §3.4.1).
pub fn expected_response(
    algorithm: Algorithm,
    stored_ha1: &Sum,
    method: &[u8],
    r: &Verified<'_>,
) -> Sum {
    let h = algorithm.hash;
    let ha1 = if algorithm.sess {
        sum(h, &[&stored_ha1.hex(), r.nonce, &r.cnonce])
    } else {
        *stored_ha1
    };
    let ha2 = sum(h, &[method, &r.uri]);
    sum(
        h,
        &[
            &ha1.hex(),
            r.nonce,
            r.nc_text,
            &r.cnonce,
            b"auth",
            &ha2.hex(),
        ],
    )
}

/// Why a parameter list was refused. Every one is answered with the same 407.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not `name=value` pairs separated by commas.
    Syntax,
    /// A parameter given twice.
    Duplicate,
    /// A token where the RFC requires a quoted string.
    Unquoted,
    /// A required parameter is absent.
    Missing,
    /// A value over [`MAX_VALUE`] bytes.
    TooLong,
    /// A value outside its grammar: not UTF-8, a control character, bad hex, an unknown
    /// algorithm or qop, both `username` and `username*`.
    BadValue,
}

/// The longest parameter value accepted. A request target may be longer than this, but its
/// `uri` must then equal a target the head limits already bounded.
pub const MAX_VALUE: usize = 8192;

/// One parameter value as sent: the bytes between the quotes (still escaped) or the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    raw: &'a [u8],
    quoted: bool,
    escaped: bool,
}

impl<'a> Value<'a> {
    /// The value with quoted-pairs resolved; borrowed unless it had any.
    pub fn text(&self) -> Cow<'a, [u8]> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        let mut out = Vec::with_capacity(self.raw.len());
        let mut it = self.raw.iter();
        while let Some(&b) = it.next() {
            if b == b'\\' {
                if let Some(&next) = it.next() {
                    out.push(next);
                }
            } else {
                out.push(b);
            }
        }
        Cow::Owned(out)
    }
}

/// The parameters of a `Digest` credential this proxy reads; others are ignored (RFC 7616 §3.4).
#[derive(Debug, Default, Clone, Copy)]
pub struct Params<'a> {
    pub username: Option<Value<'a>>,
    pub username_star: Option<Value<'a>>,
    pub realm: Option<Value<'a>>,
    pub nonce: Option<Value<'a>>,
    pub uri: Option<Value<'a>>,
    pub response: Option<Value<'a>>,
    pub algorithm: Option<Value<'a>>,
    pub cnonce: Option<Value<'a>>,
    pub opaque: Option<Value<'a>>,
    pub qop: Option<Value<'a>>,
    pub nc: Option<Value<'a>>,
    pub userhash: Option<Value<'a>>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn skip_ows(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// Parses `#auth-param` (RFC 9110 §11.2): `name = token / quoted-string`, comma-separated, empty
/// elements allowed. Strict about everything else.
pub fn parse(list: &[u8]) -> Result<Params<'_>, Malformed> {
    let mut p = Params::default();
    let mut i = 0;
    loop {
        // Empty list elements (`a=1, , b=2`) are allowed (RFC 9110 §5.6.1).
        loop {
            i = skip_ows(list, i);
            if i < list.len() && list[i] == b',' {
                i += 1;
            } else {
                break;
            }
        }
        if i == list.len() {
            return Ok(p);
        }
        let name_start = i;
        while i < list.len() && is_tchar(list[i]) {
            i += 1;
        }
        let name = &list[name_start..i];
        if name.is_empty() {
            return Err(Malformed::Syntax);
        }
        i = skip_ows(list, i);
        if i == list.len() || list[i] != b'=' {
            return Err(Malformed::Syntax);
        }
        i = skip_ows(list, i + 1);
        let value = if i < list.len() && list[i] == b'"' {
            let start = i + 1;
            let mut j = start;
            let mut escaped = false;
            loop {
                match list.get(j) {
                    None => return Err(Malformed::Syntax),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        match list.get(j + 1) {
                            Some(&c) if c == b'\t' || c >= 0x20 && c != 0x7f => {}
                            _ => return Err(Malformed::BadValue),
                        }
                        escaped = true;
                        j += 2;
                    }
                    Some(&c) if c == b'\t' || c >= 0x20 && c != 0x7f => j += 1,
                    Some(_) => return Err(Malformed::BadValue),
                }
            }
            i = j + 1;
            Value {
                raw: &list[start..j],
                quoted: true,
                escaped,
            }
        } else {
            let start = i;
            while i < list.len() && is_tchar(list[i]) {
                i += 1;
            }
            if i == start {
                return Err(Malformed::Syntax);
            }
            Value {
                raw: &list[start..i],
                quoted: false,
                escaped: false,
            }
        };
        if value.raw.len() > MAX_VALUE {
            return Err(Malformed::TooLong);
        }
        if std::str::from_utf8(value.raw).is_err() {
            return Err(Malformed::BadValue);
        }
        // Lower-cased on the stack: the longest name we know is 9 bytes; longer ones are unknown.
        let mut lower = [0u8; 9];
        let known = name.len() <= lower.len();
        if known {
            lower[..name.len()].copy_from_slice(name);
            lower.make_ascii_lowercase();
        }
        let slot = match &lower[..if known { name.len() } else { 0 }] {
            b"username" => &mut p.username,
            b"username*" => &mut p.username_star,
            b"realm" => &mut p.realm,
            b"nonce" => &mut p.nonce,
            b"uri" => &mut p.uri,
            b"response" => &mut p.response,
            b"algorithm" => &mut p.algorithm,
            b"cnonce" => &mut p.cnonce,
            b"opaque" => &mut p.opaque,
            b"qop" => &mut p.qop,
            b"nc" => &mut p.nc,
            b"userhash" => &mut p.userhash,
            _ => {
                i = after_value(list, i)?;
                continue;
            }
        };
        if slot.replace(value).is_some() {
            return Err(Malformed::Duplicate);
        }
        i = after_value(list, i)?;
    }
}

/// After a value: OWS, then a comma or the end.
fn after_value(list: &[u8], i: usize) -> Result<usize, Malformed> {
    let i = skip_ows(list, i);
    match list.get(i) {
        None => Ok(i),
        Some(b',') => Ok(i + 1),
        Some(_) => Err(Malformed::Syntax),
    }
}

/// Who the client says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Username<'a> {
    /// `username` (or a decoded `username*`).
    Name(Cow<'a, str>),
    /// `username` under `userhash=true`: `H(username ":" realm)`.
    Hashed(Sum),
}

/// A parameter list that passed every syntactic rule; what remains is checking it against the
/// request, the user and the nonce.
#[derive(Debug, Clone)]
pub struct Verified<'a> {
    pub username: Username<'a>,
    pub realm: Cow<'a, [u8]>,
    pub nonce: &'a [u8],
    pub uri: Cow<'a, [u8]>,
    pub response: Sum,
    pub algorithm: Algorithm,
    pub cnonce: Cow<'a, [u8]>,
    pub opaque: Option<Cow<'a, [u8]>>,
    /// `nc` as sent (8 hex digits): hashed as text.
    pub nc_text: &'a [u8],
    pub nc: u32,
}

fn quoted<'a>(v: Option<Value<'a>>) -> Result<Value<'a>, Malformed> {
    let v = v.ok_or(Malformed::Missing)?;
    if v.quoted {
        Ok(v)
    } else {
        Err(Malformed::Unquoted)
    }
}

/// A token value; a quoted one is read the same (RFC 9110 §11.2 asks recipients to accept both).
fn token<'a>(v: Option<Value<'a>>) -> Result<Option<Value<'a>>, Malformed> {
    match v {
        Some(v) if v.escaped => Err(Malformed::BadValue),
        v => Ok(v),
    }
}

/// Applies RFC 7616 §3.4's rules to a parsed list.
pub fn verify(p: Params<'_>) -> Result<Verified<'_>, Malformed> {
    let algorithm = match token(p.algorithm)? {
        // Absent means MD5 (RFC 7616 §3.3).
        None => Algorithm::MD5,
        Some(v) => Algorithm::parse(v.raw).ok_or(Malformed::BadValue)?,
    };
    let qop = token(p.qop)?.ok_or(Malformed::Missing)?;
    if !qop.raw.eq_ignore_ascii_case(b"auth") {
        return Err(Malformed::BadValue);
    }
    let nc = token(p.nc)?.ok_or(Malformed::Missing)?;
    if nc.raw.len() != 8 || !nc.raw.iter().all(u8::is_ascii_hexdigit) {
        return Err(Malformed::BadValue);
    }
    let nc_value = nc
        .raw
        .iter()
        .fold(0u32, |n, &c| (n << 4) | u32::from(nibble(c).unwrap_or(0)));
    let hashed = match token(p.userhash)? {
        None => false,
        Some(v) if v.raw.eq_ignore_ascii_case(b"true") => true,
        Some(v) if v.raw.eq_ignore_ascii_case(b"false") => false,
        Some(_) => return Err(Malformed::BadValue),
    };
    let username = match (p.username, p.username_star) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(if p.username.is_some() {
                Malformed::BadValue
            } else {
                Malformed::Missing
            });
        }
        (Some(v), None) => {
            let v = quoted(Some(v))?;
            if hashed {
                Username::Hashed(
                    Sum::from_hex(algorithm.hash, &v.text()).ok_or(Malformed::BadValue)?,
                )
            } else {
                Username::Name(utf8(v.text())?)
            }
        }
        // `username*` is an ext-value token, never quoted, and never with a hashed name.
        (None, Some(v)) if v.quoted || hashed => return Err(Malformed::BadValue),
        (None, Some(v)) => Username::Name(Cow::Owned(ext_value(v.raw)?)),
    };
    let response = quoted(p.response)?;
    let response = Sum::from_hex(algorithm.hash, response.raw).ok_or(Malformed::BadValue)?;
    let nonce = quoted(p.nonce)?;
    if nonce.escaped {
        return Err(Malformed::BadValue);
    }
    let cnonce = quoted(p.cnonce)?.text();
    if cnonce.is_empty() {
        return Err(Malformed::BadValue);
    }
    let opaque = match p.opaque {
        None => None,
        some => Some(quoted(some)?.text()),
    };
    Ok(Verified {
        username,
        realm: quoted(p.realm)?.text(),
        nonce: nonce.raw,
        uri: quoted(p.uri)?.text(),
        response,
        algorithm,
        cnonce,
        opaque,
        nc_text: nc.raw,
        nc: nc_value,
    })
}

fn utf8(bytes: Cow<'_, [u8]>) -> Result<Cow<'_, str>, Malformed> {
    let s = match bytes {
        Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b).map_err(|_| Malformed::BadValue)?),
        Cow::Owned(b) => Cow::Owned(String::from_utf8(b).map_err(|_| Malformed::BadValue)?),
    };
    if s.chars().any(char::is_control) {
        return Err(Malformed::BadValue);
    }
    Ok(s)
}

/// Decodes an RFC 8187 ext-value: `UTF-8'[language]'pct-encoded`. Only UTF-8 is accepted (the
/// one charset recipients must support).
fn ext_value(raw: &[u8]) -> Result<String, Malformed> {
    let mut parts = raw.splitn(3, |&b| b == b'\'');
    let (Some(charset), Some(_language), Some(value)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed::BadValue);
    };
    if !charset.eq_ignore_ascii_case(b"utf-8") {
        return Err(Malformed::BadValue);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'%' => {
                let hi = value.get(i + 1).copied().and_then(nibble);
                let lo = value.get(i + 2).copied().and_then(nibble);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(Malformed::BadValue);
                };
                out.push((hi << 4) | lo);
                i += 3;
            }
            // attr-char (RFC 8187 §3.2.1).
            c if c.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&c) => {
                out.push(c);
                i += 1;
            }
            _ => return Err(Malformed::BadValue),
        }
    }
    match utf8(Cow::Owned(out))? {
        Cow::Owned(s) => Ok(s),
        Cow::Borrowed(s) => Ok(s.to_owned()),
    }
}

/// Characters of a nonce: 24 bytes in unpadded base64url.
pub const NONCE_LEN: usize = 32;
/// Nonces each worker remembers the count of; minting one more forgets the oldest, whose next use
/// is then answered `stale=true`. 8 bytes each: 512 KiB per worker, touched as nonces are minted.
pub const NONCE_SLOTS: usize = 1 << 16;

/// What [`Nonces::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Minted here, within its lifetime: its count may be checked.
    Live(Ticket),
    /// Not one of this process's nonces (a previous run's, or made up), or past its lifetime:
    /// a client that answered it correctly is told `stale=true`.
    Stale,
}

/// A live nonce's place in its worker's book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    worker: u16,
    serial: u32,
}

/// What [`Nonces::advance`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Higher than any count seen for this nonce: accepted and remembered.
    Fresh,
    /// Not higher than one already accepted: a replay (or requests reordered across connections).
    Replayed,
    /// The nonce's slot went to a newer nonce: the count is unknown.
    Forgotten,
}

/// One worker's nonce book: it writes the slots of the nonces it mints; any worker advances them.
struct Book {
    next: AtomicU32,
    /// Per slot: the serial of the nonce that owns it (high half) and its highest count (low half).
    slots: Box<[AtomicU64]>,
}

/// Stateless, keyed nonces with a process-wide, lock-free replay check.
///
/// A nonce is `issued (u32 s) | worker (u16) | serial (u32) | HMAC-SHA-256(those)[..14]`, in
/// base64url: any worker can tell one of ours, and its age, without state. The count check needs
/// state: the minting worker's book has a slot per nonce (serial modulo [`NONCE_SLOTS`]) holding
/// the highest `nc` accepted, advanced by one compare-and-swap from whichever worker the request
/// reached. Nothing is locked and nothing is shared per byte; a mint is one atomic add and one
/// store on the minting worker's own book.
pub struct Nonces {
    mac: Hmac<Sha256>,
    start: Instant,
    ttl_secs: u64,
    books: Box<[Book]>,
}

impl Nonces {
    pub fn new(workers: usize, ttl: Duration) -> Nonces {
        let mut key = [0u8; 32];
        // The kernel's getrandom(2) does not fail once its pool is initialised, long before a
        // proxy starts; there is no safe key to fall back on.
        getrandom::fill(&mut key).expect("the kernel's random source is available");
        Nonces::with_key(&key, workers, ttl, Instant::now())
    }

    fn with_key(key: &[u8], workers: usize, ttl: Duration, start: Instant) -> Nonces {
        let books = (0..workers.clamp(1, usize::from(u16::MAX)))
            .map(|_| Book {
                next: AtomicU32::new(0),
                slots: (0..NONCE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            })
            .collect();
        Nonces {
            // HMAC takes a key of any length.
            mac: Hmac::new_from_slice(key).expect("HMAC accepts any key length"),
            start,
            ttl_secs: ttl.as_secs(),
            books,
        }
    }

    fn tag(&self, fields: &[u8; 10]) -> [u8; 14] {
        let mut mac = self.mac.clone();
        mac.update(fields);
        let full = mac.finalize().into_bytes();
        let mut tag = [0; 14];
        tag.copy_from_slice(&full[..14]);
        tag
    }

    /// A fresh nonce from `worker`.
    pub fn mint(&self, worker: usize, now: Instant) -> [u8; NONCE_LEN] {
        let worker = worker % self.books.len();
        let book = &self.books[worker];
        let serial = book.next.fetch_add(1, Ordering::Relaxed);
        book.slots[serial as usize % NONCE_SLOTS].store(u64::from(serial) << 32, Ordering::Release);
        let issued = now.saturating_duration_since(self.start).as_secs() as u32;
        let mut raw = [0u8; 24];
        raw[..4].copy_from_slice(&issued.to_be_bytes());
        raw[4..6].copy_from_slice(&(worker as u16).to_be_bytes());
        raw[6..10].copy_from_slice(&serial.to_be_bytes());
        let fields: [u8; 10] = raw[..10].try_into().unwrap_or([0; 10]);
        raw[10..].copy_from_slice(&self.tag(&fields));
        let mut out = [0u8; NONCE_LEN];
        // 24 bytes are exactly 32 base64 characters.
        let _ = URL_SAFE_NO_PAD.encode_slice(raw, &mut out);
        out
    }

    /// Judges a nonce a client returned.
    pub fn open(&self, nonce: &[u8], now: Instant) -> NonceState {
        let mut raw = [0u8; 24];
        if nonce.len() != NONCE_LEN || URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw) != Ok(24) {
            return NonceState::Stale;
        }
        let fields: [u8; 10] = raw[..10].try_into().unwrap_or([0; 10]);
        if !bool::from(self.tag(&fields).ct_eq(&raw[10..])) {
            return NonceState::Stale;
        }
        let issued = u64::from(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]));
        let age = now
            .saturating_duration_since(self.start)
            .as_secs()
            .saturating_sub(issued);
        let worker = u16::from_be_bytes([raw[4], raw[5]]);
        if age >= self.ttl_secs || usize::from(worker) >= self.books.len() {
            return NonceState::Stale;
        }
        NonceState::Live(Ticket {
            worker,
            serial: u32::from_be_bytes([raw[6], raw[7], raw[8], raw[9]]),
        })
    }

    /// Accepts `nc` for a live nonce if it is higher than every count accepted for it before.
    pub fn advance(&self, ticket: Ticket, nc: u32) -> Count {
        let slot =
            &self.books[usize::from(ticket.worker)].slots[ticket.serial as usize % NONCE_SLOTS];
        let mut seen = slot.load(Ordering::Acquire);
        loop {
            if (seen >> 32) as u32 != ticket.serial {
                return Count::Forgotten;
            }
            if nc <= seen as u32 {
                return Count::Replayed;
            }
            let next = (u64::from(ticket.serial) << 32) | u64::from(nc);
            match slot.compare_exchange_weak(seen, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Count::Fresh,
                Err(now) => seen = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &Sum) -> String {
        String::from_utf8(s.hex().to_vec()).unwrap()
    }

    /// RFC 7616 §3.9.1: the same exchange with MD5 and with SHA-256.
    #[test]
    fn rfc_7616_vectors() {
        let header = |alg: &str, response: &str| {
            format!(
                "username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", \
                 algorithm={alg}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 nc=00000001, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
                 qop=auth, response=\"{response}\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
        };
        for (hash, alg, want) in [
            (Hash::Md5, "MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                Hash::Sha256,
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let text = header(alg, want);
            let v = verify(parse(text.as_bytes()).unwrap()).unwrap();
            assert_eq!(v.algorithm.hash, hash);
            let stored = ha1(hash, "Mufasa", "http-auth@example.org", b"Circle of Life");
            let got = expected_response(v.algorithm, &stored, b"GET", &v);
            assert_eq!(hex(&got), want, "{alg}");
            assert!(got.ct_eq(&v.response));
        }
    }

    #[test]
    fn userhash_and_sess_follow_the_rfc_formulas() {
        // RFC 7616 §3.4.4: userhash = H(username ":" realm).
        let u = userhash(Hash::Sha256, "Mufasa", "http-auth@example.org");
        let direct = hex(&sum(Hash::Sha256, &[b"Mufasa:http-auth@example.org"]));
        assert_eq!(hex(&u), direct);
        // -sess: HA1 = H(H(user:realm:pw) ":" nonce ":" cnonce).
        let text = "username=\"u\", realm=\"r\", uri=\"/\", algorithm=MD5-sess, nonce=\"n\", \
                    nc=00000001, cnonce=\"c\", qop=auth, response=\"00000000000000000000000000000000\"";
        let v = verify(parse(text.as_bytes()).unwrap()).unwrap();
        let stored = ha1(Hash::Md5, "u", "r", b"pw");
        let got = expected_response(v.algorithm, &stored, b"GET", &v);
        let sess = sum(Hash::Md5, &[&stored.hex(), b"n", b"c"]);
        let ha2 = sum(Hash::Md5, &[b"GET", b"/"]);
        let want = sum(
            Hash::Md5,
            &[&sess.hex(), b"n", b"00000001", b"c", b"auth", &ha2.hex()],
        );
        assert_eq!(got, want);
    }

    const GOOD: &str = "username=\"u\", realm=\"r\", uri=\"/\", nonce=\"n\", nc=00000001, \
                        cnonce=\"c\", qop=auth, response=\"00000000000000000000000000000000\"";

    #[test]
    fn the_good_list_passes_and_keeps_its_values() {
        let v = verify(parse(GOOD.as_bytes()).unwrap()).unwrap();
        assert_eq!(v.username, Username::Name("u".into()));
        assert_eq!(v.nc, 1);
        assert_eq!(&*v.uri, b"/");
        assert!(v.opaque.is_none());
        let escaped = GOOD.replace("username=\"u\"", "username=\"a\\\"b\"");
        let v = verify(parse(escaped.as_bytes()).unwrap()).unwrap();
        assert_eq!(v.username, Username::Name("a\"b".into()));
        let star = GOOD.replace("username=\"u\"", "username*=UTF-8''j%C3%BCrgen");
        let v = verify(parse(star.as_bytes()).unwrap()).unwrap();
        assert_eq!(v.username, Username::Name("jürgen".into()));
        let spaced = GOOD.replace(", ", " ,\t, ").replace('=', " = ");
        assert!(
            verify(parse(spaced.as_bytes()).unwrap()).is_ok(),
            "{spaced}"
        );
        let unknown = format!("{GOOD}, future=\"x\", other=tok");
        assert!(verify(parse(unknown.as_bytes()).unwrap()).is_ok());
    }

    /// Malformed lists, each refused; none panics.
    #[test]
    fn malformed_lists_are_refused() {
        let long = "a".repeat(MAX_VALUE + 1);
        let cases: Vec<(String, Malformed)> = vec![
            (
                GOOD.replace("username=\"u\"", "username=u"),
                Malformed::Unquoted,
            ),
            (GOOD.replace("realm=\"r\"", "realm=r"), Malformed::Unquoted),
            (GOOD.replace("nonce=\"n\"", "nonce=n"), Malformed::Unquoted),
            (GOOD.replace("uri=\"/\"", "uri=/"), Malformed::Syntax),
            (
                GOOD.replace("cnonce=\"c\"", "cnonce=c"),
                Malformed::Unquoted,
            ),
            (
                GOOD.replace("response=\"0000", "response=0000")
                    .replace("00\"", "00"),
                Malformed::Unquoted,
            ),
            (format!("{GOOD}, realm=\"r\""), Malformed::Duplicate),
            (format!("{GOOD}, NC=00000002"), Malformed::Duplicate),
            (GOOD.replace(", nc=00000001", ""), Malformed::Missing),
            (GOOD.replace(", cnonce=\"c\"", ""), Malformed::Missing),
            (GOOD.replace(", qop=auth", ""), Malformed::Missing),
            (GOOD.replace("username=\"u\", ", ""), Malformed::Missing),
            (GOOD.replace("realm=\"r\", ", ""), Malformed::Missing),
            (GOOD.replace("uri=\"/\", ", ""), Malformed::Missing),
            (
                GOOD.replace(", response=\"00000000000000000000000000000000\"", ""),
                Malformed::Missing,
            ),
            (
                format!("{GOOD}, algorithm=SHA-512-256"),
                Malformed::BadValue,
            ),
            (format!("{GOOD}, algorithm=\"\""), Malformed::BadValue),
            (
                GOOD.replace("qop=auth", "qop=auth-int"),
                Malformed::BadValue,
            ),
            (GOOD.replace("nc=00000001", "nc=1"), Malformed::BadValue),
            (
                GOOD.replace("nc=00000001", "nc=0000000g"),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("nc=00000001", "nc=000000001"),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("response=\"0000", "response=\"zz00"),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("000000000000\"", "0000000000\""),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("cnonce=\"c\"", "cnonce=\"\""),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("username=\"u\"", &format!("username=\"{long}\"")),
                Malformed::TooLong,
            ),
            (
                GOOD.replace("username=\"u\"", "username=\"a\0b\""),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("username=\"u\"", "username=\"a\x01b\""),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("username=\"u\"", "username=\"a\u{85}b\""),
                Malformed::BadValue,
            ),
            (format!("{GOOD}, username*=UTF-8''x"), Malformed::BadValue),
            (
                GOOD.replace("username=\"u\"", "username*=\"UTF-8''x\""),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("username=\"u\"", "username*=ISO-8859-1''x"),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("username=\"u\"", "username*=UTF-8''%ZZ"),
                Malformed::BadValue,
            ),
            (
                GOOD.replace("username=\"u\"", "username*=UTF-8''%C3"),
                Malformed::BadValue,
            ),
            (format!("{GOOD}, userhash=true"), Malformed::BadValue),
            (format!("{GOOD}, userhash=maybe"), Malformed::BadValue),
            (GOOD.replace("realm=\"r\"", "realm=\"r"), Malformed::Syntax),
            (GOOD.replace(", uri", " uri"), Malformed::Syntax),
            (format!("{GOOD}, =x"), Malformed::Syntax),
            (format!("{GOOD}, x"), Malformed::Syntax),
            (format!("{GOOD}, x="), Malformed::Syntax),
            (
                GOOD.replace("nonce=\"n\"", "nonce=\"a\\\"b\""),
                Malformed::BadValue,
            ),
            (String::new(), Malformed::Missing),
        ];
        assert!(cases.len() >= 25);
        for (text, want) in cases {
            let got = parse(text.as_bytes()).and_then(verify).map(|_| ());
            assert_eq!(got, Err(want), "{text:?}");
        }
        let bytes = [GOOD.as_bytes(), b", x=\"\xff\""].concat();
        assert_eq!(parse(&bytes).map(|_| ()), Err(Malformed::BadValue));
    }

    #[test]
    fn nonces_are_ours_live_counted_and_forgotten_in_turn() {
        let t0 = Instant::now();
        let n = Nonces::with_key(b"k", 2, Duration::from_secs(300), t0);
        let a = n.mint(1, t0);
        assert!(
            a.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        );
        let NonceState::Live(ticket) = n.open(&a, t0 + Duration::from_secs(299)) else {
            panic!("live within its lifetime");
        };
        assert_eq!(n.open(&a, t0 + Duration::from_secs(300)), NonceState::Stale);
        assert_eq!(n.advance(ticket, 1), Count::Fresh);
        assert_eq!(n.advance(ticket, 1), Count::Replayed);
        assert_eq!(n.advance(ticket, 3), Count::Fresh);
        assert_eq!(n.advance(ticket, 2), Count::Replayed);
        // Another process's nonce, a tampered one, a short one: not ours.
        let other = Nonces::with_key(b"other", 2, Duration::from_secs(300), t0).mint(1, t0);
        assert_eq!(n.open(&other, t0), NonceState::Stale);
        let mut tampered = a;
        tampered[8] = if tampered[8] == b'A' { b'B' } else { b'A' };
        assert_eq!(n.open(&tampered, t0), NonceState::Stale);
        assert_eq!(n.open(&a[..31], t0), NonceState::Stale);
        assert_eq!(n.open(b"", t0), NonceState::Stale);
        // A full turn of the book later, the slot belongs to a newer nonce.
        for _ in 0..NONCE_SLOTS {
            n.mint(1, t0);
        }
        assert_eq!(n.advance(ticket, 4), Count::Forgotten);
        // Each worker's book is its own.
        let b = n.mint(0, t0);
        let NonceState::Live(tb) = n.open(&b, t0) else {
            panic!()
        };
        assert_eq!(n.advance(tb, 1), Count::Fresh);
    }
}
