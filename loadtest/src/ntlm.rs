//! The NTLM client side of `tunnels --ntlm NAME`: a type 1 as curl sends it, and an NTLMv2 type 3
//! answering the type 2 of the 407, for `DOMAIN\user:password` credentials.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5::Md5;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// curl's type 1 (flags 0x00088206, no names), base64.
pub const NEGOTIATE: &str = "TlRMTVNTUAABAAAABoIIAAAAAAAAAAAAAAAAAAAAAAA=";

pub struct NtlmClient {
    user: String,
    domain: String,
    hash: [u8; 16],
    counter: u64,
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

impl NtlmClient {
    /// From `DOMAIN\user:password` or `user:password`.
    pub fn new(credentials: &str) -> NtlmClient {
        let (who, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (domain, user) = who.split_once('\\').unwrap_or(("", who));
        let mut h = Md4::new();
        h.update(utf16(password));
        NtlmClient {
            user: user.to_owned(),
            domain: domain.to_owned(),
            hash: h.finalize().into(),
            counter: 0,
        }
    }

    /// The type 3 (base64) answering the type 2 in a 407 head, or `None` if it has none.
    pub fn answer(&mut self, head: &str) -> Option<String> {
        let token = head
            .lines()
            .find_map(|l| l.strip_prefix("Proxy-Authenticate: NTLM "))?;
        let m = B64.decode(token.trim()).ok()?;
        let challenge: [u8; 8] = m.get(24..32)?.try_into().ok()?;
        let len = u16::from_le_bytes(m.get(40..42)?.try_into().ok()?) as usize;
        let at = u32::from_le_bytes(m.get(44..48)?.try_into().ok()?) as usize;
        let info = m.get(at..at + len)?;
        self.counter += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let filetime = (now.as_secs() + 11_644_473_600) * 10_000_000;
        let mut blob = vec![1, 1, 0, 0, 0, 0, 0, 0];
        blob.extend_from_slice(&filetime.to_le_bytes());
        blob.extend_from_slice(&self.counter.to_le_bytes());
        blob.extend_from_slice(&[0; 4]);
        blob.extend_from_slice(info);
        blob.extend_from_slice(&[0; 4]);
        let text: Vec<u8> = [utf16(&self.user.to_uppercase()), utf16(&self.domain)].concat();
        let ntowf = hmac_md5(&self.hash, &[&text]);
        let mut nt = hmac_md5(&ntowf, &[&challenge, &blob]).to_vec();
        nt.extend_from_slice(&blob);
        // Type 3: 64-byte header, then LM (24 zero bytes), NT, domain, user, workstation.
        let fields = [
            vec![0u8; 24],
            nt,
            utf16(&self.domain),
            utf16(&self.user),
            utf16("LOADTEST"),
        ];
        let mut out = b"NTLMSSP\0\x03\0\0\0".to_vec();
        out.resize(64, 0);
        out[60..64].copy_from_slice(&0x0008_8205u32.to_le_bytes());
        for (i, value) in fields.iter().enumerate() {
            let at = 12 + 8 * i;
            let offset = out.len() as u32;
            let len = value.len() as u16;
            out[at..at + 2].copy_from_slice(&len.to_le_bytes());
            out[at + 2..at + 4].copy_from_slice(&len.to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(value);
        }
        Some(B64.encode(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nt_hash_is_md4_of_utf16le() {
        // MS-NLMP §4.2.2.1.2.
        let c = NtlmClient::new("Domain\\User:Password");
        let hex: String = c.hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "a4f49c406510bdcab6824ee7c30fd852");
        assert_eq!((&*c.domain, &*c.user), ("Domain", "User"));
        assert_eq!(
            B64.decode(NEGOTIATE).unwrap()[12..16],
            0x0008_8206u32.to_le_bytes()
        );
    }
}
