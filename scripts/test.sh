#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests against the real binary, benches compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release --bin ringgate
cargo test --locked --release --workspace --all-targets
