#!/usr/bin/env bash
# Benchmark of staged builds on this machine (run by hand; never part of the test suite).
#
# Prints, for a config of four user stages on busybox:
#   - cold build time (base image present, empty stage cache),
#   - fully cached rebuild time (target: < 20 ms),
#   - layer commit throughput of a stage writing 500 MB of mixed files, beside the floor
#     `tar -c | sha256sum` of the same tree (target: within 2x of the floor).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
cargo build --release --locked -q
strata=$PWD/target/release/strata
work=$(mktemp -d /var/tmp/strata-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export STRATA_STORE=$work/store CI=1
scripts/busybox-rootfs.sh "$work/busybox.tar"
"$strata" import "$work/busybox.tar" busybox:latest >/dev/null

ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

mkdir -p "$work/four"
cat >"$work/four/strata.yaml" <<'YAML'
image: four
from: busybox:latest
shell:
  beforeInstall:
  - mkdir -p /app && echo one > /app/1
  install:
  - echo two > /app/2
  beforeSetup:
  - echo three > /app/3
  setup:
  - echo four > /app/4
YAML

cold=() cached=()
for i in $(seq "$runs"); do
  sed -i "s/^  - mkdir -p \/app.*/  - mkdir -p \/app \&\& echo run$i > \/app\/1/" "$work/four/strata.yaml"
  t0=$(date +%s%N); "$strata" build -C "$work/four" --progress plain 2>/dev/null; t1=$(date +%s%N)
  cold+=("$(ms "$t0" "$t1")")
  t0=$(date +%s%N); "$strata" build -C "$work/four" --progress plain 2>/dev/null; t1=$(date +%s%N)
  cached+=("$(ms "$t0" "$t1")")
done
echo "four user stages on busybox ($runs runs, median):"
echo "  cold build:            $(printf '%s\n' "${cold[@]}" | median) ms"
echo "  fully cached rebuild:  $(printf '%s\n' "${cached[@]}" | median) ms   (target < 20 ms)"

# 500 MB of mixed files: many small text files, some medium, a few large random ones.
mkdir -p "$work/big"
big_yaml() {
  cat >"$work/big/strata.yaml" <<YAML
image: big
from: busybox:latest
shell:
  installCacheVersion: "$1"
  install:
  - |
    mkdir -p /data/small /data/medium /data/large
    i=0; while [ \$i -lt 20000 ]; do echo "file \$i" > /data/small/f\$i; i=\$((i+1)); done
    i=0; while [ \$i -lt 400 ]; do head -c 250000 /dev/urandom > /data/medium/m\$i; i=\$((i+1)); done
    i=0; while [ \$i -lt 8 ]; do head -c 50000000 /dev/urandom > /data/large/l\$i; i=\$((i+1)); done
    dd if=/dev/zero of=/data/large/zeros bs=1M count=100 status=none
YAML
}
commit=() floor=() size=0
for i in $(seq "$runs"); do
  big_yaml "$i"
  "$strata" build -C "$work/big" --progress json 2>"$work/events.json" >/dev/null
  commit+=("$(grep '"event":"stage_built"' "$work/events.json" | grep '"stage":"install"' | sed 's/.*"commit_millis":\([0-9]*\).*/\1/')")
  snap=$(ls -td "$STRATA_STORE"/snapshots/*/ | head -1)
  size=$(du -sb "$snap" | cut -f1)
  sync
  t0=$(date +%s%N); tar -C "$snap" -cf - . | sha256sum >/dev/null; t1=$(date +%s%N)
  floor+=("$(ms "$t0" "$t1")")
done
c=$(printf '%s\n' "${commit[@]}" | median); f=$(printf '%s\n' "${floor[@]}" | median)
mb=$((size / 1000000))
echo "layer commit of a ${mb} MB stage ($runs runs, median):"
echo "  strata commit (zstd):  $c ms  ($((mb * 1000 / (c > 0 ? c : 1))) MB/s)"
echo "  tar -c | sha256sum:    $f ms  ($((mb * 1000 / (f > 0 ? f : 1))) MB/s)   ratio $(awk "BEGIN {printf \"%.2f\", $c / $f}")x (target <= 2x)"
