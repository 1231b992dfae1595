//! Request heads: `http::head::parse` against httparse's own view of the same bytes, and the
//! framing it reports against a model written from RFC 9112 §6 (the smuggling rules).
//!
//! The first two bytes choose the limits (so the limit paths are reached with small inputs); the
//! rest is the head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::http::head::{self, Body, Field, HeadError, Limits, Method};
use ringgate::http::rewrite::{self, Additions};
use ringgate::http::target;

/// The framing the head announces, or `None` where the proxy must refuse it.
fn model_body(headers: &[httparse::Header<'_>]) -> Option<Body> {
    fn named<'h, 'b>(
        headers: &'h [httparse::Header<'b>],
        n: &'static str,
    ) -> impl Iterator<Item = &'h httparse::Header<'b>> {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(n))
    }
    let mut lengths = named(headers, "content-length").map(|h| {
        let v = h.value.trim_ascii();
        (!v.is_empty() && v.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
            .flatten()
    });
    let first = lengths.next();
    let length = match first {
        None => None,
        Some(None) => return None,
        Some(Some(n)) => {
            if lengths.any(|l| l != Some(n)) {
                return None;
            }
            Some(n)
        }
    };
    let te: Vec<&[u8]> = named(headers, "transfer-encoding")
        .map(|h| h.value)
        .collect();
    match (te.as_slice(), length) {
        ([], None | Some(0)) => Some(Body::None),
        ([], Some(n)) => Some(Body::Length(n)),
        ([_], Some(_)) => None,
        ([one], None) => {
            let codings: Vec<&[u8]> = one.split(|&b| b == b',').map(<[u8]>::trim_ascii).collect();
            let chunked = codings
                .iter()
                .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
                .count();
            let last = codings
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
            (last && chunked == 1).then_some(Body::Chunked)
        }
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let [a, b, buf @ ..] = data else { return };
    let limits = Limits {
        max_head_bytes: 16 + usize::from(*a) * 64,
        max_target_bytes: 1 + usize::from(*b) * 16,
        max_headers: 1 + usize::from(*b % 128),
    };
    let ours = head::parse(buf, &limits);
    let mut headers = vec![httparse::EMPTY_HEADER; 512];
    let mut req = httparse::Request::new(&mut headers);
    let theirs = req.parse(buf);
    match ours {
        Ok(Some(h)) => {
            // Accepted: httparse read the same head, and the limits held.
            let Ok(httparse::Status::Complete(len)) = theirs else {
                panic!("accepted a head httparse does not complete: {theirs:?}")
            };
            assert_eq!(h.len, len);
            assert!(h.len <= limits.max_head_bytes && h.len <= buf.len());
            let t = h.target.get(buf);
            assert_eq!(Some(t), req.path.map(str::as_bytes));
            assert!(t.len() <= limits.max_target_bytes);
            assert_eq!(Some(h.minor_version), req.version);
            assert!(req.headers.len() <= limits.max_headers);
            let method = req.method.unwrap_or_default();
            assert_eq!(h.method == Method::Connect, method == "CONNECT");
            if h.method != Method::Other {
                assert_eq!(h.method.name(), method);
            }
            // The framing is the model's, and a head the model refuses was refused.
            assert_eq!(model_body(req.headers), Some(h.body));
            let pa: Vec<_> = req
                .headers
                .iter()
                .filter(|x| x.name.eq_ignore_ascii_case("proxy-authorization"))
                .collect();
            match (h.proxy_authorization, pa.as_slice()) {
                (Field::Absent, []) | (Field::Repeated, [_, _, ..]) => {}
                (Field::One(span), [one]) => assert_eq!(span.get(buf), one.value.trim_ascii()),
                (ours, theirs) => panic!("Proxy-Authorization {ours:?} vs {} fields", theirs.len()),
            }
            // The target decoders take whatever the head parser let through.
            if h.method == Method::Connect {
                let _ = target::parse_authority(t);
            } else {
                let _ = target::scheme_len(t);
                if let Ok(u) = target::parse_absolute_http(t) {
                    // What goes to the origin reads back with the same method and framing, and
                    // without the proxy's credentials or any hop-by-hop field.
                    let mut out = Vec::new();
                    let add = Additions {
                        via: Some("ringgate"),
                        forwarded_for: Some(std::net::Ipv4Addr::LOCALHOST.into()),
                    };
                    rewrite::write_request_head(&mut out, method, &u, req.headers, h.body, add);
                    let wide = Limits {
                        max_head_bytes: usize::MAX,
                        max_target_bytes: usize::MAX,
                        max_headers: 512,
                    };
                    let again = head::parse(&out, &wide)
                        .unwrap_or_else(|e| panic!("rewritten head refused: {e:?}"))
                        .expect("a rewritten head is complete");
                    assert_eq!(again.len, out.len());
                    assert_eq!(again.method, h.method);
                    assert_eq!(again.body, h.body);
                    assert_eq!(again.proxy_authorization, Field::Absent);
                    let mut fields = vec![httparse::EMPTY_HEADER; 520];
                    let mut sent = httparse::Request::new(&mut fields);
                    let _ = sent.parse(&out);
                    for f in sent.headers.iter() {
                        for hop in ["proxy-connection", "keep-alive", "te", "upgrade", "trailer"] {
                            assert!(!f.name.eq_ignore_ascii_case(hop), "{} forwarded", f.name);
                        }
                    }
                }
            }
        }
        Ok(None) => {
            // Incomplete: httparse agrees, and the bytes are within the limits.
            assert!(
                matches!(theirs, Ok(httparse::Status::Partial)),
                "incomplete to us, {theirs:?} to httparse"
            );
            assert!(buf.len() < limits.max_head_bytes);
        }
        Err(HeadError::BadFraming) => {
            let Ok(httparse::Status::Complete(_)) = theirs else {
                panic!("bad framing in a head httparse does not complete: {theirs:?}")
            };
            assert_eq!(
                model_body(req.headers),
                None,
                "refused framing the model accepts"
            );
        }
        Err(HeadError::Malformed) => {
            // Malformed to us: httparse refuses it too, or it completes without a method,
            // target or version (which it cannot, once complete).
            assert!(theirs.is_err(), "malformed to us, {theirs:?} to httparse");
        }
        Err(HeadError::TooManyHeaders) => {
            assert!(limits.max_headers < 512);
        }
        Err(HeadError::TooLarge | HeadError::TargetTooLong) => {}
    }
});
