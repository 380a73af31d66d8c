//! File operations as a service of the reactor: the per-core state (requests in flight,
//! the spare-request pool, parked waits), the context every handler gets ([`Ctx`]: the
//! reactor and that state), and the [`Service`] entry points.

use std::os::fd::IntoRawFd;

use io_uring::{cqueue, opcode, squeue, types};
use qtfs_proto::{FrameHeader, Op};
use slab::Slab;

use super::common::FsReq;
use super::epoll::EpollReg;
use super::waiter::Waiters;
use crate::ring::{Reactor, Service, UD_IGNORE, svc_of, svc_ud};

/// This service's id in the user_data of its ring operations.
pub(crate) const SVC: u8 = 1;

/// A ring operation of a file request.
enum FsOp {
    Req(Box<FsReq>),
    /// A readiness registration (EPOLL_CTL), a multishot poll.
    Epoll(Box<EpollReg>),
}

/// The file-operation state of one core.
pub(crate) struct Fs {
    /// Operations in flight, by token.
    ops: Slab<FsOp>,
    /// Spare requests. Boxed on purpose: the kernel holds pointers into a request, so
    /// its address must not change while it moves between the pool and `ops`.
    #[allow(clippy::vec_box)]
    reqs: Vec<Box<FsReq>>,
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

impl Service for Fs {
    fn on_frame(&mut self, r: &mut Reactor, conn: usize, h: FrameHeader, op: Op, payload: &[u8]) {
        super::dispatch(&mut Ctx { r, fs: self }, conn, h, op, payload);
    }

    fn on_completion(&mut self, r: &mut Reactor, ud: u64, res: i32, flags: u32) {
        let Some((_, key)) = svc_of(ud) else { return };
        let mut core = Ctx { r, fs: self };
        if cqueue::more(flags) {
            // A multishot poll that stays armed: its registration stays.
            match core.fs.ops.get(key) {
                Some(FsOp::Epoll(_)) => super::epoll::epoll_event(&mut core, ud, res),
                _ => tracing::error!(ud, "MORE on a single-shot operation"),
            }
            return;
        }
        match core.fs.ops.try_remove(key) {
            Some(FsOp::Req(req)) => super::complete(&mut core, req, res),
            Some(FsOp::Epoll(reg)) => super::epoll::epoll_done(&mut core, ud, *reg, res),
            None => tracing::error!(ud, "completion for an unknown file operation"),
        }
    }

    fn owner(&self, ud: u64) -> Option<usize> {
        match self.ops.get(svc_of(ud)?.1)? {
            FsOp::Req(r) => Some(r.conn()),
            FsOp::Epoll(_) => None,
        }
    }

    /// Cancels every ring operation of `conn`'s requests (a READ on an idle FIFO, an
    /// open waiting for a FIFO's other end…): nobody will read their answers, and until
    /// they finish they keep the connection, its session and their descriptors alive.
    /// Each finishes with an error, which releases the connection as usual.
    fn conn_closing(&mut self, r: &mut Reactor, conn: usize) {
        if r.conns.get(conn).is_none_or(|c| c.inflight == 0) {
            return;
        }
        for (key, op) in self.ops.iter() {
            if matches!(op, FsOp::Req(req) if req.conn() == conn) {
                r.push(opcode::AsyncCancel::new(svc_ud(SVC, key)).build().user_data(UD_IGNORE));
            }
        }
    }

    /// Another core may have released what requests parked here wait for.
    fn on_wake(&mut self, r: &mut Reactor) {
        super::waiter::on_wake(&mut Ctx { r, fs: self });
    }

    fn on_tick(&mut self, _r: &mut Reactor, trim: bool) {
        if trim {
            self.reqs.truncate(64);
            self.reqs.shrink_to_fit();
        }
    }

    fn abandon(&mut self, ud: u64, _res: i32, flags: u32) {
        if let Some((_, key)) = svc_of(ud)
            && !cqueue::more(flags)
        {
            self.ops.try_remove(key);
        }
    }

    fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.ops));
    }
}
