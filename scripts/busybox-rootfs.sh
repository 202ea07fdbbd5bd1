#!/usr/bin/env bash
# Writes a minimal busybox root file system tarball (from Debian's busybox-static) to $1.
set -euo pipefail
out=${1:?usage: busybox-rootfs.sh OUT.tar}
busybox=$(command -v busybox)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,etc,root,tmp,var,home}
chmod 1777 "$dir/tmp"
cp "$busybox" "$dir/bin/busybox"
for applet in $("$busybox" --list); do
  [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$dir/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\napp:x:1000:\n' >"$dir/etc/group"
tar --numeric-owner -C "$dir" -cf "$out" .
