//! The unix-socket interposers: `connect()`, and `sendto()`/`sendmsg()` to an `AF_UNIX`
//! destination. Each runs the real function first; only an `AF_UNIX` call that failed
//! with `ENOENT` or `ECONNREFUSED` goes to udsproxyd (see the crate comment). Also: the
//! target path of an address, datagram re-targeting, and the check of descriptors a
//! proxied socket passes.

use libc::{c_int, c_void, msghdr, size_t, sockaddr, socklen_t, ssize_t};
use std::sync::atomic::Ordering;

use crate::channel::{Outcome, is_channel, is_channel_to, proxy};
use crate::rt::{ConnectFn, DISABLED, REAL_CONNECT, REAL_SENDMSG, REAL_SENDTO, SendmsgFn, SendtoFn, real_or_enosys};
use crate::sys::{self, errno, set_errno};
use crate::wire;

/// The target of an AF_UNIX address as an absolute path in `out`; None for other
/// families, abstract names, malformed addresses or over-long paths.
fn target_path(addr: *const sockaddr, len: socklen_t, out: &mut [u8; wire::MAX_PATH + 1]) -> Option<usize> {
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    if addr.is_null() || (len as usize) <= base || (len as usize) > std::mem::size_of::<libc::sockaddr_un>() {
        return None;
    }
    // SAFETY: the caller passed `len` readable bytes at `addr` (the kernel accepted them
    // for the real call, which only got here by failing with ENOENT/ECONNREFUSED).
    let bytes = unsafe { std::slice::from_raw_parts(addr.cast::<u8>(), len as usize) };
    if u16::from_ne_bytes([bytes[0], bytes[1]]) != libc::AF_UNIX as u16 {
        return None;
    }
    let raw = &bytes[base..];
    let raw = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
    if raw.is_empty() {
        return None; // abstract or unnamed
    }
    let mut n = 0;
    if raw[0] != b'/' {
        if !sys::getcwd(out) {
            return None;
        }
        n = out.iter().position(|&c| c == 0)?;
        if n == 0 || out[n - 1] != b'/' {
            *out.get_mut(n)? = b'/';
            n += 1;
        }
    }
    if n + raw.len() > wire::MAX_PATH {
        return None;
    }
    out[n..n + raw.len()].copy_from_slice(raw);
    Some(n + raw.len())
}

fn kind_of(fd: c_int) -> Option<u16> {
    match sys::sock_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)? {
        libc::SOCK_STREAM => Some(wire::KIND_STREAM),
        libc::SOCK_SEQPACKET => Some(wire::KIND_SEQPACKET),
        libc::SOCK_DGRAM => Some(wire::KIND_DGRAM),
        _ => None,
    }
}

/// # Safety
/// Same contract as `connect(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(real_connect) = real_or_enosys::<ConnectFn>(&REAL_CONNECT) else { return -1 };
    let saved = errno();
    // SAFETY: forwarded unchanged to the real connect.
    let r = unsafe { real_connect(fd, addr, len) };
    if r == 0 || DISABLED.load(Ordering::Relaxed) {
        return r;
    }
    let err = errno();
    if err != libc::ENOENT && err != libc::ECONNREFUSED {
        return r;
    }
    let mut path = [0u8; wire::MAX_PATH + 1];
    let outcome = match (target_path(addr, len, &mut path), kind_of(fd)) {
        (Some(n), Some(kind)) => proxy(fd, kind, &path[..n]),
        _ => Outcome::Pass,
    };
    match outcome {
        Outcome::Connected => {
            set_errno(saved);
            0
        }
        Outcome::Failed(e) => {
            set_errno(e);
            -1
        }
        Outcome::Pass => {
            set_errno(err);
            -1
        }
    }
}

