//! Descriptors and files that are rexec's alone: dup and close, stat, tty checks, pipe
//! size, the list of open descriptors, `/proc/self/fd` reopening and linking, and the
//! open without symlinks (openat2, with a fallback). Pipes, eventfds, descriptor flags,
//! fstat, seek, flock, umask and plain opens come from `qtfs-sys` (see `sys`).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use qtfs_sys::{fd_path, nofile_limit, open, openat2};

use super::{check, owned};

/// True if `fd` is open.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any integer is harmless.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// `fcntl(F_DUPFD_CLOEXEC, min)`.
pub fn dup_cloexec(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain system call; the result is a new descriptor.
    Ok(owned(check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })?))
}

/// `dup2(src, dst)` (the new descriptor is not close-on-exec).
pub fn dup2(src: RawFd, dst: RawFd) -> io::Result<()> {
    // SAFETY: plain system call; `dst` is replaced on purpose by the caller.
    check(unsafe { libc::dup2(src, dst) }).map(|_| ())
}

/// Closes a descriptor the caller does not own through an `OwnedFd` (inherited numbers).
pub fn close_raw(fd: RawFd) {
    // SAFETY: the caller owns this number and never uses it again.
    unsafe { libc::close(fd) };
}

/// `stat(2)` (follows symbolic links).
pub fn stat(path: &CStr) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated; st is a valid out pointer.
    check(unsafe { libc::stat(path.as_ptr(), &mut st) })?;
    Ok(st)
}

/// `isatty`.
pub fn isatty(fd: RawFd) -> bool {
    // SAFETY: plain library call.
    unsafe { libc::isatty(fd) == 1 }
}

/// `F_SETPIPE_SZ` (best effort: a larger pipe means fewer wake-ups when streaming).
pub fn set_pipe_size(fd: RawFd, size: i32) {
    // SAFETY: plain system call; failure (EPERM above the limit) is harmless.
    unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size) };
}

/// Every open descriptor number of this process, from `/proc/self/fd` (or by probing
/// when /proc is missing), without counting the directory descriptor used to list them.
pub fn open_fds() -> Vec<RawFd> {
    let mut out = Vec::new();
    // SAFETY: the path is NUL-terminated; opendir returns null on failure.
    let dir = unsafe { libc::opendir(c"/proc/self/fd".as_ptr()) };
    if dir.is_null() {
        let (soft, _) = nofile_limit();
        return (0..soft.min(65536) as RawFd).filter(|&fd| fd_is_open(fd)).collect();
    }
    // SAFETY: dir is a valid DIR*.
    let own = unsafe { libc::dirfd(dir) };
    loop {
        // SAFETY: dir is a valid DIR*; the entry stays valid until the next readdir.
        let ent = unsafe { libc::readdir(dir) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is a NUL-terminated array inside the entry.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if let Some(fd) = name.to_str().ok().and_then(|s| s.parse::<RawFd>().ok())
            && fd != own
        {
            out.push(fd);
        }
    }
    // SAFETY: dir is a valid DIR* not used afterwards.
    unsafe { libc::closedir(dir) };
    out.sort_unstable();
    out
}

/// Reopens `/proc/self/fd/N` as a new open file description (own O_NONBLOCK flag) with
/// the given access mode; works for pipes, FIFOs and character devices.
pub fn reopen_fd(fd: RawFd, flags: i32) -> io::Result<OwnedFd> {
    let p = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    // SAFETY: p is NUL-terminated.
    Ok(owned(check(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY) })?))
}

/// `openat2(path, flags | O_CLOEXEC)` with `RESOLVE_NO_SYMLINKS`: ELOOP if any component
/// of `path` is a symbolic link. For paths resolved earlier: what was checked then is
/// what is opened now, or nothing. Without openat2 (Linux < 5.6, or a seccomp filter
/// that refuses it): an `O_NOFOLLOW` open whose `/proc/self/fd` name must be `path`.
pub fn open_no_symlinks(path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    match openat2(libc::AT_FDCWD, path, flags, 0, libc::RESOLVE_NO_SYMLINKS) {
        Ok(fd) => Ok(fd),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {
            use std::os::unix::ffi::OsStrExt;
            let fd = open(path, flags | libc::O_NOFOLLOW, 0)?;
            if fd_path(fd.as_raw_fd())?.as_os_str().as_bytes() != path.to_bytes() {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            Ok(fd)
        }
        Err(e) => Err(e),
    }
}

/// `linkat(/proc/self/fd/N → dir/name)`: gives an O_TMPFILE file its name atomically.
pub fn link_fd(fd: RawFd, target: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let src = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    let dst = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: both paths are NUL-terminated.
    check(unsafe { libc::linkat(libc::AT_FDCWD, src.as_ptr(), libc::AT_FDCWD, dst.as_ptr(), libc::AT_SYMLINK_FOLLOW) })
        .map(|_| ())
}
