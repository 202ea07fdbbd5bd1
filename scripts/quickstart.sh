#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine (as root) and builds the example for real:
# installs packages, builds strata, imports a busybox base image, builds examples/hello twice
# (the second time every stage is reused), lists the images, runs and exports the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked
strata=$PWD/target/release/strata
export STRATA_STORE=${STRATA_STORE:-$PWD/target/quickstart-store}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scripts/busybox-rootfs.sh "$work/busybox.tar"
"$strata" import "$work/busybox.tar" busybox:latest
(cd examples/hello && "$strata" build --progress plain && "$strata" build --progress plain)
"$strata" images
"$strata" run hello -- cat /app/version
"$strata" export hello -o "$work/hello.tar"
skopeo inspect "oci-archive:$work/hello.tar" | head -20
echo "quickstart ok: store at $STRATA_STORE"
