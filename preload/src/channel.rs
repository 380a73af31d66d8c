//! Proxied channels: asking udsproxyd for a channel to a path ([`proxy`]), putting the
//! socket it returns in place of the caller's descriptor with the caller's settings
//! ([`install`]), and the table of descriptors that are channels (socket inode and a
//! hash of the target), so a later `sendto()` to the same target is recognised and a
//! reused descriptor number is not.

use std::sync::atomic::{AtomicU64, Ordering};

use libc::c_int;

use crate::rt::{ConnectFn, REAL_CONNECT, real, request_addr};
use crate::{sys, wire};

/// How long a requester waits for udsproxyd (the engine connects within this).
const ANSWER_TIMEOUT_S: i64 = 30;

/// Descriptors that are proxied channels: (inode of the socket, hash of the target).
const TABLE: usize = 65536;
static TABLE_INO: [AtomicU64; TABLE] = [const { AtomicU64::new(0) }; TABLE];
static TABLE_HASH: [AtomicU64; TABLE] = [const { AtomicU64::new(0) }; TABLE];

pub(crate) enum Outcome {
    /// Not proxied: the caller's own error stands.
    Pass,
    /// `fd` is now connected through the proxy.
    Connected,
    /// The HOST side answered with this errno.
    Failed(c_int),
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3)).max(1)
}

/// Asks udsproxyd for a channel of `kind` to `path` and installs it on `fd`.
pub(crate) fn proxy(fd: c_int, kind: u16, path: &[u8]) -> Outcome {
    let Some(real_connect) = real::<ConnectFn>(&REAL_CONNECT) else { return Outcome::Pass };
    let sa = request_addr();
    let mut req = [0u8; wire::REQ_MAX];
    let Some(n) = wire::encode_request(&mut req, wire::OP_CONNECT, kind, path) else { return Outcome::Pass };
    let Some(s) = sys::request_socket(real_connect, &sa, ANSWER_TIMEOUT_S, false, &req[..n]) else {
        return Outcome::Pass;
    };
    let mut ans = [0u8; wire::RSP_LEN];
    let mut cbuf = [0u64; 8];
    let (got, clen) = sys::recvmsg(s, &mut ans, &mut cbuf);
    sys::close(s);
    let newfd = if got > 0 { sys::take_first_fd(&mut cbuf, clen) } else { -1 };
    let status = if got == wire::RSP_LEN as isize { wire::decode_answer(&ans) } else { None };
    match status {
        Some(0) if newfd >= 0 => {
            install(fd, newfd);
            if (fd as usize) < TABLE
                && let Some(ino) = sys::inode(fd)
            {
                TABLE_INO[fd as usize].store(ino, Ordering::Relaxed);
                TABLE_HASH[fd as usize].store(fnv(path), Ordering::Relaxed);
            }
            Outcome::Connected
        }
        other => {
            if newfd >= 0 {
                sys::close(newfd);
            }
            match other {
                Some(e) if e > 0 => Outcome::Failed(e),
                _ => Outcome::Pass,
            }
        }
    }
}

/// Puts the connected socket `newfd` in place of `fd`, keeping what the caller set on
/// `fd`: O_NONBLOCK, FD_CLOEXEC, send/receive timeouts, SO_PASSCRED.
fn install(fd: c_int, newfd: c_int) {
    let fl = sys::fcntl_get(fd, libc::F_GETFL);
    let fdfl = sys::fcntl_get(fd, libc::F_GETFD);
    for opt in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        if let Some((tv, l)) = sys::sock_timeval(fd, opt)
            && (tv.tv_sec != 0 || tv.tv_usec != 0)
        {
            sys::set_sock_timeval(newfd, opt, &tv, l);
        }
    }
    if let Some(v) = sys::sock_int(fd, libc::SOL_SOCKET, libc::SO_PASSCRED)
        && v != 0
    {
        sys::set_sock_int(newfd, libc::SOL_SOCKET, libc::SO_PASSCRED, v);
    }
    let cloexec = fdfl >= 0 && fdfl & libc::FD_CLOEXEC != 0;
    sys::dup3(newfd, fd, if cloexec { libc::O_CLOEXEC } else { 0 });
    sys::close(newfd);
    if fl >= 0 && fl & libc::O_NONBLOCK != 0 {
        let nfl = sys::fcntl_get(fd, libc::F_GETFL);
        sys::fcntl_set(fd, libc::F_SETFL, nfl | libc::O_NONBLOCK);
    }
}

/// Whether `fd` is a channel we installed for the target `path` (same socket inode).
pub(crate) fn is_channel_to(fd: c_int, path: &[u8]) -> bool {
    (fd as usize) < TABLE
        && fd >= 0
        && TABLE_HASH[fd as usize].load(Ordering::Relaxed) == fnv(path)
        && sys::inode(fd).is_some_and(|i| i == TABLE_INO[fd as usize].load(Ordering::Relaxed))
}

/// Whether `fd` is a channel we installed (same socket inode).
pub(crate) fn is_channel(fd: c_int) -> bool {
    (fd as usize) < TABLE
        && fd >= 0
        && TABLE_INO[fd as usize].load(Ordering::Relaxed) != 0
        && sys::inode(fd).is_some_and(|i| i == TABLE_INO[fd as usize].load(Ordering::Relaxed))
}
