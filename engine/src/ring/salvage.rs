//! What is left of a reactor whose loop died: connections closed without running any
//! handler, operations given back by the kernel (or leaked), and the parts a new loop
//! needs. The restart policy is the supervisor's (`worker::supervise`). The bounded wait
//! for the kernel's operations, and the leak of what it keeps, serve the loop's own
//! orderly teardown too (`run.rs`).

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types};

use super::gate::PreAuthGate;
use super::{ListenFd, Reactor, Service, Slot, UD_IGNORE, svc_of, transient};

impl Reactor {
    /// The pre-auth bounds this core shares with the others (kept across a restart).
    pub(crate) fn gate(&self) -> Arc<PreAuthGate> {
        self.gate.clone()
    }

    /// After the loop died: closes every connection without running any handler (the
    /// state they would act on may be inconsistent), lets the kernel cancel and give
    /// back its operations (2 s at most; what it keeps is leaked, the service's too),
    /// and returns what a new loop needs: the listeners and the wake-up descriptor.
    pub(crate) fn salvage<S: Service>(&mut self, svc: &mut S) -> io::Result<(Vec<ListenFd>, OwnedFd)> {
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
        let why = "operations the kernel did not give back; leaking their memory and connections";
        self.wait_in_flight(svc, why, |r, svc, waited| {
            if let Err(e) = waited
                && !transient(&e)
            {
                return false;
            }
            let done: Vec<(u64, i32, u32)> =
                r.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())).collect();
            for (ud, res, flags) in done {
                r.forget_completion(svc, ud, res, flags);
            }
            true
        });
        Ok((listeners, wake))
    }

    /// Gives the kernel 2 s to finish the operations it holds: submits and waits (50 ms
    /// at most each time), `turn` handling each wait's outcome (false: stop waiting).
    /// What it still holds then is leaked ([`Reactor::leak_in_flight`]), logged as `why`.
    pub(super) fn wait_in_flight<S: Service>(
        &mut self,
        svc: &mut S,
        why: &str,
        mut turn: impl FnMut(&mut Self, &mut S, io::Result<usize>) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.ops_in_flight() && Instant::now() < deadline {
            let ts = types::Timespec::new().nsec(50_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            let waited = self.ring.submitter().submit_with_args(1, &args);
            if !turn(self, svc, waited) {
                break;
            }
        }
        if self.ops_in_flight() {
            tracing::warn!(core = self.idx, left = self.ops.len() + self.svc_ops, "{why}");
            self.leak_in_flight(svc);
        }
    }

    /// Leaks what operations the kernel still holds point into: their memory, that of
    /// the connections (receive buffers, send vectors), the wake-up buffer and the
    /// service's, which must outlive us rather than be freed under the kernel.
    fn leak_in_flight<S: Service>(&mut self, svc: &mut S) {
        std::mem::forget(std::mem::take(&mut self.ops));
        std::mem::forget(std::mem::take(&mut self.conns));
        std::mem::forget(std::mem::replace(&mut self.wake_buf, Box::new(0)));
        svc.leak();
    }

    /// Takes a completion without handling it: the operation's state is dropped once
    /// the kernel is done with it; a descriptor it created is closed.
    fn forget_completion<S: Service>(&mut self, svc: &mut S, ud: u64, res: i32, flags: u32) {
        if ud == UD_IGNORE {
            return;
        }
        let more = cqueue::more(flags);
        self.svc_op_ended(ud, more);
        if svc_of(ud).is_some() {
            svc.abandon(ud, res, flags);
            return;
        }
        let Ok(key) = usize::try_from(ud) else { return };
        if matches!(self.ops.get(key), Some(Slot::Accept { .. })) && res >= 0 {
            // SAFETY: an accept that succeeded returned a descriptor we own.
            drop(unsafe { OwnedFd::from_raw_fd(res) });
        }
        if !more {
            self.ops.try_remove(key);
        }
    }
}
