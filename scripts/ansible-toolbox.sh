#!/usr/bin/env bash
# Builds strata's ansible toolbox: a Python 3.11 and ansible-core 2.14 (with python3-apt and the
# collections holding the rest of werf's modules) from Debian bookworm's packages, relocated to
# run from /.strata/ansible, where strata mounts it read-only in the containers of ansible
# stages. Base images need no Python.
#
#   scripts/ansible-toolbox.sh [DIR]   (default /usr/local/lib/strata/ansible; strata looks
#                                       there, or in $STRATA_ANSIBLE_TOOLBOX)
#
# Idempotent: a tree built from the same package list and this script's version is kept.
# Needs apt-get (download only: nothing is installed on the host), dpkg-deb and patchelf.
#
# How the tree runs anywhere without LD_LIBRARY_PATH or PYTHONPATH: the python binary's ELF
# interpreter is the tree's own ld.so at its mount path and its DT_RPATH (which also covers the
# extension modules it loads) is $ORIGIN-relative; Python finds its prefix from its own path.
# The wrappers in bin/ set LOCPATH (ansible wants a UTF-8 locale; the tree has C.utf8) and
# OPENSSL_MODULES for the controller only and remove them before any task runs; ansible.cfg
# and the inventory (local connection, the tree's python) are in the tree too. A patched
# `run_command` of ansible's module_utils and local connection copy command output to
# /.strata/tmp/live, a FIFO strata's callback plugin copies to its own stdout: `command`,
# `shell`, `raw` and `script` output is streamed. The default become method switches user with
# the toolbox's python (no sudo needed in the image).
set -euo pipefail

VERSION=1
MOUNT=/.strata/ansible
DEST=${1:-${STRATA_ANSIBLE_TOOLBOX:-/usr/local/lib/strata/ansible}}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PLUGINS=$HERE/ansible

# Pinned by name: bookworm's python3.11 and ansible-core 2.14 and what they load, and the
# collections of `ansible` that hold the modules of werf's list ansible-core lacks (apk,
# ini_file, timezone, the openssl_* modules, acl, ...). The exact versions fetched are written
# to $DEST/packages.
PACKAGES=(
  libc6 libc-bin libgcc-s1 libstdc++6 zlib1g libexpat1 libssl3 libbz2-1.0 libcrypt1 libffi8
  liblzma5 libsqlite3-0 libuuid1 libyaml-0-2
  python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
  ansible-core ansible python3-cryptography python3-cffi-backend python3-yaml python3-jinja2
  python3-markupsafe python3-packaging python3-resolvelib
  python3-apt python-apt-common libapt-pkg6.0 libgcrypt20 libgpg-error0 liblz4-1 libsystemd0
  libudev1 libxxhash0 libzstd1 libcap2
)
stamp="strata-ansible-toolbox v$VERSION $(sha256sum "$0" "$PLUGINS"/* | sha256sum | cut -c1-16): ${PACKAGES[*]}"
if [[ -f $DEST/STAMP && $(cat "$DEST/STAMP") == "$stamp" ]]; then
  exit 0
