//! NTLM (MS-NLMP) as a proxy authentication scheme: the three messages of the handshake and the
//! checks of a client's answer. Pure code: no I/O, no clock, no user database.
//!
//! The handshake is connection-bound: `NTLM <NEGOTIATE_MESSAGE>` (type 1) → 407 with
//! `NTLM <CHALLENGE_MESSAGE>` (type 2, a fresh server challenge) → `NTLM <AUTHENTICATE_MESSAGE>`
//! (type 3), answered on the same connection. Only the authentication matters to a proxy: no
//! session key is derived, nothing is signed or sealed.
//!
//! Every length and offset in a message comes from the peer: [`parse_authenticate`] refuses a
//! field outside the message, inside its fixed header, overlapping another field, of an odd length
//! where UTF-16 is announced, or longer than a proxy could need; nothing here can panic on input.

use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;
use subtle::ConstantTimeEq;

pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// NEGOTIATE flags (MS-NLMP §2.2.2.5) this proxy reads or sets.
pub mod flags {
    pub const UNICODE: u32 = 0x0000_0001;
    pub const OEM: u32 = 0x0000_0002;
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    pub const NTLM: u32 = 0x0000_0200;
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    pub const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
    /// "Extended session security": curl answers NTLMv2 only when the type 2 sets it.
    pub const EXTENDED_SESSION_SECURITY: u32 = 0x0008_0000;
    pub const TARGET_INFO: u32 = 0x0080_0000;
    pub const NEGOTIATE_128: u32 = 0x2000_0000;
    pub const NEGOTIATE_56: u32 = 0x8000_0000;
}

/// The longest message accepted. A type 3 carries the client's copy of the target info and a few
/// names: well under 2 KiB from every client seen; 8 KiB leaves room and bounds the work.
pub const MAX_MESSAGE: usize = 8 * 1024;

/// The longest user or domain name accepted, in bytes as sent.
pub const MAX_NAME: usize = 512;

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("not base64")]
    Base64,
    #[error("too long")]
    TooLong,
    #[error("no NTLMSSP signature")]
    Signature,
    #[error("message type {0}, not the one expected")]
    Type(u32),
    #[error("truncated")]
    Truncated,
    #[error("a field lies outside the message or inside its header")]
    OutOfBounds,
    #[error("two fields overlap")]
    Overlap,
    #[error("a name is not valid text")]
    Text,
}

/// Decodes the base64 token of `NTLM <token>` into `out` (cleared first).
pub fn decode(token: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    use base64::Engine;
    if token.len() > MAX_MESSAGE.div_ceil(3) * 4 {
        return Err(Malformed::TooLong);
    }
    out.clear();
    base64::engine::general_purpose::STANDARD
        .decode_vec(token, out)
        .map_err(|_| Malformed::Base64)
}

fn u16_at(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(m.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(m: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(m.get(at..at + 4)?.try_into().ok()?))
}

/// Checks the signature and message type; the message must hold at least `header` bytes.
fn check_start(m: &[u8], kind: u32, header: usize) -> Result<(), Malformed> {
    if m.len() > MAX_MESSAGE {
        return Err(Malformed::TooLong);
    }
    if m.len() < 12 || &m[..8] != SIGNATURE {
        return Err(Malformed::Signature);
    }
    let got = u32_at(m, 8).ok_or(Malformed::Truncated)?;
    if got != kind {
        return Err(Malformed::Type(got));
    }
    if m.len() < header {
        return Err(Malformed::Truncated);
    }
    Ok(())
}

/// A NEGOTIATE_MESSAGE (type 1): only its flags matter (its optional domain and workstation are
/// hints a server may ignore). Returns the flags.
pub fn parse_negotiate(m: &[u8]) -> Result<u32, Malformed> {
    check_start(m, 1, 16)?;
    u32_at(m, 12).ok_or(Malformed::Truncated)
}

/// Whether a token is the start of an NTLMSSP message (for Negotiate tokens that carry one).
pub fn is_ntlmssp(m: &[u8]) -> bool {
    m.starts_with(SIGNATURE)
}

/// What a CHALLENGE_MESSAGE names: the server's NetBIOS domain and computer names and their DNS
/// forms, in the target info clients echo back in their NTLMv2 answer.
#[derive(Debug, Clone)]
pub struct Target {
    /// NetBIOS domain name (upper case).
    pub domain: String,
    /// NetBIOS computer name (upper case).
    pub computer: String,
    /// DNS domain name (may be empty).
    pub dns_domain: String,
    /// DNS computer name.
    pub dns_computer: String,
}

fn utf16(s: &str) -> impl Iterator<Item = u8> + '_ {
    s.encode_utf16().flat_map(u16::to_le_bytes)
}

