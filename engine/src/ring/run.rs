//! The loop of a core: turns, completions, frames, housekeeping, and where each is
//! handed to the [`Service`] (the only generic part of the reactor).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types};
use qtfs_proto::{FrameHeader, HEADER_SIZE, Op, consts};

use super::{Exit, MAX_ENTER_ERRORS, RX_BUF, Reactor, Service, Slot, TRIM_AFTER_FREES, TX_HIGH, UD_IGNORE};
use super::{panic_text, svc_of};
use crate::stats::Done;

impl Reactor {
    /// Serves until the engine stops (`Exit::Stopped`, after closing everything) or the
    /// ring fails (`Exit::RingFailed`, state left for the supervisor to salvage). A panic
    /// that escapes `complete_isolated` unwinds out of here, also to the supervisor.
    pub fn run<S: Service>(&mut self, svc: &mut S) -> Exit {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        self.arm_wake();
        self.arm_tick();
        let mut errors = 0u32;
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => errors = 0,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) || e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => {
                    errors += 1;
                    if errors >= MAX_ENTER_ERRORS {
                        tracing::error!(
                            core = self.idx,
                            errors,
                            "io_uring_enter keeps failing: {e}; giving up on this ring"
                        );
                        return Exit::RingFailed(e);
                    }
                    if errors == 1 {
                        tracing::error!(core = self.idx, "io_uring_enter: {e}; retrying");
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            self.refresh_whitelist();
            self.drain_completions(svc);
            self.end_turn(svc);
            if let Some(e) = self.ring_broken.take() {
                return Exit::RingFailed(e);
            }
            if self.stopping && self.idle_or_late() {
                break;
            }
        }
        self.teardown(svc);
        Exit::Stopped
    }

