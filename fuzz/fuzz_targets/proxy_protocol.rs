//! PROXY protocol v1/v2 headers (the bytes a load balancer puts first). A complete header's
//! length lies within the bytes, and the verdict is the same however the bytes arrive: every
//! prefix of a complete header is incomplete, and a header followed by more bytes is the same
//! header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::conn::proxy_protocol::{self, MAX_HEADER, Parsed};

fuzz_target!(|data: &[u8]| {
    let whole = proxy_protocol::parse(data);
    match whole {
        Parsed::Complete(n, origin) => {
            assert!(n > 0 && n <= data.len() && n <= MAX_HEADER);
            // The header alone, and any prefix of it.
            assert_eq!(
                proxy_protocol::parse(&data[..n]),
                Parsed::Complete(n, origin)
            );
            // However the bytes were segmented, every piece short of the header waits for more.
            for cut in [0, 1, n / 2, n - 1] {
                let p = proxy_protocol::parse(&data[..cut]);
                assert_eq!(p, Parsed::Incomplete, "prefix {cut} of {n}");
            }
        }
        Parsed::Incomplete => {
            assert!(data.len() < MAX_HEADER);
            for cut in [data.len() / 2, data.len().saturating_sub(1)] {
                assert_eq!(proxy_protocol::parse(&data[..cut]), Parsed::Incomplete);
            }
        }
        Parsed::Invalid => {}
    }
});