fn put_field(out: &mut [u8], at: usize, len: usize, offset: usize) {
    // Lengths here are of names validated at start (short) and of the target info built from
    // them: far below u16::MAX.
    let len = len as u16;
    out[at..at + 2].copy_from_slice(&len.to_le_bytes());
    out[at + 2..at + 4].copy_from_slice(&len.to_le_bytes());
    out[at + 4..at + 8].copy_from_slice(&(offset as u32).to_le_bytes());
}

/// The charset flag names are written in, given the other side's flags: `UNICODE` when they
/// carry it, else `OEM` (the server's choice from the type 1, the client's from the type 2).
pub fn charset(flags: u32) -> u32 {
    if flags & flags::UNICODE != 0 {
        flags::UNICODE
    } else {
        flags::OEM
    }
}

/// The flags of the CHALLENGE_MESSAGE answering a NEGOTIATE_MESSAGE with `client` flags: NTLM with
/// extended session security (so that clients answer with NTLMv2), a domain target with target
/// info, Unicode when the client offers it (else OEM), and the key strengths the client asked for.
pub fn challenge_flags(client: u32) -> u32 {
    charset(client)
        | flags::REQUEST_TARGET
        | flags::NTLM
        | flags::ALWAYS_SIGN
        | flags::TARGET_TYPE_DOMAIN
        | flags::EXTENDED_SESSION_SECURITY
        | flags::TARGET_INFO
        | (client & (flags::NEGOTIATE_128 | flags::NEGOTIATE_56))
}

/// Writes a CHALLENGE_MESSAGE (type 2, MS-NLMP §2.2.1.2) with `flags` and `challenge` to `out`.
/// The target info holds the names of `target` and no timestamp: with `MsvAvTimestamp` present,
/// clients would have to send a MIC, which only matters to signing and sealing.
pub fn write_challenge(out: &mut Vec<u8>, flags: u32, challenge: &[u8; 8], target: &Target) {
    const HEADER: usize = 56;
    let start = out.len();
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&[0; 8]); // TargetNameFields, set below
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(challenge);
    out.extend_from_slice(&[0; 8]); // Reserved
    out.extend_from_slice(&[0; 8]); // TargetInfoFields, set below
    out.extend_from_slice(&[0; 8]); // Version: not sent (NEGOTIATE_VERSION is not set)
    let name_at = out.len() - start;
    if flags & flags::UNICODE != 0 {
        out.extend(utf16(&target.domain));
    } else {
        out.extend_from_slice(target.domain.as_bytes());
    }
    let name_len = out.len() - start - name_at;
    let info_at = out.len() - start;
    for (id, value) in [
        (2u16, &target.domain),
        (1, &target.computer),
        (4, &target.dns_domain),
        (3, &target.dns_computer),
    ] {
        if value.is_empty() {
            continue;
        }
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&((value.encode_utf16().count() * 2) as u16).to_le_bytes());
        out.extend(utf16(value));
    }
    out.extend_from_slice(&[0; 4]); // MsvAvEOL
    let info_len = out.len() - start - info_at;
    let m = &mut out[start..];
    debug_assert_eq!(name_at, HEADER);
    put_field(m, 12, name_len, name_at);
    put_field(m, 40, info_len, info_at);
}

