//! Channels as a service of the reactor: the context every channel handler gets
//! ([`Ctx`]: the reactor and this core's channel state) and the [`Service`] entry points.

use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::cqueue;
use qtfs_proto::{FrameHeader, Op};

use super::{ChanOp, State};
use crate::ring::{Reactor, Service, svc_of, svc_ud};

/// This service's id in the user_data of its ring operations.
pub(crate) const SVC: u8 = 2;

/// What a channel handler works with: the core's reactor and its channel state.
pub(crate) struct Ctx<'a> {
    pub(crate) r: &'a mut Reactor,
    pub(crate) mux: &'a mut State,
}

impl Ctx<'_> {
    /// Records `op` as in flight; returns the user_data to submit it with.
    pub(super) fn chan_ud(&mut self, op: ChanOp) -> u64 {
        svc_ud(SVC, self.mux.ops.insert(op))
    }
}

impl Service for State {
    fn on_frame(&mut self, r: &mut Reactor, conn: usize, h: FrameHeader, op: Op, payload: &[u8]) {
        super::on_frame(&mut Ctx { r, mux: self }, conn, h, op, payload);
    }

    fn on_completion(&mut self, r: &mut Reactor, ud: u64, res: i32, flags: u32) {
        let Some((_, key)) = svc_of(ud) else { return };
        let more = cqueue::more(flags);
        // A multishot operation that stays armed keeps its token.
        let op = if more { self.ops.get(key).copied() } else { self.ops.try_remove(key) };
        let Some(op) = op else {
            tracing::error!(ud, "completion for an unknown channel operation");
            return;
        };
        super::complete(&mut Ctx { r, mux: self }, op, res, flags, more);
    }

    fn conn_closing(&mut self, r: &mut Reactor, conn: usize) {
        super::close::conn_closing(&mut Ctx { r, mux: self }, conn);
    }

    fn on_tick(&mut self, r: &mut Reactor, _trim: bool) {
        super::tick(&mut Ctx { r, mux: self });
    }

    fn end_turn(&mut self, r: &mut Reactor) {
        super::end_turn(&mut Ctx { r, mux: self });
    }

    fn abandon(&mut self, ud: u64, res: i32, flags: u32) {
        let Some((_, key)) = svc_of(ud) else { return };
        if matches!(self.ops.get(key), Some(ChanOp::Accept(_) | ChanOp::Resolve(_))) && res >= 0 {
            // SAFETY: an accept or open that succeeded returned a descriptor we own.
            drop(unsafe { OwnedFd::from_raw_fd(res) });
        }
        if !cqueue::more(flags) {
            self.ops.try_remove(key);
        }
    }

    /// The kernel may still hold pointers into channel memory (operations that did not
    /// finish): it outlives the core.
    fn leak(&mut self) {
        std::mem::forget(std::mem::take(self));
    }
}
