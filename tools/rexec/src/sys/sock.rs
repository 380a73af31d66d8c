//! Sockets and I/O: socket options, receive timeout, read/write/writev, non-blocking
//! send/recv, shutdown, poll, accept, and unix socket listen/connect.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::{check, check_l, check_s, owned};

/// An integer socket option.
pub fn sockopt_int(fd: RawFd, level: i32, opt: i32) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid out pointers of the sizes passed.
    check(unsafe { libc::getsockopt(fd, level, opt, (&mut v as *mut libc::c_int).cast(), &mut len) })?;
    Ok(v)
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