/// An AUTHENTICATE_MESSAGE (type 3), its fields checked to lie within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate<'a> {
    pub lm: &'a [u8],
    pub nt: &'a [u8],
    pub domain: String,
    pub user: String,
    pub workstation: String,
    pub flags: u32,
}

/// Parses a type 3 (MS-NLMP §2.2.1.3). The fixed part is 64 bytes (Version and MIC, when sent,
/// sit inside the payload area as far as the field checks go, which is why fields may start at 64).
pub fn parse_authenticate(m: &[u8]) -> Result<Authenticate<'_>, Malformed> {
    const HEADER: usize = 64;
    check_start(m, 3, HEADER)?;
    let flags = u32_at(m, 60).ok_or(Malformed::Truncated)?;
    let mut spans: [(usize, usize); 6] = [(0, 0); 6];
    for (i, at) in [12, 20, 28, 36, 44, 52].into_iter().enumerate() {
        let len = u16_at(m, at).ok_or(Malformed::Truncated)? as usize;
        let offset = u32_at(m, at + 4).ok_or(Malformed::Truncated)? as usize;
        if len == 0 {
            continue;
        }
        let end = offset.checked_add(len).ok_or(Malformed::OutOfBounds)?;
        if offset < HEADER || end > m.len() {
            return Err(Malformed::OutOfBounds);
        }
        spans[i] = (offset, end);
    }
    let mut sorted = spans;
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        let ((_, a_end), (b_start, b_end)) = (pair[0], pair[1]);
        if b_end > b_start && a_end > b_start {
            return Err(Malformed::Overlap);
        }
    }
    let unicode = flags & flags::UNICODE != 0;
    let field = |i: usize| &m[spans[i].0..spans[i].1];
    let text = |i: usize| -> Result<String, Malformed> {
        let raw = field(i);
        if raw.len() > MAX_NAME {
            return Err(Malformed::TooLong);
        }
        let s = if unicode {
            if raw.len() % 2 != 0 {
                return Err(Malformed::Text);
            }
            let units = raw
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| Malformed::Text)?
        } else {
            // The OEM code page is the client's; ASCII is what every client sends here. Other
            // bytes are read as Latin-1, so a name never fails to decode but cannot match a user
            // whose name needs another code page.
            raw.iter().map(|&b| char::from(b)).collect()
        };
        if s.chars().any(char::is_control) {
            return Err(Malformed::Text);
        }
        Ok(s)
    };
    Ok(Authenticate {
        lm: field(0),
        nt: field(1),
        domain: text(2)?,
        user: text(3)?,
        workstation: text(4)?,
        flags,
    })
}

/// An NT hash: MD4 of the UTF-16LE password (MS-NLMP §3.3.1, `NTOWFv1`).
pub fn nt_hash(password: &str) -> [u8; 16] {
    let mut h = Md4::new();
    for unit in password.encode_utf16() {
        h.update(unit.to_le_bytes());
    }
    h.finalize().into()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// `NTOWFv2`: HMAC-MD5 keyed with the NT hash over UTF-16LE(uppercase(user) ‖ domain). The user's
/// case does not matter, the domain's does (as Windows computes it: the domain as sent).
pub fn ntowf_v2(nt_hash: &[u8; 16], user: &str, domain: &str) -> [u8; 16] {
    let text: Vec<u8> = utf16(&user.to_uppercase()).chain(utf16(domain)).collect();
    hmac_md5(nt_hash, &[&text])
}

/// The shortest NTLMv2 response: the 16-byte proof and the blob's fixed 28 bytes.
const V2_MIN: usize = 16 + 28;

/// What an NTLMv2 answer says besides its proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2 {
    /// The client's time, a Windows FILETIME (100 ns units since 1601).
    pub timestamp: u64,
}

