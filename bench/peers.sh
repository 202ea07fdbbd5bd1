#!/usr/bin/env bash
# strata beside BuildKit (docker.io's dockerd) and buildah on the same Dockerfiles (run by hand,
# as root; never part of the test suite). Installs its peers through apt, starts a private
# dockerd, builds the same base images from the same rootfs tarballs for everyone, then times,
# alternating the builders run by run:
#   cold     base present, stage cache empty for this input (the first COPY's file is new)
#   cached   the same build again: every step reused
#   onefile  one source file changed: only the last COPY and RUN rebuild
#   big      one RUN writing ~500 MB of mixed files (20,000 small, 400 medium, 6 large, zeros)
# on two bases: busybox (no network use: the builders' own overhead) and a Debian minbase.
# Every scenario also runs bare on the host (the RUNs' work in a temp dir) so that
# overhead = builder wall time - bare wall time. strata runs the Dockerfile (`strata build -f`)
# and an equivalent werf stapel config (`strata build -C`, git mapping for the sources).
#
# Env: RUNS (default 3), RUNS_DEBIAN (default RUNS), INPUTS (default "busybox debian"),
# BUILDERS (default "bare buildkit buildah strata-df strata-yaml"), PEERS_CACHE (where the
# debootstrapped minbase tarball is kept between invocations, default /var/tmp/strata-peers-cache),
# RESULTS_MD (default bench/RESULTS.md; the section between the peers markers is replaced,
# or appended; RESULTS_MD=- writes nothing), PEERS_FS (default loop: everything, the bare runs
# included, works on a fresh ext4 in a sparse loop image of PEERS_FS_SIZE, default 16G, so an
# aged, shared root file system does not decide the file-creation costs; host: /var/tmp as is).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${RUNS:-3}
runs_debian=${RUNS_DEBIAN:-$runs}
inputs=${INPUTS:-busybox debian}
builders=${BUILDERS:-bare buildkit buildah strata-df strata-yaml}
cache=${PEERS_CACHE:-/var/tmp/strata-peers-cache}
results_md=${RESULTS_MD:-bench/RESULTS.md}
[ "$(id -u)" = 0 ] || { echo "peers.sh must run as root" >&2; exit 1; }

# --- 1. packages --------------------------------------------------------------------------
need=()
for p in docker.io buildah debootstrap time; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
fi
DOCKER=/usr/bin/docker # /usr/local/bin/docker, if any, lacks BuildKit's client side
DOCKERD=$(command -v dockerd || echo /usr/sbin/dockerd)

cargo build --release --locked -q -p strata-cli
strata=$repo/target/release/strata

work=$(mktemp -d /var/tmp/strata-peers.XXXXXX)
loopdev=
if [ "${PEERS_FS:-loop}" = loop ]; then
  # On this VM's aged root ext4, creating a file costs 150-500 us of inode-bitmap scanning
  # (find_inode_bit, recently_deleted) depending on the block group a directory lands in, which
  # made the 20,000-file RUN vary 3-10 s between directories; a fresh file system does not.
  truncate -s "${PEERS_FS_SIZE:-16G}" "$work.img"
  mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work.img" # no ext4lazyinit meanwhile
  loopdev=$(losetup --direct-io=on -f --show "$work.img")
  mount -o discard "$loopdev" "$work"
