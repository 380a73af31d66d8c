//! Resource limits against one authenticated but hostile peer: blocking operations,
//! descriptors, channel memory and disk space. Each test has a victim client whose
//! service must stay within bounds while an attacker tries to exhaust something.

use std::time::{Duration, Instant};

use qtfs_client::{Cred, Session};
use qtfs_proto::consts::open;
use qtfs_proto::*;
use qtfs_testkit::*;

/// A session whose requests give up after `timeout` (a hung request fails the test
/// instead of hanging it).
fn session_with_timeout(e: &TestEngine, timeout: Duration) -> (Session, u32) {
    let mut cfg = e.config();
    cfg.request_timeout = Some(timeout);
    let s = Session::connect(cfg, 1).unwrap();
    let (ex, _) = s.mount(e.export.to_str().unwrap(), &Cred::root()).unwrap();
    (s, ex)
}

/// Requests in flight on the connections of session `sid` (admin socket).
fn inflight_of(e: &TestEngine, sid: u64) -> u32 {
    let mut a = qtfs_client::AdminClient::connect(&e.admin).unwrap();
    let r = a.call(Op::ADMIN_CONNS, &Empty {}).unwrap();
    let conns = r.decode::<ConnsRsp>().unwrap();
    RecordIter::<ConnInfo>::new(conns.records.0)
        .filter_map(|c| c.ok())
        .filter(|c| c.session == sid)
        .map(|c| c.inflight)
        .sum()
}