/// Whether `nt` is shaped like an NTLMv2 response (longer than v1's 24 bytes, with the blob's
/// version bytes), and its timestamp if so.
pub fn v2_shape(nt: &[u8]) -> Option<V2> {
    if nt.len() < V2_MIN || nt[16] != 1 || nt[17] != 1 {
        return None;
    }
    let timestamp = u64::from_le_bytes(nt[24..32].try_into().ok()?);
    Some(V2 { timestamp })
}

/// Checks an NTLMv2 response against `ntowf` (see [`ntowf_v2`]) and the handshake's
/// `challenge`: `NTProofStr = HMAC-MD5(NTOWFv2, challenge ‖ blob)`, compared in constant time.
pub fn verify_v2(ntowf: &[u8; 16], challenge: &[u8; 8], nt: &[u8]) -> bool {
    if nt.len() < V2_MIN {
        return false;
    }
    let proof = hmac_md5(ntowf, &[challenge, &nt[16..]]);
    proof.ct_eq(&nt[..16]).into()
}

/// The session base key of an NTLMv2 answer (for the MS-NLMP vectors; nothing here uses it).
pub fn session_base_key_v2(ntowf: &[u8; 16], nt: &[u8]) -> [u8; 16] {
    hmac_md5(ntowf, &[&nt[..16.min(nt.len())]])
}

/// DES with a 7-byte key spread over 8 bytes (MS-NLMP §6, the parity bits left clear).
fn des7(key7: &[u8], data: &[u8; 8]) -> [u8; 8] {
    use des::cipher::{BlockCipherEncrypt, KeyInit as _};
    let k = key7;
    let key = [
        k[0],
        (k[0] << 7) | (k[1] >> 1),
        (k[1] << 6) | (k[2] >> 2),
        (k[2] << 5) | (k[3] >> 3),
        (k[3] << 4) | (k[4] >> 4),
        (k[4] << 3) | (k[5] >> 5),
        (k[5] << 2) | (k[6] >> 6),
        k[6] << 1,
    ];
    let cipher = des::Des::new_from_slice(&key).expect("a DES key is 8 bytes");
    let mut block = (*data).into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// `DESL(K, D)` (MS-NLMP §6): three DES blocks keyed with the 16-byte hash padded to 21 bytes.
fn desl(hash: &[u8; 16], data: &[u8; 8]) -> [u8; 24] {
    let mut k = [0u8; 21];
    k[..16].copy_from_slice(hash);
    let mut out = [0u8; 24];
    for i in 0..3 {
        out[i * 8..i * 8 + 8].copy_from_slice(&des7(&k[i * 7..i * 7 + 7], data));
    }
    out
}

/// The NTLMv1 response to `challenge` (24 bytes): `DESL(NT hash, challenge)`, or with extended
/// session security and the client's 8-byte challenge `DESL(NT hash, MD5(challenge ‖ client)[..8])`.
pub fn v1_response(nt_hash: &[u8; 16], challenge: &[u8; 8], client: Option<&[u8]>) -> [u8; 24] {
    let data: [u8; 8] = match client {
        Some(client) => {
            use md5::Digest as _;
            let mut h = Md5::new();
            h.update(challenge);
            h.update(client);
            let sum: [u8; 16] = h.finalize().into();
            let mut d = [0u8; 8];
            d.copy_from_slice(&sum[..8]);
            d
        }
        None => *challenge,
    };
    desl(nt_hash, &data)
}

/// Checks an NTLMv1 response (24 bytes); with extended session security the client challenge is
/// the first 8 bytes of the LM field. Only ever called when `ntlm_allow_v1` is set.
pub fn verify_v1(nt_hash: &[u8; 16], challenge: &[u8; 8], a: &Authenticate<'_>) -> bool {
    if a.nt.len() != 24 {
        return false;
    }
    let client = if a.flags & flags::EXTENDED_SESSION_SECURITY != 0 {
        match a.lm.get(..8) {
            Some(c) => Some(c),
            None => return false,
        }
    } else {
        None
    };
    v1_response(nt_hash, challenge, client).ct_eq(a.nt).into()
}

/// Seconds between the FILETIME epoch (1601) and the Unix epoch.
const FILETIME_UNIX: u64 = 11_644_473_600;

/// A Unix time in FILETIME units.
pub fn filetime(unix: std::time::Duration) -> u64 {
    (unix.as_secs() + FILETIME_UNIX) * 10_000_000 + u64::from(unix.subsec_nanos()) / 100
}

/// Whether a client's FILETIME is within `skew` of `now` (also a FILETIME).
pub fn within(timestamp: u64, now: u64, skew: std::time::Duration) -> bool {
    let skew = skew.as_secs().saturating_mul(10_000_000);
    timestamp.abs_diff(now) <= skew
}

/// Parses a hex NT hash (32 hex digits, either case).
pub fn hash_from_hex(hex: &str) -> Option<[u8; 16]> {
    let b = hex.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        out[i] = (d(pair[0])? * 16 + d(pair[1])?) as u8;
    }
    Some(out)
}

