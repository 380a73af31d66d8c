//! Unix-socket channels at the protocol level: the test plays the DPU side with raw
//! CHAN_* frames against the real engine and real HOST sockets in the export directory.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qtfs_client::{AdminClient, Session};
use qtfs_proto::consts::{self, CHAN_ID_PEER};
use qtfs_proto::header::flags;
use qtfs_proto::*;
use qtfs_testkit::*;

/// The DPU side of a channel test: a session whose one-way frames are collected.
struct Peer {
    s: Session,
    rx: Mutex<Receiver<(FrameHeader, Vec<u8>)>>,
}

impl Peer {
    fn new(e: &TestEngine) -> Peer {
        let s = e.session(1);
        let (tx, rx) = channel();
        let tx = Mutex::new(tx);
        s.set_frame_handler(Arc::new(move |_c, h, p| {
            let _ = tx.lock().unwrap().send((h, p));
        }));
        Peer { s, rx: Mutex::new(rx) }
    }

    fn open(&self, id: u32, kind: u32, path: &[u8], credit: u32) -> Result<u32, i32> {
        let m = ChanOpenReq { kind, credit, listener: 0, uid: 0, gid: 0, groups: Groups::EMPTY, path: Path(path) };
        match self.s.submit_on_channel(0, Op::CHAN_OPEN, id, &m).unwrap().wait() {
            Ok(r) => Ok(r.decode::<ChanAccept>().unwrap().credit),
            Err(e) => Err(e.errno()),
        }
    }

    fn send<'m, M: Wire<'m>>(&self, op: Op, chan: u32, m: &M) {
        self.s.conn(0).send(FrameHeader::message(op, chan, 0), &m.to_vec()).unwrap();
    }

    fn data(&self, chan: u32, bytes: &[u8], more: bool) {
        let mut h = FrameHeader::message(Op::CHAN_DATA, chan, 0);
        if more {
            h.flags |= flags::MORE;
        }
        self.s.conn(0).send(h, bytes).unwrap();
    }

    fn next(&self, t: Duration) -> Option<(FrameHeader, Vec<u8>)> {
        match self.rx.lock().unwrap().recv_timeout(t) {
            Ok(f) => Some(f),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("session gone"),
        }
    }

