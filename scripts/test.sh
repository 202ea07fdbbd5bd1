#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, and every unit and integration test (the
# integration tests use real namespaces and overlayfs, so this runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
# How long the suite took, printed however it ends.
started=$SECONDS
trap 'echo "scripts/test.sh: $(( (SECONDS - started) / 60 ))m $(( (SECONDS - started) % 60 ))s"' EXIT
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --no-fail-fast