/// Waits until `n` requests of session `s` are in flight in the engine.
fn await_inflight(e: &TestEngine, s: &Session, n: u32) {
    assert!(
        wait_until(Duration::from_secs(10), || inflight_of(e, s.session_id()) >= n),
        "{n} requests never in flight"
    );
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

/// CREATE + WRITE + FSYNC + CLOSE and two uncached LOOKUPs, each timed; fails on any
/// error (a hung request times out).
fn victim_round(s: &Session, ex: u32, tag: &str, n: usize) -> Vec<Duration> {
    let root = Cred::root();
    let mut lat = Vec::new();
    for i in 0..n {
        let name = format!("{tag}-{i}");
        let t = Instant::now();
        let (h, _) = s.create(ex, name.as_bytes(), open::RDWR, 0o644, 0, true, &root).unwrap();
        lat.push(t.elapsed());
        s.write(h, 0, b"data").unwrap();
        let t = Instant::now();
        s.fsync(h, false).unwrap();
        lat.push(t.elapsed());
        s.close_handle(h).unwrap();
        for p in [format!("nodir-{tag}-{i}/x"), format!("{name}-missing")] {
            let t = Instant::now();
            assert!(s.lookup(ex, p.as_bytes(), &root).is_err());
            lat.push(t.elapsed());
        }
    }
    lat
}

fn open_req(ex: u32, path: &'static [u8], flags: u32) -> OpenReq<'static> {
    OpenReq { ctx: ReqCtx { export: ex, uid: 0, gid: 0 }, flags, mode: 0, groups: Groups::EMPTY, path: Path(path) }
}

/// 32 opens of FIFOs without the other end (16 read ends, 16 write ends) used to occupy
/// every io_uring worker of the core, so that other clients' CREATE, fsync and uncached
/// walks hung, even after the attacker left.
#[test]
fn fifo_opens_without_the_other_end_do_not_starve_the_core() {
    let e = TestEngine::start(Opts { cores: 1, ..Default::default() });
    let root = Cred::root();
    let (att, aex) = e.mounted(1);
    att.mknod(aex, b"rfifo", libc::S_IFIFO | 0o666, 0, 0, 0, &root).unwrap();
    att.mknod(aex, b"wfifo", libc::S_IFIFO | 0o666, 0, 0, 0, &root).unwrap();
    let mut pending = Vec::new();
    for _ in 0..16 {
        pending.push(att.submit(Op::OPEN, &open_req(aex, b"rfifo", open::RDONLY)).unwrap());
        pending.push(att.submit(Op::OPEN, &open_req(aex, b"wfifo", open::WRONLY)).unwrap());
    }
    await_inflight(&e, &att, 32);
    let (v, vex) = session_with_timeout(&e, Duration::from_secs(5));
    // Attack and victim together (the victim's connection and export hold descriptors too).
    let fds_both = e.fd_count();
    let lat = victim_round(&v, vex, "during", 25);
    let p = p99(lat.clone());
    eprintln!("during the attack: {} ops, p99 {p:?}, max {:?}", lat.len(), lat.iter().max().unwrap());
    assert!(p < Duration::from_secs(1), "p99 {p:?} while 32 FIFO opens wait");

    // The waiting opens are still waiting (blocking semantics), not failed.
    assert_eq!(inflight_of(&e, att.session_id()), 32);
    // The attacker leaves: its waiting opens are cancelled and their descriptors closed.
    att.close();
    drop(pending);
    assert!(
        wait_until(Duration::from_secs(10), || e.admin_counts().1 == 1),
        "attacker's connection gone: {:?}",
        e.admin_counts()
    );
    // At least the 16 read ends opened (non-blocking) and waiting for a writer go away.
    assert!(
        wait_until(Duration::from_secs(10), || e.fd_count() + 16 <= fds_both),
        "descriptors of the waiting opens released: {} then {}",
        fds_both,
        e.fd_count()
    );
    let lat = victim_round(&v, vex, "after", 25);
    let p = p99(lat);
    eprintln!("after the attack: p99 {p:?}");
    assert!(p < Duration::from_secs(1), "p99 {p:?} after the attacker left");
}

/// Blocking opens of a FIFO keep their meaning: a read end returns once a writer opens,
/// a write end once a reader opens, and data flows, all without a worker thread.
#[test]
fn blocking_fifo_opens_wait_for_the_other_end() {
    let e = TestEngine::start(Opts { cores: 1, ..Default::default() });
    let root = Cred::root();
    let (s, ex) = e.mounted(1);
    let (s2, ex2) = e.mounted(1);
    s.mknod(ex, b"f", libc::S_IFIFO | 0o666, 0, 0, 0, &root).unwrap();

    // Write end first: waits for a reader.
    let w = s.submit(Op::OPEN, &open_req(ex, b"f", open::WRONLY)).unwrap();
    await_inflight(&e, &s, 1);
    assert!(s2.getattr(ex2, b"f", false, &root).is_ok(), "others served meanwhile");
    let (r, _) = s2.open(ex2, b"f", open::RDONLY, 0, &root).unwrap();
    let w = w.wait().unwrap().decode::<OpenRsp>().unwrap().handle;
    // A blocking READ on the empty FIFO waits (POLL_ADD), then gets the data.
    let pending = s2.submit(Op::READ, &ReadReq { handle: r, offset: 0, len: 16 }).unwrap();
    assert_eq!(s.write(w, 0, b"hello").unwrap(), 5);
    assert_eq!(pending.wait().unwrap().payload, b"hello");
    // A large blocking WRITE (beyond the pipe's 64 KiB) completes once read.
    let big = vec![7u8; 200_000];
    let pw = s.submit(Op::WRITE, &WriteReq { handle: w, offset: 0, flags: 0, data: Rest(&big) }).unwrap();
    let mut got = 0;
    while got < big.len() {
        got += s2.read(r, 0, 65536).unwrap().len();
    }
    assert_eq!(pw.wait().unwrap().decode::<WriteRsp>().unwrap().written as usize, big.len());
    s.close_handle(w).unwrap();
    // No writer left: EOF.
    assert!(s2.read(r, 0, 16).unwrap().is_empty());
    s2.close_handle(r).unwrap();

    // Read end first: waits for a writer.
    let rd = s.submit(Op::OPEN, &open_req(ex, b"f", open::RDONLY)).unwrap();
    await_inflight(&e, &s, 1);
    let (w2, _) = s2.open(ex2, b"f", open::WRONLY | open::NONBLOCK, 0, &root).unwrap();
    let rd = rd.wait().unwrap().decode::<OpenRsp>().unwrap().handle;
    // Non-blocking handles report EAGAIN instead of waiting.
    let (rn, _) = s2.open(ex2, b"f", open::RDONLY | open::NONBLOCK, 0, &root).unwrap();
    assert_eq!(s2.read(rn, 0, 4).unwrap_err().errno(), libc::EAGAIN);
    s2.write(w2, 0, b"x").unwrap();
    assert_eq!(s.read(rd, 0, 4).unwrap(), b"x");
    // A non-blocking write end without a reader: ENXIO at once.
    s.mknod(ex, b"g", libc::S_IFIFO | 0o666, 0, 0, 0, &root).unwrap();
    assert_eq!(s.open(ex, b"g", open::WRONLY | open::NONBLOCK, 0, &root).unwrap_err().errno(), libc::ENXIO);
}

/// Lowers this test process's RLIMIT_NOFILE (soft and hard, inherited by the engines it
/// starts, which raise the soft limit to the hard one) to `n`, once.
fn nofile_limit(n: u64) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let r = libc::rlimit { rlim_cur: n, rlim_max: n };
        // SAFETY: setrlimit with a valid rlimit on our own process.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
    });
}

