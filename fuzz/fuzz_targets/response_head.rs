//! Origin response heads: `http::response_head::parse` against httparse's view, its framing
//! against RFC 9112 §6.3, and the head the proxy writes for the client read back with the same
//! status and framing (an origin must not be able to make the client read a different body).
//!
//! The first byte picks the request method and the limits; the rest is the head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::http::head::{HeadError, Limits, Method};
use ringgate::http::response_head::{self, ResponseBody};
use ringgate::http::rewrite::{self, ResponseAdditions};

fuzz_target!(|data: &[u8]| {
    let [a, buf @ ..] = data else { return };
    let method = Method::ALL[usize::from(*a) % Method::ALL.len()];
    let limits = Limits {
        max_head_bytes: 64 + usize::from(*a >> 4) * 256,
        max_target_bytes: 8192,
        max_headers: 4 + usize::from(*a >> 4) * 8,
    };
    let ours = response_head::parse(buf, &limits, method);
    let mut headers = vec![httparse::EMPTY_HEADER; 512];
    let mut resp = httparse::Response::new(&mut headers);
    let theirs = resp.parse(buf);
    match ours {
        Ok(Some(h)) => {
            let Ok(httparse::Status::Complete(len)) = theirs else {
                panic!("accepted a head httparse does not complete: {theirs:?}")
            };
            assert_eq!(h.len, len);
            assert!(h.len <= limits.max_head_bytes);
            assert_eq!(Some(h.status), resp.code);
            let no_content = method == Method::Head
                || (100..200).contains(&h.status)
                || matches!(h.status, 204 | 304);
            if no_content {
                assert_eq!(h.body, ResponseBody::None);
            }
            // The head for the client: same status and framing, and it says close when the
            // body runs until close.
            let mut out = Vec::new();
            let added = ResponseAdditions {
                via: Some("ringgate"),
                session_based: true,
                negotiate: None,
            };
            let reason = resp.reason.unwrap_or("");
            let reason = if reason
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                reason
            } else {
                ""
            };
            rewrite::write_response_head(
                &mut out,
                h.status,
                reason,
                resp.headers,
                h.body,
                added,
                h.closes,
            );
            let wide = Limits {
                max_head_bytes: usize::MAX,
                max_target_bytes: usize::MAX,
                max_headers: 520,
            };
            let again = response_head::parse(&out, &wide, method)
                .unwrap_or_else(|e| panic!("the client's head refused: {e:?}"))
                .expect("complete");
            assert_eq!(again.len, out.len());
            assert_eq!(again.status, h.status);
            assert_eq!(again.body, h.body);
            assert_eq!(again.closes, h.closes || h.body == ResponseBody::UntilClose);
        }
        Ok(None) => {
            assert!(
                matches!(theirs, Ok(httparse::Status::Partial)),
                "{theirs:?}"
            );
            assert!(buf.len() < limits.max_head_bytes);
        }
        Err(HeadError::Malformed) => assert!(
            theirs.is_err() || resp.code.is_some_and(|c| !(100..=599).contains(&c)),
            "malformed to us, {theirs:?} to httparse"
        ),
        Err(HeadError::TooManyHeaders | HeadError::TooLarge | HeadError::BadFraming) => {}
        Err(HeadError::TargetTooLong) => panic!("a response has no target"),
    }
});
