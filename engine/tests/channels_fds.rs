//! Unix-socket channels at the protocol level, raw sockets on the HOST side: SEQPACKET
//! and DGRAM message boundaries, listening on a HOST path, and descriptors crossing in
//! both directions (files, pipes, listeners; never a FIFO or device by path). The test
//! plays the DPU side with raw CHAN_* frames against the real engine (helpers in
//! `chan_common`); channel life is in `channels.rs`.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use qtfs_proto::consts::{self, CHAN_ID_PEER};
use qtfs_proto::*;
use qtfs_testkit::*;

mod chan_common;
use chan_common::*;

/// Appends an SCM_FILE record: the file at `path` (a HOST path), to be reopened with the
/// wire open `flags` at `offset`.
fn file_rec(recs: &mut Vec<u8>, path: &[u8], flags: u32, offset: u64) {
    ScmRec { kind: consts::SCM_FILE, flags, offset, channel: 0, path: Path(path) }.encode(recs);
}

#[test]
fn seqpacket_and_datagram_keep_message_boundaries() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    // SEQPACKET: two messages sent as one CHAN_DATA each (one split with MORE) arrive as two.
    let c = p.open_to_host(&e, 1, consts::CHAN_SEQPACKET, "seq.sock", libc::SOCK_SEQPACKET, 1 << 20);
    p.data(1, b"first ", true);
    p.data(1, b"message", false);
    p.data(1, b"second", false);
    assert_eq!(raw_recv(c.as_raw_fd(), 1000).0, b"first message");
    assert_eq!(raw_recv(c.as_raw_fd(), 1000).0, b"second");
    // Server to client: each message is one CHAN_DATA.
    assert_eq!(raw_send(c.as_raw_fd(), b"a", &[]), 1);
    assert_eq!(raw_send(c.as_raw_fd(), &[7u8; 100_000], &[]), 100_000);
    assert_eq!(p.expect(Op::CHAN_DATA, 1).1, b"a");
    let (h, big) = p.expect(Op::CHAN_DATA, 1);
    assert!(!h.has_more());
    assert_eq!(big.len(), 100_000);
    // DGRAM: the server answers the (autobound) channel socket.
    let dp = e.path("dgram.sock");
    let d = raw_bound(&dp, libc::SOCK_DGRAM);
    p.open(2, consts::CHAN_DGRAM, dp.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
    p.data(2, b"ping-1", false);
    p.data(2, b"", false);
    p.data(2, b"ping-3", false);
    let (m1, _, from) = raw_recvfrom(d.as_raw_fd(), 1000);
    assert_eq!(m1, b"ping-1");
    assert_eq!(from.first(), Some(&0u8), "autobound abstract sender address");
    assert_eq!(raw_recv(d.as_raw_fd(), 1000).0, b"");
    assert_eq!(raw_recv(d.as_raw_fd(), 1000).0, b"ping-3");
    assert_eq!(raw_sendto(d.as_raw_fd(), b"pong", &[], Some(&from)), 4);
    assert_eq!(p.expect(Op::CHAN_DATA, 2).1, b"pong");
    assert_eq!(raw_sendto(d.as_raw_fd(), b"", &[], Some(&from)), 0);
    assert_eq!(p.expect(Op::CHAN_DATA, 2).1, b"", "empty datagrams are messages, not EOF");
}

#[test]
fn listen_on_host_path_opens_channels_towards_the_client() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    let path = e.path("rev.sock");
    let m = root_listen_req(path.as_os_str().as_encoded_bytes(), 0o660);
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
    assert_eq!(p.expect_close(chan).0, consts::CHAN_SHUT_WR);
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
    let srv = p.open_to_host(&e, 1, consts::CHAN_STREAM, "scm.sock", libc::SOCK_STREAM, 1 << 20);
    let file = e.path("shared.txt");
    std::fs::write(&file, b"0123456789").unwrap();
    // DPU -> HOST: a file (reopened at its offset), a pipe read end, a listening socket.
    let mut recs = Vec::new();
    file_rec(&mut recs, file.as_os_str().as_encoded_bytes(), consts::open::RDONLY | consts::open::TRUNC, 4);
    ScmRec { kind: consts::SCM_PIPE_READ, flags: 0, offset: 0, channel: 5, path: Path(b"") }.encode(&mut recs);
    ScmRec { kind: consts::SCM_LISTENER, flags: consts::CHAN_STREAM, offset: 0, channel: 6, path: Path(b"") }
        .encode(&mut recs);
    p.send(Op::CHAN_SCM, 1, &ChanScm { count: 3, records: Rest(&recs) });
    p.data(1, b"F", false);
    let (d, fds) = raw_recv(srv.as_raw_fd(), 100);
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
    file_rec(&mut recs, outside.as_os_str().as_encoded_bytes(), consts::open::RDWR, 0);
    p.send(Op::CHAN_SCM, 1, &ChanScm { count: 1, records: Rest(&recs) });
    p.data(1, b"G", false);
    assert_eq!(p.expect_close(1), (consts::CHAN_CLOSE_ALL, libc::EACCES));
}

#[test]
fn descriptors_from_the_host_become_records() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    let srv = p.open_to_host(&e, 1, consts::CHAN_STREAM, "scm2.sock", libc::SOCK_STREAM, 1 << 20);
    let file = e.path("f.txt");
    std::fs::write(&file, b"abcdef").unwrap();
    let mut f = std::fs::File::open(&file).unwrap();
    let mut two = [0u8; 2];
    f.read_exact(&mut two).unwrap();
    let (pr, pw) = raw_pipe();
    assert_eq!(raw_send(srv.as_raw_fd(), b"x", &[f.as_raw_fd(), pr.as_raw_fd()]), 1);
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
    assert_eq!(p.expect_close(relay).0, consts::CHAN_SHUT_WR);
    // An unsupported descriptor (a socket) closes the channel with EOPNOTSUPP.
    let (a, _b) = UnixStream::pair().unwrap();
    assert_eq!(raw_send(srv.as_raw_fd(), b"y", &[a.as_raw_fd()]), 1);
    assert_eq!(p.expect_close(1), (consts::CHAN_CLOSE_ALL, libc::EOPNOTSUPP));
}

#[test]
fn a_passed_path_naming_a_fifo_or_device_is_never_opened() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    let sp = e.path("scm3.sock");
    let l = raw_bound(&sp, libc::SOCK_STREAM);
    let fifo = e.path("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (id, path) in [(1u32, fifo.as_os_str().as_encoded_bytes()), (2, b"/dev/null".as_slice())] {
        p.open(id, consts::CHAN_STREAM, sp.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
        let _srv = raw_accept(l.as_raw_fd());
        let mut recs = Vec::new();
        file_rec(&mut recs, path, consts::open::RDONLY, 0);
        p.send(Op::CHAN_SCM, id, &ChanScm { count: 1, records: Rest(&recs) });
        p.data(id, b"x", false);
        // A blocking open of the FIFO would hang the core; the answer comes at once.
        assert_eq!(p.expect_close(id), (consts::CHAN_CLOSE_ALL, libc::EOPNOTSUPP));
    }
    assert_eq!(p.s.ping(b"alive").unwrap(), b"alive");
}
