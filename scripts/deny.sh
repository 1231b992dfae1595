#!/usr/bin/env bash
# cargo deny over the whole workspace's dependency graph (deny.toml): only the licences listed,
# no wildcard versions, crates from crates.io only. Advisories are left out: the RustSec database
# lives on GitHub, which this machine cannot reach. Installs cargo-deny from crates.io if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null || cargo install --locked --quiet cargo-deny@0.20.2
cargo deny --offline --workspace check licenses bans sources
