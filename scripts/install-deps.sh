#!/usr/bin/env bash
# Installs the Debian packages strata and its tests need. Idempotent; safe to run often.
#   bash-static, busybox-static: the toolbox mounted into every build container
#   skopeo, umoci: tests check that exported images load in real tools
#   zstd: tests decompress layers with the reference tool
#   docker-registry: strata-registry's tests push to and pull from a real local registry
#   libseccomp-dev: the sandbox's seccomp profile is compiled by libseccomp (the libseccomp crate)
#   gcc, libc6-dev: the security tests compile a static attack program run inside containers
#   docker.io, containerd, runc, podman, buildah, uidmap, openssl, apache2-utils: the interop
#     suite (crates/strata-cli/tests/cli/interop) makes images with docker/BuildKit, buildah,
#     podman and skopeo, serves them over TLS (openssl CA, htpasswd auth) and takes strata's
#     images back into each tool, ctr included
#   golang-go, golang-github-masterminds-sprig-dev: strata-template's differential tests render
#     the same templates with Go's text/template and Sprig (GOPATH mode, offline)
#   openssh-client: the `--ssh` tests run a real ssh-agent and ask it through the forwarded socket
#   uidmap (above), passwd, util-linux: rootless strata maps its user namespace with
#     newuidmap/newgidmap; the rootless tests make users (useradd) and run strata as them (setpriv)
#   zsh, fish, man-db: the CLI tests load `strata completion` in each shell and render
#     `strata man` with man(1)
#   nodejs, npm (when no node is installed): the DAP tests drive `strata dap` with VS Code's
#     test client, @vscode/debugadapter-testsupport, installed below from the npm registry at
#     the versions crates/strata-cli/tests/dap/package-lock.json pins
#   debootstrap, time, linux-perf: bench/peers.sh (the Debian minbase input, peak RSS) and
#     profiling the benchmarks (perf record); the ansible tests' Debian root file system
#   patchelf: scripts/ansible-toolbox.sh relocates the ansible toolbox's python (run last)
#   musl: the ansible tests' Alpine-shaped root file system (musl's libc and loader, no glibc)
set -euo pipefail
packages=(bash-static busybox-static skopeo umoci zstd git curl ca-certificates docker-registry
  libseccomp-dev gcc libc6-dev docker.io containerd runc podman buildah uidmap openssl apache2-utils
  golang-go golang-github-masterminds-sprig-dev zsh fish man-db
  openssh-client passwd util-linux debootstrap time linux-perf patchelf musl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi
dap_client="$(dirname "${BASH_SOURCE[0]}")/../crates/strata-cli/tests/dap"
# Installed once per lock file: the stamp is the lock file npm last installed from.
if ! cmp -s "$dap_client/package-lock.json" "$dap_client/node_modules/.strata-installed"; then
  npm ci --prefix "$dap_client" --no-audit --no-fund --silent
  cp "$dap_client/package-lock.json" "$dap_client/node_modules/.strata-installed"
fi
# The ansible toolbox (Python + ansible-core from Debian's packages), for ansible stages.
"$(dirname "${BASH_SOURCE[0]}")/ansible-toolbox.sh"
