//! Sockets and I/O that are rexec's alone: the receive timeout, writev, poll, and unix
//! stream sockets listening at or connected to a path (the direct connect by raw system
//! call). Socket options, read/write, non-blocking send/recv, shutdown and accept come
//! from `qtfs-sys` (see `sys`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use qtfs_sys::{bind_unix, connect_unix, listen, sockaddr_un, unix_socket};

use super::{check, check_l, check_s};

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

/// A path as a unix socket name (never an abstract name): ENAMETOOLONG for a NUL inside.
fn sun_path(path: &Path) -> io::Result<&[u8]> {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    if b.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    Ok(b)
}

/// A listening unix stream socket bound at `path` (close-on-exec, blocking).
pub fn unix_listen(path: &Path, backlog: i32) -> io::Result<OwnedFd> {
    let fd = unix_socket(libc::SOCK_STREAM)?;
    bind_unix(fd.as_raw_fd(), sun_path(path)?)?;
    listen(fd.as_raw_fd(), backlog)?;
    Ok(fd)
}

/// A non-blocking unix stream socket connected to `path` (EAGAIN when the backlog is full).
pub fn unix_connect_nb(path: &Path) -> io::Result<OwnedFd> {
    let fd = unix_socket(libc::SOCK_STREAM | libc::SOCK_NONBLOCK)?;
    connect_unix(fd.as_raw_fd(), sun_path(path)?)?;
    Ok(fd)
}

/// A blocking unix stream socket connected to `path` with the raw system call. rexec
/// runs under libvirt with `LD_PRELOAD=libudsproxy.so`, whose `connect()` would proxy a
/// missing local socket behind our back; the route (direct or through udsproxyd) must
/// be rexec's own decision, since it decides which files the HOST can reopen. (libc's
/// `syscall`, not rustix: whether rustix calls the kernel directly depends on its
/// backend, and this must not.)
pub fn unix_connect_direct(path: &Path) -> io::Result<OwnedFd> {
    let (a, len) = sockaddr_un(sun_path(path)?)?;
    let fd = unix_socket(libc::SOCK_STREAM)?;
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
