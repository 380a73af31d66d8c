//! Listeners: socket options, TCP and vsock listeners, and the local and peer addresses
//! of a connection. Eventfds (the cores' wake-ups) come from `qtfs-sys`, re-exported here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};

use super::{bfd, check_i, rx};

pub use qtfs_sys::{eventfd, eventfd_kick};

/// Sets an int socket option.
// libc: any (level, name) pair; rustix has one typed function per option.
pub fn setsockopt_int(fd: RawFd, level: i32, name: i32, val: i32) -> io::Result<()> {
    // SAFETY: val is a live int of the size passed.
    check_i(unsafe {
        libc::setsockopt(fd, level, name, (&val as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t)
    })
    .map(|_| ())
}

/// A listening TCP socket with SO_REUSEADDR and SO_REUSEPORT (one per core).
pub fn tcp_listener(addr: &std::net::SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let fam = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = rx(rustix::net::socket_with(fam, SocketType::STREAM, SocketFlags::CLOEXEC, None))?;
    rx(sockopt::set_socket_reuseaddr(&fd, true))?;
    rx(sockopt::set_socket_reuseport(&fd, true))?;
    rx(rustix::net::bind(&fd, addr))?;
    rx(rustix::net::listen(&fd, backlog))?;
    Ok(fd)
}

/// A listening vsock socket.
// libc: rustix has no vsock address type.
pub fn vsock_listener(cid: u32, port: u32, backlog: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = check_i(unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: new descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_vm is plain data.
    let mut sa: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    sa.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    sa.svm_cid = cid;
    sa.svm_port = port;
    // SAFETY: sa is a valid sockaddr_vm.
    check_i(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    })?;
    // SAFETY: plain syscall.
    check_i(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

/// The local address of a bound TCP socket (EAFNOSUPPORT for other families).
pub fn local_addr(fd: RawFd) -> io::Result<std::net::SocketAddr> {
    rx(rustix::net::getsockname(bfd(fd)).and_then(std::net::SocketAddr::try_from))
}

/// The peer address of a connected socket, as text for logs.
// libc: vsock peers too, and rustix has no vsock address type.
pub fn peer_name(fd: RawFd) -> String {
    // SAFETY: storage is plain data, len matches.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(fd, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) != 0 {
            return "?".into();
        }
        match ss.ss_family as i32 {
            libc::AF_INET => {
                let sin = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                format!("{ip}:{}", u16::from_be(sin.sin_port))
            }
            libc::AF_INET6 => {
                let sin6 = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                format!("[{ip}]:{}", u16::from_be(sin6.sin6_port))
            }
            libc::AF_VSOCK => {
                let vm = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_vm>();
                format!("vsock:{}:{}", vm.svm_cid, vm.svm_port)
            }
            libc::AF_UNIX => "unix".into(),
            f => format!("family {f}"),
        }
    }
}
