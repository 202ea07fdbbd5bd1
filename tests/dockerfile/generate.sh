#!/usr/bin/env bash
# Regenerates the suite's generated inputs (committed; run from anywhere):
# - add-local/app.tar.gz: a small tarball for ADD to extract;
# - huge-run-line-*/Dockerfile: a RUN instruction on one line of about 1 MB;
# - the symlinks of the hostile-symlink-* cases, which point outside the context on purpose.
set -euo pipefail
cd "$(dirname "$0")"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/app/bin"
printf 'app readme\n' >"$tmp/app/README"
printf '#!/bin/sh\necho tool from tarball\n' >"$tmp/app/bin/tool"
chmod 755 "$tmp/app/bin/tool" "$tmp/app/bin" "$tmp/app"
chmod 644 "$tmp/app/README"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$tmp" -cf - app |
  gzip -9n >add-local/app.tar.gz

# Exec form: 15000 arguments of 64 characters (~1 MB), well within the kernel's limits on
# the size of an argument list, so the build succeeds.
mkdir -p huge-run-line-exec
{
  printf 'FROM busybox:latest\nRUN ["/bin/sh", "-c", "echo $# > /argc.txt && for a; do last=$a; done; echo $last > /last.txt", "sh"'
  pad=$(head -c 53 /dev/zero | tr '\0' x)
  for i in $(seq 1 15000); do printf ', "arg-%06d-%s"' "$i" "$pad"; done
  printf ']\n'
} >huge-run-line-exec/Dockerfile

# Shell form: one 1 MB argument to /bin/sh -c, over the kernel's 128 KiB limit for a single
# argument (MAX_ARG_STRLEN with 4 KiB pages): the RUN fails, and the error names its line.
mkdir -p huge-run-line-shell
{
  printf 'FROM busybox:latest\nRUN true '
  head -c 1048576 /dev/zero | tr '\0' 'y' | fold -w 64 | tr '\n' ' '
  printf '\n'
} >huge-run-line-shell/Dockerfile

ln -sfn /etc/passwd hostile-symlink-file/leak
ln -sfn /etc/passwd hostile-symlink-in-dir/dir/passwd
ln -sfn /etc hostile-symlink-parent-dir/etc-link
