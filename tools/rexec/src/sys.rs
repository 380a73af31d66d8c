//! Thin safe wrappers over the system calls rexec and rexec_server make directly. Every
//! `unsafe` of the crate lives here, except the async-signal-safe child code of
//! `server::spawn`, which may only use the `raw` functions at the bottom of this module.
//! Functions return `io::Result` with the raw errno preserved.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn check_l(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn check_s(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
}

/// Wraps a descriptor the kernel just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass a fresh descriptor returned by a successful system call, which
    // nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The errno of an error (EIO when it has none).
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// An error as people read it: "No such file or directory", without "(os error 2)".
pub fn errstr(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

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

/// An integer socket option.
pub fn sockopt_int(fd: RawFd, level: i32, opt: i32) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid out pointers of the sizes passed.
    check(unsafe { libc::getsockopt(fd, level, opt, (&mut v as *mut libc::c_int).cast(), &mut len) })?;
    Ok(v)
}

/// `SO_PEERCRED`: (pid, uid, gid) of the peer of a unix socket.
pub fn peer_cred(fd: RawFd) -> io::Result<(i32, u32, u32)> {
    let mut c = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c and len are valid out pointers of the sizes passed.
    check(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut c as *mut libc::ucred).cast(), &mut len)
    })?;
    Ok((c.pid, c.uid, c.gid))
}

/// `SO_PEERGROUPS` (Linux ≥ 4.13; the libc crate does not name it).
const SO_PEERGROUPS: i32 = 59;

/// `SO_PEERGROUPS`: the supplementary groups of the peer of a unix socket, as they were
/// when it connected.
pub fn peer_groups(fd: RawFd) -> io::Result<Vec<u32>> {
    let mut v = vec![0u32; 64];
    loop {
        let mut len = (v.len() * 4) as libc::socklen_t;
        // SAFETY: v is valid for writes of len bytes.
        let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, SO_PEERGROUPS, v.as_mut_ptr().cast(), &mut len) };
        if r == 0 {
            v.truncate(len as usize / 4);
            return Ok(v);
        }
        let e = io::Error::last_os_error();
        // ERANGE: len now holds the size needed.
        if e.raw_os_error() == Some(libc::ERANGE) && (len as usize / 4) > v.len() && v.len() < 65536 {
            v.resize(len as usize / 4, 0);
            continue;
        }
        return Err(e);
    }
}

/// Effective uid and gid of this process.
pub fn euid_egid() -> (u32, u32) {
    // SAFETY: plain getters.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// Supplementary groups of the calling thread.
pub fn getgroups() -> io::Result<Vec<u32>> {
    // SAFETY: a size of 0 only asks for the count.
    let n = check(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut v = vec![0u32; n as usize + 1];
    // SAFETY: v is valid for v.len() gids.
    let n = check(unsafe { libc::getgroups(v.len() as libc::c_int, v.as_mut_ptr()) })?;
    v.truncate(n as usize);
    Ok(v)
}

/// The gid of a group given by name or number (`None`: no such group).
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(Some(n));
    }
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = vec![0 as libc::c_char; 16384];
    loop {
        // SAFETY: group is plain data filled by getgrnam_r.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut res: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid; buf is valid for buf.len() bytes.
        let r = unsafe { libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut res) };
        if r == libc::ERANGE && buf.len() < (1 << 22) {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        return Ok(if res.is_null() { None } else { Some(grp.gr_gid) });
    }
}

/// The calling thread's file system identity (fsuid, fsgid, supplementary groups) set to
/// another user's, for as long as the guard lives.
///
/// Only raw system calls are used: the kernel keeps credentials per thread, and glibc's
/// `setgroups`/`setfsuid` wrappers would change every thread of the process (rexec_server
/// runs one session per thread). While the fsuid is not 0 the kernel also clears the
/// file-system capabilities (DAC override, DAC read search, FOWNER…) from the thread's
/// effective set and gives them back when it returns to 0, so permission checks are
/// exactly the user's.
pub struct FsIdentity {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl FsIdentity {
    pub fn enter(uid: u32, gid: u32, groups: &[u32]) -> io::Result<FsIdentity> {
        let (ouid, ogid) = euid_egid();
        let saved = FsIdentity { uid: ouid, gid: ogid, groups: getgroups()? };
        // SAFETY: per-thread raw syscall; groups is valid for its length.
        check_l(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })?;
        // SAFETY: per-thread raw syscalls; they return the previous id and never fail
        // loudly, hence the check that follows.
        unsafe {
            libc::syscall(libc::SYS_setfsgid, gid);
            libc::syscall(libc::SYS_setfsuid, uid);
        }
        // SAFETY: an invalid id (-1) changes nothing and returns the current one.
        let (fu, fg) = unsafe { (libc::syscall(libc::SYS_setfsuid, -1), libc::syscall(libc::SYS_setfsgid, -1)) };
        if fu as u32 != uid || fg as u32 != gid {
            drop(saved);
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        Ok(saved)
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        // SAFETY: per-thread raw syscalls back to the saved identity (the uid first: it
        // brings the capabilities back).
        let r = unsafe {
            libc::syscall(libc::SYS_setfsuid, self.uid);
            libc::syscall(libc::SYS_setfsgid, self.gid);
            libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr())
        };
        if r < 0 {
            tracing::error!(error = %io::Error::last_os_error(), "cannot restore the thread's groups");
        }
    }
}