fi
dockerd_pid=
cleanup() {
  set +e
  if [ -n "$dockerd_pid" ]; then
    kill "$dockerd_pid" 2>/dev/null
    for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
  fi
  [ -d "$work/buildah" ] && buildah $BUILDAH rm -a >/dev/null 2>&1
  findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r umount -l 2>/dev/null
  if [ -n "$loopdev" ]; then
    umount "$work" || umount -l "$work"
    losetup -d "$loopdev"
    rm -f "$work.img"
    rmdir "$work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
results=$work/results.tsv # input scenario builder run ms [peak_rss_kb]
notes=$work/notes.md
: >"$results"
: >"$notes"

# --- 2. dockerd ---------------------------------------------------------------------------
has() { [[ " $builders " == *" $1 "* ]]; }
if has buildkit; then
  mkdir -p "$work/docker"
  "$DOCKERD" --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 \
    --default-runtime=runc --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
    --pidfile "$work/docker/dockerd.pid" -H "unix://$work/docker/docker.sock" \
    >"$work/docker/dockerd.log" 2>&1 &
  dockerd_pid=$!
  export DOCKER_HOST=unix://$work/docker/docker.sock
  for _ in $(seq 120); do
    "$DOCKER" version >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.5
  done
  if ! "$DOCKER" version >/dev/null 2>&1; then
    {
      echo "- BuildKit: dockerd did not start here; the end of its log:"
      echo '```'
      tail -n 15 "$work/docker/dockerd.log"
      echo '```'
    } >>"$notes"
    builders=${builders/buildkit/}
    dockerd_pid=
  fi
fi
BUILDAH="--root $work/buildah/root --runroot $work/buildah/run --storage-driver overlay"

# --- 3. base images from the same tarballs -------------------------------------------------
scripts/busybox-rootfs.sh "$work/busybox.tar"
mkdir -p "$cache"
if [[ " $inputs " == *" debian "* ]] && [ ! -s "$cache/debian-minbase.tar" ]; then
  mirror=$({
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      awk '{for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; break}}'
    grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
  } | grep -i debian | grep -v security | head -1)
  echo "debootstrap --variant=minbase bookworm from ${mirror:?no Debian mirror configured}" >&2
  rm -rf "$cache/minbase"
  debootstrap --variant=minbase bookworm "$cache/minbase" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  tar --numeric-owner -C "$cache/minbase" -cf "$cache/debian-minbase.tar.part" .
  mv "$cache/debian-minbase.tar.part" "$cache/debian-minbase.tar"
  rm -rf "$cache/minbase"
fi
export STRATA_STORE=$work/strata CI=1
declare -A base_tar=([busybox]=$work/busybox.tar [debian]=$cache/debian-minbase.tar)
declare -A base_ref=([busybox]=busybox:latest [debian]=debian-minbase:latest)
import_base() { # BUILDER INPUT
  local tar=${base_tar[$2]} ref=${base_ref[$2]}
  case $1 in
  buildkit) "$DOCKER" import "$tar" "$ref" >/dev/null ;;
  buildah)
    local c
    c=$(buildah $BUILDAH from scratch)
    buildah $BUILDAH add "$c" "$tar" / >/dev/null
    buildah $BUILDAH commit -q "$c" "localhost/$ref" >/dev/null
    buildah $BUILDAH rm "$c" >/dev/null
    ;;
  strata-df | strata-yaml) "$strata" import "$tar" "$ref" >/dev/null ;;
  esac
}
for input in $inputs; do
  for b in buildkit buildah strata-df; do has "$b" && import_base "$b" "$input"; done
done
mkdir -p "$work/bbbin" && busybox --install -s "$work/bbbin" # bare busybox runs use its applets

