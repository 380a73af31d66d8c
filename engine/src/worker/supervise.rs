//! Keeps a core serving after its loop died.
//!
//! A bug reached while handling one connection's completion only closes that
//! connection (the reactor's `complete_isolated`). What still ends a core's loop — a
//! panic with no single connection to blame (accept, timers, channels, readiness registrations,
//! the end-of-turn flush), or a ring that failed (`io_uring_enter` refused
//! `MAX_ENTER_ERRORS` times in a row, or a submission that cannot be made) — is handled
//! here: the core is salvaged (`Reactor::salvage`) and a fresh loop with a new ring serves the same
//! listeners. Dropped with the old loop:
//!
//! - its connections: their sockets are shut down (clients see EOF and reconnect);
//!   their sessions are detached, so exports and handles survive for the session grace
//!   period and a reconnecting client finds them;
//! - its in-flight requests: cancelled and never answered;
//! - its unix-socket channels and channel listeners (local sockets closed, files of
//!   listeners left in place);
//! - its buffer pools, personalities and counters not yet published.
//!
//! Whatever the kernel has not given back within 2 s (an operation stuck in a worker,
//! or everything when the ring itself is broken) is leaked, never freed under the
//! kernel. Restarts that follow each other within 10 s are spaced out (100 ms doubling
//! up to 5 s), so a deterministic bug cannot spin. The engine exits only when a core
//! cannot be rebuilt: its ring failed `RING_FAILURES_FATAL` times within a minute, or a
//! new ring cannot be created — exit status `EXIT_RING_FAILED` (70, EX_SOFTWARE), for
//! the service manager to act on, rather than a process that looks alive while one of
//! its listeners is never accepted from.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Core;
use crate::ring::{Exit, Reactor, panic_text};

/// Exit status of an engine that lost a core it cannot rebuild.
pub(crate) const EXIT_RING_FAILED: i32 = 70;
/// Ring failures of one core within a minute after which the engine gives up.
const RING_FAILURES_FATAL: usize = 3;

/// Runs `core` until the engine stops, rebuilding it whenever its loop dies.
pub(crate) fn supervise(mut core: Core) {
    let idx = core.r.idx;
    let mut ring_failures: VecDeque<Instant> = VecDeque::new();
    let mut backoff = Duration::ZERO;
    let mut last_restart: Option<Instant> = None;
    loop {
        let why = match catch_unwind(AssertUnwindSafe(|| core.run())) {
            Ok(Exit::Stopped) => return,
            Ok(Exit::RingFailed(e)) => {
                let now = Instant::now();
                ring_failures.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
                ring_failures.push_back(now);
                if ring_failures.len() >= RING_FAILURES_FATAL {
                    fatal(
                        idx,
                        &format!("its io_uring failed {} times within a minute (last: {e})", ring_failures.len()),
                    );
                }
                format!("its io_uring failed ({e})")
            }
            Err(p) => format!("it panicked ({})", panic_text(&*p)),
        };
        tracing::error!(core = idx, "core loop ended: {why}; closing its connections and starting it again");
        let shared = core.r.shared.clone();
        let gate = core.r.gate();
        let (listeners, wake) = match catch_unwind(AssertUnwindSafe(|| core.r.salvage(&mut core.svc))) {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => fatal(idx, &format!("cannot keep its wake-up descriptor: {e}")),
            Err(p) => fatal(idx, &format!("salvaging it panicked too ({})", panic_text(&*p))),
        };
        drop(core);
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        backoff = if last_restart.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
        } else {
            Duration::ZERO
        };
        if !backoff.is_zero() {
            std::thread::sleep(backoff);
        }
        last_restart = Some(Instant::now());
        core = match Reactor::new(idx, shared, listeners, wake, gate).map(Core::new) {
            Ok(c) => c,
            Err(e) => fatal(idx, &format!("cannot create a new io_uring: {e}")),
        };
        tracing::warn!(core = idx, "core restarted");
    }
}

fn fatal(idx: usize, why: &str) -> ! {
    tracing::error!(core = idx, "core lost: {why}; exiting with status {EXIT_RING_FAILED}");
    std::process::exit(EXIT_RING_FAILED)
}
