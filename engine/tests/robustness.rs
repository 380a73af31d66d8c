//! Bad frames, vanishing clients, blocking operations, shutdown and single-instance.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use qtfs_client::{Connection, Cred};
use qtfs_proto::consts::open;
use qtfs_proto::*;
use qtfs_testkit::*;

/// A raw, handshaken TCP connection (insecure test mode).
fn raw(e: &TestEngine) -> TcpStream {
    let c = Connection::open(&e.config(), None).unwrap();
    TcpStream::from(c.stream.into_fd())
}

fn read_response(s: &mut TcpStream) -> Option<(FrameHeader, Vec<u8>)> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hb = [0u8; HEADER_SIZE];
    s.read_exact(&mut hb).ok()?;
    let h = FrameHeader::decode(&hb, MAX_PAYLOAD).unwrap();
    let mut p = vec![0u8; h.len as usize];
    s.read_exact(&mut p).ok()?;
    Some((h, p))
}

fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[test]
fn bad_frames_get_errors_or_close_only_their_connection() {
    let e = TestEngine::start(Opts::default());
    let (good, ex) = e.mounted(1);

    // Unknown op: answered ENOSYS, connection stays.
    let mut s = raw(&e);
    let mut f = Vec::new();
    let mut h = FrameHeader::request(Op::READ, 7, 0);
    h.op = 0x7777;
    h.push(&mut f);
    s.write_all(&f).unwrap();
    let (rh, _) = read_response(&mut s).unwrap();
    assert!(rh.is_error() && rh.status == libc::ENOSYS && rh.id == 7);
    // Garbage payload for a known op: EBADMSG, connection stays.
    let mut f = Vec::new();
    FrameHeader::request(Op::OPEN, 8, 3).push(&mut f);
    f.extend_from_slice(&[1, 2, 3]);
    s.write_all(&f).unwrap();
    let (rh, _) = read_response(&mut s).unwrap();
    assert!(rh.is_error() && rh.status == libc::EBADMSG && rh.id == 8);
    // Still usable.
    let mut f = Vec::new();
    push_frame(&mut f, FrameHeader::request(Op::PING, 9, 0), &Data { data: Rest(b"ok") });
    s.write_all(&f).unwrap();
    assert_eq!(read_response(&mut s).unwrap().1, b"ok");

    // Wrong version: connection closed.
    let mut s = raw(&e);
    let mut f = FrameHeader::request(Op::PING, 1, 0).encode();
    f[2] = 9;
    s.write_all(&f).unwrap();
    assert!(closed(&mut s));
    // Oversized length: closed.
    let mut s = raw(&e);
    let mut f = FrameHeader::request(Op::PING, 1, 0).encode();
    f[12..16].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
    s.write_all(&f).unwrap();
    assert!(closed(&mut s));
    // Pure garbage before the handshake: closed.
    let mut s = TcpStream::connect(match &e.addr {
        Addr::Tcp(a) => *a,
        _ => unreachable!(),
    })
    .unwrap();
    s.write_all(&[0xffu8; 4096]).unwrap();
    assert!(closed(&mut s));
    // A request before ATTACH: closed with an error.
    let mut s = TcpStream::connect(match &e.addr {
        Addr::Tcp(a) => *a,
        _ => unreachable!(),
    })
    .unwrap();
    let mut f = Vec::new();
    push_frame(&mut f, FrameHeader::request(Op::GETATTR, 1, 0), &GetattrReq::default());
    s.write_all(&f).unwrap();
    let (rh, _) = read_response(&mut s).unwrap();
    assert!(rh.is_error());
    assert!(closed(&mut s));
    // Truncated frame then EOF.
    let mut s = raw(&e);
    let mut f = Vec::new();
    push_frame(&mut f, FrameHeader::request(Op::PING, 1, 0), &Data { data: Rest(&[0; 100]) });
    s.write_all(&f[..50]).unwrap();
    drop(s);

    // The engine kept serving the well-behaved client all along.
    assert!(good.getattr(ex, b"", false, &Cred::root()).is_ok());
    assert!(wait_until(Duration::from_secs(5), || e.log_contains("malformed frame header")));
}

#[test]
fn fuzzed_streams_never_take_the_engine_down() {
    let e = TestEngine::start(Opts::default());
    let (good, ex) = e.mounted(1);
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let mut s = raw(&e);
        // Valid header with random op/flags/len and random payload bytes.
        let op = [0x0101u16, 0x0103, 0x0106, 0x0109, 0x010A, 0x010B, 0x0113, 0x0116, 0x0201, 0x0301][round % 10];
        let len = (rnd() % 300) as u32;
        let mut f = Vec::new();
        let mut h = FrameHeader::request(Op::PING, round as u64, len);
        h.op = op;
        h.push(&mut f);
        for _ in 0..len {
            f.push(rnd() as u8);
        }
        let _ = s.write_all(&f);
        if round % 3 == 0 {
            let _ = read_response(&mut s);
        }
    }
    assert!(good.getattr(ex, b"", false, &Cred::root()).is_ok());
    let mut e = e;
    assert!(e.child.try_wait().ok().flatten().is_none(), "engine alive");
}

