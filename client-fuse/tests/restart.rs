//! Engine restarts under load: the engine is SIGKILLed and restarted on the same address
//! while a `stat` loop, an O_APPEND writer and a pwrite writer run through the mount.
//! Every system call must come back within the documented bound (`reconnect_timeout`),
//! also when the engine stays away longer than that (one cycle), no acknowledged record
//! may be lost, and a process waiting for a dead engine must die at once when SIGKILLed
//! (not sit in D state until the bound).
//!
//! A call stuck for good (the deadlock this guards against) makes a wait below run out:
//! the test then fails, and dropping the rig kills qtfs-fuse, which releases the stuck
//! threads.

mod common;

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// The mount's reconnect_timeout in seconds: the bound on every call.
const BOUND_S: u64 = 8;
/// Scheduling slack on a loaded 2-CPU machine on top of the bound.
const SLACK: Duration = Duration::from_secs(2);
/// How long a phase of a cycle may take before the test declares a hang.
const PHASE: Duration = Duration::from_secs(2 * BOUND_S + 10);
const CYCLES: usize = 5;
/// The cycle in which the engine stays down until every worker's call has failed (for
/// the idempotent ones: after waiting the whole bound).
const LONG_OUTAGE: usize = 3;
/// pwrite record size: "P" + 14 digits + "\n".
const PREC: u64 = 16;
/// A call in flight this long after the kill is waiting for the engine (a call through
/// a healthy mount takes milliseconds).
const BLOCKED: Duration = Duration::from_millis(250);

fn append_rec(n: u64) -> String {
    format!("A{n:09}\n")
}

fn pwrite_rec(n: u64) -> String {
    format!("P{n:014}\n")
}

