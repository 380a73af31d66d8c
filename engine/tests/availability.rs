//! Availability against untrusted peers: no frame takes the engine down, nothing a
//! client leaves behind stays allocated, unauthenticated peers are bounded in number,
//! time and memory.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use qtfs_client::{Cred, Session};
use qtfs_proto::consts::open;
use qtfs_proto::*;
use qtfs_testkit::*;

/// Whether the engine closed `s` (EOF or reset) within `within`; a timeout is "no".
/// Frames the engine sends first (an error answer) are skipped.
fn closed_by_engine(s: &mut impl Read, set_timeout: impl Fn(Option<Duration>), within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut b = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        set_timeout(Some(left));
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return true,
        }
    }
}

fn tcp_closed(s: &mut TcpStream, within: Duration) -> bool {
    let c = s.try_clone().unwrap();
    closed_by_engine(s, |t| c.set_read_timeout(t).unwrap(), within)
}

fn unix_closed(s: &mut UnixStream, within: Duration) -> bool {
    let c = s.try_clone().unwrap();
    closed_by_engine(s, |t| c.set_read_timeout(t).unwrap(), within)
}

/// Whether the engine has closed `s` already (non-blocking look).
fn gone(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = (&*s).read(&mut b);
    s.set_nonblocking(false).unwrap();
    match r {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

fn frame(flags: u8, op: Op, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    let mut h = FrameHeader::request(op, 1, payload.len() as u32);
    h.flags = flags;
    h.push(&mut f);
    f.extend_from_slice(payload);
    f
}

fn hello_frame() -> Vec<u8> {
    let hs = qtfs_proto::handshake::ClientHandshake::new(None, true, consts::feat::ALL, None);
    let mut f = Vec::new();
    push_frame(&mut f, FrameHeader::request(Op::HELLO, 1, 0), &hs.hello("avail"));
    f
}

/// Frames without the REQUEST flag, sent before the handshake completed (the first
/// three after a valid HELLO). Each closes its connection and nothing else.
fn unauthenticated_non_requests() -> Vec<(&'static str, bool, Vec<u8>)> {
    vec![
        ("PING, flags 0", false, frame(0, Op::PING, b"")),
        ("PING, flags 0, with payload", false, frame(0, Op::PING, b"0123456789")),
        ("HELLO as a response", false, frame(flags::RESPONSE, Op::HELLO, b"")),
        ("ATTACH, flags 0", false, frame(0, Op::ATTACH, &[0; 56])),
        ("CHAN_DATA message", false, frame(0, Op::CHAN_DATA, b"data")),
        ("unknown op, MORE", false, frame(flags::MORE, Op::PING, b"")),
        ("after HELLO: PING, flags 0", true, frame(0, Op::PING, b"")),
        ("after HELLO: ATTACH as a response", true, frame(flags::RESPONSE | flags::ERROR, Op::ATTACH, b"")),
        ("after HELLO: GETATTR message", true, frame(0, Op::GETATTR, b"")),
    ]
}

fn check_unauthenticated_frames(e: &mut TestEngine, unix: Option<&std::path::Path>) {
    let (good, ex) = e.mounted(1);
    for (what, after_hello, f) in unauthenticated_non_requests() {
        let mut bytes = if after_hello { hello_frame() } else { Vec::new() };
        bytes.extend_from_slice(&f);
        let closed = match unix {
            None => {
                let mut s = TcpStream::connect(e.tcp_addr()).unwrap();
                s.write_all(&bytes).unwrap();
                tcp_closed(&mut s, Duration::from_secs(5))
            }
            Some(p) => {
                let mut s = UnixStream::connect(p).unwrap();
                s.write_all(&bytes).unwrap();
                unix_closed(&mut s, Duration::from_secs(5))
            }
        };
        assert!(closed, "{what}: the connection is closed");
        assert!(e.alive(), "{what}: the engine died");
        assert!(good.getattr(ex, b"", false, &Cred::root()).is_ok(), "{what}: a healthy client is still served");
    }
}

#[test]
fn unauthenticated_non_requests_close_only_their_connection() {
    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    for psk in [None, Some(KEY.to_string())] {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("engine.sock");
        let mut e = TestEngine::start(Opts {
            insecure: psk.is_none(),
            psk: psk.clone(),
            extra_args: vec!["--listen".into(), format!("unix:{}", sock.display())],
            ..Default::default()
        });
        check_unauthenticated_frames(&mut e, None);
        check_unauthenticated_frames(&mut e, Some(&sock));
    }
}

#[test]
fn requests_left_pending_by_a_closed_connection_are_cancelled() {
    let e = TestEngine::start(Opts::args(&["--session-grace", "1"]));
    let root = Cred::root();
    let (probe, pex) = e.mounted(1);
    probe.mknod(pex, b"fifo", libc::S_IFIFO | 0o666, 0, 0, 0, &root).unwrap();
    probe.getattr(pex, b"fifo", false, &root).unwrap();
    let fds0 = e.fd_count();
    assert_eq!(e.admin_counts().0, 1);
    const CLIENTS: usize = 100;
    let mut left = Vec::new();
    for _ in 0..CLIENTS {
        let (s, ex) = e.mounted(1);
        // Read-write on a FIFO never blocks the open and is its own writer: a READ
        // then waits for data that never comes.
        let (h, _) = s.open(ex, b"fifo", open::RDWR, 0, &root).unwrap();
        let p = s.submit(Op::READ, &ReadReq { handle: h, offset: 0, len: 16 }).unwrap();
        left.push((s, p));
    }
    let fds_busy = e.fd_count();
    assert!(fds_busy >= fds0 + 3 * CLIENTS, "socket, export and FIFO per client: {fds0} → {fds_busy}");
    for (s, p) in left {
        s.close();
        drop(p);
    }
    let t0 = Instant::now();
    let back = wait_until(Duration::from_secs(5), || e.fd_count() <= fds0 && e.admin_counts().0 == 1);
    let (sessions, conns) = e.admin_counts();
    eprintln!(
        "pending READs: fds {fds0} → {fds_busy} → {} after {:?}; sessions {sessions}, connections {conns}",
        e.fd_count(),
        t0.elapsed()
    );
    assert!(back, "descriptors and sessions released: fds {} (baseline {fds0}), sessions {sessions}", e.fd_count());
    assert_eq!(probe.getattr(pex, b"fifo", false, &root).unwrap().mode & libc::S_IFMT, libc::S_IFIFO);
}

#[test]
fn handshake_frames_larger_than_a_handshake_close_the_connection() {
    let e = TestEngine::start(Opts::default());
    let (good, ex) = e.mounted(1);
    // A HELLO announcing 600 bytes (a real one is at most ~300): closed at the header,
    // without waiting for (or buffering) the payload.
    let mut s = TcpStream::connect(e.tcp_addr()).unwrap();
    let mut h = FrameHeader::request(Op::HELLO, 1, 600);
    h.len = 600;
    s.write_all(&h.encode()).unwrap();
    assert!(tcp_closed(&mut s, Duration::from_secs(3)), "oversized HELLO");
    // The same for ATTACH after a valid HELLO.
    let mut s = TcpStream::connect(e.tcp_addr()).unwrap();
    let mut b = hello_frame();
    b.extend_from_slice(&FrameHeader::request(Op::ATTACH, 2, 100_000).encode());
    s.write_all(&b).unwrap();
    assert!(tcp_closed(&mut s, Duration::from_secs(3)), "oversized ATTACH");
    // A HELLO with the longest client name still passes, and after ATTACH large frames
    // are fine.
    let mut cfg = e.config();
    cfg.name = "n".repeat(255);
    let s = qtfs_client::Session::connect(cfg, 1).unwrap();
    let big = vec![7u8; 512 * 1024];
    assert_eq!(s.ping(&big).unwrap().len(), big.len());
    assert!(good.getattr(ex, b"", false, &Cred::root()).is_ok());
}

#[test]
fn connections_that_do_not_finish_the_handshake_are_closed() {
    let e = TestEngine::start(Opts::default());
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(e.tcp_addr()).unwrap();
    let mut half = TcpStream::connect(e.tcp_addr()).unwrap();
    half.write_all(&hello_frame()).unwrap();
    let (attached, ex) = e.mounted(1);
    assert!(tcp_closed(&mut silent, Duration::from_secs(14)), "a silent connection is closed");
    assert!(tcp_closed(&mut half, Duration::from_secs(14)), "a connection stuck after HELLO is closed");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_secs(9), "not before the timeout: {waited:?}");
    // An attached connection idle as long is kept.
    assert!(attached.getattr(ex, b"", false, &Cred::root()).is_ok());
}

#[test]
fn unauthenticated_connections_are_bounded_per_peer_and_in_total() {
    let e = TestEngine::start(Opts::default());
    let (good, ex) = e.mounted(1);
    let dst = e.tcp_addr();
    // Per peer: 64 wait for their handshake, the rest are closed at accept.
    let one: Vec<TcpStream> = (0..100).map(|_| connect_tcp_from(Ipv4Addr::new(127, 0, 0, 1), dst).unwrap()).collect();
    assert!(wait_until(Duration::from_secs(5), || one.iter().filter(|s| gone(s)).count() == 36), "36 of 100 refused");
    let mut admitted: Vec<TcpStream> = one.into_iter().filter(|s| !gone(s)).collect();
    assert_eq!(admitted.len(), 64);
    // Those admitted can authenticate, which gives their places back.
    for s in &mut admitted {
        raw_handshake(s, None).unwrap();
    }
    let mut again = connect_tcp_from(Ipv4Addr::new(127, 0, 0, 1), dst).unwrap();
    raw_handshake(&mut again, None).unwrap();
    drop((admitted, again));

    // In total: 1,200 connections from 20 addresses, 1,024 admitted.
    let many: Vec<TcpStream> =
        (0..1200).map(|i| connect_tcp_from(Ipv4Addr::new(127, 0, 1, 1 + (i % 20) as u8), dst).unwrap()).collect();
    assert!(
        wait_until(Duration::from_secs(5), || many.iter().filter(|s| gone(s)).count() == 1200 - 1024),
        "176 of 1,200 refused, got {}",
        many.iter().filter(|s| gone(s)).count()
    );
    let mut admitted: Vec<TcpStream> = many.into_iter().filter(|s| !gone(s)).collect();
    assert_eq!(admitted.len(), 1024);
    for s in admitted.iter_mut().step_by(16) {
        raw_handshake(s, None).unwrap();
    }
    assert!(good.getattr(ex, b"", false, &Cred::root()).is_ok(), "an attached client is served throughout");
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// An engine with an attached client (that must stay served through what follows), and
/// the engine's RSS and descriptor count with that client attached.
fn engine_with_a_client() -> (TestEngine, (Session, u32), (u64, usize)) {
    let e = TestEngine::start(Opts::default());
    let (good, ex) = e.mounted(1);
    good.getattr(ex, b"", false, &Cred::root()).unwrap();
    let base = (e.rss_bytes(), e.fd_count());
    (e, (good, ex), base)
}

/// Once the load is gone: within 5 s the engine's RSS is back under 2 × `rss0` + 16 MiB and
/// its descriptors at `fds0` (printed after `figures`, the load's own), and `good` (a
/// session with export `ex`) is still served.
fn assert_resources_come_back(e: &TestEngine, (good, ex): (&Session, u32), (rss0, fds0): (u64, usize), figures: &str) {
    let limit = 2 * rss0 + (16 << 20);
    let t0 = Instant::now();
    let back = wait_until(Duration::from_secs(5), || e.rss_bytes() <= limit && e.fd_count() <= fds0);
    eprintln!(
        "{figures}; then RSS {:.1} MiB after {:?} (limit {:.1}), fds {}",
        mib(e.rss_bytes()),
        t0.elapsed(),
        mib(limit),
        e.fd_count()
    );
    assert!(
        back,
        "RSS {:.1} MiB (limit {:.1}), fds {} (baseline {fds0})",
        mib(e.rss_bytes()),
        mib(limit),
        e.fd_count()
    );
    assert!(good.getattr(ex, b"", false, &Cred::root()).is_ok());
}

#[test]
fn memory_and_descriptors_come_back_after_a_pre_auth_flood() {
    let (e, (good, ex), (rss0, fds0)) = engine_with_a_client();
    let dst = e.tcp_addr();
    // 2,000 connections from 32 addresses, each announcing a 1 MiB HELLO and sending
    // 256 KiB of it.
    let chunk = vec![0x5au8; 256 * 1024];
    let mut head = FrameHeader::request(Op::HELLO, 1, 0).encode();
    head[12..16].copy_from_slice(&(1u32 << 20).to_le_bytes());
    let mut flood = Vec::new();
    let mut peak = rss0;
    for i in 0..2000usize {
        let Ok(mut s) = connect_tcp_from(Ipv4Addr::new(127, 0, 2, 1 + (i % 32) as u8), dst) else { continue };
        s.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
        let _ = s.write_all(&head).and_then(|_| s.write_all(&chunk));
        flood.push(s);
        if i % 100 == 99 {
            peak = peak.max(e.rss_bytes());
        }
    }
    peak = peak.max(e.rss_bytes());
    let (rss_busy, fds_busy) = (e.rss_bytes(), e.fd_count());
    drop(flood);
    let figures = format!(
        "pre-auth flood: RSS {:.1} MiB → peak {:.1} (at end {:.1}), fds {fds0} → {fds_busy}",
        mib(rss0),
        mib(peak),
        mib(rss_busy)
    );
    assert!(peak < rss0 + (64 << 20), "the flood never got big frames buffered: peak {:.1} MiB", mib(peak));
    assert_resources_come_back(&e, (&good, ex), (rss0, fds0), &figures);
}

#[test]
fn memory_comes_back_after_attached_clients_leave_large_frames_half_sent() {
    let (e, (good, ex), (rss0, fds0)) = engine_with_a_client();
    // 300 authenticated clients each start a 1 MiB PING and send 900 KiB of it: the
    // engine must buffer those (they are legal), and give the memory back once the
    // clients are gone.
    let chunk = vec![0x5au8; 900 * 1024];
    let mut head = FrameHeader::request(Op::PING, 9, 0).encode();
    head[12..16].copy_from_slice(&(1u32 << 20).to_le_bytes());
    let mut clients = Vec::new();
    for i in 0..300usize {
        let mut s = connect_tcp_from(Ipv4Addr::new(127, 0, 3, 1 + (i % 8) as u8), e.tcp_addr()).unwrap();
        raw_handshake(&mut s, None).unwrap();
        s.write_all(&head).unwrap();
        s.write_all(&chunk).unwrap();
        clients.push(s);
    }
    assert!(wait_until(Duration::from_secs(10), || e.rss_bytes() > rss0 + (200 << 20)), "the frames are buffered");
    let busy = e.rss_bytes();
    drop(clients);
    let figures = format!("half-sent 1 MiB frames: RSS {:.1} MiB → {:.1}, fds {fds0}", mib(rss0), mib(busy));
    assert_resources_come_back(&e, (&good, ex), (rss0, fds0), &figures);
}