/// The client's side, for tests, benches and load generators: the messages a client sends.
pub mod client {
    use super::*;

    /// A type 1 with `flags` (curl sends 0x00088206 and no names).
    pub fn negotiate(flags: u32) -> Vec<u8> {
        let mut m = SIGNATURE.to_vec();
        m.extend_from_slice(&1u32.to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&[0; 16]);
        m
    }

    /// The server challenge and target info of a type 2.
    pub fn read_challenge(m: &[u8]) -> Option<([u8; 8], Vec<u8>)> {
        if !m.starts_with(SIGNATURE) || u32_at(m, 8)? != 2 {
            return None;
        }
        let challenge = m.get(24..32)?.try_into().ok()?;
        let len = u16_at(m, 40)? as usize;
        let at = u32_at(m, 44)? as usize;
        Some((challenge, m.get(at..at.checked_add(len)?)?.to_vec()))
    }

    /// The flags a type 2 chose (read after [`read_challenge`] accepted it).
    pub fn chosen_flags(m: &[u8]) -> Option<u32> {
        u32_at(m, 20)
    }

    /// An NTLMv2 NT response for `user` in `domain` (as the client sends them) with the password
    /// hash `hash`, to `challenge`, at `timestamp` (FILETIME), echoing `target_info`.
    pub fn v2_response(
        hash: &[u8; 16],
        user: &str,
        domain: &str,
        challenge: &[u8; 8],
        client_challenge: &[u8; 8],
        timestamp: u64,
        target_info: &[u8],
    ) -> Vec<u8> {
        let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
        blob.extend_from_slice(&timestamp.to_le_bytes());
        blob.extend_from_slice(client_challenge);
        blob.extend_from_slice(&[0; 4]);
        blob.extend_from_slice(target_info);
        blob.extend_from_slice(&[0; 4]);
        let ntowf = ntowf_v2(hash, user, domain);
        let mut out = hmac_md5(&ntowf, &[challenge, &blob]).to_vec();
        out.extend_from_slice(&blob);
        out
    }

