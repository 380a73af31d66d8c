//! The per-core state of the file service (requests in flight, the spare-request pool,
//! the parked-request table `parked::Waiters`) and the context every handler gets
//! ([`Ctx`]: the reactor and that state). It imports no handler module — they all build
//! on it; the reactor's entry points (`impl Service for Fs`) are the top module's
//! (`fsops`).
//!
//! This module owns `Fs`, `Ctx` and the bookkeeping of ring operations in flight.

use std::os::fd::IntoRawFd;

use io_uring::{opcode, squeue, types};
use slab::Slab;

use super::parked::Waiters;
use super::req::{EpollReg, FsReq};
use crate::ring::{Reactor, UD_IGNORE, svc_of, svc_ud};

/// This service's id in the user_data of its ring operations.
pub(crate) const SVC: u8 = 1;

/// A ring operation of a file request.
pub(super) enum FsOp {
    Req(Box<FsReq>),
    /// A readiness registration (EPOLL_CTL), a multishot poll.
    Epoll(Box<EpollReg>),
}

/// The file-operation state of one core.
pub(crate) struct Fs {
    /// Operations in flight, by token.
    pub(super) ops: Slab<FsOp>,
    /// Spare requests. Boxed on purpose: the kernel holds pointers into a request, so
    /// its address must not change while it moves between the pool and `ops`.
    #[allow(clippy::vec_box)]
    pub(super) reqs: Vec<Box<FsReq>>,
    /// Requests parked on a ring timer until they may be retried (lock waits).
    pub(crate) waiters: Waiters,
    /// The request being dispatched marked its session as a maker of changes
    /// (`notify::Notify::begin_change`) and has not handed the mark on yet.
    pub(super) noting: bool,
}

impl Default for Fs {
    fn default() -> Self {
        // Room for a busy core's requests from the start (as the ring's own slab had).
        Fs { ops: Slab::with_capacity(1024), reqs: Vec::new(), waiters: Waiters::default(), noting: false }
    }
}

/// What a file-operation handler works with: the core's reactor and its file state.
pub(crate) struct Ctx<'a> {
    pub(crate) r: &'a mut Reactor,
    pub(crate) fs: &'a mut Fs,
}

impl Ctx<'_> {
    pub(super) fn new_req(&mut self) -> Box<FsReq> {
        self.fs.reqs.pop().unwrap_or_default()
    }

    pub(super) fn free_req(&mut self, mut r: Box<FsReq>) {
        if std::mem::take(&mut r.noted)
            && let (Some(n), Some(s)) = (&self.r.shared.notify, &r.session)
        {
            n.end_change(s);
        }
        // Temporary descriptors are closed by the ring with the next submit instead of
        // one close(2) each.
        for fd in r.take_fds() {
            self.r.push(opcode::Close::new(types::Fd(fd.into_raw_fd())).build().user_data(UD_IGNORE));
        }
        r.reset(&mut self.r.bufs);
        if self.fs.reqs.len() < 4096 {
            self.fs.reqs.push(r);
        }
    }

    /// Queues `req` as in flight; returns `e` with its user_data and personality.
    fn in_flight(&mut self, e: squeue::Entry, req: Box<FsReq>) -> (squeue::Entry, usize, u64) {
        let (conn, p) = (req.conn(), req.personality);
        let ud = svc_ud(SVC, self.fs.ops.insert(FsOp::Req(req)));
        let e = e.user_data(ud);
        let e = match p {
            Some(p) => e.personality(p),
            None => e,
        };
        (e, conn, ud)
    }

    /// Submits the next ring operation of a request (within its session's share of the
    /// ring's workers, see `Reactor::submit_for`).
    pub(super) fn submit_req(&mut self, e: squeue::Entry, req: Box<FsReq>) {
        let (e, conn, _) = self.in_flight(e, req);
        self.r.submit_for(conn, e);
    }

    /// Submits a request step now (a timer: never a worker); returns its user_data.
    pub(super) fn submit_req_now(&mut self, e: squeue::Entry, req: Box<FsReq>) -> u64 {
        let (e, conn, ud) = self.in_flight(e, req);
        self.r.submit_now(conn, e);
        ud
    }

    /// Arms a readiness registration; returns its user_data.
    pub(super) fn submit_epoll(&mut self, e: squeue::Entry, reg: Box<EpollReg>) -> u64 {
        let ud = svc_ud(SVC, self.fs.ops.insert(FsOp::Epoll(reg)));
        let e = e.user_data(ud);
        self.r.push(match self.r.base_personality {
            Some(p) => e.personality(p),
            None => e,
        });
        ud
    }

    /// The readiness registration of user_data `ud`, if it is one.
    pub(super) fn epoll_reg(&self, ud: u64) -> Option<&EpollReg> {
        match self.fs.ops.get(svc_of(ud)?.1)? {
            FsOp::Epoll(reg) => Some(reg),
            FsOp::Req(_) => None,
        }
    }
}