/// Opens `f` until the engine refuses; returns the handles and the error.
fn open_until_refused(s: &Session, ex: u32, max: usize) -> (Vec<u64>, i32) {
    let mut hs = Vec::new();
    for _ in 0..max {
        match s.open(ex, b"f", open::RDONLY, 0, &Cred::root()) {
            Ok((h, _)) => hs.push(h),
            Err(e) => return (hs, e.errno()),
        }
    }
    (hs, 0)
}

/// One connection opening files without end used to take every descriptor of the
/// engine (its --max-handles, 65,536, was above RLIMIT_NOFILE), so every other client
/// got EMFILE. Now a session gets a quarter of the limit, and handles of all sessions
/// together leave a reserve for connections and path walks.
#[test]
fn one_session_cannot_take_every_descriptor() {
    nofile_limit(2048); // reserve 256 (1/16, at least 256), a session 512
    let e = TestEngine::start(Opts { cores: 1, ..Default::default() });
    let root = Cred::root();
    std::fs::write(e.path("f"), b"x").unwrap();
    let (a, aex) = e.mounted(1);
    let (hs, err) = open_until_refused(&a, aex, 4000);
    eprintln!("one session: {} handles, then errno {err}; engine fds {}", hs.len(), e.fd_count());
    assert_eq!((hs.len(), err), (512, libc::EMFILE), "a session holds a quarter of the limit");
    // Another client is unaffected.
    let (v, vex) = e.mounted(1);
    let (vh, verr) = open_until_refused(&v, vex, 100);
    assert_eq!((vh.len(), verr), (100, 0));
    for h in vh {
        v.close_handle(h).unwrap();
    }
    // Three more greedy sessions: handles stop at the reserve, and still a new client
    // connects, mounts and walks paths.
    let more: Vec<_> = (0..3).map(|_| e.mounted(1)).collect();
    let mut total = hs.len();
    let mut last_err = 0;
    for (s, ex) in &more {
        let (h, err) = open_until_refused(s, *ex, 4000);
        total += h.len();
        last_err = err;
        std::mem::forget(h);
    }
    eprintln!("four sessions: {total} handles; engine fds {} of 2048", e.fd_count());
    assert_eq!(last_err, libc::EMFILE);
    assert!(total <= 2048 - 256, "{total} handles leave the reserve");
    assert!(e.fd_count() <= 2048 - 128, "{} descriptors in use", e.fd_count());
    let (n, nex) = e.mounted(1);
    assert!(n.getattr(nex, b"f", false, &root).is_ok());
    n.create(nex, b"new", open::RDWR, 0o644, 0, true, &root).map(|_| ()).unwrap_or_else(|e| {
        assert_eq!(e.errno(), libc::EMFILE, "only handles are refused");
    });
    assert!(n.readdir_all(nex, b"", false, &root).unwrap().len() >= 2);
    // Handles closed: room again.
    for h in hs {
        a.close_handle(h).unwrap();
    }
    let (vh, verr) = open_until_refused(&v, vex, 100);
    assert_eq!((vh.len(), verr), (100, 0));
}

/// Sessions per peer are bounded (--max-sessions-per-peer); an expired one frees its place.
#[test]
fn sessions_per_peer_are_bounded() {
    let e =
        TestEngine::start(Opts { cores: 1, ..Opts::args(&["--max-sessions-per-peer", "3", "--session-grace", "0.2"]) });
    let s: Vec<_> = (0..3).map(|_| e.session(1)).collect();
    let Err(err) = Session::connect(e.config(), 1) else { panic!("a fourth session is refused") };
    eprintln!("fourth session: {err}");
    // The log is read by another thread: the line may arrive after the refusal.
    assert!(wait_until(Duration::from_secs(5), || e.log_contains("too many sessions")));
    // A resumed session is not a new one.
    let (sid, tok) = s[0].resume_info();
    let c = qtfs_client::Connection::open(&e.config(), Some((sid, tok))).unwrap();
    assert!(c.agreed.resumed);
    drop(c);
    // A session without connections makes room at once (ended before its grace period),
    // so a client that reconnects without resuming never locks itself out.
    s[1].close();
    assert!(wait_until(Duration::from_secs(10), || e.admin_counts().1 == 2));
    for _ in 0..10 {
        Session::connect(e.config(), 1).unwrap().close();
    }
}

