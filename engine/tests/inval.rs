//! INVAL: what a session that asked for `feat::INVAL` hears about changes in its export
//! (HOST writes, creates, renames, unlinks, another session's writes), on ext4 and tmpfs;
//! that nothing outside the export is reported; that a session that did not ask gets no
//! INVAL frame at all; and that a session is not told of its own changes unless another
//! session was changing things at the same time.

use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use qtfs_client::{Cred, FrameHandler, Session};
use qtfs_proto::consts::{feat, inval, open};
use qtfs_proto::*;
use qtfs_testkit::*;

/// A one-way frame as (op, export, flags, path).
type Frame = (u16, u32, u32, Vec<u8>);

/// A session (asking for `features`) with the export mounted, and every one-way frame
/// it receives as (op, export, flags, path).
fn listener(te: &TestEngine, features: u64) -> (Session, u32, Receiver<Frame>) {
    let mut cfg = te.config();
    cfg.features = features;
    let s = Session::connect(cfg, 2).unwrap();
    let (tx, rx) = channel();
    let h: FrameHandler = std::sync::Arc::new(move |_c, h: FrameHeader, payload: Vec<u8>| {
        if h.op == 0 {
            return; // connection lost
        }
        let m = InvalMsg::decode(&payload).map(|m| (m.export, m.flags, m.path.0.to_vec())).unwrap_or((0, 0, vec![]));
        let _ = tx.send((h.op, m.0, m.1, m.2));
    });
    s.set_frame_handler(h);
    let (e, _) = s.mount(te.export.to_str().unwrap(), &Cred::root()).unwrap();
    (s, e, rx)
}

/// Waits (bounded) for an INVAL of `path` with all of `flags`; returns how long it took.
fn expect(rx: &Receiver<Frame>, export: u32, path: &str, flags: u32, t0: Instant) -> Duration {
    let deadline = t0 + Duration::from_secs(5);
    let mut seen = 0u32;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((op, e, f, p)) = rx.recv_timeout(left) else {
            panic!("no INVAL {path:?} with flags {flags:#x} within 5 s (flags seen for it: {seen:#x})")
        };
        assert_eq!(op, Op::INVAL as u16, "only INVAL frames arrive unasked");
        assert_eq!(e, export);
        if p == path.as_bytes() {
            seen |= f;
            if seen & flags == flags {
                return t0.elapsed();
            }
        }
    }
}

