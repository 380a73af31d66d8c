//! The engine at its descriptor limit. A binary of its own: the test points
//! `QTFS_TEST_ENGINE` (process-wide) at a wrapper that starts the engine under a low
//! RLIMIT_NOFILE.

use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use qtfs_client::Cred;
use qtfs_testkit::*;

/// Log lines of `e` that contain `needle`.
fn log_count(e: &TestEngine, needle: &str) -> usize {
    e.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
}

/// With its descriptors exhausted, the engine's accept failed with EMFILE and was
/// re-armed at once, failing again at once for as long as a connection waited in the
/// backlog (7.8 M log lines in a minute; the admin socket's accept did the same). Now
/// the listener pauses with a growing delay, the log line is rate-limited, and once
/// descriptors are free again a new client is served.
#[test]
fn accept_backs_off_while_descriptors_are_exhausted() {
    const LIMIT: u64 = 512;
    // The limit must hold from the start: a multishot accept keeps the limit it was
    // armed under, so lowering it on a running engine (prlimit -p) would not reach it.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("engine");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec prlimit --nofile={LIMIT}:{LIMIT} {} \"$@\"\n", engine_bin().display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // SAFETY: this binary's only test sets it before starting any thread that reads it.
    unsafe { std::env::set_var("QTFS_TEST_ENGINE", &wrapper) };
    let mut e = TestEngine::start(Opts { cores: 1, log_level: "INFO", ..Default::default() });
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", e.pid())).unwrap();
    assert!(limits.lines().any(|l| l.starts_with("Max open files") && l.contains(&format!(" {LIMIT} "))), "{limits}");
    // Pre-auth connections from several addresses (64 are kept per peer) until the
    // engine has no descriptor left, and a few more waiting in the backlog.
    let fill = LIMIT as usize - e.fd_count() + 40;
    let mut excess = Vec::new();
    for i in 0..fill {
        let src = Ipv4Addr::new(127, 0, 1, 1 + (i / 50) as u8);
        excess.push(connect_tcp_from(src, e.tcp_addr()).unwrap());
    }
    assert!(
        wait_until(Duration::from_secs(10), || log_count(&e, "accept: ") > 0),
        "the engine never ran out of descriptors at accept: {} descriptors (limit {LIMIT})",
        e.fd_count()
    );
    // A fixed window: what is measured is how much the engine logs in it.
    let before = log_count(&e, "accept");
    std::thread::sleep(Duration::from_secs(3));
    let lines = log_count(&e, "accept") - before;
    let total = e.log.lock().unwrap().len();
    let last = e.log.lock().unwrap().iter().rev().find(|l| l.contains("accept")).cloned();
    eprintln!(
        "3 s at EMFILE ({} descriptors, {fill} connections): {lines} accept log lines, {total} lines in all; last {last:?}",
        e.fd_count()
    );
    assert!(lines < 50, "{lines} log lines about accept in 3 s; the last: {last:?}");
    assert!(e.log_contains("pausing this listener"));
    assert!(e.alive());

    // The excess connections go; the engine accepts again and serves a new client.
    drop(excess);
    let mut cfg = e.config();
    cfg.request_timeout = Some(Duration::from_secs(2));
    let t = Instant::now();
    let served = wait_until(Duration::from_secs(10), || {
        qtfs_client::Session::connect(cfg.clone(), 1)
            .and_then(|s| s.mount(e.export.to_str().unwrap(), &Cred::root()).map(|(ex, _)| (s, ex)))
            .and_then(|(s, ex)| s.getattr(ex, b"", false, &Cred::root()))
            .is_ok()
    });
    eprintln!("new client served {:?} after the excess connections closed", t.elapsed());
    assert!(served, "no client served after the excess connections closed");
    let _ = TcpStream::connect(e.tcp_addr()).unwrap();
}