/// `SO_RCVTIMEO`.
pub fn set_recv_timeout(fd: RawFd, ms: u64) -> io::Result<()> {
    let tv = libc::timeval { tv_sec: (ms / 1000) as libc::time_t, tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t };
    let len = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
    // SAFETY: tv is a valid timeval of the size passed.
    check(unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), len)
    })
    .map(|_| ())
}

/// `read(2)`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    check_s(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// `write(2)`.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for reads of its length.
    check_s(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// `writev(2)` of up to two slices.
pub fn writev2(fd: RawFd, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec { iov_base: a.as_ptr() as *mut libc::c_void, iov_len: a.len() },
        libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() },
    ];
    let n = if b.is_empty() { 1 } else { 2 };
    // SAFETY: both iovecs describe live slices; the kernel only reads them.
    check_s(unsafe { libc::writev(fd, iov.as_ptr(), n) })
}

/// `recv(MSG_DONTWAIT)`: non-blocking read of a socket whose file flags we do not own.
pub fn recv_nb(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    check_s(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) })
}

/// `send(MSG_DONTWAIT | MSG_NOSIGNAL)`.
pub fn send_nb(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for reads of its length.
    check_s(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) })
}

/// `shutdown(2)`; errors (already closed) are ignored.
pub fn shutdown(fd: RawFd, how: i32) {
    // SAFETY: plain system call.
    unsafe { libc::shutdown(fd, how) };
}

/// `poll(2)`; EINTR counts as "nothing ready".
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: fds is a valid array of pollfd of the length passed.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) }
    } else {
        Ok(r as usize)
    }
}

/// `accept4(SOCK_CLOEXEC | SOCK_NONBLOCK)`.
pub fn accept(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: null address pointers are allowed by accept4.
    let r = unsafe {
        libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
    };
    Ok(owned(check(r)?))
}

fn sockaddr_un(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = path.as_os_str().as_bytes();
    if b.len() >= a.sun_path.len() || b.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in a.sun_path.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + b.len() + 1) as libc::socklen_t;
    Ok((a, len))
}