/// OPEN as root of the FIFO `fifo` for reading: it blocks until a writer appears.
fn open_fifo_for_reading(ex: u32) -> OpenReq<'static> {
    OpenReq {
        ctx: ReqCtx { export: ex, uid: 0, gid: 0 },
        flags: open::RDONLY,
        mode: 0,
        groups: Groups::EMPTY,
        path: Path(b"fifo"),
    }
}

#[test]
fn a_blocked_fifo_open_does_not_stall_others() {
    let e = TestEngine::start(Opts { cores: 1, ..Default::default() });
    let (s, ex) = e.mounted(2);
    let root = Cred::root();
    s.mknod(ex, b"fifo", libc::S_IFIFO | 0o666, 0, 0, 0, &root).unwrap();
    // Opening a FIFO for reading blocks until a writer appears; the engine must keep
    // serving everything else meanwhile (single core, same session).
    let blocked = s.submit_on(0, Op::OPEN, &open_fifo_for_reading(ex)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    for _ in 0..100 {
        s.getattr(ex, b"", false, &root).unwrap();
    }
    assert!(t0.elapsed() < Duration::from_secs(2), "others served while the open blocks");
    // A read on an empty FIFO (writer present, no data) does not block others either.
    let (w, _) = s.open(ex, b"fifo", open::WRONLY, 0, &root).unwrap();
    let rh = blocked.wait().unwrap().decode::<OpenRsp>().unwrap().handle;
    let pending_read = s.submit(Op::READ, &ReadReq { handle: rh, offset: 0, len: 10 }).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..100 {
        s.getattr(ex, b"", false, &root).unwrap();
    }
    s.write(w, 0, b"wake").unwrap();
    assert_eq!(pending_read.wait().unwrap().payload, b"wake");
    // FIFO_POLL with a timeout answers 0 when nothing happens.
    let t0 = Instant::now();
    assert_eq!(s.poll(rh, libc::POLLIN as u32, 200).unwrap(), 0);
    assert!(t0.elapsed() >= Duration::from_millis(150));
    s.write(w, 0, b"x").unwrap();
    assert_ne!(s.poll(rh, libc::POLLIN as u32, 2000).unwrap() & libc::POLLIN as u32, 0);
}

#[test]
fn a_vanished_client_releases_its_files() {
    let e = TestEngine::start(Opts::args(&["--session-grace", "0.5"]));
    let (probe, pex) = e.mounted(1);
    probe.getattr(pex, b"", false, &Cred::root()).unwrap();
    let baseline = e.fd_count();
    {
        let (s, ex) = e.mounted(2);
        let root = Cred::root();
        for i in 0..50 {
            s.create(ex, format!("f{i}").as_bytes(), open::RDWR, 0o644, 0, true, &root).unwrap();
        }
        s.mknod(ex, b"fifo", libc::S_IFIFO | 0o666, 0, 0, 0, &root).unwrap();
        // Leave a request in flight (blocked FIFO open) and vanish.
        let _p = s.submit(Op::OPEN, &open_fifo_for_reading(ex)).unwrap();
        assert!(e.fd_count() >= baseline + 50);
        s.close();
    }
    // Unblock the FIFO open so the in-flight request can finish.
    let (w, _) =
        probe.open(pex, b"fifo", open::WRONLY | open::NONBLOCK, 0, &Cred::root()).unwrap_or((0, Default::default()));
    let ok = wait_until(Duration::from_secs(10), || e.fd_count() <= baseline + 1);
    assert!(ok, "fds not released: baseline {baseline}, now {}", e.fd_count());
    if w != 0 {
        probe.close_handle(w).unwrap();
    }
    assert!(probe.getattr(pex, b"", false, &Cred::root()).is_ok());
}

#[test]
fn sessions_survive_a_reconnect_within_the_grace_period() {
    let e = TestEngine::start(Opts::default());
    let (s, _, h) = e.mounted_file(1, "keep");
    let id = s.session_id();
    s.set_reconnect_wait(Duration::from_secs(5));
    // Drop the connection under the session, as a network blip would.
    s.reset_connection(0);
    assert!(wait_until(Duration::from_secs(5), || s.write(h, 0, b"still here").is_ok()));
    assert_eq!(s.session_id(), id, "rejoined, not replaced");
    assert_eq!(s.epoch(), 0);
    assert_eq!(std::fs::read(e.path("keep")).unwrap(), b"still here");
    // A wrong token never joins someone else's session.
    let (sid, mut tok) = s.resume_info();
    tok[0] ^= 1;
    let c = Connection::open(&e.config(), Some((sid, tok))).unwrap();
    assert!(!c.agreed.resumed);
    assert_ne!(c.agreed.session_id, sid);
}

#[test]
fn backpressure_bounds_in_flight_requests() {
    let e = TestEngine::start(Opts { cores: 1, ..Opts::args(&["--max-inflight", "4"]) });
    let (s, ex) = e.mounted(1);
    let root = Cred::root();
    s.mknod(ex, b"fifo", libc::S_IFIFO | 0o666, 0, 0, 0, &root).unwrap();
    // Four blocked opens fill the window; the fifth request waits (not lost, not an
    // error) until one finishes.
    let req = OpenReq {
        ctx: ReqCtx { export: ex, uid: 0, gid: 0 },
        flags: open::RDONLY,
        mode: 0,
        groups: Groups::EMPTY,
        path: Path(b"fifo"),
    };
    let blocked: Vec<_> = (0..4).map(|_| s.submit_on(0, Op::OPEN, &req).unwrap()).collect();
    let mut ping = s.submit_on(0, Op::PING, &Data { data: Rest(b"p") }).unwrap();
    // Another session is answered at once (the engine is not stuck) while the fifth
    // request of the full connection is held back.
    let (s2, ex2) = e.mounted(1);
    assert_eq!(s2.submit_on(0, Op::PING, &Data { data: Rest(b"q") }).unwrap().wait().unwrap().payload, b"q");
    assert!(
        ping.wait_at_most(Duration::from_millis(300)).is_none(),
        "the request beyond --max-inflight 4 was answered while four were in flight"
    );
    let (w, _) = s2.open(ex2, b"fifo", open::WRONLY, 0, &root).unwrap();
    for b in blocked {
        b.wait().unwrap();
    }
    assert_eq!(ping.wait().unwrap().payload, b"p");
    s2.close_handle(w).unwrap();
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut e = TestEngine::start(Opts::default());
    let (s, _, h) = e.mounted_file(2, "big");
    let data = vec![7u8; 1 << 20];
    let pending: Vec<_> = (0..8)
        .map(|i| s.submit(Op::WRITE, &WriteReq { handle: h, offset: i << 20, flags: 0, data: Rest(&data) }).unwrap())
        .collect();
    assert_eq!(e.stop(), Some(0));
    // Every request that was sent got an answer or a clean disconnect (none hangs), and
    // every write the engine acknowledged is in the file.
    let mut acked = Vec::new();
    for (i, p) in pending.into_iter().enumerate() {
        match p.wait() {
            Ok(_) => acked.push(i),
            Err(qtfs_client::ClientError::Disconnected | qtfs_client::ClientError::Closed) => {}
            Err(err) => panic!("write {i}: {err:?} (neither an answer nor a clean disconnect)"),
        }
    }
    let on_disk = std::fs::read(e.path("big")).unwrap();
    for i in acked {
        let chunk = on_disk.get(i << 20..(i + 1) << 20).unwrap_or_else(|| panic!("acknowledged write {i} missing"));
        assert!(chunk.iter().all(|&b| b == 7), "acknowledged write {i} not on disk");
    }
    assert!(wait_until(Duration::from_secs(5), || e.log_contains("engine stopped")));
}

#[test]
fn one_engine_per_lock_file() {
    let e = TestEngine::start(Opts::default());
    let out = std::process::Command::new(engine_bin())
        .args(["--listen", "tcp:127.0.0.1:0", "--insecure-test-mode", "--whitelist"])
        .arg(&e.whitelist)
        .arg("--lock-file")
        .arg(e.dir.path().join("engine.lock"))
        .arg("--admin-socket")
        .arg(e.dir.path().join("other.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another engine is running"));
}

#[test]
fn help_and_legacy_command_line() {
    let out = std::process::Command::new(engine_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["--cores", "--listen", "--psk-file", "--insecure-test-mode", "--admin-socket", "EXAMPLES", "[Mount]"]
    {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
    // The original's positional form maps onto the new options (and says so).
    let d = tempfile::tempdir().unwrap();
    let wl = d.path().join("wl");
    std::fs::write(&wl, format!("[Mount]\nPath={}\n", d.path().display())).unwrap();
    let mut child = std::process::Command::new(engine_bin())
        .args(["1", "1", "127.0.0.1", "0", "127.0.0.2", "12121", "--insecure-test-mode", "--whitelist"])
        .arg(&wl)
        .arg("--lock-file")
        .arg(d.path().join("l"))
        .arg("--admin-socket")
        .arg(d.path().join("a.sock"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !text.contains("engine ready") && Instant::now() < deadline {
        let n = err.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(text.contains("legacy command line mapped to: --cores 1 --listen tcp:127.0.0.1:0"), "{text}");
}