fn run(tmpfs: bool) {
    let te = TestEngine::start(Opts { tmpfs, log_level: "INFO", ..Default::default() });
    let (a, ea, arx) = listener(&te, feat::ALL | feat::INVAL);
    assert_ne!(a.features() & feat::INVAL, 0, "the engine offers INVAL here (root, fanotify)");
    let (b, _eb, brx) = listener(&te, feat::ALL);
    assert_eq!(b.features() & feat::INVAL, 0);
    // The watcher places its mark just after MOUNT: wait until a change is seen.
    std::fs::create_dir(te.path("d")).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::fs::write(te.path("probe"), b"x").unwrap();
            arx.try_iter().any(|(_, _, _, p)| p == b"probe")
        }),
        "the watcher never reported a change"
    );
    while arx.try_recv().is_ok() {}

    // HOST write: attributes and data of the file.
    let t0 = Instant::now();
    std::fs::write(te.path("d/f"), b"hello").unwrap();
    let d1 = expect(&arx, ea, "d/f", inval::ENTRY, t0);
    let t0 = Instant::now();
    std::fs::OpenOptions::new()
        .append(true)
        .open(te.path("d/f"))
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(b" world")
        })
        .unwrap();
    let d2 = expect(&arx, ea, "d/f", inval::ATTR | inval::DATA, t0);
    // chmod: attributes.
    let t0 = Instant::now();
    std::fs::set_permissions(te.path("d/f"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let d3 = expect(&arx, ea, "d/f", inval::ATTR, t0);
    // rename: both names.
    let t0 = Instant::now();
    std::fs::rename(te.path("d/f"), te.path("g")).unwrap();
    let d4 = expect(&arx, ea, "d/f", inval::ENTRY, t0);
    let d5 = expect(&arx, ea, "g", inval::ENTRY, t0);
    // unlink.
    let t0 = Instant::now();
    std::fs::remove_file(te.path("g")).unwrap();
    let d6 = expect(&arx, ea, "g", inval::ENTRY, t0);
    // A directory's own attributes (name ".": the path of the directory).
    let t0 = Instant::now();
    std::fs::set_permissions(te.path("d"), std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let d7 = expect(&arx, ea, "d", inval::ATTR, t0);
    // Another session's write through the engine.
    let (c, ec) = te.mounted(1);
    let t0 = Instant::now();
    let (h, _) = c.create(ec, b"d/by-c", open::RDWR, 0o644, 0, true, &Cred::root()).unwrap();
    c.write(h, 0, b"from c").unwrap();
    let d8 = expect(&arx, ea, "d/by-c", inval::DATA, t0);
    c.close_handle(h).unwrap();
    // Nothing outside the export: a file beside it on the same file system.
    let outside = te.export.parent().unwrap().join("outside-the-export");
    std::fs::write(&outside, b"x").unwrap();
    let t0 = Instant::now();
    std::fs::write(te.path("last"), b"x").unwrap();
    expect(&arx, ea, "last", inval::ENTRY, t0);
    for (_, _, _, p) in arx.try_iter() {
        assert!(!p.windows(7).any(|w| w == b"outside"), "an event outside the export was sent: {p:?}");
    }
    // The session that did not ask: a round trip on it, and still no frame.
    b.getattr(_eb, b"", false, &Cred::root()).unwrap();
    assert!(brx.try_recv().is_err(), "a session without feat::INVAL got a one-way frame");
    eprintln!(
        "tmpfs={tmpfs}: create {d1:?}, append {d2:?}, chmod {d3:?}, rename {d4:?}/{d5:?}, unlink {d6:?}, dir chmod {d7:?}, other session's write {d8:?}"
    );
    for d in [d1, d2, d3, d4, d5, d6, d7, d8] {
        assert!(d < Duration::from_millis(500), "an INVAL took {d:?}");
    }
    drop(a);
    let _ = std::fs::remove_file(outside);
}

/// Every frame `rx` receives until (and with) the INVAL of `path`; panics after 5 s.
fn until(rx: &Receiver<Frame>, path: &str) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    loop {
        let Ok((_, _, _, p)) = rx.recv_timeout(Duration::from_secs(5)) else {
            panic!("no INVAL {path:?} within 5 s (seen: {seen:?})")
        };
        let last = p == path.as_bytes();
        seen.push(p);
        if last {
            return seen;
        }
    }
}

fn create_and_write(s: &Session, export: u32, path: &[u8]) {
    let (h, _) = s.create(export, path, open::RDWR, 0o644, 0, true, &Cred::root()).unwrap();
    s.write(h, 0, b"data").unwrap();
    s.close_handle(h).unwrap();
}

#[test]
fn own_changes_are_not_echoed_unless_another_session_changes_too() {
    require_root();
    let te = TestEngine::start(Opts { tmpfs: true, ..Default::default() });
    let (a, ea, arx) = listener(&te, feat::ALL | feat::INVAL | feat::NO_ECHO);
    let (b, eb, brx) = listener(&te, feat::ALL | feat::INVAL | feat::NO_ECHO);
    assert_ne!(a.features() & feat::NO_ECHO, 0, "the engine offers NO_ECHO with INVAL");
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::fs::write(te.path("probe"), b"x").unwrap();
            arx.try_iter().any(|(_, _, _, p)| p == b"probe") && brx.try_iter().any(|(_, _, _, p)| p == b"probe")
        }),
        "the watcher never reported a change"
    );
    // A's create and write: B hears of it; A does not. fanotify keeps events in order,
    // so once A heard of a HOST change made after its own, its own was withheld.
    create_and_write(&a, ea, b"mine");
    until(&brx, "mine");
    std::fs::write(te.path("marker"), b"x").unwrap();
    let heard = until(&arx, "marker");
    assert!(!heard.iter().any(|p| p == b"mine"), "A was told of its own change: {heard:?}");
    // A HOST change to the file A just wrote is A's business.
    std::fs::write(te.path("mine"), b"host").unwrap();
    until(&arx, "mine");
    // While B changes things too, nobody can tell whose an engine event is: both hear all.
    create_and_write(&b, eb, b"theirs");
    create_and_write(&a, ea, b"mine2");
    let heard = until(&arx, "mine2");
    assert!(heard.iter().any(|p| p == b"theirs"), "A missed B's change: {heard:?}");
    let heard = until(&brx, "mine2");
    assert!(heard.iter().any(|p| p == b"theirs"), "B was not told of its change with two makers: {heard:?}");
}

/// Without NO_ECHO (qtfs.ko), a session hears of its own changes, even alone.
#[test]
fn own_changes_are_echoed_to_a_session_that_did_not_ask_otherwise() {
    require_root();
    let te = TestEngine::start(Opts { tmpfs: true, ..Default::default() });
    let (a, ea, arx) = listener(&te, feat::ALL | feat::INVAL);
    assert_eq!(a.features() & feat::NO_ECHO, 0);
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::fs::write(te.path("probe"), b"x").unwrap();
            arx.try_iter().any(|(_, _, _, p)| p == b"probe")
        }),
        "the watcher never reported a change"
    );
    create_and_write(&a, ea, b"mine");
    until(&arx, "mine");
}

#[test]
fn inval_on_disk_export() {
    require_root();
    run(false);
}

#[test]
fn inval_on_tmpfs_export() {
    require_root();
    run(true);
}

fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "INVAL needs fanotify filesystem marks: run the tests as root");
}
