#!/usr/bin/env bash
# Runs meridian's whole test suite: unit tests, the validation table, plan
# snapshots and the end-to-end tests that drive the real binary against the
# embedded simulated cloud. Everything runs offline; tests start what they need.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
