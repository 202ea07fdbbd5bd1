# strata: become-user USER PROGRAM ARG... runs PROGRAM as USER (a name or a number), with the
# user's primary group and the groups /etc/group lists it in, HOME, USER and LOGNAME set from
# /etc/passwd and the rest of the environment kept (as sudo -E -H). Shipped in the ansible
# toolbox as libexec/become-user for its become plugin; reads the image's files itself (no
# NSS modules of the image are loaded into the toolbox's libc).
import os
import sys


def entries(path):
    # A missing file has no entries (busybox images often have no /etc/group).
    try:
        with open(path, encoding='utf-8', errors='surrogateescape') as f:
            return [line.rstrip('\n').split(':') for line in f if line.strip() and line[0] != '#']
    except OSError:
        return []


def main():
    if len(sys.argv) < 3:
        sys.exit('usage: become-user USER PROGRAM [ARG]...')
    user, argv = sys.argv[1], sys.argv[2:]
    found = [e for e in entries('/etc/passwd') if len(e) >= 7 and user in (e[0], e[2])]
    if not found:
        sys.exit('become-user: no user %s in the image\'s /etc/passwd' % user)
    name, _, uid, gid, _, home, _ = found[0][:7]
    uid, gid = int(uid), int(gid)
    groups = [gid] + [int(e[2]) for e in entries('/etc/group')
                      if len(e) >= 4 and name in e[3].split(',') and e[2].isdigit()]
    os.setgroups(sorted(set(groups)))
    os.setgid(gid)
    os.setuid(uid)
    os.environ.update(HOME=home, USER=name, LOGNAME=name)
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        sys.exit('become-user: cannot run %s: %s' % (argv[0], e.strerror))


main()