/// A client with [Write] filled the HOST's disk with FALLOCATE. With --min-free, growth
/// stops with ENOSPC at the floor; overwrites, shrinking and other files' reads go on.
#[test]
fn min_free_keeps_a_floor_on_the_export() {
    let e = TestEngine::start(Opts {
        cores: 1,
        tmpfs: true, // 64 MiB
        extra_args: vec!["--min-free".into(), "25%".into()],
        ..Default::default()
    });
    let root = Cred::root();
    let (s, ex, h) = e.mounted_file(1, "big");
    let enospc = |r: Result<(), qtfs_client::ClientError>| r.unwrap_err().errno() == libc::ENOSPC;
    assert!(enospc(s.fallocate(h, 0, 0, 60 << 20)), "FALLOCATE past the floor");
    s.fallocate(h, 0, 0, 20 << 20).unwrap();
    assert!(enospc(
        s.fsetattr(h, &qtfs_client::SetAttr { size: Some(1 << 40), ..Default::default() }, &root).map(|_| ())
    ));
    // Appending writes stop at the floor (16 MiB of 64 MiB).
    let chunk = vec![1u8; 1 << 20];
    let mut off = 20u64 << 20;
    let err = loop {
        match s.write(h, off, &chunk) {
            Ok(n) => off += n as u64,
            Err(e) => break e.errno(),
        }
        assert!(off < 64 << 20, "never refused");
    };
    assert_eq!(err, libc::ENOSPC);
    let free = {
        let st = nix_statvfs(&e.export);
        st.0
    };
    eprintln!("refused at {} MiB written; {} MiB free of 64", off >> 20, free >> 20);
    assert!(free >= 15 << 20, "the floor holds: {free} bytes free");
    // Rewriting existing bytes and shrinking still work.
    assert_eq!(s.write(h, 0, &chunk).unwrap() as usize, chunk.len());
    s.fsetattr(h, &qtfs_client::SetAttr { size: Some(1 << 20), ..Default::default() }, &root).unwrap();
    assert!(
        s.setattr(ex, b"big", &qtfs_client::SetAttr { size: Some(100 << 20), ..Default::default() }, &root).is_err()
    );
    s.fallocate(h, 0, 0, 8 << 20).unwrap();
}

/// (available, total) bytes of the file system holding `p`.
fn nix_statvfs(p: &std::path::Path) -> (u64, u64) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs is plain data; the path is NUL-terminated.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    (s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize)
}

/// CHAN_OPEN of a stream channel to `path` as root, with a 1 MiB window.
fn stream_open_req(path: &[u8]) -> ChanOpenReq<'_> {
    ChanOpenReq {
        kind: qtfs_proto::consts::CHAN_STREAM,
        credit: 1 << 20,
        listener: 0,
        uid: 0,
        gid: 0,
        groups: Groups::EMPTY,
        path: Path(path),
    }
}

fn chan_open(s: &Session, id: u32, path: &[u8]) -> Result<u32, i32> {
    let m = stream_open_req(path);
    match s.submit_on_channel(0, Op::CHAN_OPEN, id, &m).unwrap().wait() {
        Ok(r) => Ok(r.decode::<ChanAccept>().unwrap().credit),
        Err(e) => Err(e.errno()),
    }
}