# --- the work ------------------------------------------------------------------------------
# @R@ is the root the scripts write under: "" in the builders, a temp dir bare on the host.
run1='mkdir -p @R@/app/out && sort @R@/app/deps.txt > @R@/app/out/deps.sorted && sha256sum @R@/app/deps.txt > @R@/app/out/deps.sum'
run2='cd @R@/app && sha256sum src/* > out/src.sum && tar -czf out/src.tgz src && ls src | wc -l > out/count'
big='echo @TOKEN@ > @R@/stamp && mkdir -p @R@/data/small @R@/data/medium @R@/data/large && i=0; while [ $i -lt 20000 ]; do echo "file $i" > @R@/data/small/f$i; i=$((i+1)); done; i=0; while [ $i -lt 400 ]; do head -c 250000 /dev/urandom > @R@/data/medium/m$i; i=$((i+1)); done; i=0; while [ $i -lt 6 ]; do head -c 50000000 /dev/urandom > @R@/data/large/l$i; i=$((i+1)); done; dd if=/dev/zero of=@R@/data/large/zeros bs=1M count=100 status=none'
at() { local s=${1//@R@/$2}; echo "${s//@TOKEN@/${3:-}}"; }

# Sources: the Dockerfile context ctx/ and the stapel config's git repository yaml/ hold the
# same deps.txt and src/ (40 files of ~5 KB).
write_sources() { # DIR TOKEN
  mkdir -p "$1/src"
  { seq -f 'pkg-%g 1.0' 200; echo "build $2"; } >"$1/deps.txt"
  for f in $(seq 40); do seq -f "line %g of file $f" 300 >"$1/src/f$f.txt"; done
}
touch_source() { echo "changed $2" >>"$1/src/f7.txt"; }
setup_input() { # INPUT
  local d=$work/$1 ref=${base_ref[$1]}
  rm -rf "$d" && mkdir -p "$d/ctx" "$d/yaml" "$d/big-ctx" "$d/big-yaml"
  write_sources "$d/ctx" 0
  cat >"$d/ctx/Dockerfile" <<EOF
FROM $ref
COPY deps.txt /app/deps.txt
RUN $(at "$run1" "")
COPY src/ /app/src/
RUN $(at "$run2" "")
EOF
  write_sources "$d/yaml" 0
  git -C "$d/yaml" init -q && git -C "$d/yaml" config user.email b@e && git -C "$d/yaml" config user.name b
  write_yaml "$1" 0
}
write_yaml() { # INPUT TOKEN
  cat >"$work/$1/yaml/strata.yaml" <<EOF
image: app
from: ${base_ref[$1]}
fromCacheVersion: "$2"
git:
- add: /
  to: /app
  includePaths: [deps.txt, "src/**"]
  stageDependencies:
    install: [deps.txt]
    setup: ["src/**"]
shell:
  install:
  - $(at "$run1" "")
  setup:
  - $(at "$run2" "")
EOF
  git -C "$work/$1/yaml" add -A && git -C "$work/$1/yaml" commit -qm "$2"
}
write_big() { # INPUT TOKEN
  local d=$work/$1
  printf 'FROM %s\nRUN %s\n' "${base_ref[$1]}" "$(at "$big" "" "$2")" >"$d/big-ctx/Dockerfile"
  printf 'image: big\nfrom: %s\nshell:\n  install:\n  - %s\n' "${base_ref[$1]}" "$(at "$big" "" "$2")" \
    >"$d/big-yaml/strata.yaml"
}

# One builder's build of DIR (a Dockerfile context, or the stapel dir for strata-yaml).
# ${wrap[@]} (set by measure) prefixes the command: /usr/bin/time for the peak RSS.
wrap=()
build() { # BUILDER DIR TAG
  case $1 in
  buildkit) DOCKER_BUILDKIT=1 "${wrap[@]}" "$DOCKER" build --network host --progress plain -t "$3" "$2" ;;
  buildah) "${wrap[@]}" buildah $BUILDAH bud --isolation chroot --layers --pull-never -t "$3" "$2" ;;
  strata-df) "${wrap[@]}" "$strata" build -f "$2/Dockerfile" "$2" -t "$3" --progress plain ;;
  strata-yaml) "${wrap[@]}" "$strata" build -C "$2" --progress plain ;;
  esac
}
bare_sh() { # INPUT SCRIPT
  if [ "$1" = busybox ]; then PATH=$work/bbbin:$PATH busybox sh -c "$2"; else /bin/sh -c "$2"; fi
}
# The bare equivalent of each scenario: the files the COPYs copy and the RUNs' commands.
bare() { # INPUT SCENARIO TOKEN
  local r=$work/bare/root
  case $2 in
  cold)
    rm -rf "$r" && mkdir -p "$r/app" && cp "$work/$1/ctx/deps.txt" "$r/app/" &&
      bare_sh "$1" "$(at "$run1" "$r")" && cp -r "$work/$1/ctx/src" "$r/app/src" && bare_sh "$1" "$(at "$run2" "$r")"
    ;;
  cached) : ;;
  onefile) rm -rf "$r/app/src" && cp -r "$work/$1/ctx/src" "$r/app/src" && bare_sh "$1" "$(at "$run2" "$r")" ;;
  big) rm -rf "$r" && mkdir -p "$r" && bare_sh "$1" "$(at "$big" "$r" "$3")" ;;
  esac
}