    /// The next frame of `op` on `chan`, skipping credit frames.
    fn expect(&self, op: Op, chan: u32) -> (FrameHeader, Vec<u8>) {
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

fn checksum(acc: u64, b: &[u8]) -> u64 {
    b.iter().fold(acc, |a, &x| a.wrapping_mul(1_000_003).wrapping_add(x as u64))
}

fn echo_server(path: &std::path::Path) -> std::thread::JoinHandle<()> {
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

#[test]
fn stream_echo_with_credit_and_orderly_close() {
    let e = TestEngine::start(Opts::default());
    let sock = e.path("echo.sock");
    let _srv = echo_server(&sock);
    let p = Peer::new(&e);
    // A small receive window of our own: the engine must respect it.
    const OUR_WINDOW: u32 = 96 * 1024;
    let mut credit = p.open(1, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), OUR_WINDOW).unwrap() as u64;
    assert!(credit >= 64 * 1024);
    let total: usize = 8 << 20;
    let (mut sent, mut got) = (0usize, 0usize);
    let (mut sum_tx, mut sum_rx) = (0u64, 0u64);
    let mut outstanding = 0u64;
    let chunk: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < total {
        assert!(Instant::now() < deadline, "echo stalled at sent={sent} got={got}");
        while sent < total && credit > 0 {
            let n = (total - sent).min(chunk.len()).min(credit as usize);
            p.data(1, &chunk[..n], false);
            sum_tx = checksum(sum_tx, &chunk[..n]);
            sent += n;
            credit -= n as u64;
        }
        if let Some((h, d)) = p.next(Duration::from_millis(200)) {
            assert_eq!(h.channel, 1);
            match h.op() {
                Some(Op::CHAN_DATA) => {
                    outstanding += d.len() as u64;
                    assert!(outstanding <= OUR_WINDOW as u64, "engine overran our window");
                    sum_rx = checksum(sum_rx, &d);
                    got += d.len();
                    p.send(Op::CHAN_CREDIT, 1, &ChanCredit { bytes: d.len() as u32 });
                    outstanding -= d.len() as u64;
                }
                Some(Op::CHAN_CREDIT) => credit += ChanCredit::decode(&d).unwrap().bytes as u64,
                o => panic!("unexpected {o:?}"),
            }
        }
    }
    assert_eq!(sum_tx, sum_rx);
    // The channel is listed while open.
    let mut a = AdminClient::connect(&e.admin).unwrap();
    let r = a.call(Op::ADMIN_CHANNELS, &Empty {}).unwrap();
    let list = r.decode::<ChannelsRsp>().unwrap();
    assert_eq!(list.count, 1);
    let info = RecordIter::<ChanInfo>::new(list.records.0).next().unwrap().unwrap();
    assert_eq!((info.channel, info.kind, info.state), (1, consts::CHAN_STREAM, consts::CHANST_OPEN));
    assert_eq!(info.bytes_in, total as u64);
    assert_eq!(info.bytes_out, total as u64);
    assert_eq!(info.path.0, sock.as_os_str().as_encoded_bytes());
    // EOF both ways: ours, then the echo server's.
    p.send(Op::CHAN_CLOSE, 1, &ChanClose { how: consts::CHAN_SHUT_WR, error: 0 });
    let (_, c) = p.expect(Op::CHAN_CLOSE, 1);
    assert_eq!(ChanClose::decode(&c).unwrap().how, consts::CHAN_SHUT_WR);
    assert!(wait_until(Duration::from_secs(5), || {
        let r = a.call(Op::ADMIN_CHANNELS, &Empty {}).unwrap();
        r.decode::<ChannelsRsp>().unwrap().count == 0
    }));
}

#[test]
fn open_errors_are_those_of_a_local_connect() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    let b = |x: &std::path::Path| x.as_os_str().as_encoded_bytes().to_vec();
    assert_eq!(p.open(1, consts::CHAN_STREAM, &b(&e.path("missing.sock")), 65536), Err(libc::ENOENT));
    std::fs::write(e.path("plain"), b"x").unwrap();
    assert_eq!(p.open(2, consts::CHAN_STREAM, &b(&e.path("plain")), 65536), Err(libc::ECONNREFUSED));
    // A socket file nobody listens on.
    let dead = e.path("dead.sock");
    drop(UnixListener::bind(&dead).unwrap());
    assert_eq!(p.open(3, consts::CHAN_STREAM, &b(&dead), 65536), Err(libc::ECONNREFUSED));
    // Outside [Udsconnect] (the whitelist only holds the export), also through a symlink.
    let outside = e.dir.path().join("outside.sock");
    let _l = UnixListener::bind(&outside).unwrap();
    assert_eq!(p.open(4, consts::CHAN_STREAM, &b(&outside), 65536), Err(libc::ECONNREFUSED));
    std::os::unix::fs::symlink(&outside, e.path("link.sock")).unwrap();
    assert_eq!(p.open(5, consts::CHAN_STREAM, &b(&e.path("link.sock")), 65536), Err(libc::ECONNREFUSED));
    // Hostile ids and kinds.
    let sock = e.path("ok.sock");
    let _srv = echo_server(&sock);
    assert_eq!(p.open(CHAN_ID_PEER | 9, consts::CHAN_STREAM, &b(&sock), 65536), Err(libc::EINVAL));
    assert_eq!(p.open(0, consts::CHAN_STREAM, &b(&sock), 65536), Err(libc::EINVAL));
    assert_eq!(p.open(6, 77, &b(&sock), 65536), Err(libc::EPROTONOSUPPORT));
    assert_eq!(p.open(7, consts::CHAN_STREAM, b"relative.sock", 65536), Err(libc::EINVAL));
    p.open(8, consts::CHAN_STREAM, &b(&sock), 65536).unwrap();
    assert_eq!(p.open(8, consts::CHAN_STREAM, &b(&sock), 65536), Err(libc::EEXIST));
    // Data beyond the granted credit closes the channel with EPROTO.
    p.data(8, &vec![1u8; (1 << 20) + 100], false);
    let (_, c) = p.expect(Op::CHAN_CLOSE, 8);
    let c = ChanClose::decode(&c).unwrap();
    assert_eq!((c.how, c.error), (consts::CHAN_CLOSE_ALL, libc::EPROTO));
    // The connection (and file requests on it) survived all of it.
    assert_eq!(p.s.ping(b"still here").unwrap(), b"still here");
}

/// The user's case: `/var/run` is a symlink to `/run` and `[Udsconnect]` names
/// `/var/run/rexec`, while a channel is checked against the socket's real path
/// `/run/rexec/rexec_uds.sock`. Here `t/var/run → ../run`.
#[test]
fn udsconnect_entries_naming_symlinks_match_their_targets() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    std::fs::create_dir_all(t.join("run/rexec")).unwrap();
    std::fs::create_dir_all(t.join("run/other")).unwrap();
    std::fs::create_dir(t.join("var")).unwrap();
    std::os::unix::fs::symlink("../run", t.join("var/run")).unwrap();
    let sock = t.join("run/rexec/rexec_uds.sock");
    let _srv = echo_server(&sock);
    let outside = t.join("run/other/x.sock");
    let _l = UnixListener::bind(&outside).unwrap();
    let e = TestEngine::start(Opts {
        extra_wl: format!("[Udsconnect]\nPath={}/var/run/rexec\n", t.display()),
        ..Default::default()
    });
    let p = Peer::new(&e);
    let b = |x: &std::path::Path| x.as_os_str().as_encoded_bytes().to_vec();
    p.open(1, consts::CHAN_STREAM, &b(&sock), 65536).expect("the entry resolves to run/rexec");
    p.data(1, b"ping", false);
    assert_eq!(p.expect(Op::CHAN_DATA, 1).1, b"ping");
    // Named the way the entry is spelt: the same socket.
    p.open(2, consts::CHAN_STREAM, &b(&t.join("var/run/rexec/rexec_uds.sock")), 65536).unwrap();
    // A sibling of the resolved directory is not covered.
    assert_eq!(p.open(3, consts::CHAN_STREAM, &b(&outside), 65536), Err(libc::ECONNREFUSED));
    assert_eq!(p.open(4, consts::CHAN_STREAM, &b(&t.join("var/run/other/x.sock")), 65536), Err(libc::ECONNREFUSED));
}