    /// A type 3 with these responses and names (UTF-16 when `flags` says UNICODE, else bytes).
    pub fn authenticate(
        lm: &[u8],
        nt: &[u8],
        domain: &str,
        user: &str,
        workstation: &str,
        flags: u32,
    ) -> Vec<u8> {
        let text = |s: &str| -> Vec<u8> {
            if flags & super::flags::UNICODE != 0 {
                utf16(s).collect()
            } else {
                s.as_bytes().to_vec()
            }
        };
        let mut m = SIGNATURE.to_vec();
        m.extend_from_slice(&3u32.to_le_bytes());
        m.resize(64, 0);
        m[60..64].copy_from_slice(&flags.to_le_bytes());
        let fields = [
            (12, lm.to_vec()),
            (20, nt.to_vec()),
            (28, text(domain)),
            (36, text(user)),
            (44, text(workstation)),
        ];
        for (at, value) in fields {
            let offset = m.len();
            m.extend_from_slice(&value);
            put_field(&mut m, at, value.len(), offset);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// MS-NLMP §4.2.1: user "User", domain "Domain", password "Password", server challenge
    /// 0123456789abcdef.
    const CHALLENGE: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

    #[test]
    fn nt_hash_is_md4_of_utf16le() {
        // MS-NLMP §4.2.2.1.2 NTOWFv1("Password").
        assert_eq!(
            nt_hash("Password").to_vec(),
            hex("a4f49c406510bdcab6824ee7c30fd852")
        );
        assert_eq!(
            hash_from_hex("A4F49C406510BDCAB6824EE7C30FD852"),
            Some(nt_hash("Password"))
        );
        assert_eq!(hash_from_hex("a4f49c406510bdcab6824ee7c30fd85"), None);
        assert_eq!(hash_from_hex("g4f49c406510bdcab6824ee7c30fd852"), None);
    }

    #[test]
    fn ms_nlmp_4_2_4_ntlmv2_vectors() {
        let ntowf = ntowf_v2(&nt_hash("Password"), "User", "Domain");
        assert_eq!(ntowf.to_vec(), hex("0c868a403bfd7a93a3001ef22ef02e3f"));
        // Lower case user: the same key (the user is upper-cased), the domain is not.
        assert_eq!(ntowf_v2(&nt_hash("Password"), "user", "Domain"), ntowf);
        assert_ne!(ntowf_v2(&nt_hash("Password"), "User", "DOMAIN"), ntowf);
        // The blob of §4.2.4.1.3 / §4.2.4.2.2: temp with time 0, client challenge aa*8, and the
        // AV pairs of the challenge (domain "Domain", server "Server").
        let mut blob = hex("0101000000000000");
        blob.extend_from_slice(&[0; 8]); // time
        blob.extend_from_slice(&[0xaa; 8]); // client challenge
        blob.extend_from_slice(&[0; 4]);
        blob.extend(hex(
            "02000c0044006f006d00610069006e0001000c005300650072007600650072000000000000000000",
        ));
        let mut nt = vec![0u8; 16];
        nt.extend_from_slice(&blob);
        let proof = hmac_md5(&ntowf, &[&CHALLENGE, &blob]);
        assert_eq!(proof.to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"));
        nt[..16].copy_from_slice(&proof);
        assert!(verify_v2(&ntowf, &CHALLENGE, &nt));
        assert_eq!(
            session_base_key_v2(&ntowf, &nt).to_vec(),
            hex("8de40ccadbc14a82f15cb0ad0de95ca3")
        );
        let mut other = CHALLENGE;
        other[0] ^= 1;
        assert!(!verify_v2(&ntowf, &other, &nt), "another challenge");
        assert!(!verify_v2(&ntowf, &CHALLENGE, &nt[..40]), "too short");
        assert_eq!(v2_shape(&nt), Some(V2 { timestamp: 0 }));
        assert_eq!(v2_shape(&nt[..24]), None);
    }

    #[test]
    fn ms_nlmp_4_2_2_and_4_2_3_ntlmv1_vectors() {
        let hash = nt_hash("Password");
        let mut a = Authenticate {
            lm: &[],
            nt: &[],
            domain: String::new(),
            user: String::new(),
            workstation: String::new(),
            flags: 0,
        };
        // §4.2.2.2.1 NTLMv1 response.
        let nt = hex("67c43011f30298a2ad35ece64f16331c44bdbed927841f94");
        a.nt = &nt;
        assert!(verify_v1(&hash, &CHALLENGE, &a));
        assert!(!verify_v1(&nt_hash("password"), &CHALLENGE, &a));
        // §4.2.3.2.2: with extended session security, the LM field carries the client challenge.
        let lm = hex("aaaaaaaaaaaaaaaa00000000000000000000000000000000");
        let nt = hex("7537f803ae367128ca458204bde7caf81e97ed2683267232");
        a.lm = &lm;
        a.nt = &nt;
        a.flags = flags::EXTENDED_SESSION_SECURITY;
        assert!(verify_v1(&hash, &CHALLENGE, &a));
        a.flags = 0;
        assert!(!verify_v1(&hash, &CHALLENGE, &a));
    }

    fn target() -> Target {
        Target {
            domain: "CORP".into(),
            computer: "GW1".into(),
            dns_domain: "corp.example".into(),
            dns_computer: "gw1.corp.example".into(),
        }
    }

    #[test]
    fn challenge_message_is_well_formed() {
        let f = challenge_flags(0x0008_8207 | flags::NEGOTIATE_128);
        assert_eq!(f & flags::UNICODE, flags::UNICODE);
        assert_eq!(f & flags::OEM, 0);
        assert_ne!(f & flags::EXTENDED_SESSION_SECURITY, 0);
        assert_ne!(f & flags::NEGOTIATE_128, 0);
        assert_eq!(challenge_flags(0) & flags::OEM, flags::OEM);
        let mut out = b"x".to_vec();
        write_challenge(&mut out, f, &CHALLENGE, &target());
        let m = &out[1..];
        assert_eq!(&m[..8], SIGNATURE);
        assert_eq!(u32_at(m, 8), Some(2));
        assert_eq!(u32_at(m, 20), Some(f));
        assert_eq!(&m[24..32], &CHALLENGE);
        let (len, off) = (
            u16_at(m, 12).unwrap() as usize,
            u32_at(m, 16).unwrap() as usize,
        );
        assert_eq!(&m[off..off + len], utf16("CORP").collect::<Vec<_>>());
        let (len, off) = (
            u16_at(m, 40).unwrap() as usize,
            u32_at(m, 44).unwrap() as usize,
        );
        assert_eq!(off + len, m.len());
        let info = &m[off..];
        assert_eq!(&info[..4], &[2, 0, 8, 0]);
        assert!(info.ends_with(&[0, 0, 0, 0]));
        // OEM: the target name in bytes.
        let mut oem = Vec::new();
        write_challenge(&mut oem, challenge_flags(0), &CHALLENGE, &target());
        assert_eq!(&oem[56..60], b"CORP");
    }

    fn authenticate(lm: &[u8], nt: &[u8], domain: &str, user: &str, ws: &str) -> Vec<u8> {
        let f = flags::UNICODE | flags::EXTENDED_SESSION_SECURITY;
        client::authenticate(lm, nt, domain, user, ws, f)
    }

    #[test]
    fn authenticate_fields_are_read_and_checked() {
        let m = authenticate(&[1; 24], &[2; 50], "Domain", "User", "WS");
        let a = parse_authenticate(&m).unwrap();
        assert_eq!((a.lm, a.nt), (&[1u8; 24][..], &[2u8; 50][..]));
        assert_eq!(
            (&*a.domain, &*a.user, &*a.workstation),
            ("Domain", "User", "WS")
        );
        assert_eq!(parse_negotiate(&m), Err(Malformed::Type(3)));
    }

    /// Every malformed message is refused with a reason, never a panic.
    #[test]
    fn malformed_messages_are_refused() {
        let good = authenticate(&[1; 24], &[2; 50], "D", "U", "W");
        let set = |at: usize, v: &[u8]| {
            let mut m = good.clone();
            m[at..at + v.len()].copy_from_slice(v);
            m
        };
        let nt_off = u32_at(&good, 24).unwrap();
        let cases: Vec<(&str, Vec<u8>, Malformed)> = vec![
            ("empty", vec![], Malformed::Signature),
            ("short signature", b"NTLMSS".to_vec(), Malformed::Signature),
            (
                "wrong signature",
                set(0, b"NTLMSSX\0"),
                Malformed::Signature,
            ),
            ("type 1", set(8, &1u32.to_le_bytes()), Malformed::Type(1)),
            ("type 2", set(8, &2u32.to_le_bytes()), Malformed::Type(2)),
            (
                "type 0xffffffff",
                set(8, &[0xff; 4]),
                Malformed::Type(u32::MAX),
            ),
            ("header cut", good[..40].to_vec(), Malformed::Truncated),
            (
                "header cut at 63",
                good[..63].to_vec(),
                Malformed::Truncated,
            ),
            (
                "nt past the end",
                set(20, &[0xff, 0xff]),
                Malformed::OutOfBounds,
            ),
            (
                "nt offset past",
                set(24, &[0xff, 0xff, 0, 0]),
                Malformed::OutOfBounds,
            ),
            (
                "offset overflow",
                set(24, &[0xff; 4]),
                Malformed::OutOfBounds,
            ),
            (
                "user offset in header",
                set(40, &[8, 0, 0, 0]),
                Malformed::OutOfBounds,
            ),
            (
                "user offset 0",
                set(40, &[0, 0, 0, 0]),
                Malformed::OutOfBounds,
            ),
            ("nt over lm", set(24, &[64, 0, 0, 0]), Malformed::Overlap),
            (
                "user over nt",
                set(40, &nt_off.to_le_bytes()),
                Malformed::Overlap,
            ),
            (
                "session key over user",
                {
                    let mut m = set(52, &[4, 0, 4, 0]);
                    let user = u32_at(&good, 40).unwrap();
                    m[56..60].copy_from_slice(&user.to_le_bytes());
                    m
                },
                Malformed::Overlap,
            ),
            ("odd UTF-16 user", set(36, &[1, 0, 1, 0]), Malformed::Text),
            (
                "lone surrogate",
                {
                    let mut m = good.clone();
                    let at = u32_at(&good, 40).unwrap() as usize;
                    m[at..at + 2].copy_from_slice(&0xd800u16.to_le_bytes());
                    m
                },
                Malformed::Text,
            ),
            (
                "NUL in user",
                {
                    let mut m = good.clone();
                    let at = u32_at(&good, 40).unwrap() as usize;
                    m[at..at + 2].copy_from_slice(&[0, 0]);
                    m
                },
                Malformed::Text,
            ),
            (
                "huge user",
                authenticate(&[1; 24], &[2; 50], "D", &"u".repeat(300), "W"),
                Malformed::TooLong,
            ),
            (
                "huge message",
                {
                    let mut m = good.clone();
                    m.resize(MAX_MESSAGE + 1, 0);
                    m
                },
                Malformed::TooLong,
            ),
        ];
        assert!(cases.len() >= 20);
        for (name, m, want) in cases {
            assert_eq!(parse_authenticate(&m).err(), Some(want), "{name}");
        }
        for (name, m) in [
            ("empty", &b""[..]),
            ("signature only", b"NTLMSSP\0"),
            ("no flags", b"NTLMSSP\0\x01\0\0\0"),
        ] {
            assert!(parse_negotiate(m).is_err(), "{name}");
        }
        assert_eq!(
            parse_negotiate(b"NTLMSSP\0\x01\0\0\0\x07\x82\x08\0"),
            Ok(0x0008_8207)
        );
        let mut out = Vec::new();
        assert_eq!(decode(b"TlRMTVNTUAAB", &mut out), Ok(()));
        assert_eq!(decode(b"not base64!", &mut out), Err(Malformed::Base64));
        assert_eq!(decode(&[b'A'; 12_000], &mut out), Err(Malformed::TooLong));
    }

    #[test]
    fn timestamps_are_checked_within_the_skew() {
        let now = filetime(std::time::Duration::from_secs(1_700_000_000));
        let five = std::time::Duration::from_secs(300);
        assert!(within(now + 300 * 10_000_000, now, five));
        assert!(!within(now + 301 * 10_000_000, now, five));
        assert!(!within(now - 301 * 10_000_000, now, five));
        assert!(!within(0, now, five));
        // 2023-11-14T22:13:20Z in FILETIME.
        assert_eq!(now, 133_444_736_000_000_000);
    }
}