now() { date +%s%N; }
# Times one scenario of one builder; appends to $results; a failure is recorded as "fail".
measure() { # INPUT SCENARIO BUILDER RUN CMD...
  local in=$1 sc=$2 b=$3 i=$4 t0 t1 log=$work/log/$1-$2-$3-$4 rss=
  shift 4
  mkdir -p "$work/log"
  sync
  t0=$(now)
  wrap=()
  [ "$sc" = big ] && [ "$b" != bare ] && wrap=(/usr/bin/time -f %M -o "$log.rss")
  "$@" >"$log" 2>&1 || t0=fail
  t1=$(now)
  [ ${#wrap[@]} -gt 0 ] && [ -s "$log.rss" ] && rss=$(tail -n1 "$log.rss")
  wrap=()
  if [ "$t0" = fail ]; then
    printf '%s\t%s\t%s\t%s\tfail\t\n' "$in" "$sc" "$b" "$i" >>"$results"
    if ! grep -q "^- $b $in $sc:" "$notes"; then
      { echo "- $b $in $sc: failed; the end of its output:"; echo '```'; tail -n 8 "$log"; echo '```'; } >>"$notes"
    fi
    echo "  $in $sc $b run $i: FAILED:" >&2
    tail -n 8 "$log" | sed 's/^/    /' >&2
  else
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$in" "$sc" "$b" "$i" "$(((t1 - t0) / 1000000))" "$rss" >>"$results"
    echo "  $in $sc $b run $i: $(((t1 - t0) / 1000000)) ms${rss:+ (peak RSS ${rss} KB)}" >&2
  fi
}
rotate() { # N WORDS...: the words rotated left by N (so no builder always runs first)
  local n=$1
  shift
  local a=("$@") k=${#a[@]}
  for j in $(seq 0 $((k - 1))); do printf '%s ' "${a[$(((j + n) % k))]}"; done
}
# Frees the big scenario's 500 MB after each build (untimed) so disk use stays bounded.
drop_big() { # BUILDER INPUT
  case $1 in
  buildkit) { "$DOCKER" rmi -f "big-$2" && "$DOCKER" builder prune -af; } >/dev/null 2>&1 || true ;;
  buildah) { buildah $BUILDAH rmi -f "big-$2"; buildah $BUILDAH rmi --prune; } >/dev/null 2>&1 || true ;;
  strata-df | strata-yaml)
    rm -rf "$STRATA_STORE"
    for x in $inputs; do "$strata" import "${base_tar[$x]}" "${base_ref[$x]}" >/dev/null; done
    ;;
  bare) rm -rf "$work/bare/root" ;;
  esac
}

# --- 4./5. the runs ------------------------------------------------------------------------
read -ra blist <<<"$builders"
for input in $inputs; do
  n=$runs
  [ "$input" = debian ] && n=$runs_debian
  setup_input "$input"
  d=$work/$input
  echo "== $input: cold / cached / onefile, $n runs" >&2
  for b in "${blist[@]}"; do # one untimed build each first: no first-run effects in run 1
    [ "$b" = bare ] && continue
    src=$d/ctx
    [ "$b" = strata-yaml ] && src=$d/yaml
    write_sources "$src" "$b-warm"
    if [ "$b" = strata-yaml ]; then write_yaml "$input" warm; fi
    build "$b" "$src" "app-$input" >"$work/warm.log" 2>&1 || true
  done
  for i in $(seq "$n"); do
    for b in $(rotate "$i" "${blist[@]}"); do
      src=$d/ctx
      [ "$b" = strata-yaml ] && src=$d/yaml
      # cold: a new deps.txt (and, for the stapel config, a new fromCacheVersion) misses
      # every step after FROM
      write_sources "$src" "$b-$i"
      if [ "$b" = strata-yaml ]; then write_yaml "$input" "$i"; fi
      if [ "$b" = bare ]; then
        measure "$input" cold "$b" "$i" bare "$input" cold
        measure "$input" cached "$b" "$i" bare "$input" cached
        touch_source "$src" "$i"
        measure "$input" onefile "$b" "$i" bare "$input" onefile
        continue
      fi
      measure "$input" cold "$b" "$i" build "$b" "$src" "app-$input"
      measure "$input" cached "$b" "$i" build "$b" "$src" "app-$input"
      touch_source "$src" "$i"
      [ "$b" = strata-yaml ] && git -C "$src" commit -qam "touch $i"
      measure "$input" onefile "$b" "$i" build "$b" "$src" "app-$input"
    done
  done
  echo "== $input: big, $n runs" >&2
  for i in $(seq "$n"); do
    write_big "$input" "run-$i-$(now)"
    for b in $(rotate "$i" "${blist[@]}"); do
      case $b in
      bare) measure "$input" big bare "$i" bare "$input" big "run-$i" ;;
      strata-yaml) measure "$input" big "$b" "$i" build "$b" "$d/big-yaml" "big-$input" ;;
      *) measure "$input" big "$b" "$i" build "$b" "$d/big-ctx" "big-$input" ;;
      esac
      drop_big "$b" "$input"
    done
  done
done
if [ -n "$dockerd_pid" ]; then
  dockerd_hwm=$(awk '/VmHWM/ {print $2}' "/proc/$dockerd_pid/status" 2>/dev/null || true)
fi

