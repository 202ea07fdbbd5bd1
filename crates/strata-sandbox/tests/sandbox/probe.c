/* Attacks and probes run inside a container by the security tests (compiled with gcc -static).
 *
 *   probe syscalls         one line per syscall: "name=ok" or "name=ERRNONAME"
 *   probe handle FILE      the "shocker" attack: open_by_handle_at anchored on FILE (a bind
 *                          mount from the host) with a handle of inode 2, the root directory
 *                          of an ext4/xfs file system; prints "handle=ok <entries>" or the errno
 *   probe ptrace PID       PTRACE_ATTACH to PID; "ptrace=ok" or the errno
 *   probe tiocsti          TIOCSTI of "#" on stdout, pushing it into that terminal's input
 *                          (the caller's shell would read it); "tiocsti=ok" or the errno
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static void report(const char *name, long rc) {
    if (rc < 0)
        printf("%s=%s\n", name, strerrorname_np(errno));
    else
        printf("%s=ok\n", name);
}

static int syscalls(void) {
    report("clone3", syscall(SYS_clone3, NULL, 0));
    report("unshare", unshare(CLONE_NEWNS));
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("mount", mount("none", "/tmp", "tmpfs", 0, NULL));
    report("umount2", umount2("/proc", MNT_DETACH));
    report("pivot_root", syscall(SYS_pivot_root, "/", "/"));
    report("personality_addr_no_randomize", personality(ADDR_NO_RANDOMIZE));
    report("socket_vsock", socket(AF_VSOCK, SOCK_STREAM, 0));
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    report("add_key", syscall(SYS_add_key, "user", "x", "y", 1, -3));
    report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    report("setns", syscall(SYS_setns, 0, 0));
    report("iopl", syscall(SYS_iopl, 3));
    /* Control: allowed calls still work. */
    report("getpid", getpid());
    report("socket_inet", socket(AF_INET, SOCK_DGRAM, 0));
    report("personality_query", personality(0xffffffff));
    return 0;
}

struct shocker_handle {
    unsigned int handle_bytes;
    int handle_type;
    unsigned char f_handle[8];
};

static int handle(const char *anchor) {
    int fd = open(anchor, O_RDONLY);
    if (fd < 0) {
        printf("anchor=%s\n", strerrorname_np(errno));
        return 1;
    }
    /* FILEID_INO32_GEN: inode 2, generation 0 (the root of an ext4 file system). */
    struct shocker_handle h = {.handle_bytes = 8, .handle_type = 1};
    unsigned int ino = 2;
    memcpy(h.f_handle, &ino, sizeof ino);
    int dir = syscall(SYS_open_by_handle_at, fd, &h, O_RDONLY | O_DIRECTORY);
    if (dir < 0) {
        printf("handle=%s\n", strerrorname_np(errno));
        return 0;
    }
    printf("handle=ok");
    DIR *d = fdopendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        printf(" %s", e->d_name);
    printf("\n");
    return 0;
}

static int trace(const char *pid) {
    report("ptrace", ptrace(PTRACE_ATTACH, atoi(pid), NULL, NULL));
    return 0;
}

static int tiocsti(void) {
    char c = '#';
    report("tiocsti", ioctl(1, TIOCSTI, &c));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2 && strcmp(argv[1], "syscalls") == 0)
        return syscalls();
    if (argc == 3 && strcmp(argv[1], "handle") == 0)
        return handle(argv[2]);
    if (argc == 3 && strcmp(argv[1], "ptrace") == 0)
        return trace(argv[2]);
    if (argc == 2 && strcmp(argv[1], "tiocsti") == 0)
        return tiocsti();
    fprintf(stderr, "usage: probe syscalls | handle FILE | ptrace PID | tiocsti\n");
    return 2;
}
