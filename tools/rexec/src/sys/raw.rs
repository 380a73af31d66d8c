//! Async-signal-safe calls for the child between fork and execve: no allocation, no
//! locks, errors as raw errno values.

/// The calling thread's errno.
pub fn errno() -> i32 {
    // SAFETY: __errno_location always returns the thread's errno slot.
    unsafe { *libc::__errno_location() }
}
/// `setpgid(0, 0)`.
pub fn own_process_group() {
    // SAFETY: plain system call.
    unsafe { libc::setpgid(0, 0) };
}
/// Every signal back to SIG_DFL and an empty mask, whatever the server inherited
/// (an ignored signal survives execve: under `nohup` a forwarded SIGHUP did nothing).
pub fn reset_signals() {
    // The kernel's struct sigaction (handler, flags, restorer, mask) all zero is
    // SIG_DFL with no flags and an empty mask on every architecture. The raw call also
    // reaches 32 and 33, which glibc's sigaction refuses (they may come in ignored).
    let sa = [0u64; 4];
    // SAFETY: rt_sigaction reads a valid kernel sigaction and writes nothing (null
    // old action); sigset_t is plain data; both calls are async-signal-safe; the
    // numbers the kernel refuses (KILL, STOP) fail harmlessly.
    unsafe {
        for sig in 1..=64 {
            libc::syscall(libc::SYS_rt_sigaction, sig, sa.as_ptr(), std::ptr::null_mut::<u64>(), 8usize);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
/// Takes the identity `uid`/`gid`/`groups` for good (real, effective, saved and file
/// system ids; the kernel drops every capability when a root process's uids all
/// become non-zero). Raw system calls: glibc's wrappers are not async-signal-safe.
/// Returns 0 or an errno.
pub fn become_user(uid: u32, gid: u32, groups: &[u32]) -> i32 {
    // SAFETY: plain per-thread system calls (the child has one thread); groups is
    // valid for its length.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0
            || libc::syscall(libc::SYS_setresgid, gid, gid, gid) < 0
            || libc::syscall(libc::SYS_setresuid, uid, uid, uid) < 0
        {
            return errno();
        }
    }
    0
}
/// `fcntl(F_DUPFD_CLOEXEC, min)` or -1.
pub fn dup_above(fd: i32, min: i32) -> i32 {
    // SAFETY: plain system call.
    unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) }
}
/// `dup2` (clears close-on-exec on the target) or -1.
pub fn dup2(src: i32, dst: i32) -> i32 {
    // SAFETY: plain system call.
    unsafe { libc::dup2(src, dst) }
}
pub fn close(fd: i32) {
    // SAFETY: plain system call.
    unsafe { libc::close(fd) };
}
/// Closes every descriptor from `from` on (close_range, Linux ≥ 5.9; else one by one
/// up to `limit`).
pub fn close_from(from: i32, limit: i32) {
    // SAFETY: plain system call.
    let r = unsafe { libc::syscall(libc::SYS_close_range, from as libc::c_uint, !0u32, 0 as libc::c_uint) };
    if r < 0 {
        for fd in from..limit {
            close(fd);
        }
    }
}
/// Sets FD_CLOEXEC.
pub fn set_cloexec(fd: i32) {
    // SAFETY: plain system call.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}
pub fn fchdir(fd: i32) -> i32 {
    // SAFETY: plain system call.
    unsafe { libc::fchdir(fd) }
}
/// Reads one byte (blocking); `Some(byte)`, or `None` on EOF or error.
pub fn read_byte(fd: i32) -> Option<u8> {
    let mut b = 0u8;
    loop {
        // SAFETY: reads one byte into b.
        let r = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
        if r == 1 {
            return Some(b);
        }
        if r < 0 && errno() == libc::EINTR {
            continue;
        }
        return None;
    }
}
pub fn write_all(fd: i32, b: &[u8]) {
    // SAFETY: b is valid for reads; a short write of a few bytes to a pipe does not happen.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}
pub fn set_nofile(soft: u64, hard: u64) {
    let r = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: r is a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
}
/// `execveat(dirfd, path, argv, envp, flags)` (raw system call: glibc < 2.34 has no
/// wrapper); returns only on failure.
///
/// # Safety
/// `path` must be a NUL-terminated string, `argv` and `envp` NULL-terminated arrays of
/// NUL-terminated strings, all alive for the call; `dirfd` a descriptor or AT_FDCWD.
pub unsafe fn execveat(
    dirfd: i32,
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    flags: i32,
) {
    // SAFETY: guaranteed by the caller.
    unsafe { libc::syscall(libc::SYS_execveat, dirfd, path, argv, envp, flags) };
}
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and skips atexit handlers (which belong to the parent).
    unsafe { libc::_exit(code) }
}
