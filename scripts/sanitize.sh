#!/usr/bin/env bash
# The library's unit tests under AddressSanitizer (heap and stack overflows, use after free, leaks
# through LeakSanitizer): the parsers, the auth schemes, the credential stores, the chunked scanner,
# everything `cargo test --lib` covers. `-Zsanitizer` is unstable: RUSTC_BOOTSTRAP=1 allows it on
# this stable toolchain; `--target` keeps build scripts and proc macros uninstrumented. Miri is not
# available here (no miri component, and no toolchain can be fetched). A separate target dir keeps
# the instrumented build apart from the normal one. Leaks made on purpose are listed, with why,
# in scripts/lsan.supp.
#
#   scripts/sanitize.sh [TEST-FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address"
export ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp"
export CARGO_TARGET_DIR=target/asan
cargo test --locked --lib --target x86_64-unknown-linux-gnu -p ringgate -- "$@"