/// Channels per session were unbounded: --max-channels refuses one more with EMFILE,
/// per session (a second connection of the session shares the count).
#[test]
fn channels_per_session_are_bounded() {
    let e = TestEngine::start(Opts { cores: 1, ..Opts::args(&["--max-channels", "4"]) });
    let sock = e.path("srv.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let p = sock.as_os_str().as_encoded_bytes().to_vec();
    let s = e.session(1);
    for id in 1..=4 {
        chan_open(&s, id, &p).unwrap();
    }
    assert_eq!(chan_open(&s, 5, &p), Err(libc::EMFILE));
    // Closing one makes room.
    s.conn(0).send(FrameHeader::message(Op::CHAN_CLOSE, 1, 0), &[]).unwrap();
    assert!(wait_until(Duration::from_secs(5), || chan_open(&s, 6, &p).is_ok()));
    // Another session has its own.
    let s2 = e.session(1);
    chan_open(&s2, 1, &p).unwrap();
}

/// Frames the engine sends on a raw connection, read and dropped until it closes (so
/// that its credit and close messages never back up).
fn drain_frames(mut s: std::net::TcpStream) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        while let Ok(Some(_)) = qtfs_client::read_frame(&mut s, &mut buf, MAX_PAYLOAD) {}
    })
}

/// A peer that ignores channel credit, or fills the windows of many channels at once,
/// used to make the engine queue without bound (each channel holds up to its 1 MiB
/// window, 4096 channels a session): the engine withheld credit but kept reading.
/// Now it stops reading the connection once the session's channels hold
/// --channel-buffer-budget, and memory comes back when the peer leaves; another
/// client is served throughout.
#[test]
fn a_channel_flood_is_held_to_the_buffer_budget() {
    use std::io::Write;
    const BUDGET: u64 = 8 << 20;
    const CHANS: u32 = 96;
    const CHUNK: usize = 128 << 10;
    let e = TestEngine::start(Opts {
        cores: 1,
        log_level: "INFO",
        extra_args: vec!["--channel-buffer-budget".into(), BUDGET.to_string()],
        ..Default::default()
    });
    // A HOST server that accepts every connection and never reads.
    let sock = e.path("flood.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = held.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            h2.lock().unwrap().push(c);
        }
    });
    let (v, vex) = session_with_timeout(&e, Duration::from_secs(5));
    let root = Cred::root();
    v.getattr(vex, b"", false, &root).unwrap();

    // The attacker: a raw connection, CHAN_OPEN for every channel first (all under
    // budget), then 1 MiB (the window) and 1 MiB more (beyond it) on each.
    let mut s = std::net::TcpStream::connect(e.tcp_addr()).unwrap();
    raw_handshake(&mut s, None).unwrap();
    let path = sock.as_os_str().as_encoded_bytes().to_vec();
    let mut out = Vec::new();
    for id in 1..=CHANS {
        let m = stream_open_req(&path);
        let mut h = FrameHeader::request(Op::CHAN_OPEN, id as u64, 0);
        h.channel = id;
        push_frame(&mut out, h, &m);
    }
    s.write_all(&out).unwrap();
    let mut buf = Vec::new();
    for _ in 0..CHANS {
        let h = qtfs_client::read_frame(&mut s, &mut buf, MAX_PAYLOAD).unwrap().unwrap();
        assert!(!h.is_error(), "CHAN_OPEN refused: {}", h.status);
    }
    assert!(wait_until(Duration::from_secs(10), || held.lock().unwrap().len() == CHANS as usize));
    let reader = drain_frames(s.try_clone().unwrap());
    let base = e.rss_bytes();

    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; CHUNK];
        let mut frame = Vec::with_capacity(CHUNK + HEADER_SIZE);
        let mut sent = 0u64;
        for _round in 0..2 {
            for id in 1..=CHANS {
                for _ in 0..(1 << 20) / CHUNK {
                    frame.clear();
                    FrameHeader::message(Op::CHAN_DATA, id, CHUNK as u32).push(&mut frame);
                    frame.extend_from_slice(&chunk);
                    if w.write_all(&frame).is_err() {
                        // Stalled: the engine stopped reading (or closed).
                        return sent;
                    }
                    sent += CHUNK as u64;
                }
            }
        }
        sent
    });
    let mut peak = 0u64;
    let mut worst = Duration::ZERO;
    while !writer.is_finished() {
        peak = peak.max(e.rss_bytes());
        let t = Instant::now();
        v.getattr(vex, b"", false, &root).unwrap();
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = writer.join().unwrap();
    peak = peak.max(e.rss_bytes());
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "flood: {:.0} MiB sent on {CHANS} channels; engine RSS {:.1} MiB before, peak {:.1} MiB (budget {:.0} MiB); \
         other client's worst GETATTR {worst:?}",
        mib(sent),
        mib(base),
        mib(peak),
        mib(BUDGET)
    );
    assert!(
        peak <= base + BUDGET + (24 << 20),
        "engine RSS {:.1} MiB during the flood, {:.1} MiB before, budget {:.0} MiB",
        mib(peak),
        mib(base),
        mib(BUDGET)
    );
    assert!(e.log_contains("not reading this connection"), "the flood was held back by stopping reads");
    assert!(worst < Duration::from_secs(1), "another client waited {worst:?}");

    // The attacker leaves: its queued bytes are freed and given back.
    let _ = s.shutdown(std::net::Shutdown::Both);
    drop(s);
    reader.join().unwrap();
    let t = Instant::now();
    let back = wait_until(Duration::from_secs(5), || e.rss_bytes() <= 2 * base + (16 << 20));
    eprintln!("after the flood: RSS {:.1} MiB after {:?}", mib(e.rss_bytes()), t.elapsed());
    assert!(back, "RSS {:.1} MiB 5 s after the flood (baseline {:.1} MiB)", mib(e.rss_bytes()), mib(base));
    v.getattr(vex, b"", false, &root).unwrap();
    // The session's budget is free again: a new attacker connection opens channels.
    let s2 = e.session(1);
    assert!(wait_until(Duration::from_secs(5), || chan_open(&s2, 1, &path).is_ok()));
}

