//! Bytes on connections: receive buffers, queued responses and their coalesced
//! `sendmsg`, and the backpressure between them.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use io_uring::{opcode, types};
use qtfs_proto::{FrameHeader, HEADER_SIZE, Op, Wire, push_frame};

use super::conn::SendOp;
use super::{MAX_IOV, PREAUTH_RX, RX_BUF, Reactor, Slot, TX_HIGH};
use crate::stats::Done;

impl Reactor {
    // ------------------------------------------------------------------ responses

    /// Whether responses may still be queued on `key`.
    fn can_send(&self, key: usize) -> bool {
        self.conns.get(key).is_some_and(|c| !c.closing || c.close_after_flush)
    }

    fn tx_tail(&mut self, key: usize, need: usize) -> Option<&mut Vec<u8>> {
        let c = self.conns.get_mut(key)?;
        if !c.tx_tail_open || c.tx.back().is_none_or(|b| b.len() + need > b.capacity()) {
            // Before ATTACH only small handshake answers are sent: no 64 KiB buffer.
            let b = self.bufs.get(if c.active() { need.max(RX_BUF) } else { need });
            c.tx.push_back(b);
            c.tx_tail_open = true;
        }
        c.tx.back_mut()
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key)
            && !c.dirty
        {
            c.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Queues a response carrying `msg`.
    pub fn respond<'m, M: Wire<'m>>(&mut self, key: usize, op: u16, id: u64, msg: &M) -> usize {
        self.send_frame(key, FrameHeader::response(op, id, 0), msg)
    }

    /// Answers request `h` of `key` with `r` (a message or an errno) and records it under
    /// `op` with its latency since `t0`: the ending of every request answered in one step.
    pub fn answer<'m, M: Wire<'m>>(&mut self, key: usize, h: &FrameHeader, op: Op, t0: Instant, r: Result<M, i32>) {
        let (ok, n) = match r {
            Ok(m) => (true, self.respond(key, h.op, h.id, &m)),
            Err(e) => {
                self.respond_err(key, h.op, h.id, e);
                (false, 0)
            }
        };
        self.record(Done {
            op_index: op.index() as u16,
            ok,
            bytes_in: h.len,
            bytes_out: n as u32,
            latency_ns: t0.elapsed().as_nanos() as u64,
        });
    }

    /// Queues any frame carrying `msg`; returns its size.
    pub fn send_frame<'m, M: Wire<'m>>(&mut self, key: usize, h: FrameHeader, msg: &M) -> usize {
        if !self.can_send(key) {
            return 0;
        }
        let n = HEADER_SIZE + msg.encoded_len();
        let Some(tail) = self.tx_tail(key, n) else { return 0 };
        push_frame(tail, h, msg);
        if let Some(c) = self.conns.get_mut(key) {
            c.tx_bytes += n;
        }
        self.mark_dirty(key);
        n
    }

    /// Queues an error response.
    pub fn respond_err(&mut self, key: usize, op: u16, id: u64, errno: i32) {
        if !self.can_send(key) {
            return;
        }
        let Some(tail) = self.tx_tail(key, HEADER_SIZE) else { return };
        FrameHeader::error(op, id, errno).push(tail);
        if let Some(c) = self.conns.get_mut(key) {
            c.tx_bytes += HEADER_SIZE;
        }
        self.mark_dirty(key);
    }

    /// Queues a complete frame already built in `frame` (e.g. header + read data).
    pub fn respond_owned(&mut self, key: usize, frame: Vec<u8>) {
        let Some(c) = self.conns.get_mut(key).filter(|c| !c.closing || c.close_after_flush) else {
            self.bufs.put(frame);
            return;
        };
        c.tx_bytes += frame.len();
        c.tx.push_back(frame);
        c.tx_tail_open = false;
        self.mark_dirty(key);
    }

    // ------------------------------------------------------------------ receive

    pub(super) fn arm_recv(&mut self, key: usize) {
        let max_inflight = self.shared.cfg.max_inflight;
        let budget = self.shared.cfg.channel_buffer_budget;
        let Some(c) = self.conns.get_mut(key) else { return };
        if c.recv_armed || c.in_rx || c.closing || c.inflight >= max_inflight || c.tx_bytes > TX_HIGH {
            return;
        }
        if c.over_chan_budget(budget) {
            if !c.chan_paused {
                c.chan_paused = true;
                crate::log_limited!(
                    tracing::Level::WARN,
                    conn = c.id,
                    peer = %c.shared.peer,
                    "the session's channels hold --channel-buffer-budget bytes; not reading this connection until they drain"
                );
            }
            return;
        }
        c.chan_paused = false;
        if c.active() {
            if c.rx.capacity() - c.rx.len() < 4096 {
                c.rx.reserve(RX_BUF);
            }
        } else if c.rx.capacity() < PREAUTH_RX {
            c.rx.reserve_exact(PREAUTH_RX.saturating_sub(c.rx.len()));
        }
        let room = c.rx.capacity() - c.rx.len();
        if room == 0 {
            // Only a pre-auth buffer could be full, and one always holds a whole
            // handshake frame that parsing consumed; never arm a zero-length receive.
            tracing::warn!(conn = c.id, peer = %c.shared.peer, "receive buffer full before ATTACH; closing");
            self.close_conn(key);
            return;
        }
        let ptr = c.rx.as_mut_ptr_range().end;
        let fd = c.fd.as_raw_fd();
        c.recv_armed = true;
        c.refs += 1;
        let ud = self.slot(Slot::Recv { conn: key });
        let e = opcode::Recv::new(types::Fd(fd), ptr, room as u32).build().user_data(ud);
        self.push(e);
    }

    /// A receive completed; returns whether the buffer now holds frames to parse.
    pub(super) fn on_recv(&mut self, key: usize, res: i32) -> bool {
        let Some(c) = self.conns.get_mut(key) else {
            tracing::error!(core = self.idx, key, "receive completed for a freed connection");
            return false;
        };
        c.recv_armed = false;
        c.refs = c.refs.saturating_sub(1);
        if res <= 0 {
            if res < 0 && res != -libc::ECONNRESET && res != -libc::ECANCELED {
                tracing::debug!(conn = c.id, "recv: {}", io::Error::from_raw_os_error(-res));
            }
            self.close_conn(key);
            return false;
        }
        let n = (res as usize).min(c.rx.capacity() - c.rx.len());
        // SAFETY: the kernel wrote `res` bytes into the spare capacity we handed it
        // (never more than that capacity, which `min` only restates).
        unsafe { c.rx.set_len(c.rx.len() + n) };
        c.shared.add_in(n);
        if c.closing {
            self.maybe_free(key);
            return false;
        }
        true
    }

    /// Resumes reading `key` if nothing holds it back any more: frames already received
    /// are parsed (by the loop, see Re-entry), else the receive is re-armed.
    pub(super) fn maybe_resume(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        let cfg = &self.shared.cfg;
        if !c.recv_armed
            && !c.in_rx
            && !c.closing
            && c.inflight < cfg.max_inflight
            && c.tx_bytes <= TX_HIGH
            && !c.over_chan_budget(cfg.channel_buffer_budget)
        {
            if c.rx.len() >= HEADER_SIZE {
                if !self.to_parse.contains(&key) {
                    self.to_parse.push(key);
                }
            } else {
                self.arm_recv(key);
            }
        }
    }

    // ------------------------------------------------------------------ send

    pub(super) fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        if c.send.is_some() || c.tx.is_empty() {
            if c.tx.is_empty() && c.send.is_none() && c.close_after_flush {
                self.close_conn(key);
            }
            return;
        }
        let mut op = self.spare_sends.pop().unwrap_or_else(|| {
            Box::new(SendOp {
                segs: Vec::with_capacity(MAX_IOV),
                first_off: 0,
                iov: Vec::with_capacity(MAX_IOV),
                // SAFETY: msghdr is plain data; zeroed is a valid empty header.
                msg: unsafe { std::mem::zeroed() },
            })
        });
        op.first_off = 0;
        while op.segs.len() < MAX_IOV
            && let Some(b) = c.tx.pop_front()
        {
            op.segs.push(b);
        }
        if c.tx.is_empty() {
            c.tx_tail_open = false;
        }
        self.start_send(key, op);
    }

