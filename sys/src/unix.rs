//! Unix sockets: addresses (`sockaddr_un` for io_uring, rustix's for the calls here),
//! sockets and socket pairs, bind (path, abstract name, autobind), connect, listen,
//! accept, shutdown, the bound name, integer socket options, socket type and domain,
//! peer credentials and groups, and non-blocking send/recv.

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

use crate::{bfd, check, rx};

/// A `sockaddr_un` for a path or abstract name (leading NUL) and its length; ENAMETOOLONG
/// if it does not fit `sun_path` (or is empty). For callers that need libc's struct (an
/// io_uring connect keeps it alive in the operation).
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

/// rustix's address for a path or an abstract name (leading NUL); ENAMETOOLONG if empty
/// or too long, EINVAL for a path with a NUL inside.
pub fn unix_addr(path: &[u8]) -> io::Result<SocketAddrUnix> {
    match path.split_first() {
        None => Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG)),
        Some((0, name)) => rx(SocketAddrUnix::new_abstract_name(name)),
        Some(_) => rx(SocketAddrUnix::new(path)),
    }
}

/// A unix socket of `ty` (`SOCK_STREAM`, `SOCK_SEQPACKET`, `SOCK_DGRAM`, optionally with
/// `SOCK_NONBLOCK`), close-on-exec.
pub fn unix_socket(ty: i32) -> io::Result<OwnedFd> {
    let (ty, flags) = split_type(ty);
    rx(rustix::net::socket_with(AddressFamily::UNIX, ty, flags | SocketFlags::CLOEXEC, None))
}

/// A connected pair of unix sockets of `ty`, close-on-exec.
pub fn socketpair(ty: i32) -> io::Result<(OwnedFd, OwnedFd)> {
    let (ty, flags) = split_type(ty);
    rx(rustix::net::socketpair(AddressFamily::UNIX, ty, flags | SocketFlags::CLOEXEC, None))
}

fn split_type(ty: i32) -> (SocketType, SocketFlags) {
    let fl = ty & (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    (SocketType::from_raw((ty & !fl) as u32), SocketFlags::from_bits_retain(fl as u32))
}

/// Binds a unix socket to a path, or to an abstract name (leading NUL).
pub fn bind_unix(fd: RawFd, path: &[u8]) -> io::Result<()> {
    rx(rustix::net::bind(bfd(fd), &unix_addr(path)?))
}

/// Binds a unix socket to a kernel-chosen abstract name (autobind), so that datagram
/// peers can answer it.
pub fn autobind_unix(fd: RawFd) -> io::Result<()> {
    rx(rustix::net::bind(bfd(fd), &SocketAddrUnix::new_unnamed()))
}

/// `connect(2)` of a unix socket to a path or abstract name.
pub fn connect_unix(fd: RawFd, path: &[u8]) -> io::Result<()> {
    rx(rustix::net::connect(bfd(fd), &unix_addr(path)?))
}

/// The bound name of a unix socket (abstract names keep their leading NUL; empty when
/// unnamed). libc: rustix's decoding of a path asserts a NUL the kernel may leave out.
pub fn unix_local_name(fd: RawFd) -> io::Result<Vec<u8>> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: sa/len describe a writable sockaddr_un.
    check(unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut len) })?;
    Ok(sun_path_bytes(&sa, len))
}

/// The name in a `sockaddr_un` of length `len` as [`unix_addr`] takes it: a path (up to
/// its NUL), an abstract name with its leading NUL, or nothing (unnamed).
pub fn sun_path_bytes(sa: &libc::sockaddr_un, len: libc::socklen_t) -> Vec<u8> {
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let n = (len as usize).saturating_sub(base).min(sa.sun_path.len());
    let mut out: Vec<u8> = sa.sun_path[..n].iter().map(|&c| c as u8).collect();
    if out.first() != Some(&0)
        && let Some(z) = out.iter().position(|&c| c == 0)
    {
        out.truncate(z);
    }
    out
}

/// `listen(2)`.
pub fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    rx(rustix::net::listen(bfd(fd), backlog))
}

/// `accept4` with close-on-exec and non-blocking set on the new socket.
pub fn accept(fd: RawFd) -> io::Result<OwnedFd> {
    rx(rustix::net::accept_with(bfd(fd), SocketFlags::CLOEXEC | SocketFlags::NONBLOCK))
}

/// `shutdown(2)`; `how` is `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
pub fn shutdown(fd: RawFd, how: i32) -> io::Result<()> {
    use rustix::net::Shutdown;
    let how = match how {
        libc::SHUT_RD => Shutdown::Read,
        libc::SHUT_WR => Shutdown::Write,
        libc::SHUT_RDWR => Shutdown::Both,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    rx(rustix::net::shutdown(bfd(fd), how))
}

/// An integer socket option (any level and name; rustix names each option apart).
pub fn sockopt_int(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid out pointers of the sizes passed.
    check(unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut libc::c_int).cast(), &mut len) })?;
    Ok(v)
}

/// `SO_TYPE` of a socket.
pub fn sock_type(fd: RawFd) -> io::Result<i32> {
    sockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)
}

