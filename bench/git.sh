#!/usr/bin/env bash
# Benchmark of git mappings (run by hand; never part of the test suite).
#
# A generated repository of 100,000 files, mapped whole with three stageDependencies masks:
# prints the time of a fully cached rebuild beside `git ls-tree -r HEAD > /dev/null` on the
# same repository (target: within 2x).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
files=${FILES:-100000}
cargo build --release --locked -q
strata=$PWD/target/release/strata
work=$(mktemp -d /var/tmp/strata-gitbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export STRATA_STORE=$work/store CI=1
scripts/busybox-rootfs.sh "$work/busybox.tar"
"$strata" import "$work/busybox.tar" busybox:latest >/dev/null

repo=$work/repo
mkdir -p "$repo"
python3 - "$repo" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "src", f"m{i % 100}", f"p{(i // 100) % 100}")
    os.makedirs(d, exist_ok=True)
    ext = (".go", ".js", ".txt", ".md")[i % 4]
    with open(os.path.join(d, f"f{i}{ext}"), "w") as f:
        f.write(f"file {i}\n")
PY
cat >"$repo/strata.yaml" <<'YAML'
image: app
from: busybox:latest
git:
- add: /
  to: /app
  excludePaths: [strata.yaml]
  stageDependencies:
    install: ["**/*.go"]
    beforeSetup: ["src/m1*/**"]
    setup: ["**/*.md"]
shell:
  install:
  - echo install
  beforeSetup:
  - echo beforeSetup
  setup:
  - echo setup
YAML
git -C "$repo" init -q
git -C "$repo" -c user.email=b@b -c user.name=b add -A
git -C "$repo" -c user.email=b@b -c user.name=b commit -qm init
"$strata" build -C "$repo" --progress plain 2>/dev/null

ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cached=() nodirty=() lstree=()
for _ in $(seq "$runs"); do
  t0=$(date +%s%N); "$strata" build -C "$repo" --progress plain 2>/dev/null; t1=$(date +%s%N)
  cached+=("$(ms "$t0" "$t1")")
  t0=$(date +%s%N); "$strata" build -C "$repo" --progress plain --no-dirty-check 2>/dev/null; t1=$(date +%s%N)
  nodirty+=("$(ms "$t0" "$t1")")
  t0=$(date +%s%N); git -C "$repo" ls-tree -r HEAD >/dev/null; t1=$(date +%s%N)
  lstree+=("$(ms "$t0" "$t1")")
done
c=$(printf '%s\n' "${cached[@]}" | median); n=$(printf '%s\n' "${nodirty[@]}" | median)
l=$(printf '%s\n' "${lstree[@]}" | median)
ratio() { awk "BEGIN {printf \"%.2f\", $1 / ($2 > 0 ? $2 : 1)}"; }
echo "git mapping of $files files, 3 stageDependencies masks ($runs runs, median):"
echo "  fully cached rebuild, --no-dirty-check:        $n ms   ratio $(ratio "$n" "$l")x (target <= 2x)"
echo "  fully cached rebuild with the dirty-tree scan: $c ms   ratio $(ratio "$c" "$l")x"
echo "  git ls-tree -r HEAD:                           $l ms"