/// A listening unix stream socket bound at `path` (close-on-exec, blocking).
pub fn unix_listen(path: &Path, backlog: i32) -> io::Result<OwnedFd> {
    let (a, len) = sockaddr_un(path)?;
    // SAFETY: plain system call.
    let fd = owned(check(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?);
    // SAFETY: a is a valid sockaddr_un of length len.
    check(unsafe { libc::bind(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })?;
    // SAFETY: plain system call.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

/// A non-blocking unix stream socket connected to `path` (EAGAIN when the backlog is full).
pub fn unix_connect_nb(path: &Path) -> io::Result<OwnedFd> {
    let (a, len) = sockaddr_un(path)?;
    // SAFETY: plain system call.
    let fd = owned(check(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0)
    })?);
    // SAFETY: a is a valid sockaddr_un of length len.
    check(unsafe { libc::connect(fd.as_raw_fd(), (&a as *const libc::sockaddr_un).cast(), len) })?;
    Ok(fd)
}

/// A blocking unix stream socket connected to `path` with the raw system call. rexec
/// runs under libvirt with `LD_PRELOAD=libudsproxy.so`, whose `connect()` would proxy a
/// missing local socket behind our back; the route (direct or through udsproxyd) must
/// be rexec's own decision, since it decides which files the HOST can reopen.
pub fn unix_connect_direct(path: &Path) -> io::Result<OwnedFd> {
    let (a, len) = sockaddr_un(path)?;
    // SAFETY: plain system call.
    let fd = owned(check(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?);
    loop {
        // SAFETY: a is a valid sockaddr_un of length len; the raw syscall bypasses any
        // interposed libc connect().
        let r = unsafe {
            libc::syscall(
                libc::SYS_connect,
                fd.as_raw_fd(),
                (&a as *const libc::sockaddr_un).cast::<libc::c_void>(),
                len,
            )
        };
        match check_l(r) {
            Ok(_) => return Ok(fd),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
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

/// Blocks `signals` in the calling thread (threads created later inherit the mask).
pub fn block_signals(signals: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data initialised by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for &s in signals {
        // SAFETY: set is a valid sigset_t.
        unsafe { libc::sigaddset(&mut set, s) };
    }
    // SAFETY: set is valid; the old mask is not needed.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(set)
}

/// A non-blocking signalfd for `set` (the signals must be blocked).
pub fn signalfd(set: &libc::sigset_t) -> io::Result<OwnedFd> {
    // SAFETY: set is a valid sigset_t.
    Ok(owned(check(unsafe { libc::signalfd(-1, set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?))
}

/// Reads one pending signal number from a signalfd, if any.
pub fn signalfd_read(fd: RawFd) -> Option<i32> {
    // SAFETY: signalfd_siginfo is plain data.
    let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let n = std::mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reads at most n bytes into si.
    let r = unsafe { libc::read(fd, (&mut si as *mut libc::signalfd_siginfo).cast(), n) };
    if r as usize == n { Some(si.ssi_signo as i32) } else { None }
}

/// Gives `signals` their default disposition (a signal ignored by whoever started us,
/// `nohup` for SIGHUP, would otherwise be discarded before a signalfd could see it).
pub fn default_signals(signals: &[i32]) {
    for &s in signals {
        // SAFETY: setting a disposition to SIG_DFL is always sound.
        unsafe { libc::signal(s, libc::SIG_DFL) };
    }
}

/// `setsid(2)`.
pub fn setsid() -> io::Result<()> {
    // SAFETY: plain system call.
    check(unsafe { libc::setsid() }).map(|_| ())
}

/// Ignores SIGPIPE (writes to closed pipes and sockets then fail with EPIPE).
pub fn ignore_sigpipe() {
    // SAFETY: setting a disposition to SIG_IGN is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    let r = check_l(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    Ok(owned(r as libc::c_int))
}

/// `pidfd_send_signal(2)`: signals exactly the process of the pidfd, never a reused pid.
pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> io::Result<()> {
    // SAFETY: plain system call; a null siginfo is allowed.
    check_l(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, std::ptr::null::<libc::siginfo_t>(), 0) })
        .map(|_| ())
}

/// `killpg(2)`.
pub fn killpg(pgid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: plain system call; callers guarantee the group id cannot have been reused.
    check(unsafe { libc::killpg(pgid, sig) }).map(|_| ())
}

/// `setpgid(2)`.
pub fn setpgid(pid: i32, pgid: i32) -> io::Result<()> {
    // SAFETY: plain system call.
    check(unsafe { libc::setpgid(pid, pgid) }).map(|_| ())
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Exited(i32),
    Signaled(i32),
}

impl ExitKind {
    /// Shell convention: the code, or 128 + signal.
    pub fn status(self) -> i32 {
        match self {
            ExitKind::Exited(c) => c,
            ExitKind::Signaled(s) => 128 + s,
        }
    }
    pub fn signal(self) -> i32 {
        match self {
            ExitKind::Exited(_) => 0,
            ExitKind::Signaled(s) => s,
        }
    }
}

/// `waitid(P_PIDFD, WEXITED | WNOHANG [| WNOWAIT])`: `None` while the process runs.
/// With `keep`, the zombie stays (its pid and process group id cannot be reused).
pub fn waitid_pidfd(pidfd: RawFd, keep: bool, block: bool) -> io::Result<Option<ExitKind>> {
    // SAFETY: siginfo_t is plain data filled by the kernel.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let mut flags = libc::WEXITED;
    if keep {
        flags |= libc::WNOWAIT;
    }
    if !block {
        flags |= libc::WNOHANG;
    }
    const P_PIDFD: libc::idtype_t = 3;
    // SAFETY: si is a valid out pointer.
    check(unsafe { libc::waitid(P_PIDFD, pidfd as libc::id_t, &mut si, flags) })?;
    // SAFETY: reading the union fields waitid filled (si_pid is 0 when nothing changed).
    let (pid, code, status) = unsafe { (si.si_pid(), si.si_code, si.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(if code == libc::CLD_EXITED { ExitKind::Exited(status) } else { ExitKind::Signaled(status) }))
}

/// The soft and hard `RLIMIT_NOFILE`.
pub fn nofile_limit() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: r is a valid out pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    (r.rlim_cur, r.rlim_max)
}

/// Sets the soft `RLIMIT_NOFILE`.
pub fn set_nofile_soft(soft: u64) {
    let (_, hard) = nofile_limit();
    let r = libc::rlimit { rlim_cur: soft.min(hard), rlim_max: hard };
    // SAFETY: r is a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
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

/// `fork(2)`.
///
/// # Safety
/// In a multi-threaded process the child may only call async-signal-safe functions (the
/// `raw` module) until it execs or exits.
pub unsafe fn fork() -> io::Result<i32> {
    // SAFETY: the caller upholds the child's restrictions.
    check(unsafe { libc::fork() })
}

/// Async-signal-safe calls for the child between fork and execve: no allocation, no
/// locks, errors as raw errno values.
pub mod raw {
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
}
