//! Keeps a core serving after its loop died.
//!
//! A bug reached while handling one connection's completion only closes that
//! connection (`Core::complete_isolated`). What still ends a core's loop — a panic with
//! no single connection to blame (accept, timers, channels, readiness registrations,
//! the end-of-turn flush), or a ring that failed (`io_uring_enter` refused
//! `MAX_ENTER_ERRORS` times in a row, or a submission that cannot be made) — is handled
//! here: the core is salvaged and a fresh loop with a new ring serves the same
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

use std::collections::{HashSet, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types};

use super::{Core, Exit, ListenFd, Slot, UD_IGNORE, panic_text, transient};
use crate::udsmux;

/// Exit status of an engine that lost a core it cannot rebuild.
pub(crate) const EXIT_RING_FAILED: i32 = 70;
/// Ring failures of one core within a minute after which the engine gives up.
const RING_FAILURES_FATAL: usize = 3;

/// Runs `core` until the engine stops, rebuilding it whenever its loop dies.
pub(crate) fn supervise(mut core: Core) {
    let idx = core.idx;
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
        let shared = core.shared.clone();
        let gate = core.gate.clone();
        let (listeners, wake) = match catch_unwind(AssertUnwindSafe(|| core.salvage())) {
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
        core = match Core::new(idx, shared, listeners, wake, gate) {
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

impl Core {
    /// After the loop died: closes every connection without running any handler (the
    /// state they would act on may be inconsistent), lets the kernel cancel and give
    /// back its operations (2 s at most; what it keeps is leaked), and returns what a
    /// new loop needs: the listeners and the wake-up descriptor.
    fn salvage(&mut self) -> io::Result<(Vec<ListenFd>, OwnedFd)> {
        let wake = self.wake_fd.try_clone()?;
        let listeners = std::mem::take(&mut self.listeners);
        self.stopping = true;
        self.tearing_down = true;
        let mut ids = HashSet::with_capacity(self.conns.len());
        for (_, c) in self.conns.iter_mut() {
            // SAFETY: shutdown(2) of a socket we own: the peer sees EOF now, whatever
            // becomes of the descriptor.
            unsafe { libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_RDWR) };
            if let Some(s) = c.session.take() {
                s.detach();
            }
            if let Some(g) = c.gate.take() {
                self.gate.release(&g);
            }
            ids.insert(c.id);
        }
        self.shared.conns.lock().retain(|id, _| !ids.contains(id));
        self.shared.chans.lock().retain(|(conn, _), _| !ids.contains(conn));
        self.handshakes.clear();

        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(UD_IGNORE);
        // SAFETY: a cancel points at no memory. If the queue is full the cancel is
        // skipped; the kernel cancels everything when the ring is closed.
        let _ = unsafe { self.ring.submission().push(&cancel) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.ops.is_empty() && Instant::now() < deadline {
            let ts = types::Timespec::new().nsec(50_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            if let Err(e) = self.ring.submitter().submit_with_args(1, &args)
                && !transient(&e)
            {
                break;
            }
            let done: Vec<(u64, i32, u32)> =
                self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
            for (ud, res, flags) in done {
                self.forget_completion(ud, res, flags);
            }
        }
        if !self.ops.is_empty() {
            tracing::warn!(
                core = self.idx,
                left = self.ops.len(),
                "operations the kernel did not give back; leaking their memory and connections"
            );
            std::mem::forget(std::mem::take(&mut self.ops));
            std::mem::forget(std::mem::take(&mut self.conns));
            std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new(0)));
            udsmux::teardown(self, true);
        }
        Ok((listeners, wake))
    }

    /// Takes a completion without handling it: the slot is dropped once the kernel is
    /// done with it; a descriptor it created is closed.
    fn forget_completion(&mut self, ud: u64, res: i32, flags: u32) {
        let Ok(key) = usize::try_from(ud) else { return };
        let new_fd = matches!(
            self.ops.get(key),
            Some(Slot::Accept { .. }) | Some(Slot::Chan(udsmux::ChanOp::Accept(_) | udsmux::ChanOp::Resolve(_)))
        );
        if new_fd && res >= 0 {
            // SAFETY: an accept or open that succeeded returned a descriptor we own.
            drop(unsafe { OwnedFd::from_raw_fd(res) });
        }
        if !cqueue::more(flags) {
            self.ops.try_remove(key);
        }
    }
}
