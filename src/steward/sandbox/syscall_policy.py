"""Which system calls a sandboxed process may make: the one source of truth for every backend.

An allow-list: a syscall not named here answers ENOSYS ("not implemented"), so programs and
libc fall back to older calls as they would on an older kernel, and a new kernel's syscalls stay
closed until reviewed. Known-dangerous calls answer EPERM explicitly (what the earlier
deny-list did, so programs that probe them see the same answer), `clone3` answers ENOSYS so
glibc falls back to `clone`, whose flags can be filtered, and a few calls are allowed only for
some argument values. `seccomp.py` compiles this to classic BPF for bwrap; `oci_seccomp.py`
writes it as an OCI `linux.seccomp` section for gVisor.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Literal

from steward.errors import SandboxUnavailable
from steward.sandbox.syscall_table import X86_64

ARCHITECTURES = ("x86_64",)


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# the machines whose syscall table this policy is written for

# What ordinary programs use: Python and its C extensions (wheels), coreutils, sh/bash, git,
# compilers. Roughly Docker's default profile without what needs capabilities we drop anyway.
ALLOWED = _names("""
read write open close stat fstat lstat poll lseek mmap mprotect munmap brk rt_sigaction
rt_sigprocmask rt_sigreturn pread64 pwrite64 readv writev access pipe select sched_yield mremap
msync mincore madvise shmget shmat shmctl shmdt dup dup2 pause nanosleep getitimer alarm
setitimer getpid sendfile connect accept accept4 sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg
shutdown bind listen getsockname getpeername setsockopt getsockopt fork vfork execve execveat
exit exit_group wait4 waitid kill tkill tgkill uname semget semop semctl semtimedop msgget
msgsnd msgrcv msgctl fcntl flock fsync fdatasync syncfs sync sync_file_range truncate ftruncate
fallocate fadvise64 readahead getdents getdents64 getcwd chdir fchdir rename renameat renameat2
mkdir mkdirat rmdir creat link linkat unlink unlinkat symlink symlinkat readlink readlinkat
chmod fchmod fchmodat fchmodat2 chown fchown lchown fchownat umask mknod mknodat utime utimes
futimesat utimensat statx newfstatat statfs fstatfs faccessat faccessat2 openat openat2
gettimeofday time clock_gettime clock_getres clock_nanosleep getrlimit setrlimit prlimit64
getrusage sysinfo times getuid getgid geteuid getegid getresuid getresgid getgroups setuid
setgid setreuid setregid setresuid setresgid setgroups setfsuid setfsgid capget capset
setpgid getpgid getppid getpgrp setsid getsid gettid rt_sigpending rt_sigtimedwait
rt_sigqueueinfo rt_tgsigqueueinfo rt_sigsuspend sigaltstack getpriority setpriority
sched_setparam sched_getparam sched_setscheduler sched_getscheduler sched_get_priority_max
sched_get_priority_min sched_rr_get_interval sched_setaffinity sched_getaffinity sched_setattr
sched_getattr mlock mlock2 munlock mlockall munlockall prctl arch_prctl setxattr lsetxattr
fsetxattr getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr
fremovexattr setxattrat getxattrat listxattrat removexattrat file_getattr file_setattr futex
futex_waitv futex_wake futex_wait futex_requeue set_robust_list get_robust_list set_tid_address
restart_syscall rseq membarrier io_setup io_destroy io_getevents io_pgetevents io_submit
io_cancel epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2 pselect6
ppoll timer_create timer_settime timer_gettime timer_getoverrun timer_delete timerfd_create
timerfd_settime timerfd_gettime signalfd signalfd4 eventfd eventfd2 pipe2 dup3 inotify_init
inotify_init1 inotify_add_watch inotify_rm_watch mq_open mq_unlink mq_timedsend mq_timedreceive
mq_notify mq_getsetattr ioprio_get ioprio_set splice tee vmsplice copy_file_range
preadv pwritev preadv2 pwritev2 getcpu getrandom memfd_create get_mempolicy pkey_mprotect
pkey_alloc pkey_free close_range pidfd_open pidfd_send_signal seccomp landlock_create_ruleset
landlock_add_rule landlock_restrict_self cachestat map_shadow_stack mseal
""")

# Known-dangerous: namespaces and mounts, other processes' memory, kernel code, rarely needed
# kernel attack surface (io_uring, bpf, userfaultfd, perf, keyrings), the host's clock.
DENIED_EPERM = _names("""
ptrace process_vm_readv process_vm_writev pidfd_getfd kcmp mount umount2 pivot_root chroot
move_mount open_tree open_tree_attr fsopen fsconfig fsmount fspick mount_setattr statmount
listmount unshare setns bpf io_uring_setup io_uring_enter io_uring_register keyctl add_key
request_key userfaultfd init_module finit_module delete_module kexec_load kexec_file_load
perf_event_open open_by_handle_at name_to_handle_at fanotify_init reboot swapon swapoff syslog
acct quotactl quotactl_fd lookup_dcookie iopl ioperm settimeofday clock_settime clock_adjtime
adjtimex vhangup uselib
""")

DENIED_ERRNO: dict[str, int] = {name: errno.EPERM for name in DENIED_EPERM} | {
    "clone3": errno.ENOSYS,  # its flags sit in memory a filter cannot read: glibc falls back
}
DEFAULT_ERRNO = errno.ENOSYS

# clone(2) flags that create namespaces; 0x80 (CLONE_NEWTIME) is part of clone's exit-signal
# byte, so time namespaces are covered by denying unshare instead.
NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
AF_UNIX = 1
TIOCSTI = 0x5412  # push characters into a terminal's input
TIOCLINUX = 0x541C
# personality(2): query, PER_LINUX, UNAME26, PER_LINUX32 and combinations (Docker's list);
# others (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) weaken exploit mitigations.
PERSONALITIES = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)


@dataclass(frozen=True)
class ArgRule:
    """A syscall allowed only for some values of one argument (its low 32 bits: every
    argument checked here is an int or a flag word whose high half the kernel ignores).

    `allow_if_in`: allowed when the argument is one of `values`;
    `allow_if_clear`: allowed when none of `mask`'s bits are set;
    `deny_if_in`: allowed unless the argument is one of `values`.
    Refusals answer `errno_code`."""

    names: tuple[str, ...]
    index: int
    kind: Literal["allow_if_in", "allow_if_clear", "deny_if_in"]
    errno_code: int
    values: tuple[int, ...] = ()
    mask: int = 0


ARG_RULES: tuple[ArgRule, ...] = (
    ArgRule(("clone",), 0, "allow_if_clear", errno.EPERM, mask=NAMESPACE_FLAGS),
    ArgRule(("socket", "socketpair"), 0, "allow_if_in", errno.EAFNOSUPPORT, values=(AF_UNIX,)),
    ArgRule(("ioctl",), 1, "deny_if_in", errno.EPERM, values=(TIOCSTI, TIOCLINUX)),
    ArgRule(("personality",), 0, "allow_if_in", errno.EPERM, values=PERSONALITIES),
)


def syscall_numbers(machine: str) -> dict[str, int]:
    """The syscall table the policy is compiled against; refuses machines it does not cover."""
    if machine not in ARCHITECTURES:
        raise SandboxUnavailable(
            f"no seccomp syscall policy for {machine!r} (only {', '.join(ARCHITECTURES)}): "
            "refusing to start a sandbox whose syscalls would go unfiltered"
        )
    return X86_64


def check() -> None:
    """Every name in the policy is a real syscall, and no syscall is in two places."""
    named = [*ALLOWED, *DENIED_ERRNO, *(n for rule in ARG_RULES for n in rule.names)]
    unknown = sorted(set(named) - set(X86_64))
    twice = sorted({n for n in named if named.count(n) > 1})
    if unknown or twice:
        raise ValueError(f"syscall policy: unknown {unknown}, listed twice {twice}")


check()
