//! NTLM messages (MS-NLMP): the base64 token, type 1 and type 3 parsing with every length and
//! offset peer-controlled, and the NTLMv2 check. Round trips: a type 3 written by the client side
//! from fuzzer-chosen names reads back with those names, and its NTLMv2 response verifies against
//! the challenge it answered and no other; a type 2 written for fuzzer-chosen names reads back.
//!
//! The input is a token, a message, and (split at NUL bytes) the names of the round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::auth::ntlm::{self, Target, client, flags};

const KEY: [u8; 16] = [7; 16];
const CHALLENGE: [u8; 8] = *b"\x01\x23\x45\x67\x89\xab\xcd\xef";

fn check_message(m: &[u8]) {
    let _ = ntlm::is_ntlmssp(m);
    let _ = ntlm::parse_negotiate(m).map(ntlm::challenge_flags);
    if let Ok(a) = ntlm::parse_authenticate(m) {
        for name in [&a.domain, &a.user, &a.workstation] {
            assert!(!name.chars().any(char::is_control));
            assert!(name.len() <= 3 * ntlm::MAX_NAME);
        }
        if let Some(v2) = ntlm::v2_shape(a.nt) {
            let _ = ntlm::within(
                v2.timestamp,
                v2.timestamp ^ 1,
                std::time::Duration::from_secs(300),
            );
        }
        let ntowf = ntlm::ntowf_v2(&KEY, &a.user, &a.domain);
        let _ = ntlm::verify_v2(&ntowf, &CHALLENGE, a.nt);
        let _ = ntlm::verify_v1(&KEY, &CHALLENGE, &a);
    }
}

/// A name an NTLM client could send: printable, bounded.
fn name(part: &[u8]) -> String {
    String::from_utf8_lossy(part)
        .chars()
        .filter(|c| !c.is_control())
        .take(60)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut decoded = Vec::new();
    if ntlm::decode(data, &mut decoded).is_ok() {
        assert!(decoded.len() <= ntlm::MAX_MESSAGE + 2);
        check_message(&decoded);
    }
    check_message(data);

    let mut parts = data.split(|&b| b == 0);
    let (Some(user), Some(domain), Some(station), Some(cc)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let (user, domain, station) = (name(user), name(domain), name(station));
    let unicode = cc.first().is_some_and(|b| b & 1 == 1);
    let ascii = user.is_ascii() && domain.is_ascii() && station.is_ascii();
    if !unicode && !ascii {
        // OEM strings are bytes in the client's code page: only ASCII reads back the same.
        return;
    }
    let mut client_challenge = [0u8; 8];
    for (d, s) in client_challenge.iter_mut().zip(cc) {
        *d = *s;
    }
    let f = if unicode { flags::UNICODE } else { flags::OEM } | flags::NTLM;
    let target = Target {
        domain: domain.to_uppercase(),
        computer: station.to_uppercase(),
        dns_domain: domain.to_lowercase(),
        dns_computer: station.to_lowercase(),
    };
    let mut type2 = Vec::new();
    ntlm::write_challenge(&mut type2, ntlm::challenge_flags(f), &CHALLENGE, &target);
    let (challenge, info) = client::read_challenge(&type2).expect("our type 2 reads");
    assert_eq!(challenge, CHALLENGE);
    let nt = client::v2_response(
        &KEY,
        &user,
        &domain,
        &challenge,
        &client_challenge,
        42,
        &info,
    );
    let type3 = client::authenticate(&[0; 24], &nt, &domain, &user, &station, f);
    let a = ntlm::parse_authenticate(&type3).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        (&a.user, &a.domain, &a.workstation),
        (&user, &domain, &station)
    );
    assert_eq!(ntlm::v2_shape(a.nt).map(|v| v.timestamp), Some(42));
    let ntowf = ntlm::ntowf_v2(&KEY, &a.user, &a.domain);
    assert!(ntlm::verify_v2(&ntowf, &CHALLENGE, a.nt));
    let mut other = CHALLENGE;
    other[0] ^= 1;
    assert!(
        !ntlm::verify_v2(&ntowf, &other, a.nt),
        "answers another challenge"
    );
});