    fn start_send(&mut self, key: usize, mut op: Box<SendOp>) {
        op.iov.clear();
        let first_off = op.first_off;
        for (i, s) in op.segs.iter().enumerate() {
            let part = if i == 0 { s.get(first_off..).unwrap_or_default() } else { s };
            op.iov.push(libc::iovec { iov_base: part.as_ptr() as *mut libc::c_void, iov_len: part.len() });
        }
        op.msg.msg_iov = op.iov.as_mut_ptr();
        op.msg.msg_iovlen = op.iov.len();
        let Some(c) = self.conns.get_mut(key) else {
            for s in op.segs.drain(..) {
                self.bufs.put(s);
            }
            self.spare_sends.push(op);
            return;
        };
        let fd = c.fd.as_raw_fd();
        let msg: *const libc::msghdr = &op.msg;
        c.send = Some(op);
        c.refs += 1;
        let ud = self.slot(Slot::Send { conn: key });
        let e = opcode::SendMsg::new(types::Fd(fd), msg).flags(libc::MSG_NOSIGNAL as u32).build().user_data(ud);
        self.push(e);
    }

    pub(super) fn on_send(&mut self, key: usize, res: i32) {
        let Some(c) = self.conns.get_mut(key) else {
            tracing::error!(core = self.idx, key, "send completed for a freed connection");
            return;
        };
        c.refs = c.refs.saturating_sub(1);
        let Some(mut op) = c.send.take() else {
            tracing::error!(conn = c.id, "send completion without a send in flight");
            return;
        };
        if res < 0 {
            if res != -libc::EPIPE && res != -libc::ECONNRESET {
                tracing::debug!(conn = c.id, "send: {}", io::Error::from_raw_os_error(-res));
            }
            for s in op.segs.drain(..) {
                self.bufs.put(s);
            }
            self.spare_sends.push(op);
            self.close_conn(key);
            return;
        }
        let mut n = res as usize;
        c.shared.add_out(n);
        c.tx_bytes = c.tx_bytes.saturating_sub(n);
        let mut done = 0;
        for s in op.segs.iter() {
            let len = s.len().saturating_sub(if done == 0 { op.first_off } else { 0 });
            if n >= len {
                n -= len;
                done += 1;
                op.first_off = 0;
            } else {
                op.first_off += n;
                break;
            }
        }
        for s in op.segs.drain(..done) {
            self.bufs.put(s);
        }
        if !op.segs.is_empty() {
            self.start_send(key, op);
            return;
        }
        if self.spare_sends.len() < 256 {
            self.spare_sends.push(op);
        }
        let was_paused = !c.recv_armed && !c.closing;
        self.flush(key);
        if was_paused && self.conns.contains(key) {
            self.maybe_resume(key);
        }
        if self.conns.get(key).is_some_and(|c| c.closing) {
            self.maybe_free(key);
        }
    }
}