// ------------------------------------------------------------------ raw socket helpers

fn raw_listener(path: &std::path::Path, ty: i32) -> OwnedFd {
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

fn raw_accept(fd: RawFd) -> OwnedFd {
    // SAFETY: accept on a listening socket we own.
    let c = unsafe { libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
    assert!(c >= 0);
    // SAFETY: new descriptor.
    unsafe { OwnedFd::from_raw_fd(c) }
}

/// One recvmsg: (bytes, passed descriptors, peer address for datagrams).
fn raw_recv(fd: RawFd, cap: usize) -> (Vec<u8>, Vec<OwnedFd>, Vec<u8>) {
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

fn raw_send(fd: RawFd, data: &[u8], fds: &[RawFd], to: Option<&[u8]>) -> isize {
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

#[test]
fn seqpacket_and_datagram_keep_message_boundaries() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    // SEQPACKET: two messages sent as one CHAN_DATA each (one split with MORE) arrive as two.
    let sp = e.path("seq.sock");
    let l = raw_listener(&sp, libc::SOCK_SEQPACKET);
    p.open(1, consts::CHAN_SEQPACKET, sp.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
    let c = raw_accept(l.as_raw_fd());
    p.data(1, b"first ", true);
    p.data(1, b"message", false);
    p.data(1, b"second", false);
    assert_eq!(raw_recv(c.as_raw_fd(), 1000).0, b"first message");
    assert_eq!(raw_recv(c.as_raw_fd(), 1000).0, b"second");
    // Server to client: each message is one CHAN_DATA.
    assert_eq!(raw_send(c.as_raw_fd(), b"a", &[], None), 1);
    assert_eq!(raw_send(c.as_raw_fd(), &[7u8; 100_000], &[], None), 100_000);
    assert_eq!(p.expect(Op::CHAN_DATA, 1).1, b"a");
    let (h, big) = p.expect(Op::CHAN_DATA, 1);
    assert!(!h.has_more());
    assert_eq!(big.len(), 100_000);
    // DGRAM: the server answers the (autobound) channel socket.
    let dp = e.path("dgram.sock");
    let d = raw_listener(&dp, libc::SOCK_DGRAM);
    p.open(2, consts::CHAN_DGRAM, dp.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
    p.data(2, b"ping-1", false);
    p.data(2, b"", false);
    p.data(2, b"ping-3", false);
    let (m1, _, from) = raw_recv(d.as_raw_fd(), 1000);
    assert_eq!(m1, b"ping-1");
    assert_eq!(from.first(), Some(&0u8), "autobound abstract sender address");
    assert_eq!(raw_recv(d.as_raw_fd(), 1000).0, b"");
    assert_eq!(raw_recv(d.as_raw_fd(), 1000).0, b"ping-3");
    assert_eq!(raw_send(d.as_raw_fd(), b"pong", &[], Some(&from)), 4);
    assert_eq!(p.expect(Op::CHAN_DATA, 2).1, b"pong");
    assert_eq!(raw_send(d.as_raw_fd(), b"", &[], Some(&from)), 0);
    assert_eq!(p.expect(Op::CHAN_DATA, 2).1, b"", "empty datagrams are messages, not EOF");
}

#[test]
fn listen_on_host_path_opens_channels_towards_the_client() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    let path = e.path("rev.sock");
    let m = ChanListenReq {
        kind: consts::CHAN_STREAM,
        mode: 0o660,
        uid: 0,
        gid: 0,
        groups: Groups::EMPTY,
        path: Path(path.as_os_str().as_encoded_bytes()),
    };
    let lid = p.s.call(Op::CHAN_LISTEN, &m).unwrap().decode::<ChanListenRsp>().unwrap().listener;
    assert_ne!(lid & CHAN_ID_PEER, 0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
    // Outside [Udsconnect]: refused.
    let bad = ChanListenReq { path: Path(b"/tmp/qtfs-not-allowed.sock"), ..m };
    assert_eq!(p.s.call(Op::CHAN_LISTEN, &bad).unwrap_err().errno(), libc::EACCES);
    // A HOST program connects and talks.
    let mut host = UnixStream::connect(&path).unwrap();
    host.write_all(b"hello dpu").unwrap();
    let (h, req) = p.next(Duration::from_secs(10)).expect("CHAN_OPEN from the engine");
    assert_eq!(h.op, Op::CHAN_OPEN as u16);
    assert!(h.is_request());
    let chan = h.channel;
    assert_ne!(chan & CHAN_ID_PEER, 0);
    let o = ChanOpenReq::decode(&req).unwrap();
    assert_eq!(o.listener, lid);
    // SAFETY: getuid cannot fail.
    assert_eq!(o.uid, unsafe { libc::getuid() });
    let credit = o.credit;
    let mut rsp = FrameHeader::response(Op::CHAN_OPEN as u16, h.id, 0);
    rsp.channel = chan;
    p.s.conn(0).send(rsp, &ChanAccept { credit: 1 << 20 }.to_vec()).unwrap();
    assert_eq!(p.expect(Op::CHAN_DATA, chan).1, b"hello dpu");
    assert!(credit >= 5);
    p.data(chan, b"hello host", false);
    let mut got = [0u8; 10];
    host.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello host");
    drop(host);
    let (_, c) = p.expect(Op::CHAN_CLOSE, chan);
    assert_eq!(ChanClose::decode(&c).unwrap().how, consts::CHAN_SHUT_WR);
    // Unlisten removes the socket file.
    p.s.call(Op::CHAN_UNLISTEN, &ChanUnlistenReq { listener: lid }).unwrap();
    assert!(!exists(&path));
    assert_eq!(p.s.call(Op::CHAN_UNLISTEN, &ChanUnlistenReq { listener: lid }).unwrap_err().errno(), libc::ENOENT);
    // A listener dies with its connection.
    let lid2 = p.s.call(Op::CHAN_LISTEN, &m).unwrap().decode::<ChanListenRsp>().unwrap().listener;
    assert_ne!(lid2, lid);
    assert!(exists(&path));
    p.s.close();
    assert!(wait_until(Duration::from_secs(5), || !exists(&path)));
}

#[test]
fn descriptors_cross_as_files_pipes_and_listeners() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    let sp = e.path("scm.sock");
    let l = raw_listener(&sp, libc::SOCK_STREAM);
    p.open(1, consts::CHAN_STREAM, sp.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
    let srv = raw_accept(l.as_raw_fd());
    let file = e.path("shared.txt");
    std::fs::write(&file, b"0123456789").unwrap();
    // DPU -> HOST: a file (reopened at its offset), a pipe read end, a listening socket.
    let mut recs = Vec::new();
    let fp = file.as_os_str().as_encoded_bytes();
    ScmRec {
        kind: consts::SCM_FILE,
        flags: consts::open::RDONLY | consts::open::TRUNC,
        offset: 4,
        channel: 0,
        path: Path(fp),
    }
    .encode(&mut recs);
    ScmRec { kind: consts::SCM_PIPE_READ, flags: 0, offset: 0, channel: 5, path: Path(b"") }.encode(&mut recs);
    ScmRec { kind: consts::SCM_LISTENER, flags: consts::CHAN_STREAM, offset: 0, channel: 6, path: Path(b"") }
        .encode(&mut recs);
    p.send(Op::CHAN_SCM, 1, &ChanScm { count: 3, records: Rest(&recs) });
    p.data(1, b"F", false);
    let (d, fds, _) = raw_recv(srv.as_raw_fd(), 100);
    assert_eq!(d, b"F");
    assert_eq!(fds.len(), 3);
    let mut f = std::fs::File::from(fds[0].try_clone().unwrap());
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "456789", "reopened at the offset, never truncated");
    assert_eq!(std::fs::read(&file).unwrap(), b"0123456789");
    // The pipe: the engine grants credit on relay channel 5, we send, the server reads.
    let (_, c) = p.expect(Op::CHAN_CREDIT, 5);
    assert!(ChanCredit::decode(&c).unwrap().bytes > 0);
    p.data(5, b"through the pipe", false);
    p.send(Op::CHAN_CLOSE, 5, &ChanClose { how: consts::CHAN_SHUT_WR, error: 0 });
    let mut pipe = std::fs::File::from(fds[1].try_clone().unwrap());
    let mut s = String::new();
    pipe.read_to_string(&mut s).unwrap();
    assert_eq!(s, "through the pipe");
    // The listener: the server accepts on the passed socket; a DPU-side connection
    // arrives as CHAN_OPEN naming listener 6.
    let lfd = fds[2].as_raw_fd();
    let m = ChanOpenReq {
        kind: consts::CHAN_STREAM,
        credit: 1 << 20,
        listener: 6,
        uid: 0,
        gid: 0,
        groups: Groups::EMPTY,
        path: Path(b""),
    };
    let acc = std::thread::spawn(move || raw_accept(lfd));
    p.s.submit_on_channel(0, Op::CHAN_OPEN, 7, &m).unwrap().wait().unwrap();
    let conn = acc.join().unwrap();
    p.data(7, b"via listener", false);
    assert_eq!(raw_recv(conn.as_raw_fd(), 100).0, b"via listener");
    // A file the engine may not open for writing is refused, and the channel says why.
    let outside = e.dir.path().join("secret");
    std::fs::write(&outside, b"s").unwrap();
    let mut recs = Vec::new();
    ScmRec {
        kind: consts::SCM_FILE,
        flags: consts::open::RDWR,
        offset: 0,
        channel: 0,
        path: Path(outside.as_os_str().as_encoded_bytes()),
    }
    .encode(&mut recs);
    p.send(Op::CHAN_SCM, 1, &ChanScm { count: 1, records: Rest(&recs) });
    p.data(1, b"G", false);
    let (_, c) = p.expect(Op::CHAN_CLOSE, 1);
    let c = ChanClose::decode(&c).unwrap();
    assert_eq!((c.how, c.error), (consts::CHAN_CLOSE_ALL, libc::EACCES));
}

#[test]
fn descriptors_from_the_host_become_records() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    let sp = e.path("scm2.sock");
    let l = raw_listener(&sp, libc::SOCK_STREAM);
    p.open(1, consts::CHAN_STREAM, sp.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
    let srv = raw_accept(l.as_raw_fd());
    let file = e.path("f.txt");
    std::fs::write(&file, b"abcdef").unwrap();
    let mut f = std::fs::File::open(&file).unwrap();
    let mut two = [0u8; 2];
    f.read_exact(&mut two).unwrap();
    let (pr, pw) = {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors we then own.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        }
    };
    assert_eq!(raw_send(srv.as_raw_fd(), b"x", &[f.as_raw_fd(), pr.as_raw_fd()], None), 1);
    drop(pr);
    let (_, scm) = p.expect(Op::CHAN_SCM, 1);
    let scm = ChanScm::decode(&scm).unwrap();
    assert_eq!(scm.count, 2);
    let recs: Vec<_> = RecordIter::<ScmRec>::new(scm.records.0).map(|r| r.unwrap()).collect();
    assert_eq!(recs[0].kind, consts::SCM_FILE);
    assert_eq!(recs[0].path.0, file.as_os_str().as_encoded_bytes());
    assert_eq!(recs[0].offset, 2);
    assert_eq!(recs[1].kind, consts::SCM_PIPE_READ);
    let relay = recs[1].channel;
    assert_ne!(relay & CHAN_ID_PEER, 0);
    assert_eq!(p.expect(Op::CHAN_DATA, 1).1, b"x");
    // Bytes written into the HOST pipe arrive on the relay once we grant credit.
    let mut w = std::fs::File::from(pw);
    w.write_all(b"pipe data").unwrap();
    drop(w);
    p.send(Op::CHAN_CREDIT, relay, &ChanCredit { bytes: 1 << 20 });
    assert_eq!(p.expect(Op::CHAN_DATA, relay).1, b"pipe data");
    let (_, c) = p.expect(Op::CHAN_CLOSE, relay);
    assert_eq!(ChanClose::decode(&c).unwrap().how, consts::CHAN_SHUT_WR);
    // An unsupported descriptor (a socket) closes the channel with EOPNOTSUPP.
    let (a, _b) = UnixStream::pair().unwrap();
    assert_eq!(raw_send(srv.as_raw_fd(), b"y", &[a.as_raw_fd()], None), 1);
    let (_, c) = p.expect(Op::CHAN_CLOSE, 1);
    let c = ChanClose::decode(&c).unwrap();
    assert_eq!((c.how, c.error), (consts::CHAN_CLOSE_ALL, libc::EOPNOTSUPP));
}

#[test]
fn closing_the_connection_releases_channels_and_descriptors() {
    // Sockets of dropped connections are held for the session grace period (see the next
    // test); a short grace lets this one check that they are released afterwards.
    let e = TestEngine::start(Opts { extra_args: vec!["--session-grace".into(), "1".into()], ..Default::default() });
    let sock = e.path("echo.sock");
    let _srv = echo_server(&sock);
    let p = Peer::new(&e);
    let before = e.fd_count();
    for i in 1..=50 {
        p.open(i, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), 65536).unwrap();
    }
    assert!(e.fd_count() >= before + 50);
    p.s.close();
    assert!(wait_until(Duration::from_secs(5), || e.fd_count() <= before), "fds {} > {before}", e.fd_count());
    let mut a = AdminClient::connect(&e.admin).unwrap();
    let r = a.call(Op::ADMIN_CHANNELS, &Empty {}).unwrap();
    assert_eq!(r.decode::<ChannelsRsp>().unwrap().count, 0);
}

/// True if `fd` reports readable (data or EOF) within `t`.
fn readable_within(fd: RawFd, t: Duration) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN | libc::POLLRDHUP, revents: 0 };
    // SAFETY: one live pollfd.
    unsafe { libc::poll(&mut p, 1, t.as_millis() as i32) > 0 }
}