/// One worker's view for the watchdog: its call in flight, the worst latency, and when
/// its last successful unit of work began.
struct Probe {
    name: &'static str,
    in_flight: Mutex<Option<(Instant, &'static str)>>,
    last_start: Mutex<Option<Instant>>,
    last_success: Mutex<Option<Instant>>,
    last_error: Mutex<Option<Instant>>,
    worst: Mutex<(Duration, &'static str)>,
    /// The worst since the last `take_cycle_worst`.
    cycle_worst: Mutex<Duration>,
    /// Errors other than EIO/ETIMEDOUT (which an engine restart may cause).
    unexpected: Mutex<Vec<String>>,
    /// Acknowledged record numbers (write and fsync both succeeded).
    acked: Mutex<Vec<u64>>,
    errors: Mutex<u64>,
    done: AtomicBool,
}

impl Probe {
    fn new(name: &'static str) -> Arc<Probe> {
        Arc::new(Probe {
            name,
            in_flight: Mutex::new(None),
            last_start: Mutex::new(None),
            last_success: Mutex::new(None),
            last_error: Mutex::new(None),
            worst: Mutex::new((Duration::ZERO, "")),
            cycle_worst: Mutex::new(Duration::ZERO),
            unexpected: Mutex::new(Vec::new()),
            acked: Mutex::new(Vec::new()),
            errors: Mutex::new(0),
            done: AtomicBool::new(false),
        })
    }

    /// Runs one system call, timing it.
    fn call<T>(&self, what: &'static str, f: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
        let t0 = Instant::now();
        *self.in_flight.lock().unwrap() = Some((t0, what));
        *self.last_start.lock().unwrap() = Some(t0);
        let r = f();
        let dt = t0.elapsed();
        *self.in_flight.lock().unwrap() = None;
        let mut w = self.worst.lock().unwrap();
        if dt > w.0 {
            *w = (dt, what);
        }
        drop(w);
        let mut c = self.cycle_worst.lock().unwrap();
        *c = (*c).max(dt);
        drop(c);
        if let Err(e) = &r {
            *self.last_error.lock().unwrap() = Some(Instant::now());
            *self.errors.lock().unwrap() += 1;
            if !matches!(e.raw_os_error(), Some(libc::EIO | libc::ETIMEDOUT)) {
                self.unexpected.lock().unwrap().push(format!("{what}: {e}"));
            }
        }
        r
    }

    fn take_cycle_worst(&self) -> Duration {
        std::mem::take(&mut *self.cycle_worst.lock().unwrap())
    }

    fn success(&self, began: Instant) {
        *self.last_success.lock().unwrap() = Some(began);
    }

    /// Has run into the dead engine killed at `t`: a call started since then, or one
    /// from before still in flight a while after it (waiting for the engine).
    fn hit_dead_engine(&self, t: Instant) -> bool {
        let waiting = self.in_flight.lock().unwrap().is_some_and(|(s, _)| s < t && t.elapsed() > BLOCKED);
        waiting || self.last_start.lock().unwrap().is_some_and(|s| s >= t)
    }

    fn failed_since(&self, t: Instant) -> bool {
        self.last_error.lock().unwrap().is_some_and(|s| s >= t)
    }

    fn succeeded_since(&self, t: Instant) -> bool {
        self.last_success.lock().unwrap().is_some_and(|s| s >= t)
    }

    fn describe(&self) -> String {
        let f = *self.in_flight.lock().unwrap();
        let state = match f {
            Some((t0, what)) => format!("{what} in flight for {:?}", t0.elapsed()),
            None => "idle".to_string(),
        };
        let errors = *self.errors.lock().unwrap();
        let last = self.unexpected.lock().unwrap().last().cloned().unwrap_or_default();
        format!("{}: {state}; {errors} calls failed; last unexpected error: {last:?}", self.name)
    }
}

fn spawn(p: &Arc<Probe>, stop: &Arc<AtomicBool>, f: impl FnOnce(&Probe, &AtomicBool) + Send + 'static) {
    let (p, stop) = (p.clone(), stop.clone());
    std::thread::spawn(move || {
        f(&p, &stop);
        p.done.store(true, Ordering::Release);
    });
}

fn open_append(p: &Probe, path: &std::path::Path) -> std::io::Result<File> {
    p.call("open(O_APPEND)", || OpenOptions::new().append(true).create(true).mode(0o644).open(path))
}

/// Waits for `cond`; on timeout fails with what every worker is doing.
fn wait_or_hang(what: &str, probes: &[Arc<Probe>], cond: impl Fn() -> bool) {
    if !wait_until(PHASE, &cond) {
        let state: Vec<String> = probes.iter().map(|p| p.describe()).collect();
        panic!("{what}: not reached within {PHASE:?} (a call is stuck?): {state:#?}");
    }
}

#[test]
fn engine_sigkill_restart_cycles_bounded_latency_and_no_acknowledged_record_lost() {
    let mut rig = Rig::start(Opts {
        mount_opts: vec![
            format!("reconnect_timeout={BOUND_S}"),
            // Every stat reaches the engine.
            "attr_timeout=0".into(),
            "entry_timeout=0".into(),
        ],
        ..Default::default()
    });
    std::fs::write(rig.m("stat.me"), b"stat me").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stat = Probe::new("stat");
    let append = Probe::new("append writer");
    let pwrite = Probe::new("pwrite writer");
    let probes = [stat.clone(), append.clone(), pwrite.clone()];

    let path = rig.m("stat.me");
    spawn(&stat, &stop, move |p, stop| {
        while !stop.load(Ordering::Acquire) {
            let t0 = Instant::now();
            if p.call("stat", || std::fs::metadata(&path)).is_ok() {
                p.success(t0);
            }
        }
    });

    // Appends numbered records; after an error the record's fate is unknown, so the
    // file is reopened and the same record written again (duplicates are allowed).
    let path = rig.m("append.log");
    spawn(&append, &stop, move |p, stop| {
        let mut f: Option<File> = None;
        let mut n = 0u64;
        while !stop.load(Ordering::Acquire) {
            let Some(file) = f.as_mut() else {
                f = open_append(p, &path).ok();
                continue;
            };
            let t0 = Instant::now();
            let rec = append_rec(n);
            let ok = p.call("write(O_APPEND)", || file.write(rec.as_bytes())).is_ok_and(|k| k == rec.len())
                && p.call("fsync(O_APPEND)", || file.sync_all()).is_ok();
            if ok {
                p.acked.lock().unwrap().push(n);
                p.success(t0);
                n += 1;
            } else {
                f = None;
            }
        }
    });

    // Positional records: record n at n * PREC, retried on the same descriptor.
    let path = rig.m("pwrite.dat");
    spawn(&pwrite, &stop, move |p, stop| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .expect("open pwrite.dat");
        let mut n = 0u64;
        while !stop.load(Ordering::Acquire) {
            let t0 = Instant::now();
            let rec = pwrite_rec(n);
            let ok = p.call("pwrite", || file.write_all_at(rec.as_bytes(), n * PREC)).is_ok()
                && p.call("fsync(pwrite)", || file.sync_all()).is_ok();
            if ok {
                p.acked.lock().unwrap().push(n);
                p.success(t0);
                n += 1;
            }
        }
    });

    let t = Instant::now();
    wait_or_hang("every worker made progress before the first kill", &probes, || {
        probes.iter().all(|p| p.succeeded_since(t))
    });
    for cycle in 1..=CYCLES {
        let port = rig.kill_engine();
        let killed = Instant::now();
        if cycle == LONG_OUTAGE {
            // Longer than the bound: until every worker saw a call fail.
            wait_or_hang(&format!("cycle {cycle}: every worker saw a call fail"), &probes, || {
                probes.iter().all(|p| p.failed_since(killed))
            });
        } else {
            // Until every worker has run into the dead engine.
            wait_or_hang(&format!("cycle {cycle}: every worker called after the kill"), &probes, || {
                probes.iter().all(|p| p.hit_dead_engine(killed))
            });
        }
        rig.start_engine(port);
        let restarted = Instant::now();
        wait_or_hang(&format!("cycle {cycle}: every worker succeeded after the restart"), &probes, || {
            probes.iter().all(|p| p.succeeded_since(restarted))
        });
        eprintln!(
            "cycle {cycle}: engine down for {:?}, all workers through {:?} after the restart, worst call {:?}",
            restarted - killed,
            restarted.elapsed(),
            probes.iter().map(|p| p.take_cycle_worst()).max().unwrap_or_default()
        );
    }
    stop.store(true, Ordering::Release);
    wait_or_hang("workers stopped", &probes, || probes.iter().all(|p| p.done.load(Ordering::Acquire)));

    let bound = Duration::from_secs(BOUND_S);
    let mut worst = Duration::ZERO;
    for p in &probes {
        let (w, what) = *p.worst.lock().unwrap();
        eprintln!(
            "{}: worst call {what} took {w:?}; {} records acknowledged, {} calls failed",
            p.name,
            p.acked.lock().unwrap().len(),
            p.errors.lock().unwrap()
        );
        worst = worst.max(w);
        let unexpected = p.unexpected.lock().unwrap();
        assert!(unexpected.is_empty(), "{}: errors other than EIO/ETIMEDOUT: {unexpected:?}", p.name);
    }
    eprintln!("worst-case latency of any call over {CYCLES} kill -9/restart cycles: {worst:?} (bound {bound:?})");
    assert!(worst <= bound + SLACK, "a call took {worst:?}, beyond reconnect_timeout={BOUND_S}s");

    // On the HOST: every acknowledged record is there.
    let log = std::fs::read_to_string(rig.h("append.log")).unwrap();
    let have: HashSet<&str> = log.lines().collect();
    let acked = append.acked.lock().unwrap();
    assert!(acked.len() > CYCLES, "the append writer made progress");
    let lost: Vec<u64> = acked.iter().copied().filter(|n| !have.contains(append_rec(*n).trim_end())).collect();
    assert!(lost.is_empty(), "acknowledged appends lost: {lost:?}");
    for l in log.lines() {
        assert!(l.len() == 10 && l.starts_with('A'), "torn or foreign record in append.log: {l:?}");
    }
    let data = std::fs::read(rig.h("pwrite.dat")).unwrap();
    let acked = pwrite.acked.lock().unwrap();
    assert!(acked.len() > CYCLES, "the pwrite writer made progress");
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|n| data.get((n * PREC) as usize..((n + 1) * PREC) as usize) != Some(pwrite_rec(*n).as_bytes()))
        .collect();
    assert!(lost.is_empty(), "acknowledged pwrite records lost: {lost:?}");