    /// Handles every completion waiting in the completion queue.
    fn drain_completions<S: Service>(&mut self, svc: &mut S) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        for c in self.ring.completion() {
            cqes.push((c.user_data(), c.result(), c.flags()));
        }
        for &(ud, res, flags) in &cqes {
            self.complete_isolated(svc, ud, res, flags);
            self.settle(svc);
        }
        self.cqes = cqes;
    }

    fn idle_or_late(&self) -> bool {
        let busy = self.conns.iter().any(|(_, c)| c.inflight > 0 || c.send.is_some());
        !busy || self.stop_deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Closes every connection and cancels every operation, waiting (bounded) for the
    /// kernel to finish with our buffers before they are dropped.
    fn teardown<S: Service>(&mut self, svc: &mut S) {
        self.tearing_down = true;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close_conn(k);
        }
        self.settle(svc);
        self.push(opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(UD_IGNORE));
        // What the kernel still holds then (e.g. an open blocked in a worker) is leaked.
        self.wait_in_flight(svc, "operations still in flight at exit; leaking their buffers", |r, svc, _| {
            r.drain_completions(svc);
            r.end_turn(svc);
            true
        });
        tracing::debug!(core = self.idx, "core stopped");
    }

    fn end_turn<S: Service>(&mut self, svc: &mut S) {
        while let Some(k) = self.chan_resume.pop() {
            if self.conns.get(k).is_some_and(|c| c.chan_paused) {
                self.maybe_resume(k);
            }
        }
        self.settle(svc);
        let dirty = std::mem::take(&mut self.dirty);
        for &k in &dirty {
            if let Some(c) = self.conns.get_mut(k) {
                c.dirty = false;
                self.flush(k);
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
        if !self.done.is_empty() {
            if let Some(s) = self.shared.stats.get(self.idx) {
                s.lock().record(&self.done);
            }
            self.done.clear();
        }
        svc.end_turn(self);
        self.settle(svc);
    }

    /// Runs what service handlers left for the loop (see Re-entry in the module
    /// documentation): the service hears of closing connections, and connections whose
    /// backpressure lifted have their buffered frames parsed. Each on behalf of its
    /// connection: a panic closes only that one.
    fn settle<S: Service>(&mut self, svc: &mut S) {
        loop {
            if let Some(k) = self.closed.pop() {
                self.isolated(k, |r| svc.conn_closing(r, k));
            } else if let Some(k) = self.to_parse.pop() {
                self.isolated(k, |r| r.process_rx(svc, k));
            } else {
                return;
            }
        }
    }

    /// Runs `f` on behalf of connection `key`: a panic (a bug its frames reached) closes
    /// that connection and the loop goes on.
    fn isolated(&mut self, key: usize, f: impl FnOnce(&mut Reactor)) {
        let id = self.conns.get(key).map(|c| c.id);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)));
        let Err(p) = r else { return };
        let Some(id) = id else { std::panic::resume_unwind(p) };
        self.closed_by_panic(key, id, &*p);
    }

    fn closed_by_panic(&mut self, key: usize, id: u64, p: &(dyn std::any::Any + Send)) {
        tracing::error!(
            core = self.idx,
            conn = id,
            "bug while serving this connection ({}); closing it",
            panic_text(p)
        );
        if let Some(c) = self.conns.get_mut(key)
            && c.id == id
        {
            c.in_rx = false;
            self.close_conn(key);
        }
    }

    /// The connection (key, id) a completion belongs to, when it belongs to exactly one.
    fn owner_of<S: Service>(&self, svc: &S, ud: u64) -> Option<(usize, u64)> {
        let conn = if svc_of(ud).is_some() {
            svc.owner(ud)?
        } else {
            match self.ops.get(usize::try_from(ud).ok()?)? {
                Slot::Recv { conn } | Slot::Send { conn } => *conn,
                _ => return None,
            }
        };
        Some((conn, self.conns.get(conn)?.id))
    }

    /// Handles one completion. A panic on behalf of one connection (a bug its frames
    /// reached) closes that connection and the loop goes on; whatever that handler had
    /// half-done to the connection is abandoned with it (at worst it stays allocated,
    /// its socket shut down). A panic with no single owner (accept, timers, channels,
    /// readiness registrations) unwinds on to the supervisor.
    fn complete_isolated<S: Service>(&mut self, svc: &mut S, ud: u64, res: i32, flags: u32) {
        let owner = self.owner_of(svc, ud);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.complete(svc, ud, res, flags)));
        let Err(p) = r else { return };
        let Some((key, id)) = owner else { std::panic::resume_unwind(p) };
        self.closed_by_panic(key, id, &*p);
    }

    /// Counts a service operation out of `svc_ops` when its last completion came (`more`:
    /// a multishot one stays armed); true when it did. Reactor operations: false.
    pub(super) fn svc_op_ended(&mut self, ud: u64, more: bool) -> bool {
        let ended = svc_of(ud).is_some() && !more;
        if ended {
            self.svc_ops = self.svc_ops.saturating_sub(1);
        }
        ended
    }

    fn complete<S: Service>(&mut self, svc: &mut S, ud: u64, res: i32, flags: u32) {
        if ud == UD_IGNORE {
            return;
        }
        let more = cqueue::more(flags);
        if self.svc_op_ended(ud, more) {
            self.worker_done(ud);
        }
        if svc_of(ud).is_some() {
            svc.on_completion(self, ud, res, flags);
            return;
        }
        let Ok(key) = usize::try_from(ud) else { return };
        if more {
            // A multishot operation that stays armed: its slot stays.
            match self.ops.get(key) {
                Some(Slot::Accept { listener }) => {
                    let l = *listener;
                    self.on_accept(l, res, true);
                }
                Some(_) => tracing::error!(ud, "MORE on a single-shot operation"),
                None => tracing::error!(ud, "completion for an unknown slot"),
            }
            return;
        }
        let Some(slot) = self.ops.try_remove(key) else {
            tracing::error!(ud, "completion for an unknown slot");
            return;
        };
        match slot {
            Slot::Accept { listener } => self.on_accept(listener, res, false),
            Slot::Recv { conn } => {
                if self.on_recv(conn, res) {
                    self.process_rx(svc, conn);
                }
            }
            Slot::Send { conn } => self.on_send(conn, res),
            Slot::Wake => self.on_wake(svc),
            Slot::Tick => self.on_tick(svc),
            Slot::AcceptPause(listener, ts) => {
                drop(ts); // the kernel has read it
                self.arm_accept(listener)
            }
        }
    }

    // ------------------------------------------------------------------ frames

    /// Dispatches every complete frame in the receive buffer (as far as backpressure
    /// allows) and re-arms the receive.
    fn process_rx<S: Service>(&mut self, svc: &mut S, key: usize) {
        let max_inflight = self.shared.cfg.max_inflight;
        let budget = self.shared.cfg.channel_buffer_budget;
        let mut buf = match self.conns.get_mut(key) {
            Some(c) if !c.in_rx => {
                c.in_rx = true;
                std::mem::take(&mut c.rx)
            }
            _ => return,
        };
        let mut pos = 0usize;
        let mut bad = false;
        // `in_rx` keeps the connection allocated while its frames are handled, even if
        // one of them closes it.
        while let Some(c) = self.conns.get(key) {
            if c.closing || c.inflight >= max_inflight || c.tx_bytes > TX_HIGH || c.over_chan_budget(budget) {
                break;
            }
            let rest = buf.get(pos..).unwrap_or_default();
            if rest.len() < HEADER_SIZE {
                break;
            }
            // Checked per frame: a client may pipeline requests behind its ATTACH.
            let h = match FrameHeader::decode(rest, c.max_payload()) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(conn = c.id, peer = %c.shared.peer, "malformed frame header ({e}); closing the connection");
                    bad = true;
                    break;
                }
            };
            let total = HEADER_SIZE + h.len as usize;
            let Some(payload) = rest.get(HEADER_SIZE..total) else { break };
            self.on_frame(svc, key, h, payload);
            pos += total;
        }
        buf.drain(..pos.min(buf.len()));
        let Some(c) = self.conns.get_mut(key) else { return };
        c.in_rx = false;
        if bad {
            c.rx = buf;
            self.close_conn(key);
            return;
        }
        if c.closing {
            c.rx = buf;
            self.maybe_free(key);
            return;
        }
        // Make room for the frame at the front if it is larger than the buffer.
        if buf.len() >= HEADER_SIZE
            && let Ok(h) = FrameHeader::decode(&buf, c.max_payload())
        {
            let need = HEADER_SIZE + h.len as usize;
            if buf.capacity() < need {
                buf.reserve(need - buf.len());
            }
        } else if buf.is_empty() && buf.capacity() > 2 * RX_BUF {
            // A large frame is done: give the memory back.
            buf = Vec::with_capacity(RX_BUF);
        }
        c.rx = buf;
        self.arm_recv(key);
    }

    /// The connection's own protocol (handshake, PING) is answered here; everything
    /// else is the service's.
    fn on_frame<S: Service>(&mut self, svc: &mut S, key: usize, h: FrameHeader, payload: &[u8]) {
        #[cfg(test)]
        super::tests::fail_point_frame(h.op);
        let Some(c) = self.conns.get_mut(key) else { return };
        if !c.active() {
            self.handshake(key, h, payload);
            return;
        }
        c.shared.requests.fetch_add(1, Ordering::Relaxed);
        let Some(op) = h.op() else {
            if h.is_request() {
                self.respond_err(key, h.op, h.id, consts::errno::ENOSYS);
            }
            return;
        };
        match op {
            Op::PING if h.is_request() => {
                let t0 = Instant::now();
                let n = self.respond(key, h.op, h.id, &qtfs_proto::Data { data: qtfs_proto::Rest(payload) });
                self.record(Done {
                    op_index: op.index() as u16,
                    ok: true,
                    bytes_in: payload.len() as u32,
                    bytes_out: n as u32,
                    latency_ns: t0.elapsed().as_nanos() as u64,
                });
            }
            Op::HELLO | Op::ATTACH => {
                if h.is_request() {
                    self.respond_err(key, h.op, h.id, consts::errno::EPROTO);
                }
            }
            _ => svc.on_frame(self, key, h, op, payload),
        }
    }

    // ------------------------------------------------------------------ housekeeping

    fn arm_wake(&mut self) {
        if self.tearing_down {
            return;
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.wake_fd);
        let ptr: *mut u64 = &mut *self.wake_buf;
        let ud = self.slot(Slot::Wake);
        let e = opcode::Read::new(types::Fd(fd), ptr.cast(), 8).build().user_data(ud);
        self.push(e);
    }

    fn on_wake<S: Service>(&mut self, svc: &mut S) {
        if self.shared.shutdown.load(Ordering::Acquire) && !self.stopping {
            self.stopping = true;
            self.stop_deadline = Some(Instant::now() + Duration::from_secs(5));
            tracing::debug!(core = self.idx, "stopping: no longer accepting");
            // Cancel the accepts; the listeners themselves are closed by their owner.
            let keys: Vec<usize> =
                self.ops.iter().filter(|(_, s)| matches!(s, Slot::Accept { .. })).map(|(k, _)| k).collect();
            for k in keys {
                self.push(opcode::AsyncCancel::new(k as u64).build().user_data(UD_IGNORE));
            }
            let idle: Vec<usize> =
                self.conns.iter().filter(|(_, c)| c.inflight == 0 && c.send.is_none()).map(|(k, _)| k).collect();
            for k in idle {
                self.close_conn(k);
            }
            return;
        }
        svc.on_wake(self);
        self.arm_wake();
    }

    fn arm_tick(&mut self) {
        if self.tearing_down {
            return;
        }
        let ts: *const types::Timespec = &*self.tick_ts;
        let ud = self.slot(Slot::Tick);
        self.push(opcode::Timeout::new(ts).build().user_data(ud));
    }

    fn on_tick<S: Service>(&mut self, svc: &mut S) {
        #[cfg(test)]
        super::tests::fail_point_tick(self.idx);
        // After connections went away idle memory is given back (see `give_back_memory`).
        let trim = self.freed > 0 && (self.freed >= TRIM_AFTER_FREES || self.freed_big);
        svc.on_tick(self, trim);
        if self.idx == 0 && self.last_reap.elapsed().as_secs() >= 1 {
            self.last_reap = Instant::now();
            self.shared.sessions.reap(self.shared.cfg.session_grace);
        }
        self.expire_handshakes();
        let paused: Vec<usize> = self.conns.iter().filter(|(_, c)| c.chan_paused).map(|(k, _)| k).collect();
        for k in paused {
            self.maybe_resume(k);
        }
        if trim {
            self.give_back_memory();
        }
        if self.stopping {
            // Close connections whose work finished since the stop began.
            let idle: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| !c.closing && c.inflight == 0 && c.send.is_none())
                .map(|(k, _)| k)
                .collect();
            for k in idle {
                self.close_conn(k);
            }
        }
        self.arm_tick();
    }

    /// After connections went away, gives idle memory back to the system: the spare
    /// buffers beyond a small reserve (the service trims its own in `on_tick`), and
    /// (glibc) the heap's free pages, which a burst of large receive buffers otherwise
    /// keeps mapped in every core's arena long after the peers left.
    fn give_back_memory(&mut self) {
        self.freed = 0;
        self.freed_big = false;
        self.bufs.shrink();
        self.spare_sends.truncate(16);
        self.spare_sends.shrink_to_fit();
        self.handshakes.shrink_to_fit();
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes the
        // allocator's own locks.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
