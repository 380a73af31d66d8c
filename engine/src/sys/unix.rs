//! Unix sockets, pipes and FIFOs for the channel service (udsmux): addresses, sockets,
//! bind/listen/shutdown, liveness of a path, socket type and peer credentials, pipes,
//! descriptor flags, stat, rename/unlink, plain read/write, and FIFO readiness.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{check, check_i};

/// A `sockaddr_un` for a path or abstract name (leading NUL) and its length; ENAMETOOLONG
/// if it does not fit `sun_path`.
pub fn sockaddr_un(path: &[u8]) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let abstract_name = path.first() == Some(&0);
    // A path needs room for its NUL; an abstract name is exactly its bytes.
    if path.is_empty() || path.len() + usize::from(!abstract_name) > sa.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in sa.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let len = base + path.len() + usize::from(!abstract_name);
    Ok((sa, len as libc::socklen_t))
}

/// A unix socket of `ty` (`SOCK_STREAM`, `SOCK_SEQPACKET`, `SOCK_DGRAM`), blocking (the
/// ring polls it), close-on-exec.
pub fn unix_socket(ty: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = check_i(unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a unix socket to a path, or to an abstract name (leading NUL).
pub fn bind_unix(fd: RawFd, path: &[u8]) -> io::Result<()> {
    let (sa, len) = sockaddr_un(path)?;
    // SAFETY: sa is a valid sockaddr_un of length len.
    check_i(unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) }).map(|_| ())
}

/// Binds a unix socket to a kernel-chosen abstract name (autobind), so that datagram
/// peers can answer it.
pub fn autobind_unix(fd: RawFd) -> io::Result<()> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
    // SAFETY: a family-only address of the length passed requests autobind.
    check_i(unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) }).map(|_| ())
}

/// The bound address of a unix socket (abstract names keep their leading NUL).
pub fn unix_local_name(fd: RawFd) -> io::Result<Vec<u8>> {
    // SAFETY: sockaddr_un is plain data and len matches it.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: sa/len describe a writable sockaddr_un.
    check_i(unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut len) })?;
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let n = (len as usize).saturating_sub(base).min(sa.sun_path.len());
    let mut out: Vec<u8> = sa.sun_path[..n].iter().map(|&c| c as u8).collect();
    if out.first() != Some(&0)
        && let Some(z) = out.iter().position(|&c| c == 0)
    {
        out.truncate(z);
    }
    Ok(out)
}

pub fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_i(unsafe { libc::listen(fd, backlog) }).map(|_| ())
}

/// `shutdown(2)`; `how` is `SHUT_WR` or `SHUT_RDWR`.
pub fn shutdown(fd: RawFd, how: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_i(unsafe { libc::shutdown(fd, how) }).map(|_| ())
}

/// A non-blocking connect to a unix path: whether something is listening there now.
pub fn unix_path_is_live(path: &[u8], ty: i32) -> bool {
    let Ok(fd) = unix_socket(ty | libc::SOCK_NONBLOCK) else { return false };
    let Ok((sa, len)) = sockaddr_un(path) else { return false };
    // SAFETY: sa is a valid sockaddr_un of length len.
    let r = unsafe { libc::connect(fd.as_raw_fd(), (&sa as *const libc::sockaddr_un).cast(), len) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

/// A pipe (read end, write end), blocking, close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for two descriptors.
    check_i(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: two new descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `fcntl(F_GETFL)`.
pub fn get_fl(fd: RawFd) -> io::Result<i32> {
    // SAFETY: plain syscall.
    check_i(unsafe { libc::fcntl(fd, libc::F_GETFL) })
}

/// `fstat(2)`.
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is writable.
    check_i(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// `lstat(2)`; None when the path does not exist.
pub fn lstat(path: &CStr) -> io::Result<Option<libc::stat>> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path, writable stat.
    match check_i(unsafe { libc::lstat(path.as_ptr(), &mut st) }) {
        Ok(_) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn getsockopt_int(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: v/len describe a writable int.
    check_i(unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) })?;
    Ok(v)
}

/// `SO_TYPE` of a socket.
pub fn sock_type(fd: RawFd) -> io::Result<i32> {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)
}

/// `SO_DOMAIN` of a socket.
pub fn sock_domain(fd: RawFd) -> io::Result<i32> {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)
}

/// Whether a socket is listening (`SO_ACCEPTCONN`).
pub fn sock_listening(fd: RawFd) -> bool {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).is_ok_and(|v| v != 0)
}

/// `SO_PEERCRED`: (pid, uid, gid) of a connected unix socket's peer.
pub fn peer_cred(fd: RawFd) -> io::Result<(i32, u32, u32)> {
    // SAFETY: ucred is plain data.
    let mut c: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c/len describe a writable ucred.
    check_i(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut c as *mut libc::ucred).cast(), &mut len)
    })?;
    Ok((c.pid, c.uid, c.gid))
}

/// `rename(2)`.
pub fn rename(old: &CStr, new: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated paths.
    check_i(unsafe { libc::rename(old.as_ptr(), new.as_ptr()) }).map(|_| ())
}

/// `unlink(2)`.
pub fn unlink(path: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated path.
    check_i(unsafe { libc::unlink(path.as_ptr()) }).map(|_| ())
}

/// `fcntl(F_SETFL)`.
pub fn set_fl(fd: RawFd, fl: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_i(unsafe { libc::fcntl(fd, libc::F_SETFL, fl) }).map(|_| ())
}

/// `read(2)` at the file position (pipes, FIFOs: no offset).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf valid for writes of its length.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    Ok(check(r as libc::c_long)? as usize)
}

/// `write(2)` at the file position (pipes, FIFOs: no offset).
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf valid for reads of its length.
    let r = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    Ok(check(r as libc::c_long)? as usize)
}

/// Clears `O_NONBLOCK` on an open file description.
pub fn clear_nonblock(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_GETFL/F_SETFL on a descriptor the caller owns.
    unsafe {
        let fl = check_i(libc::fcntl(fd, libc::F_GETFL))?;
        check_i(libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK)).map(|_| ())
    }
}

/// Whether a blocking `open(O_RDONLY)` of the FIFO `fd` (a read end opened with
/// `O_NONBLOCK`) would have returned by now: a writer is connected, data is waiting, or a
/// writer came and went (POLLHUP). Never consumes data: `tee(2)` copies at most one byte
/// into a scratch pipe (then closed) and, with SPLICE_F_NONBLOCK, answers EAGAIN for an
/// empty pipe with writers and 0 for one without.
pub fn fifo_reader_ready(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, no wait.
    if unsafe { libc::poll(&mut pfd, 1, 0) } > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP) != 0 {
        return true;
    }
    // A scratch pipe per check (closed at once: no descriptor stays with the engine).
    let mut p = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into p.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return true; // cannot tell: let the open complete rather than wait
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    let (_r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    // SAFETY: tee between two pipe descriptors; no memory is passed.
    let n = unsafe { libc::tee(fd, w.as_raw_fd(), 1, libc::SPLICE_F_NONBLOCK) };
    n > 0 || (n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN))
}