#[test]
fn a_dropped_connection_is_not_an_eof_until_the_grace_ends() {
    let e = TestEngine::start(Opts { extra_args: vec!["--session-grace".into(), "2".into()], ..Default::default() });
    let sock = e.path("host.sock");
    let l = raw_listener(&sock, libc::SOCK_STREAM);
    let p = Peer::new(&e);
    p.open(1, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), 65536).unwrap();
    let host = raw_accept(l.as_raw_fd());
    // The transport drops (no CHAN_CLOSE): the HOST server must not see EOF, because the
    // DPU program may reattach through a new connection (rexec does).
    p.s.close();
    let t0 = Instant::now();
    assert!(!readable_within(host.as_raw_fd(), Duration::from_millis(1200)), "EOF on a transport drop");
    // After the grace period the socket is closed.
    assert!(readable_within(host.as_raw_fd(), Duration::from_secs(5)), "never closed after the grace");
    assert!(t0.elapsed() >= Duration::from_millis(1500), "closed before the grace ended: {:?}", t0.elapsed());
    let (d, _, _) = raw_recv(host.as_raw_fd(), 16);
    assert!(d.is_empty(), "EOF");
}

#[test]
fn an_orderly_close_reaches_the_host_at_once() {
    let e = TestEngine::start(Opts { extra_args: vec!["--session-grace".into(), "30".into()], ..Default::default() });
    let sock = e.path("host.sock");
    let l = raw_listener(&sock, libc::SOCK_STREAM);
    let p = Peer::new(&e);
    p.open(1, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), 65536).unwrap();
    let host = raw_accept(l.as_raw_fd());
    // The DPU program closed its socket: udsproxyd sends CHAN_CLOSE; the HOST server sees
    // EOF promptly (rexec_server kills the processes of a dead client on it).
    p.send(Op::CHAN_CLOSE, 1, &ChanClose { how: consts::CHAN_CLOSE_ALL, error: 0 });
    assert!(readable_within(host.as_raw_fd(), Duration::from_millis(1000)), "no EOF after CHAN_CLOSE");
    let (d, _, _) = raw_recv(host.as_raw_fd(), 16);
    assert!(d.is_empty());
}

