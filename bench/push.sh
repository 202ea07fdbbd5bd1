#!/usr/bin/env bash
# Push of a ~500 MB image to a local registry: `strata push` beside `skopeo copy` of the same
# image (run by hand, as root; never part of the test suite). The image is peers.sh's big stage
# (20,000 small, 400 medium, 6 large files and 100 MB of zeros) on busybox, built by strata.
# Each run pushes to a new repository of one local docker-registry, so no blob is there yet:
#   strata-first   `strata push` of a freshly built image: its plain layer is compressed (gzip,
#                  the default) on the way, then uploaded
#   skopeo-plain   `skopeo copy` of the same image exported uncompressed (`strata export
#                  --compression none`, an OCI layout): skopeo compresses (gzip) and uploads
#   strata-again   `strata push` of an image pushed before: the compressed layer is remembered,
#                  upload only
#   skopeo-gzip    `skopeo copy` of the gzip OCI layout `strata export` wrote: upload only
# Env: RUNS (default 3), WORK (default a temp dir in /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${RUNS:-3}
[ "$(id -u)" = 0 ] || { echo "push.sh must run as root" >&2; exit 1; }
for tool in skopeo docker-registry; do
  command -v "$tool" >/dev/null || { echo "$tool missing: run scripts/install-deps.sh" >&2; exit 1; }
done
cargo build --release --locked -q -p strata-cli
strata=$repo/target/release/strata
work=${WORK:-$(mktemp -d /var/tmp/strata-push.XXXXXX)}
registry_pid=
cleanup() {
  set +e
  [ -n "$registry_pid" ] && kill "$registry_pid" && wait "$registry_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export STRATA_STORE=$work/strata CI=1

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
registry=127.0.0.1:$port

scripts/busybox-rootfs.sh "$work/busybox.tar"
"$strata" import "$work/busybox.tar" busybox:latest >/dev/null
big='echo @TOKEN@ > /stamp && mkdir -p /data/small /data/medium /data/large && i=0; while [ $i -lt 20000 ]; do echo "file $i" > /data/small/f$i; i=$((i+1)); done; i=0; while [ $i -lt 400 ]; do head -c 250000 /dev/urandom > /data/medium/m$i; i=$((i+1)); done; i=0; while [ $i -lt 6 ]; do head -c 50000000 /dev/urandom > /data/large/l$i; i=$((i+1)); done; dd if=/dev/zero of=/data/large/zeros bs=1M count=100 status=none'
mkdir -p "$work/ctx"

now() { date +%s%N; }
results=$work/results.tsv
: >"$results"
measure() { # SCENARIO RUN CMD...
  local sc=$1 i=$2 t0 t1
  shift 2
  sync
  t0=$(now)
  "$@" >"$work/log" 2>&1 || { echo "$sc run $i failed:" >&2; tail -n 8 "$work/log" >&2; exit 1; }
  t1=$(now)
  printf '%s\t%s\t%s\n' "$sc" "$i" "$(((t1 - t0) / 1000000))" >>"$results"
  echo "  $sc run $i: $(((t1 - t0) / 1000000)) ms (load $(cut -d' ' -f1 /proc/loadavg))" >&2
}
for i in $(seq "$runs"); do
  printf 'FROM busybox:latest\nRUN %s\n' "${big//@TOKEN@/run-$i-$(now)}" >"$work/ctx/Dockerfile"
  "$strata" build -f "$work/ctx/Dockerfile" "$work/ctx" -t "big:$i" --progress plain >"$work/log" 2>&1
  rm -rf "$work/plain" "$work/gzip"
  # Exported before strata's first push, so that the push is the first to compress; unpacked
  # into OCI layout dirs (untimed), so that skopeo reads files as strata does.
  layout() { # COMPRESSION DIR
    "$strata" export "big:$i" --format oci --compression "$1" -o "$2.tar" >/dev/null
    mkdir -p "$2" && tar -xf "$2.tar" -C "$2" && rm "$2.tar"
  }
  layout none "$work/plain"
  measure strata-first "$i" "$strata" push "big:$i" "$registry/strata-first-$i:1"
  measure skopeo-plain "$i" skopeo copy -q --dest-tls-verify=false "oci:$work/plain" "docker://$registry/skopeo-plain-$i:1"
  layout gzip "$work/gzip"
  measure strata-again "$i" "$strata" push "big:$i" "$registry/strata-again-$i:1"
  measure skopeo-gzip "$i" skopeo copy -q --dest-tls-verify=false "oci:$work/gzip" "docker://$registry/skopeo-gzip-$i:1"
  rm -rf "$work/plain" "$work/gzip"
done
echo
echo "push of a ~500 MB image to a local registry, $runs runs, seconds: median (min–max)"
for sc in strata-first skopeo-plain strata-again skopeo-gzip; do
  awk -F'\t' -v sc="$sc" '$1 == sc {print $3}' "$results" | sort -n |
    awk -v sc="$sc" '{a[NR] = $1} END {printf "%s: %.2f (%.2f–%.2f)\n", sc, a[int((NR + 1) / 2)] / 1000, a[1] / 1000, a[NR] / 1000}'
done
