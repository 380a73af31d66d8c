//! Descriptors passed over unix sockets (SCM_RIGHTS): building the control message on
//! send, parsing it on receive, with or without a peer address. One implementation for
//! the daemons and the tests. libc's `sendmsg`/`recvmsg` rather than rustix's: the
//! receive side fills spare (uninitialised) capacity, which rustix's `recvmsg` cannot
//! take, and the tests' clients must reach the C library's `sendmsg`, which the preload
//! library (`libudsproxy.so`) interposes; rustix would call the kernel behind its back.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{OwnedFd, RawFd};

use crate::{check_s, owned, sockaddr_un, sun_path_bytes};

/// The most descriptors one message carries (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// Control space for [`MAX_FDS`] descriptors, aligned for `cmsghdr`.
type CmsgSpace = [u64; 160];

/// `sendmsg(2)` of `data` with `fds` (SCM_RIGHTS, at most [`MAX_FDS`]), to `to` (a path or
/// abstract name, for unconnected datagram sockets) or to the connected peer; `flags` are
/// `MSG_*` bits.
pub fn sendmsg_fds(fd: RawFd, data: &[u8], fds: &[RawFd], to: Option<&[u8]>, flags: i32) -> io::Result<usize> {
    let mut cmsg: CmsgSpace = [0; 160];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: msghdr is plain data.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    let mut sa = match to {
        Some(to) => Some(sockaddr_un(to)?),
        None => None,
    };
    if let Some((sa, len)) = sa.as_mut() {
        m.msg_name = (sa as *mut libc::sockaddr_un).cast();
        m.msg_namelen = *len;
    }
    let fds = &fds[..fds.len().min(MAX_FDS)];
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_* on a buffer large enough for MAX_FDS descriptors; the header is
        // written before CMSG_DATA is used, and the copy stays within CMSG_LEN(bytes).
        unsafe {
            m.msg_control = cmsg.as_mut_ptr().cast();
            m.msg_controllen = libc::CMSG_SPACE(bytes) as usize;
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c) as *mut RawFd, fds.len());
        }
    }
    // SAFETY: m points at live buffers for the duration of the call.
    check_s(unsafe { libc::sendmsg(fd, &m, flags) })
}

/// Sends `data` with descriptors to the connected peer, non-blocking, without SIGPIPE.
pub fn send_with_fds(fd: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    sendmsg_fds(fd, data, fds, None, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
}

/// What one `recvmsg` returned.
pub struct Received {
    /// Bytes received (for messages with MSG_TRUNC: the message's true length, which may
    /// exceed the buffer).
    pub len: usize,
    /// The descriptors passed (close-on-exec when `MSG_CMSG_CLOEXEC` was asked).
    pub fds: Vec<OwnedFd>,
    /// Control data was truncated (descriptors lost).
    pub ctrunc: bool,
}

/// `recvmsg(2)` into `buf`, collecting passed descriptors; `flags` are `MSG_*` bits. With
/// `addr`, the sender's address is written there (path, abstract name with its leading
/// NUL, or empty when unnamed).
pub fn recvmsg_fds(
    fd: RawFd,
    buf: &mut [MaybeUninit<u8>],
    flags: i32,
    addr: Option<&mut Vec<u8>>,
) -> io::Result<Received> {
    let mut cmsg: CmsgSpace = [0; 160];
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = cmsg.as_mut_ptr().cast();
    m.msg_controllen = std::mem::size_of_val(&cmsg);
    if addr.is_some() {
        m.msg_name = (&mut sa as *mut libc::sockaddr_un).cast();
        m.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    }
    // SAFETY: m points at live buffers; the kernel writes at most their sizes.
    let len = check_s(unsafe { libc::recvmsg(fd, &mut m, flags) })?;
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote, within msg_controllen;
    // CMSG_DATA may be unaligned for the ints, hence read_unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&m);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const RawFd;
                for i in 0..k {
                    let fd = std::ptr::read_unaligned(p.add(i));
                    if fd >= 0 {
                        fds.push(owned(fd));
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&m, c);
        }
    }
    if let Some(addr) = addr {
        *addr = sun_path_bytes(&sa, m.msg_namelen);
    }
    Ok(Received { len, fds, ctrunc: m.msg_flags & libc::MSG_CTRUNC != 0 })
}

/// Non-blocking `recvmsg` into `buf`, collecting passed descriptors (close-on-exec).
/// `trunc` asks for the true length of a longer message.
pub fn recv_with_fds(fd: RawFd, buf: &mut [MaybeUninit<u8>], trunc: bool) -> io::Result<Received> {
    let mut flags = libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC;
    if trunc {
        flags |= libc::MSG_TRUNC;
    }
    recvmsg_fds(fd, buf, flags, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{autobind_unix, socketpair, unix_local_name, unix_socket};
    use std::os::fd::AsRawFd;

    #[test]
    fn descriptors_travel_and_arrive_cloexec() {
        let (a, b) = socketpair(libc::SOCK_SEQPACKET).unwrap();
        let (r, w) = crate::pipe().unwrap();
        assert_eq!(send_with_fds(a.as_raw_fd(), b"x", &[r.as_raw_fd(), w.as_raw_fd()]).unwrap(), 1);
        let mut buf = [MaybeUninit::uninit(); 4];
        let got = recv_with_fds(b.as_raw_fd(), &mut buf, false).unwrap();
        assert_eq!((got.len, got.fds.len(), got.ctrunc), (1, 2, false));
        // SAFETY: F_GETFD on a descriptor we own.
        assert_eq!(unsafe { libc::fcntl(got.fds[0].as_raw_fd(), libc::F_GETFD) } & libc::FD_CLOEXEC, 1);
        let e = recv_with_fds(b.as_raw_fd(), &mut buf, false).err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::EAGAIN));
    }

    #[test]
    fn datagrams_carry_the_sender_address_and_true_length() {
        let rcv = unix_socket(libc::SOCK_DGRAM).unwrap();
        autobind_unix(rcv.as_raw_fd()).unwrap();
        let name = unix_local_name(rcv.as_raw_fd()).unwrap();
        let snd = unix_socket(libc::SOCK_DGRAM).unwrap();
        autobind_unix(snd.as_raw_fd()).unwrap();
        sendmsg_fds(snd.as_raw_fd(), b"hello", &[], Some(&name), libc::MSG_NOSIGNAL).unwrap();
        let mut buf = [MaybeUninit::uninit(); 2];
        let mut from = Vec::new();
        let got = recvmsg_fds(rcv.as_raw_fd(), &mut buf, libc::MSG_TRUNC, Some(&mut from)).unwrap();
        assert_eq!(got.len, 5);
        assert_eq!(from, unix_local_name(snd.as_raw_fd()).unwrap());
    }
}
