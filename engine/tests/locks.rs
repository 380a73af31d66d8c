//! Locks through the engine (LOCK_GET, LOCK_SET, CANCEL) against a real engine, with
//! the HOST side played by this test process (fcntl/flock on the export path).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::Duration;

use qtfs_client::{ClientError, Cred, Pending, Session};
use qtfs_proto::consts::{LOCK_F_WAIT, LOCK_RD, LOCK_UN, LOCK_WR, open};
use qtfs_testkit::*;

fn errno<T: std::fmt::Debug>(r: Result<T, ClientError>) -> i32 {
    match r {
        Err(e) => e.errno(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// A classic POSIX lock (F_SETLK) of this process on `f`; Err(errno) on conflict.
fn host_setlk(f: &File, ltype: i32, start: i64, len: i64) -> Result<(), i32> {
    // SAFETY: zeroed flock is valid; the fields are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = ltype as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    // SAFETY: F_SETLK on our own descriptor with a valid record.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) } < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(())
}

/// `p`, a lock request that must wait, once it has stayed unanswered for `ms`.
fn parked(mut p: Pending, ms: u64) -> Pending {
    assert!(p.wait_at_most(Duration::from_millis(ms)).is_none(), "answered while the lock is held");
    p
}

fn host_flock(f: &File, op: i32) -> Result<(), i32> {
    // SAFETY: flock on our own descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) } < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(())
}

type Opened = (Session, u32, u64);

/// An engine with a 4 KiB file `name`, opened read-write by two sessions.
fn setup(name: &str) -> (TestEngine, Opened, Opened) {
    let e = TestEngine::start(Opts::default());
    std::fs::write(e.path(name), vec![0u8; 4096]).unwrap();
    let open2 = || {
        let (s, ex) = e.mounted(1);
        let (h, _) = s.open(ex, name.as_bytes(), open::RDWR, 0, &Cred::root()).unwrap();
        (s, ex, h)
    };
    let (a, b) = (open2(), open2());
    (e, a, b)
}

#[test]
fn byte_ranges_conflict_between_sessions_handles_and_the_host() {
    let (e, (s1, ex1, h1), (s2, _, h2)) = setup("db");
    s1.lock_set(h1, 0, 10, LOCK_WR, false).unwrap();
    assert_eq!(errno(s2.lock_set(h2, 5, 10, LOCK_WR, false)), libc::EAGAIN, "other session");
    assert_eq!(errno(s2.lock_set(h2, 9, 1, LOCK_RD, false)), libc::EAGAIN, "read vs write");
    s2.lock_set(h2, 10, 10, LOCK_WR, false).unwrap();
    // A second handle of the same session is its own description: it conflicts too.
    let (h1b, _) = s1.open(ex1, b"db", open::RDWR, 0, &Cred::root()).unwrap();
    assert_eq!(errno(s1.lock_set(h1b, 0, 1, LOCK_RD, false)), libc::EAGAIN, "second handle");
    // GETLK reports the holder: an OFD lock, so pid -1.
    let g = s2.lock_get(h2, 0, 100, LOCK_RD).unwrap();
    assert_eq!((g.ltype, g.start, g.len, g.pid), (LOCK_WR, 0, 10, -1));
    assert_eq!(s1.lock_get(h1, 30, 0, LOCK_WR).unwrap().ltype, LOCK_UN, "nothing beyond 20");

    // The HOST (this process, classic POSIX locks) conflicts with both sessions.
    let host = File::options().read(true).write(true).open(e.path("db")).unwrap();
    assert_eq!(host_setlk(&host, libc::F_WRLCK, 0, 1), Err(libc::EAGAIN));
    assert_eq!(host_setlk(&host, libc::F_RDLCK, 15, 1), Err(libc::EAGAIN));
    host_setlk(&host, libc::F_WRLCK, 100, 50).unwrap();
    let g = s1.lock_get(h1, 120, 1, LOCK_RD).unwrap();
    assert_eq!((g.ltype, g.start, g.len, g.pid), (LOCK_WR, 100, 50, std::process::id() as i32), "HOST pid");
    assert_eq!(errno(s1.lock_set(h1, 149, 1, LOCK_RD, false)), libc::EAGAIN, "HOST lock holds");

    // Unlocking and closing release.
    s1.lock_set(h1, 0, 10, LOCK_UN, false).unwrap();
    host_setlk(&host, libc::F_WRLCK, 0, 10).unwrap();
    host_setlk(&host, libc::F_UNLCK, 0, 0).unwrap();
    s2.close_handle(h2).unwrap();
    host_setlk(&host, libc::F_WRLCK, 10, 10).unwrap();
    host_setlk(&host, libc::F_UNLCK, 0, 0).unwrap();
    // A write lock needs a handle open for writing.
    let (ro, _) = s1.open(ex1, b"db", open::RDONLY, 0, &Cred::root()).unwrap();
    assert_eq!(errno(s1.lock_set(ro, 0, 1, LOCK_WR, false)), libc::EBADF);
    s1.lock_set(ro, 0, 1, LOCK_RD, false).unwrap();
}

#[test]
fn flock_conflicts_between_sessions_and_the_host() {
    let (e, (s1, _, h1), (s2, _, h2)) = setup("f");
    let host = File::open(e.path("f")).unwrap();
    s1.flock(h1, LOCK_WR, false).unwrap();
    assert_eq!(errno(s2.flock(h2, LOCK_RD, false)), libc::EAGAIN);
    assert_eq!(host_flock(&host, libc::LOCK_SH), Err(libc::EWOULDBLOCK));
    // flock and byte-range locks are independent, as locally.
    s2.lock_set(h2, 0, 0, LOCK_WR, false).unwrap();
    s1.flock(h1, LOCK_UN, false).unwrap();
    host_flock(&host, libc::LOCK_SH).unwrap();
    s2.flock(h2, LOCK_RD, false).unwrap();
    assert_eq!(errno(s1.flock(h1, LOCK_WR, false)), libc::EAGAIN);
}

#[test]
fn a_waiting_lock_is_granted_when_the_holder_unlocks() {
    let (e, (s1, _, h1), (s2, _, h2)) = setup("w");
    s1.lock_set(h1, 0, 1, LOCK_WR, false).unwrap();
    let mut p = parked(s2.submit_lock(h2, 0, 1, LOCK_WR, LOCK_F_WAIT).unwrap(), 300);
    s1.lock_set(h1, 0, 1, LOCK_UN, false).unwrap();
    let t = std::time::Instant::now();
    p.wait_at_most(Duration::from_secs(10)).expect("granted").unwrap();
    eprintln!("granted {:?} after the unlock through the engine", t.elapsed());
    assert_eq!(errno(s1.lock_set(h1, 0, 1, LOCK_RD, false)), libc::EAGAIN, "now s2 holds it");

    // A HOST holder: the wait is retried on its timer (100 ms at most between tries).
    let host = File::options().read(true).write(true).open(e.path("w")).unwrap();
    host_setlk(&host, libc::F_WRLCK, 50, 1).unwrap();
    let mut p = parked(s1.submit_lock(h1, 50, 1, LOCK_RD, LOCK_F_WAIT).unwrap(), 300);
    host_setlk(&host, libc::F_UNLCK, 50, 1).unwrap();
    let t = std::time::Instant::now();
    p.wait_at_most(Duration::from_secs(10)).expect("granted").unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // A waiting flock.
    s1.flock(h1, LOCK_WR, false).unwrap();
    let mut p = parked(s2.submit_lock(h2, 0, 0, LOCK_RD, LOCK_F_WAIT | qtfs_proto::consts::LOCK_F_FLOCK).unwrap(), 200);
    s1.close_handle(h1).unwrap();
    p.wait_at_most(Duration::from_secs(10)).expect("granted after close").unwrap();
}

#[test]
fn a_waiting_lock_ends_on_cancel_and_when_its_connection_closes() {
    let (e, (s1, _, h1), (s2, _, h2)) = setup("c");
    s1.lock_set(h1, 0, 0, LOCK_WR, false).unwrap();
    let mut p = parked(s2.submit_lock(h2, 0, 0, LOCK_WR, LOCK_F_WAIT).unwrap(), 200);
    s2.cancel(&p).unwrap();
    let r = p.wait_at_most(Duration::from_secs(10)).expect("answered");
    assert_eq!(errno(r), libc::EINTR);
    assert_eq!(errno(s2.lock_set(h2, 0, 0, LOCK_WR, false)), libc::EAGAIN, "still s1's");

    // A wait whose connection (and session) goes away is dropped, never granted later.
    let p = parked(s2.submit_lock(h2, 0, 0, LOCK_WR, LOCK_F_WAIT).unwrap(), 200);
    s2.close();
    drop(p);
    assert!(wait_until(Duration::from_secs(10), || e.log_contains("lock wait ended by cancel")), "wait dropped");
    s1.lock_set(h1, 0, 0, LOCK_UN, false).unwrap();
    let host = File::options().read(true).write(true).open(e.path("c")).unwrap();
    host_setlk(&host, libc::F_WRLCK, 0, 0).unwrap();
}

#[test]
fn a_lock_released_on_one_core_wakes_waiters_on_the_others() {
    // Two cores (the default) and a waiter on each of several connections: some are
    // served by the core the holder's connection is not on, and must not wait for their
    // next retry (up to 100 ms by then) but be woken by the release.
    let e = TestEngine::start(Opts { log_level: "INFO", ..Opts::default() });
    std::fs::write(e.path("x"), vec![0u8; 16]).unwrap();
    let sessions: Vec<(Session, u64)> = (0..6)
        .map(|_| {
            let (s, ex) = e.mounted(1);
            let (h, _) = s.open(ex, b"x", open::RDWR, 0, &Cred::root()).unwrap();
            (s, h)
        })
        .collect();
    let (holder, hh) = (&sessions[0].0, sessions[0].1);
    let mut rounds = Vec::new();
    for _ in 0..5 {
        holder.lock_set(hh, 0, 1, LOCK_WR, false).unwrap();
        let mut waits: Vec<_> =
            sessions[1..].iter().map(|(s, h)| s.submit_lock(*h, 0, 1, LOCK_RD, LOCK_F_WAIT).unwrap()).collect();
        // Long enough for every wait to back off to its longest delay.
        std::thread::sleep(Duration::from_millis(400));
        holder.lock_set(hh, 0, 1, LOCK_UN, false).unwrap();
        let t = std::time::Instant::now();
        for p in &mut waits {
            p.wait_at_most(Duration::from_secs(10)).expect("granted").unwrap();
        }
        rounds.push(t.elapsed());
        for (s, h) in &sessions[1..] {
            s.lock_set(*h, 0, 1, LOCK_UN, false).unwrap();
        }
    }
    rounds.sort();
    eprintln!("slowest waiter per round, after the unlock: {rounds:?}");
    // Without the wake-up the slowest waiter on the other core waits for its timer (up
    // to 100 ms, 50 on average for one waiter, more for several); the median round
    // leaves room for a loaded machine.
    assert!(rounds[2] < Duration::from_millis(30), "median round: {:?}", rounds[2]);
}

#[test]
fn a_session_piling_up_waits_is_refused_beyond_its_bound_and_others_still_wait() {
    // A client with the key may send waiting lock requests without end: each parks on a
    // ring timer of its connection's core, at most 64 per session there (fsops/parked.rs);
    // the next is refused at once (ENOLCK), and another session is not affected.
    const BOUND: usize = 64;
    let (e, (s1, _, h1), (s2, ex2, _)) = setup("pile");
    s1.lock_set(h1, 0, 0, LOCK_WR, false).unwrap();
    // Separate handles, so that every wait is a lock request of its own owner.
    let handles: Vec<u64> =
        (0..=BOUND).map(|_| s2.open(ex2, b"pile", open::RDWR, 0, &Cred::root()).unwrap().0).collect();
    let mut waits: Vec<Pending> = Vec::new();
    for h in &handles[..BOUND] {
        let mut p = s2.submit_lock(*h, 0, 0, LOCK_WR, LOCK_F_WAIT).unwrap();
        p.no_timeout();
        waits.push(p);
    }
    let last = waits.pop().unwrap();
    waits.push(parked(last, 200));
    let mut over = s2.submit_lock(handles[BOUND], 0, 0, LOCK_WR, LOCK_F_WAIT).unwrap();
    let r = over.wait_at_most(Duration::from_secs(10)).expect("refused at once, not parked");
    assert_eq!(errno(r), libc::ENOLCK);
    // A third session still parks its wait.
    let (s3, ex3) = e.mounted(1);
    let (h3, _) = s3.open(ex3, b"pile", open::RDWR, 0, &Cred::root()).unwrap();
    let p3 = parked(s3.submit_lock(h3, 0, 0, LOCK_RD, LOCK_F_WAIT).unwrap(), 200);
    drop(p3);
    s3.close();
    s2.close();
}
