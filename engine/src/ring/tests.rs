//! Failure containment of the core loop, with an engine in this process: fail points
//! (compiled only into these tests) stand in for bugs that frames or timers reach, and
//! a ring descriptor replaced behind the loop's back stands in for a broken ring.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use qtfs_client::{ClientConfig, Session};
use qtfs_proto::{Addr, FrameHeader, HEADER_SIZE, Hello, MAX_PAYLOAD, Name, Op, Wire};
use qtfs_testkit::wait_until;

use crate::{Config, Engine, StartOptions};

/// A frame with this op panics in `on_frame` (0 = off).
static FAIL_OP: AtomicU32 = AtomicU32::new(0);
/// Core index + 1 whose next tick panics, once (0 = off).
static FAIL_TICK: AtomicUsize = AtomicUsize::new(0);
/// The tests below start engines in this process and look at its descriptors: one at a
/// time.
static SERIAL: Mutex<()> = Mutex::new(());

pub(super) fn fail_point_frame(op: u16) {
    let f = FAIL_OP.load(Ordering::Relaxed);
    if f != 0 && f == u32::from(op) {
        panic!("test fail point: frame op {op:#x}");
    }
}

pub(super) fn fail_point_tick(idx: usize) {
    if FAIL_TICK.compare_exchange(idx + 1, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
        panic!("test fail point: tick of core {idx}");
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    sock: std::path::PathBuf,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let wl = dir.path().join("whitelist");
    std::fs::write(&wl, format!("[Mount]\nPath={}\n", export.display())).unwrap();
    let sock = dir.path().join("engine.sock");
    let cfg = Config::new(vec![Addr::Unix(sock.clone())], wl);
    let engine = Engine::start(cfg, StartOptions::default()).unwrap();
    Fixture { _dir: dir, engine, sock }
}

impl Fixture {
    fn session(&self) -> Session {
        Session::connect(ClientConfig::new(Addr::Unix(self.sock.clone())).insecure(), 1).unwrap()
    }

    /// A new session answers a ping (with a bounded wait, so a dead core fails the test
    /// instead of hanging it).
    fn serves(&self) -> bool {
        let mut cfg = ClientConfig::new(Addr::Unix(self.sock.clone())).insecure();
        cfg.connect_timeout = Duration::from_secs(2);
        cfg.request_timeout = Some(Duration::from_secs(2));
        Session::connect(cfg, 1).and_then(|s| s.ping(b"alive")).is_ok_and(|p| p == b"alive")
    }
}

fn ping(s: &mut UnixStream) -> Vec<u8> {
    let mut f = Vec::new();
    qtfs_proto::push_frame(
        &mut f,
        FrameHeader::request(Op::PING, 77, 0),
        &qtfs_proto::Data { data: qtfs_proto::Rest(b"still") },
    );
    s.write_all(&f).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let h = qtfs_client::read_frame(s, &mut buf, MAX_PAYLOAD).unwrap().expect("an answer");
    assert_eq!(h.id, 77);
    buf
}

fn closed(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return true,
            Ok(_) => {} // an error answer may come first
        }
    }
}

#[test]
fn a_bug_reached_by_one_connection_closes_only_that_connection() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let f = start();
    // A raw connection, so that a reconnect could not hide its loss.
    let mut good = UnixStream::connect(&f.sock).unwrap();
    qtfs_testkit::raw_handshake(&mut good, None).unwrap();
    const OP: u16 = 0x7e01;
    FAIL_OP.store(u32::from(OP), Ordering::Relaxed);
    for _ in 0..3 {
        let mut s = UnixStream::connect(&f.sock).unwrap();
        let mut h = FrameHeader::request(Op::PING, 1, 0);
        h.op = OP;
        s.write_all(&h.encode()).unwrap();
        assert!(closed(&mut s), "the connection that hit the bug is closed");
    }
    FAIL_OP.store(0, Ordering::Relaxed);
    assert_eq!(ping(&mut good), b"still", "the other connection is untouched");
    assert!(f.serves());
    assert!(
        wait_until(Duration::from_secs(5), || f.engine.shared().conns.lock().len() == 1),
        "the closed connections are freed"
    );
}

#[test]
fn a_core_whose_loop_panics_is_restarted() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let f = start();
    let s = f.session();
    assert_eq!(s.ping(b"x").unwrap(), b"x");
    FAIL_TICK.store(1, Ordering::Release);
    assert!(wait_until(Duration::from_secs(5), || FAIL_TICK.load(Ordering::Acquire) == 0), "the tick ran");
    assert!(wait_until(Duration::from_secs(10), || f.serves()), "the restarted core serves new clients");
    // The old loop's connection was closed and its session detached, not leaked.
    assert!(wait_until(Duration::from_secs(5), || f.engine.shared().conns.lock().is_empty()));
    drop(s);
}

/// The io_uring descriptors of this process.
fn ring_fds() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            target.to_string_lossy().contains("io_uring").then(|| e.file_name().to_string_lossy().parse().ok())?
        })
        .collect()
}

#[test]
fn a_core_whose_ring_keeps_failing_is_rebuilt() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = ring_fds();
    let f = start();
    let ours: Vec<i32> = ring_fds().into_iter().filter(|fd| !before.contains(fd)).collect();
    assert_eq!(ours.len(), 1, "one core, one ring");
    assert!(f.serves());
    // Every io_uring_enter on that descriptor now fails (EOPNOTSUPP: not a ring).
    let null = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: replaces the ring's descriptor number with /dev/null; the ring itself stays
    // alive through its mappings until the core drops it.
    assert!(unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), ours[0]) } >= 0);
    // Wake the loop so that it notices (a connection attempt completes an accept).
    let _poke = UnixStream::connect(&f.sock);
    if !wait_until(Duration::from_secs(15), || f.serves()) {
        // Stopping would wait forever for a loop that never ends: fail, don't hang.
        std::mem::forget(f);
        panic!("no new ring serves new clients");
    }
}

#[test]
fn handshake_frames_fit_the_pre_auth_limit() {
    let name = [b'n'; 255];
    let hello =
        Hello { version_min: 1, version_max: 1, features: u64::MAX, client_nonce: [0; 32], client_name: Name(&name) };
    assert!(hello.encoded_len() <= super::PREAUTH_MAX_PAYLOAD, "{}", hello.encoded_len());
    let attach = qtfs_proto::Attach { session_id: 1, session_token: [0; 16], mac: [0; 32] };
    assert!(attach.encoded_len() <= super::PREAUTH_MAX_PAYLOAD);
    const { assert!(HEADER_SIZE + super::PREAUTH_MAX_PAYLOAD <= super::PREAUTH_RX) };
    const { assert!(super::PREAUTH_MAX_PAYLOAD < MAX_PAYLOAD) };
}
