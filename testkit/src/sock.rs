//! Raw unix-socket helpers of the channel and proxy tests (the DPU and HOST ends that
//! the engine's, udsproxyd's and rexec's tests drive by hand): sockets bound, listening
//! and connected by path, blocking accept, pipes, peer credentials, one `recvmsg`/`sendmsg` with SCM_RIGHTS and
//! an optional peer address (through `qtfs-sys`'s one cmsg implementation), readiness,
//! and a stream echo server. Failures panic: these are test fixtures. `connect` and
//! `sendmsg` go through the C library, where the preload library interposes them.

use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

/// A blocking unix socket of `ty`, close-on-exec.
pub fn raw_socket(ty: i32) -> OwnedFd {
    qtfs_sys::unix_socket(ty).expect("socket")
}

/// `connect(2)` of `fd` to the socket at `p`, through the C library: a client run with
/// the preload library (`libudsproxy.so`) must reach its interposed `connect`.
pub fn raw_connect(fd: RawFd, p: &Path) -> std::io::Result<()> {
    let (sa, len) = qtfs_sys::sockaddr_un(p.as_os_str().as_encoded_bytes())?;
    // SAFETY: sa is a valid sockaddr_un of length len.
    qtfs_sys::check(unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_un).cast(), len) }).map(|_| ())
}

/// A socket of `ty` bound at `p`, listening (backlog 1024) unless it is a datagram one.
pub fn raw_bound(p: &Path, ty: i32) -> OwnedFd {
    let fd = raw_socket(ty);
    qtfs_sys::bind_unix(fd.as_raw_fd(), p.as_os_str().as_encoded_bytes()).expect("bind");
    if ty != libc::SOCK_DGRAM {
        qtfs_sys::listen(fd.as_raw_fd(), 1024).expect("listen");
    }
    fd
}

/// A blocking accept of one connection (close-on-exec, blocking).
pub fn raw_accept(fd: RawFd) -> OwnedFd {
    loop {
        match qtfs_sys::accept(fd) {
            Ok(c) => {
                qtfs_sys::set_nonblock(c.as_raw_fd(), false).expect("clear O_NONBLOCK");
                return c;
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                raw_wait(fd, libc::POLLIN, None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// One blocking `recvmsg`: bytes and passed descriptors.
pub fn raw_recv(fd: RawFd, cap: usize) -> (Vec<u8>, Vec<OwnedFd>) {
    let (d, f, _) = raw_recvfrom(fd, cap);
    (d, f)
}

/// One blocking `recvmsg`: bytes, passed descriptors (close-on-exec), sender address.
pub fn raw_recvfrom(fd: RawFd, cap: usize) -> (Vec<u8>, Vec<OwnedFd>, Vec<u8>) {
    let mut buf = vec![MaybeUninit::<u8>::uninit(); cap];
    let mut from = Vec::new();
    let r = qtfs_sys::recvmsg_fds(fd, &mut buf, libc::MSG_CMSG_CLOEXEC, Some(&mut from))
        .unwrap_or_else(|e| panic!("recvmsg: {e}"));
    let n = r.len.min(cap);
    let data = buf[..n].iter().map(|b| {
        // SAFETY: the kernel initialised the first `n` bytes.
        unsafe { b.assume_init() }
    });
    (data.collect(), r.fds, from)
}

/// One blocking `sendmsg` of `data` with `fds` on a connected socket; the byte count, or
/// -1 (errno as the OS left it).
pub fn raw_send(fd: RawFd, data: &[u8], fds: &[RawFd]) -> isize {
    raw_sendto(fd, data, fds, None)
}

/// One blocking `sendmsg` to `to` (a path or abstract name; None: the connected peer).
pub fn raw_sendto(fd: RawFd, data: &[u8], fds: &[RawFd], to: Option<&[u8]>) -> isize {
    match qtfs_sys::sendmsg_fds(fd, data, fds, to, libc::MSG_NOSIGNAL) {
        Ok(n) => n as isize,
        Err(_) => -1,
    }
}

/// A pipe (read end, write end), blocking, close-on-exec.
pub fn raw_pipe() -> (OwnedFd, OwnedFd) {
    qtfs_sys::pipe().expect("pipe")
}

/// `SO_PEERCRED` of a connected unix socket: (pid, uid, gid).
pub fn raw_peer_cred(fd: RawFd) -> (i32, u32, u32) {
    qtfs_sys::peer_cred(fd).expect("SO_PEERCRED")
}

/// Waits for `events` on `fd` for up to `t` (None: for ever); the events seen (0: none).
fn raw_wait(fd: RawFd, events: i16, t: Option<Duration>) -> i16 {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    let ms = t.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    // SAFETY: one live pollfd.
    if unsafe { libc::poll(&mut p, 1, ms) } > 0 { p.revents } else { 0 }
}

/// True if `fd` reports readable (data or EOF) within `t`.
pub fn readable_within(fd: RawFd, t: Duration) -> bool {
    raw_wait(fd, libc::POLLIN | libc::POLLRDHUP, Some(t)) != 0
}

/// Copies `from` to `to` until either fails or `from` ends; never closes `to`.
pub fn copy_stream(mut from: impl Read, mut to: impl Write) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// A stream echo server on a listener: one thread per connection, each echoing until
/// EOF and then shutting its write side. Lives as long as the test process.
pub fn echo_server(l: UnixListener) {
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            std::thread::spawn(move || {
                let Ok(w) = s.try_clone() else { return };
                copy_stream(&s, &w);
                let _ = s.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_with_descriptors_and_the_sender_name() {
        let d = tempfile::tempdir().unwrap();
        let a = raw_bound(&d.path().join("a"), libc::SOCK_DGRAM);
        let b = raw_bound(&d.path().join("b"), libc::SOCK_DGRAM);
        let (r, _w) = qtfs_sys::pipe().unwrap();
        let to = d.path().join("a");
        assert_eq!(raw_sendto(b.as_raw_fd(), b"hi", &[r.as_raw_fd()], Some(to.as_os_str().as_encoded_bytes())), 2);
        assert!(readable_within(a.as_raw_fd(), Duration::from_secs(1)));
        let (data, fds, from) = raw_recvfrom(a.as_raw_fd(), 16);
        assert_eq!((data.as_slice(), fds.len()), (&b"hi"[..], 1));
        assert_eq!(from, d.path().join("b").as_os_str().as_encoded_bytes());
    }

    #[test]
    fn echo_over_a_listener() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("echo");
        echo_server(UnixListener::bind(&p).unwrap());
        let c = raw_socket(libc::SOCK_STREAM);
        raw_connect(c.as_raw_fd(), &p).unwrap();
        assert_eq!(raw_send(c.as_raw_fd(), b"ping", &[]), 4);
        assert_eq!(raw_recv(c.as_raw_fd(), 16).0, b"ping");
    }
}