# --- 6. the table --------------------------------------------------------------------------
stat_of() { # INPUT SCENARIO BUILDER FIELD(5=ms,6=rss) -> "median min max n" or "-"
  awk -F'\t' -v inp="$1" -v sc="$2" -v b="$3" -v f="$4" \
    '$1 == inp && $2 == sc && $3 == b && $f != "fail" && $f != "" {print $f}' "$results" |
    sort -n | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)], a[1], a[NR], NR; else print "-"}'
}
fmt_s() { awk -v m="$1" 'BEGIN {printf "%.2f", m / 1000}'; }
section=$work/section.md
{
  echo "<!-- peers.sh:begin (written by bench/peers.sh; the section is replaced on each run) -->"
  echo "## bench/peers.sh ($(date -u +%Y-%m-%d), $runs runs busybox, $runs_debian runs Debian)"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)," \
    "$(. /etc/os-release && echo "$PRETTY_NAME"), $(findmnt -n -o FSTYPE -T "$work")$([ -n "$loopdev" ] && echo ' (fresh, in a loop image on the root ext4)')."
  dv=$("$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null) || dv="$(dpkg-query -W -f '${Version}' docker.io) (dockerd not running)"
  echo "Versions: docker $dv" \
    "(BuildKit in dockerd, runc), $(buildah --version | awk '{print "buildah", $3}'), $("$strata" --version)" \
    "($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.lock 2>/dev/null || echo ', dirty tree'))."
  echo "Builders run in turn within each run (start rotated), seconds are medians (min–max);"
  echo "overhead = median − bare median. strata-df is \`strata build -f Dockerfile\`, strata-yaml the"
  echo "same work as a stapel config (git mapping of the sources)."
  echo
  printf '| input | scenario | bare |'
  for b in $builders; do [ "$b" = bare ] || printf ' %s (overhead) |' "$b"; done
  for s in strata-df strata-yaml; do printf ' %s overhead / BuildKit, / buildah |' "$s"; done
  printf '\n|---|---|---|'
  for b in $builders; do [ "$b" = bare ] || printf -- '---|'; done
  printf -- '---|---|\n'
  for input in $inputs; do
    for sc in cold cached onefile big; do
      read -r bm _ <<<"$(stat_of "$input" "$sc" bare 5)"
      [ "$bm" = - ] && bm=0
      printf '| %s | %s | %s |' "$input" "$sc" "$(fmt_s "$bm")"
      declare -A ov=()
      for b in $builders; do
        [ "$b" = bare ] && continue
        read -r m lo hi cnt <<<"$(stat_of "$input" "$sc" "$b" 5)"
        if [ "$m" = - ]; then printf ' failed |'; continue; fi
        ov[$b]=$((m - bm))
        printf ' %s (%s–%s) (**%s**) |' "$(fmt_s "$m")" "$(fmt_s "$lo")" "$(fmt_s "$hi")" "$(fmt_s "${ov[$b]}")"
      done
      for s in strata-df strata-yaml; do
        for p in buildkit buildah; do
          if [ -n "${ov[$s]:-}" ] && [ -n "${ov[$p]:-}" ]; then
            awk -v s="${ov[$s]}" -v p="${ov[$p]}" -v sep="$([ $p = buildkit ] && echo ' ' || echo ', ')" 'BEGIN {
              printf "%s", sep; if (p <= 0) printf "n/a"; else printf "%.2f", (s < 0 ? 0 : s) / p }'
          else printf ' –'; fi
          [ $p = buildah ] && printf ' |'
        done
      done
      echo
      unset ov
    done
  done
  echo
  echo "Peak RSS in the big scenario (\`/usr/bin/time -f %M\` of the build command; median KB):"
  for input in $inputs; do
    for b in $builders; do
      [ "$b" = bare ] && continue
      read -r m lo hi _ <<<"$(stat_of "$input" big "$b" 6)"
      [ "$m" = - ] && continue
      extra=
      [ "$b" = buildkit ] && extra=" (the docker client only; dockerd's own peak over the whole bench: ${dockerd_hwm:-?} KB)"
      case $b in strata-*) extra=" (target < 100 MB: $([ "$m" -lt 102400 ] && echo met || echo missed))" ;; esac
      echo "- $input, $b: $((m / 1024)) MB ($((lo / 1024))–$((hi / 1024)))$extra"
    done
  done
  if [ -s "$notes" ]; then echo; echo "Failures:"; cat "$notes"; fi
  echo "<!-- peers.sh:end -->"
} >"$section"
echo
cat "$section"
cp "$results" "${PEERS_TSV:-/var/tmp/strata-peers-last.tsv}"
if [ "$results_md" != - ]; then
  if grep -q '^<!-- peers.sh:begin' "$results_md"; then
    awk -v f="$section" '/^<!-- peers.sh:begin/ {while ((getline l < f) > 0) print l; skip = 1; next}
      /^<!-- peers.sh:end/ {skip = 0; next} !skip' "$results_md" >"$work/results.md"
    cat "$work/results.md" >"$results_md"
  else
    { echo; cat "$section"; } >>"$results_md"
  fi
fi