/// After a datagram send to a path failed locally: whether it may go over a channel
/// (existing, or new when the socket is unconnected and unbound). Ok(true) = `fd` is now
/// (or already was) a channel to that target.
fn dgram_retarget(fd: c_int, dest: *const sockaddr, dlen: socklen_t) -> Result<bool, c_int> {
    if DISABLED.load(Ordering::Relaxed) || kind_of(fd) != Some(wire::KIND_DGRAM) {
        return Ok(false);
    }
    let mut path = [0u8; wire::MAX_PATH + 1];
    let Some(n) = target_path(dest, dlen, &mut path) else { return Ok(false) };
    let path = &path[..n];
    if is_channel_to(fd, path) {
        return Ok(true);
    }
    let unbound = sys::sockname_len(fd).is_some_and(|l| l as usize <= std::mem::size_of::<libc::sa_family_t>());
    let unconnected = !sys::has_peer(fd);
    let fresh = unbound && unconnected;
    if !fresh {
        return Ok(false);
    }
    match proxy(fd, wire::KIND_DGRAM, path) {
        Outcome::Connected => Ok(true),
        Outcome::Failed(e) => Err(e),
        Outcome::Pass => Ok(false),
    }
}

/// # Safety
/// Same contract as `sendto(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    dest: *const sockaddr,
    dlen: socklen_t,
) -> ssize_t {
    let Some(real_sendto) = real_or_enosys::<SendtoFn>(&REAL_SENDTO) else { return -1 };
    // SAFETY: forwarded unchanged to the real sendto.
    let r = unsafe { real_sendto(fd, buf, len, flags, dest, dlen) };
    if r >= 0 || dest.is_null() {
        return r;
    }
    let err = errno();
    if err != libc::ENOENT && err != libc::ECONNREFUSED {
        return r;
    }
    match dgram_retarget(fd, dest, dlen) {
        // SAFETY: the same buffer, now without a destination (the socket is connected).
        Ok(true) => unsafe { real_sendto(fd, buf, len, flags, std::ptr::null(), 0) },
        Ok(false) => {
            set_errno(err);
            -1
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}

/// Refuses descriptors that cannot cross to the HOST (EOPNOTSUPP) before a proxied
/// socket sends them.
fn check_passed_fds(msg: &msghdr) -> Result<(), c_int> {
    sys::for_each_passed_fd(msg, may_cross)
}

/// Whether a passed descriptor can cross to the HOST: a regular file with a path, a
/// pipe/FIFO or a listening unix socket (EBADF when it is not open, else EOPNOTSUPP).
fn may_cross(f: c_int) -> Result<(), c_int> {
    let Some(st) = sys::fstat(f) else { return Err(libc::EBADF) };
    let ok = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => st.st_nlink > 0,
        libc::S_IFIFO => true,
        libc::S_IFSOCK => {
            sys::sock_int(f, libc::SOL_SOCKET, libc::SO_DOMAIN) == Some(libc::AF_UNIX)
                && sys::sock_int(f, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Some(1)
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(libc::EOPNOTSUPP) }
}

/// # Safety
/// Same contract as `sendmsg(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    let Some(real_sendmsg) = real_or_enosys::<SendmsgFn>(&REAL_SENDMSG) else { return -1 };
    if !msg.is_null() && !DISABLED.load(Ordering::Relaxed) {
        // SAFETY: the caller passes a valid msghdr.
        let m = unsafe { &*msg };
        if m.msg_controllen > 0
            && !m.msg_control.is_null()
            && is_channel(fd)
            && let Err(e) = check_passed_fds(m)
        {
            set_errno(e);
            return -1;
        }
    }
    // SAFETY: forwarded unchanged to the real sendmsg.
    let r = unsafe { real_sendmsg(fd, msg, flags) };
    if r >= 0 || msg.is_null() {
        return r;
    }
    let err = errno();
    // SAFETY: as above.
    let m = unsafe { &*msg };
    if (err != libc::ENOENT && err != libc::ECONNREFUSED) || m.msg_name.is_null() {
        return r;
    }
    match dgram_retarget(fd, m.msg_name.cast(), m.msg_namelen) {
        Ok(true) => {
            let mut m2 = *m;
            m2.msg_name = std::ptr::null_mut();
            m2.msg_namelen = 0;
            // SAFETY: the caller's message without its destination.
            unsafe { real_sendmsg(fd, &m2, flags) }
        }
        Ok(false) => {
            set_errno(err);
            -1
        }
        Err(e) => {
            set_errno(e);
            -1
        }
    }
}