/// A FUSE mount whose server never answers INIT: every lookup below it waits (in the
/// io-wq worker that runs it) until the device is closed, like a hung network file
/// system below an export.
struct HungFuse {
    dir: std::path::PathBuf,
    dev: Option<std::fs::File>,
}

impl HungFuse {
    fn mount(dir: &std::path::Path) -> HungFuse {
        use std::os::fd::AsRawFd;
        std::fs::create_dir(dir).unwrap();
        let dev = std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").unwrap();
        let c = |s: &[u8]| std::ffi::CString::new(s).unwrap();
        let opts = c(format!("fd={},rootmode=40000,user_id=0,group_id=0", dev.as_raw_fd()).as_bytes());
        let (src, target, fstype) = (c(b"hung"), c(dir.as_os_str().as_encoded_bytes()), c(b"fuse"));
        // SAFETY: mount(2) with NUL-terminated strings that outlive the call.
        let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, opts.as_ptr().cast()) };
        assert_eq!(rc, 0, "mount fuse: {}", std::io::Error::last_os_error());
        HungFuse { dir: dir.to_path_buf(), dev: Some(dev) }
    }
}

impl Drop for HungFuse {
    fn drop(&mut self) {
        // Closing the device aborts the connection: every waiting request fails.
        drop(self.dev.take());
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Blocking operations of one peer used to be able to occupy every io_uring worker of
/// a core (8 on 2 CPUs), so that other clients' CREATE and fsync hung. Now each ring's
/// pool is bounded explicitly and one session may have at most half of it busy; its
/// further blocking steps wait in the engine, not in the kernel's queue.
#[test]
fn one_session_cannot_take_every_io_worker() {
    let e = TestEngine::start(Opts { cores: 1, log_level: "INFO", ..Default::default() });
    let hung = HungFuse::mount(&e.path("hung"));
    let (att, aex) = e.mounted(1);
    let mut pending = Vec::new();
    for i in 0..64 {
        let p: &'static [u8] = Box::leak(format!("hung/x{i}").into_bytes().into_boxed_slice());
        pending.push(att.submit(Op::OPEN, &open_req(aex, p, open::RDONLY)).unwrap());
    }
    await_inflight(&e, &att, 64);
    let (v, vex) = session_with_timeout(&e, Duration::from_secs(5));
    let lat = victim_round(&v, vex, "hung", 10);
    let p = p99(lat.clone());
    eprintln!(
        "64 opens hung below a FUSE mount: another session's {} ops, p99 {p:?}, max {:?}",
        lat.len(),
        lat.iter().max().unwrap()
    );
    assert!(p < Duration::from_secs(1), "p99 {p:?} while one session's opens hang");
    assert_eq!(inflight_of(&e, att.session_id()), 64, "the hung opens are still waiting");
    // The file system comes back (here: fails): every waiting open is answered.
    drop(hung);
    for r in pending {
        assert!(r.wait().is_err());
    }
    assert_eq!(inflight_of(&e, att.session_id()), 0);
    victim_round(&v, vex, "after", 3);
}