/// `SO_DOMAIN` of a socket.
pub fn sock_domain(fd: RawFd) -> io::Result<i32> {
    sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)
}

/// Whether a socket is listening (`SO_ACCEPTCONN`).
pub fn sock_listening(fd: RawFd) -> bool {
    sockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).is_ok_and(|v| v != 0)
}

/// `SO_PEERCRED`: (pid, uid, gid) of a connected unix socket's peer. libc: the pid is 0
/// for a peer in another pid namespace, which rustix's `Pid` cannot hold.
pub fn peer_cred(fd: RawFd) -> io::Result<(i32, u32, u32)> {
    let mut c = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c and len are valid out pointers of the sizes passed.
    check(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut c as *mut libc::ucred).cast(), &mut len)
    })?;
    Ok((c.pid, c.uid, c.gid))
}

/// `SO_PEERGROUPS`: the supplementary groups of a unix socket's peer, as they were when
/// it connected (Linux ≥ 4.13).
pub fn peer_groups(fd: RawFd) -> io::Result<Vec<u32>> {
    let mut v = vec![0u32; 64];
    loop {
        let mut len = (v.len() * 4) as libc::socklen_t;
        // SAFETY: v is valid for writes of len bytes.
        let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERGROUPS, v.as_mut_ptr().cast(), &mut len) };
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

/// Non-blocking `send(2)` without SIGPIPE (the socket's own flags stay as they are).
pub fn send_nb(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    rx(rustix::net::send(bfd(fd), data, SendFlags::NOSIGNAL | SendFlags::DONTWAIT))
}

/// Non-blocking `recv(2)` (the socket's own flags stay as they are).
pub fn recv_nb(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    rx(rustix::net::recv(bfd(fd), buf, RecvFlags::DONTWAIT)).map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn addresses() {
        assert_eq!(sockaddr_un(b"").unwrap_err().raw_os_error(), Some(libc::ENAMETOOLONG));
        assert_eq!(sockaddr_un(&[b'a'; 108]).unwrap_err().raw_os_error(), Some(libc::ENAMETOOLONG));
        assert_eq!(sockaddr_un(&[0; 108]).unwrap().1 as usize, 2 + 108);
        assert_eq!(unix_addr(b"").unwrap_err().raw_os_error(), Some(libc::ENAMETOOLONG));
        let (sa, len) = sockaddr_un(b"\0abc").unwrap();
        assert_eq!(sun_path_bytes(&sa, len), b"\0abc");
        let (sa, len) = sockaddr_un(b"/x/y").unwrap();
        assert_eq!(sun_path_bytes(&sa, len), b"/x/y");
        assert!(unix_addr(b"\0abc").is_ok() && unix_addr(b"/x/y").is_ok());
    }

    #[test]
    fn abstract_listener_accepts_and_knows_its_peer() {
        let name = format!("\0qtfs-sys-test-{}", std::process::id()).into_bytes();
        let l = unix_socket(libc::SOCK_SEQPACKET).unwrap();
        bind_unix(l.as_raw_fd(), &name).unwrap();
        listen(l.as_raw_fd(), 4).unwrap();
        assert!(sock_listening(l.as_raw_fd()));
        assert_eq!(unix_local_name(l.as_raw_fd()).unwrap(), name);
        assert_eq!(sock_type(l.as_raw_fd()).unwrap(), libc::SOCK_SEQPACKET);
        assert_eq!(sock_domain(l.as_raw_fd()).unwrap(), libc::AF_UNIX);
        let c = unix_socket(libc::SOCK_SEQPACKET).unwrap();
        connect_unix(c.as_raw_fd(), &name).unwrap();
        let a = accept(l.as_raw_fd()).unwrap();
        let (_, uid, gid) = peer_cred(a.as_raw_fd()).unwrap();
        // SAFETY: plain getters.
        assert_eq!((uid, gid), unsafe { (libc::geteuid(), libc::getegid()) });
        assert!(peer_groups(a.as_raw_fd()).is_ok());
        assert_eq!(send_nb(c.as_raw_fd(), b"hi").unwrap(), 2);
        let mut b = [0u8; 4];
        assert_eq!(recv_nb(a.as_raw_fd(), &mut b).unwrap(), 2);
        assert_eq!(recv_nb(a.as_raw_fd(), &mut b).unwrap_err().raw_os_error(), Some(libc::EAGAIN));
        shutdown(c.as_raw_fd(), libc::SHUT_WR).unwrap();
        assert_eq!(recv_nb(a.as_raw_fd(), &mut b).unwrap(), 0);
    }

    #[test]
    fn autobind_gives_an_abstract_name() {
        let (a, _b) = socketpair(libc::SOCK_DGRAM).unwrap();
        let d = unix_socket(libc::SOCK_DGRAM | libc::SOCK_NONBLOCK).unwrap();
        autobind_unix(d.as_raw_fd()).unwrap();
        assert_eq!(unix_local_name(d.as_raw_fd()).unwrap().first(), Some(&0));
        assert_eq!(unix_local_name(a.as_raw_fd()).unwrap(), b"");
    }
}
