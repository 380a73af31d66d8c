//! Descriptors and files: pipes, eventfds, descriptor flags, dup and close, stat, seek,
//! tty checks, pipe size, flock, umask, the list of open descriptors, `/proc/self/fd`
//! reopening, and opens (plain, and without symlinks through openat2).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::process::nofile_limit;
use super::{check, check_l, owned};

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((owned(fds[0]), owned(fds[1])))
}

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    Ok(owned(check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?))
}

/// Adds one to an eventfd (wakes its poller).
pub fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64; failure (counter overflow) is harmless.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd.
pub fn eventfd_drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64.
    unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// `fcntl(F_GETFL)`.
pub fn get_fl(fd: RawFd) -> io::Result<i32> {
    // SAFETY: plain system call on an integer descriptor.
    check(unsafe { libc::fcntl(fd, libc::F_GETFL) })
}

/// `fcntl(F_SETFL)`.
pub fn set_fl(fd: RawFd, fl: i32) -> io::Result<()> {
    // SAFETY: plain system call on an integer descriptor.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, fl) }).map(|_| ())
}

/// Sets or clears O_NONBLOCK; returns the previous flags.
pub fn set_nonblock(fd: RawFd, on: bool) -> io::Result<i32> {
    let fl = get_fl(fd)?;
    let new = if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK };
    if new != fl {
        set_fl(fd, new)?;
    }
    Ok(fl)
}

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

/// File type bits (`S_IFMT`) and the whole `stat`.
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out pointer.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// `stat(2)` (follows symbolic links).
pub fn stat(path: &CStr) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated; st is a valid out pointer.
    check(unsafe { libc::stat(path.as_ptr(), &mut st) })?;
    Ok(st)
}

/// `lseek(fd, 0, SEEK_CUR)`.
pub fn tell(fd: RawFd) -> io::Result<u64> {
    // SAFETY: plain system call.
    let r = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as u64) }
}

/// `lseek(fd, off, SEEK_SET)`.
pub fn seek(fd: RawFd, off: u64) -> io::Result<()> {
    // SAFETY: plain system call.
    let r = unsafe { libc::lseek(fd, off as libc::off_t, libc::SEEK_SET) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
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

/// `flock(2)`.
pub fn flock(fd: RawFd, op: i32) -> io::Result<()> {
    // SAFETY: plain system call.
    check(unsafe { libc::flock(fd, op) }).map(|_| ())
}

/// `umask(2)`.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: plain system call.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
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

/// Target of `/proc/self/fd/N`.
pub fn fd_path(fd: RawFd) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
}

/// Reopens `/proc/self/fd/N` as a new open file description (own O_NONBLOCK flag) with
/// the given access mode; works for pipes, FIFOs and character devices.
pub fn reopen_fd(fd: RawFd, flags: i32) -> io::Result<OwnedFd> {
    let p = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    // SAFETY: p is NUL-terminated.
    Ok(owned(check(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY) })?))
}

/// `open(2)` with O_CLOEXEC.
pub fn open(path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated.
    Ok(owned(check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })?))
}

/// `struct open_how` of openat2(2) (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(path, flags | O_CLOEXEC)` with `RESOLVE_NO_SYMLINKS`: ELOOP if any component
/// of `path` is a symbolic link. For paths resolved earlier: what was checked then is
/// what is opened now, or nothing. Without openat2 (Linux < 5.6, or a seccomp filter
/// that refuses it): an `O_NOFOLLOW` open whose `/proc/self/fd` name must be `path`.
pub fn open_no_symlinks(path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    let how = OpenHow { flags: (flags | libc::O_CLOEXEC) as u64, mode: 0, resolve: libc::RESOLVE_NO_SYMLINKS };
    // SAFETY: path is NUL-terminated; how is a valid open_how of the size passed.
    let r = unsafe {
        libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, path.as_ptr(), &how as *const OpenHow, size_of::<OpenHow>())
    };
    match check_l(r) {
        Ok(fd) => Ok(owned(fd as libc::c_int)),
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