fi
command -v patchelf >/dev/null || { echo "patchelf is missing: run scripts/install-deps.sh" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-ansible.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/debs" "$work/tree"
# apt-get download runs as _apt where it can; a private dir it may write keeps it quiet.
chmod 0777 "$work/debs"
download() { (cd "$work/debs" && apt-get download -qq "${PACKAGES[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true) }
download
if (($(ls "$work/debs" | wc -l) < ${#PACKAGES[@]})); then
  apt-get update -qq
  download
fi
(($(ls "$work/debs" | wc -l) == ${#PACKAGES[@]})) || { echo "could not download: ${PACKAGES[*]}" >&2; exit 1; }
tree=$work/tree
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$tree"
  dpkg-deb -f "$deb" Package Version | paste -sd' ' >>"$work/packages"
done

# What no task needs: docs, man pages, translations, the test suite, ansible-test, libc's
# programs and configuration, Debian's apport hook.
rm -rf "$tree"/usr/share/{doc,man,locale,lintian,bug,info} "$tree"/sbin "$tree"/var "$tree"/etc \
  "$tree"/usr/lib/python3.11/{test,idlelib,tkinter,turtledemo,ensurepip,lib2to3,pydoc_data} \
  "$tree"/usr/lib/python3/dist-packages/ansible_test "$tree"/usr/lib/python3.11/sitecustomize.py \
  "$tree"/usr/lib/x86_64-linux-gnu/gconv "$tree"/usr/lib/x86_64-linux-gnu/engines-3
find "$tree/usr/bin" -mindepth 1 ! -name python3.11 -delete
find "$tree/usr/lib/locale" -mindepth 1 -maxdepth 1 ! -name C.utf8 -exec rm -rf {} +
# Of `ansible`'s collections, those where werf's modules beyond ansible-core are (ansible-core
# routes their short names there): community.general, community.crypto, ansible.posix; their
# plugins and metadata only.
collections=$tree/usr/lib/python3/dist-packages/ansible_collections
find "$collections" -mindepth 2 -maxdepth 2 ! -path '*/community/general' \
  ! -path '*/community/crypto' ! -path '*/ansible/posix' -exec rm -rf {} +
find "$collections" -mindepth 1 -maxdepth 1 \( -type f -o -type d -empty \) -delete
find "$collections" -mindepth 3 -maxdepth 3 ! -name plugins ! -name meta ! -name MANIFEST.json \
  -exec rm -rf {} +
# Absolute links point at the host once mounted elsewhere: make them relative.
while IFS= read -r link; do
  target=$(readlink "$link")
  ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$tree$target")" "$link"
done < <(find "$tree" -type l -lname '/*')

ld=$MOUNT/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
patchelf --set-interpreter "$ld" --force-rpath \
  --set-rpath '$ORIGIN/../../lib/x86_64-linux-gnu:$ORIGIN/../lib/x86_64-linux-gnu' \
  "$tree/usr/bin/python3.11"

python_run() { "$tree/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$tree/usr/bin/python3.11" "$@"; }
# patch_once FILE WHAT OLD NEW: replaces OLD, which must be in FILE exactly once, by NEW.
patch_once() {
  python_run -c 'import sys
path, what, old, new = sys.argv[1:]
text = open(path).read()
if text.count(old) != 1:
    sys.exit("ansible-core changed: the %s patch does not apply" % what)
open(path, "w").write(text.replace(old, new))' "$@"
}
ansible_dir=$tree/usr/lib/python3/dist-packages/ansible
# Live output of `command`/`shell`: each chunk run_command reads is also written to
# /.strata/tmp/live when that exists (the FIFO the callback plugin makes).
chunk='                    b_chunk = key.fileobj.read()
'
patch_once "$ansible_dir/module_utils/basic.py" "live output" "$chunk" "$chunk\
                    if b_chunk:
                        _strata_live(b_chunk)
"
echo 'from ansible.module_utils.strata_live import live as _strata_live' \
  >>"$ansible_dir/module_utils/basic.py"
cp "$PLUGINS/live.py" "$ansible_dir/module_utils/strata_live.py"
# Live output of `raw` and `script`: the local connection copies what it reads while one of
# them runs its command (only then: module payloads answer JSON).
patch_once "$ansible_dir/plugins/connection/local.py" "live exec" \
  '        stdout, stderr = p.communicate(in_data)
' '        stdout, stderr = _strata_communicate(self, p, in_data)
'
echo 'from ansible.module_utils.strata_live import communicate as _strata_communicate' \
  >>"$ansible_dir/plugins/connection/local.py"
raw="        result.update(self._low_level_execute_command(self._task.args.get('_raw_params'), executable=executable))
"
script="            result.update(self._low_level_execute_command(cmd=script_cmd, in_data=exec_data, sudoable=True, chdir=chdir))
"
for action in raw script; do
  call=${!action}
  indent=${call%%result*}
  patch_once "$ansible_dir/plugins/action/$action.py" "live $action" "$call" \
    "${indent}with _strata_streamed(self._connection):
    $call"
  echo 'from ansible.module_utils.strata_live import streamed as _strata_streamed' \
    >>"$ansible_dir/plugins/action/$action.py"
done
# A module unpacks itself into the tmpfs, not into the image's /tmp (which would otherwise
# change in every layer).
payload="tempfile.mkdtemp(prefix='ansible_%(ansible_module)s_payload_'"
patch_once "$ansible_dir/executor/module_common.py" "payload dir" "$payload)" \
  "$payload, dir='/.strata/tmp')"

mkdir -p "$tree/bin" "$tree/plugins/callback" "$tree/plugins/become" "$tree/libexec"
cp "$PLUGINS"/strata.py "$tree/plugins/callback/"
# become without sudo in the image: the default become method switches user with the
# toolbox's python.
cp "$PLUGINS"/become.py "$tree/plugins/become/strata.py"
cp "$PLUGINS"/become_user.py "$tree/libexec/become-user"
# The local connection and the toolbox's python; every file ansible writes goes to
# /.strata/tmp, the tmpfs strata mounts beside the toolbox (never into the image).
cat >"$tree/ansible.cfg" <<EOF
[defaults]
inventory = $MOUNT/inventory
transport = local
interpreter_python = $MOUNT/usr/bin/python3.11
stdout_callback = strata
callback_plugins = $MOUNT/plugins/callback
become_plugins = $MOUNT/plugins/become
retry_files_enabled = False
module_compression = ZIP_STORED
home = /.strata/tmp/home
local_tmp = /.strata/tmp/local
remote_tmp = /.strata/tmp/remote
nocows = 1
# Where files for a task run as another user go (readable by it: ansible chowns them).
system_tmpdirs = /.strata/tmp

[privilege_escalation]
become_method = strata
EOF
echo "localhost ansible_connection=local ansible_python_interpreter=$MOUNT/usr/bin/python3.11" \
  >"$tree/inventory"
for tool in ansible ansible-playbook ansible-config ansible-doc ansible-inventory; do
  module=${tool#ansible-}
  [[ $tool == ansible ]] && module=adhoc
  cat >"$tree/bin/$tool" <<EOF
#!$MOUNT/usr/bin/python3.11 -I
# strata's ansible toolbox: $tool with the toolbox's locale and OpenSSL modules, which are
# removed from the environment again before any task runs.
import os, sys, tempfile
# The controller's own temporary files go to the tmpfs, not the image's /tmp.
tempfile.tempdir = '/.strata/tmp'
saved = {k: os.environ.get(k) for k in ('LC_ALL',)}
os.environ['LOCPATH'] = '$MOUNT/usr/lib/locale'
os.environ['OPENSSL_MODULES'] = '$MOUNT/usr/lib/x86_64-linux-gnu/ossl-modules'
if 'utf' not in os.environ.get('LC_ALL', os.environ.get('LANG', '')).lower():
    os.environ['LC_ALL'] = 'C.UTF-8'
os.environ.setdefault('ANSIBLE_CONFIG', '$MOUNT/ansible.cfg')
# A base without /bin/sh (distroless): the local connection starts modules, and shell tasks
# run, through the toolbox's bash instead of failing.
if not os.path.exists('/bin/sh'):
    os.environ['ANSIBLE_EXECUTABLE'] = '/.strata/toolbox/bin/bash'
import ansible.cli  # sets the locale, reads the config
from ansible.cli.$module import main
for k in ('LOCPATH', 'OPENSSL_MODULES', 'ANSIBLE_CONFIG', 'ANSIBLE_EXECUTABLE'):
    os.environ.pop(k, None)
for k, v in saved.items():
    if v is None:
        os.environ.pop(k, None)
    else:
        os.environ[k] = v
sys.argv[0] = '$tool'
sys.exit(main())
EOF
  chmod 0755 "$tree/bin/$tool"
done

# Byte-compiled once (unchecked hashes: the tree is read-only), with the paths of the mount.
python_run -m compileall -q -j0 --invalidation-mode unchecked-hash -s "$tree" -p "$MOUNT" \
  "$tree/usr/lib/python3.11" "$tree/usr/lib/python3" "$tree/plugins" >/dev/null

sort "$work/packages" >"$tree/packages"
echo "$stamp" >"$tree/STAMP"
chmod -R go-w,a+rX "$tree"
mkdir -p "$(dirname "$DEST")"
rm -rf "$DEST.old"
[[ -e $DEST ]] && mv "$DEST" "$DEST.old"
mv "$tree" "$DEST"
rm -rf "$DEST.old"
echo "ansible toolbox in $DEST ($(du -sh "$DEST" | cut -f1))"