    let renewed = rig.fuse_log.lock().unwrap().iter().filter(|l| l.contains("engine session renewed")).count();
    assert!(renewed >= CYCLES, "one re-mount per restart at least, saw {renewed}");
    assert_eq!(rig.unmount(), Some(0), "qtfs-fuse exits cleanly after the cycles");
}

/// Whether `pid` sleeps in a FUSE request.
fn in_fuse_request(pid: u32) -> bool {
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
    wchan.contains("fuse") || wchan.contains("request_wait_answer")
}

#[test]
fn a_process_waiting_for_a_dead_engine_dies_at_once_on_sigkill() {
    // The default bound (30 s): without interrupt handling the killed process would sit
    // in D state that long.
    let mut rig =
        Rig::start(Opts { mount_opts: vec!["attr_timeout=0".into(), "entry_timeout=0".into()], ..Default::default() });
    std::fs::write(rig.m("f"), b"x").unwrap();
    let port = rig.kill_engine();
    let mut child = Command::new("stat").arg(rig.m("f")).stdout(Stdio::null()).spawn().expect("stat");
    let pid = child.id();
    assert!(
        wait_until(Duration::from_secs(10), || in_fuse_request(pid)),
        "stat never waited in a FUSE request: {:?}",
        child.try_wait()
    );
    child.kill().unwrap();
    let t0 = Instant::now();
    let gone = wait_until(Duration::from_secs(5), || child.try_wait().unwrap().is_some());
    let took = t0.elapsed();
    eprintln!("SIGKILLed stat gone after {took:?}");
    assert!(gone, "a SIGKILLed process waiting for the engine is still there after {took:?} (D state)");
    assert!(took < Duration::from_secs(2), "SIGKILL took {took:?} to release the process");
    // The mount still works once the engine is back.
    rig.start_engine(port);
    assert_eq!(std::fs::read(rig.m("f")).unwrap(), b"x");
}