#[test]
fn a_stalled_channel_slows_neither_its_connection_nor_other_channels() {
    let e = TestEngine::start(Opts::default());
    // Two firehoses on the HOST: one read by a channel that keeps granting credit, one
    // by a channel whose reader never grants any more.
    let fire = e.path("fire.sock");
    let l = UnixListener::bind(&fire).unwrap();
    let written: Arc<Vec<std::sync::atomic::AtomicU64>> = Arc::new((0..2).map(|_| Default::default()).collect());
    {
        let written = written.clone();
        std::thread::spawn(move || {
            for (i, s) in l.incoming().enumerate().take(2) {
                let (mut s, written) = (s.unwrap(), written.clone());
                std::thread::spawn(move || {
                    let b = vec![3u8; 64 * 1024];
                    while let Ok(n) = s.write(&b) {
                        written[i].fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
    }
    let p = Arc::new(Peer::new(&e));
    let (s, ex) = (&p.s, {
        let (ex, _) = p.s.mount(e.export.to_str().unwrap(), &qtfs_client::Cred::root()).unwrap();
        ex
    });
    std::fs::write(e.path("small"), vec![1u8; 4096]).unwrap();
    let (fh, _) = s.open(ex, b"small", consts::open::RDONLY, 0, &qtfs_client::Cred::root()).unwrap();
    let fp = fire.as_os_str().as_encoded_bytes().to_vec();
    p.open(1, consts::CHAN_STREAM, &fp, 1 << 20).unwrap();
    // A pump reads every frame: channel 1 gets its credit back, channel 2 never does.
    let got = Arc::new([std::sync::atomic::AtomicU64::new(0), std::sync::atomic::AtomicU64::new(0)]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pump = {
        let (p, got, stop) = (p.clone(), got.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Some((h, d)) = p.next(Duration::from_millis(50)) else { continue };
                if h.op == Op::CHAN_DATA as u16 {
                    got[(h.channel - 1) as usize].fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    if h.channel == 1 {
                        p.send(Op::CHAN_CREDIT, 1, &ChanCredit { bytes: d.len() as u32 });
                    }
                }
            }
        })
    };
    let measure = |secs: f64| {
        let before = got[0].load(std::sync::atomic::Ordering::Relaxed);
        let t0 = Instant::now();
        let mut ops = 0u64;
        while t0.elapsed().as_secs_f64() < secs {
            assert_eq!(s.read(fh, 0, 4096).unwrap().len(), 4096);
            ops += 1;
        }
        let el = t0.elapsed().as_secs_f64();
        let mib = (got[0].load(std::sync::atomic::Ordering::Relaxed) - before) as f64 / el / (1 << 20) as f64;
        (mib, ops as f64 / el)
    };
    let (base_mib, base_ops) = measure(1.0);
    const STALLED_WINDOW: u32 = 256 * 1024;
    p.open(2, consts::CHAN_STREAM, &fp, STALLED_WINDOW).unwrap();
    assert!(wait_until(Duration::from_secs(5), || got[1].load(std::sync::atomic::Ordering::Relaxed)
        == STALLED_WINDOW as u64));
    let (mib, ops) = measure(1.0);
    eprintln!(
        "same connection: baseline {base_mib:.0} MiB/s {base_ops:.0} reads/s; stalled neighbour {mib:.0} MiB/s {ops:.0} reads/s"
    );
    assert_eq!(got[1].load(std::sync::atomic::Ordering::Relaxed), STALLED_WINDOW as u64, "never more than the credit");
    // Head-of-line blocking would stop both almost completely; the bound leaves room for
    // the noise of a 2-CPU machine running the other tests of this binary in parallel.
    assert!(mib > 0.15 * base_mib, "the other channel slowed: {mib:.0} vs {base_mib:.0} MiB/s");
    assert!(ops > 0.15 * base_ops, "file requests on the same connection slowed: {ops:.0} vs {base_ops:.0}/s");
    // The stalled HOST writer is blocked by its socket, not by the engine's memory.
    let held = written[1].load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(written[1].load(std::sync::atomic::Ordering::Relaxed), held);
    assert!(held < (STALLED_WINDOW as u64) + (8 << 20), "{held}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pump.join().unwrap();
}

#[test]
fn a_passed_path_naming_a_fifo_or_device_is_never_opened() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    let sp = e.path("scm3.sock");
    let l = raw_listener(&sp, libc::SOCK_STREAM);
    let fifo = e.path("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (id, path) in [(1u32, fifo.as_os_str().as_encoded_bytes()), (2, b"/dev/null".as_slice())] {
        p.open(id, consts::CHAN_STREAM, sp.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
        let _srv = raw_accept(l.as_raw_fd());
        let mut recs = Vec::new();
        ScmRec { kind: consts::SCM_FILE, flags: consts::open::RDONLY, offset: 0, channel: 0, path: Path(path) }
            .encode(&mut recs);
        p.send(Op::CHAN_SCM, id, &ChanScm { count: 1, records: Rest(&recs) });
        p.data(id, b"x", false);
        // A blocking open of the FIFO would hang the core; the answer comes at once.
        let (_, c) = p.expect(Op::CHAN_CLOSE, id);
        let c = ChanClose::decode(&c).unwrap();
        assert_eq!((c.how, c.error), (consts::CHAN_CLOSE_ALL, libc::EOPNOTSUPP));
    }
    assert_eq!(p.s.ping(b"alive").unwrap(), b"alive");
}

#[test]
fn hostile_channel_frames_never_hurt_the_engine() {
    let e = TestEngine::start(Opts::default());
    let sock = e.path("echo.sock");
    let _srv = echo_server(&sock);
    let p = Peer::new(&e);
    p.open(1, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
    let ops = [
        Op::CHAN_OPEN,
        Op::CHAN_DATA,
        Op::CHAN_CREDIT,
        Op::CHAN_CLOSE,
        Op::CHAN_LISTEN,
        Op::CHAN_UNLISTEN,
        Op::CHAN_SCM,
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..3000 {
        let op = ops[(next() % ops.len() as u64) as usize];
        let len = (next() % 300) as usize;
        let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let chan = match next() % 4 {
            0 => 1,
            1 => 0,
            2 => CHAN_ID_PEER | (next() as u32 & 0xff),
            _ => next() as u32,
        };
        let mut h = FrameHeader::message(op, chan, 0);
        if i % 3 == 0 {
            h.flags = flags::REQUEST;
            h.id = 1_000_000 + i;
        }
        if i % 7 == 0 {
            h.flags |= flags::MORE;
        }
        p.s.conn(0).send(h, &payload).unwrap();
    }
    // Whatever happened to channel 1, the connection and the engine are fine.
    assert_eq!(p.s.ping(b"still alive").unwrap(), b"still alive");
    let p2 = Peer::new(&e);
    p2.open(5, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
    p2.data(5, b"echo?", false);
    assert_eq!(p2.expect(Op::CHAN_DATA, 5).1, b"echo?");
}

#[test]
fn the_server_closing_first_then_the_client_ends_the_channel() {
    let e = TestEngine::start(Opts::default());
    let sp = e.path("first.sock");
    let l = UnixListener::bind(&sp).unwrap();
    let p = Peer::new(&e);
    for id in 1..=3u32 {
        p.open(id, consts::CHAN_STREAM, sp.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
        let (mut srv, _) = l.accept().unwrap();
        srv.write_all(b"bye").unwrap();
        drop(srv);
        assert_eq!(p.expect(Op::CHAN_DATA, id).1, b"bye");
        let (_, c) = p.expect(Op::CHAN_CLOSE, id);
        assert_eq!(ChanClose::decode(&c).unwrap().how, consts::CHAN_SHUT_WR);
        // Our EOF completes the channel on the engine side (it was already read-done).
        p.send(Op::CHAN_CLOSE, id, &ChanClose { how: consts::CHAN_SHUT_WR, error: 0 });
    }
    let mut a = AdminClient::connect(&e.admin).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        a.call(Op::ADMIN_CHANNELS, &Empty {}).unwrap().decode::<ChannelsRsp>().unwrap().count == 0
    }));
    assert_eq!(p.s.ping(b"alive").unwrap(), b"alive");
}
