//! Helpers shared by the channel tests (`channels.rs`, `channels_fds.rs`): the DPU side of
//! a channel ([`Peer`]: raw CHAN_* frames over a session), an echo server, checksums, and
//! raw socket helpers (SEQPACKET/DGRAM listeners, sendmsg/recvmsg with SCM_RIGHTS).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qtfs_client::Session;
use qtfs_proto::header::flags;
use qtfs_proto::*;
use qtfs_testkit::*;

/// The DPU side of a channel test: a session whose one-way frames are collected.
pub struct Peer {
    pub s: Session,
    pub rx: Mutex<Receiver<(FrameHeader, Vec<u8>)>>,
}

impl Peer {
    pub fn new(e: &TestEngine) -> Peer {
        let s = e.session(1);
        let (tx, rx) = channel();
        let tx = Mutex::new(tx);
        s.set_frame_handler(Arc::new(move |_c, h, p| {
            let _ = tx.lock().unwrap().send((h, p));
        }));
        Peer { s, rx: Mutex::new(rx) }
    }

    pub fn open(&self, id: u32, kind: u32, path: &[u8], credit: u32) -> Result<u32, i32> {
        let m = ChanOpenReq { kind, credit, listener: 0, uid: 0, gid: 0, groups: Groups::EMPTY, path: Path(path) };
        match self.s.submit_on_channel(0, Op::CHAN_OPEN, id, &m).unwrap().wait() {
            Ok(r) => Ok(r.decode::<ChanAccept>().unwrap().credit),
            Err(e) => Err(e.errno()),
        }
    }

    pub fn send<'m, M: Wire<'m>>(&self, op: Op, chan: u32, m: &M) {
        self.s.conn(0).send(FrameHeader::message(op, chan, 0), &m.to_vec()).unwrap();
    }

    pub fn data(&self, chan: u32, bytes: &[u8], more: bool) {
        let mut h = FrameHeader::message(Op::CHAN_DATA, chan, 0);
        if more {
            h.flags |= flags::MORE;
        }
        self.s.conn(0).send(h, bytes).unwrap();
    }

    pub fn next(&self, t: Duration) -> Option<(FrameHeader, Vec<u8>)> {
        match self.rx.lock().unwrap().recv_timeout(t) {
            Ok(f) => Some(f),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("session gone"),
        }
    }

    /// The next frame of `op` on `chan`, skipping credit frames.
    pub fn expect(&self, op: Op, chan: u32) -> (FrameHeader, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some((h, p)) = self.next(Duration::from_millis(100)) {
                if h.op == op as u16 && h.channel == chan {
                    return (h, p);
                }
                if h.op != Op::CHAN_CREDIT as u16 {
                    panic!("unexpected frame op {:#x} chan {:#x} waiting for {op}", h.op, h.channel);
                }
            }
        }
        panic!("no {op} on channel {chan:#x}");
    }
}

pub fn checksum(acc: u64, b: &[u8]) -> u64 {
    b.iter().fold(acc, |a, &x| a.wrapping_mul(1_000_003).wrapping_add(x as u64))
}

pub fn echo_server(path: &std::path::Path) -> std::thread::JoinHandle<()> {
    let l = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = s.shutdown(std::net::Shutdown::Write);
            });
        }
    })
}

pub fn raw_listener(path: &std::path::Path, ty: i32) -> OwnedFd {
    // SAFETY: plain socket calls on descriptors we own; the address is built below.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let fd = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as u16;
        for (d, s) in sa.sun_path.iter_mut().zip(path.as_os_str().as_encoded_bytes()) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as u32;
        assert_eq!(libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_un).cast(), len), 0);
        if ty != libc::SOCK_DGRAM {
            assert_eq!(libc::listen(fd.as_raw_fd(), 16), 0);
        }
        fd
    }
}

pub fn raw_accept(fd: RawFd) -> OwnedFd {
    // SAFETY: accept on a listening socket we own.
    let c = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    assert!(c >= 0);
    // SAFETY: new descriptor.
    unsafe { OwnedFd::from_raw_fd(c) }
}

/// One recvmsg: (bytes, passed descriptors, peer address for datagrams).
pub fn raw_recv(fd: RawFd, cap: usize) -> (Vec<u8>, Vec<OwnedFd>, Vec<u8>) {
    let mut buf = vec![0u8; cap];
    let mut cmsg = [0u64; 64];
    // SAFETY: msghdr/iovec/sockaddr point at live local buffers for the call.
    unsafe {
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: cap };
        let mut m: libc::msghdr = std::mem::zeroed();
        m.msg_name = (&mut sa as *mut libc::sockaddr_un).cast();
        m.msg_namelen = std::mem::size_of::<libc::sockaddr_un>() as u32;
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = cmsg.as_mut_ptr().cast();
        m.msg_controllen = 512;
        let n = libc::recvmsg(fd, &mut m, libc::MSG_CMSG_CLOEXEC);
        assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
        buf.truncate(n as usize);
        let mut fds = Vec::new();
        let mut c = libc::CMSG_FIRSTHDR(&m);
        while !c.is_null() {
            if (*c).cmsg_type == libc::SCM_RIGHTS {
                let k = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                let p = libc::CMSG_DATA(c) as *const i32;
                for i in 0..k {
                    fds.push(OwnedFd::from_raw_fd(*p.add(i)));
                }
            }
            c = libc::CMSG_NXTHDR(&m, c);
        }
        let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
        let an = (m.msg_namelen as usize).saturating_sub(base);
        let addr = sa.sun_path[..an.min(108)].iter().map(|&c| c as u8).collect();
        (buf, fds, addr)
    }
}

pub fn raw_send(fd: RawFd, data: &[u8], fds: &[RawFd], to: Option<&[u8]>) -> isize {
    let mut cmsg = [0u64; 64];
    // SAFETY: as raw_recv.
    unsafe {
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: data.len() };
        let mut m: libc::msghdr = std::mem::zeroed();
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        if let Some(to) = to {
            sa.sun_family = libc::AF_UNIX as u16;
            for (d, s) in sa.sun_path.iter_mut().zip(to) {
                *d = *s as libc::c_char;
            }
            m.msg_name = (&mut sa as *mut libc::sockaddr_un).cast();
            m.msg_namelen = (std::mem::offset_of!(libc::sockaddr_un, sun_path) + to.len()) as u32;
        }
        if !fds.is_empty() {
            let space = libc::CMSG_SPACE((fds.len() * 4) as u32) as usize;
            m.msg_control = cmsg.as_mut_ptr().cast();
            m.msg_controllen = space;
            let c = libc::CMSG_FIRSTHDR(&m);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c) as *mut i32, fds.len());
        }
        libc::sendmsg(fd, &m, libc::MSG_NOSIGNAL)
    }
}

/// True if `fd` reports readable (data or EOF) within `t`.
pub fn readable_within(fd: RawFd, t: Duration) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN | libc::POLLRDHUP, revents: 0 };
    // SAFETY: one live pollfd.
    unsafe { libc::poll(&mut p, 1, t.as_millis() as i32) > 0 }
}
