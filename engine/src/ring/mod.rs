//! The per-core loop: one thread, one io_uring, every connection it accepted.
//!
//! Each turn submits every SQE produced by the previous turn with one `io_uring_enter`,
//! waits for at least one completion, drains the completion queue, and handles each
//! completion: accepted sockets become connections, received bytes are split into
//! frames and dispatched (file requests become ring operations, see `fsops`), finished
//! operations queue their responses on their connection. At the end of the turn every
//! connection with queued responses gets one `sendmsg` (responses coalesced, large read
//! data sent from its own buffer without copying).
//!
//! Ownership: an in-flight operation lives in the `ops` slab and owns every buffer and
//! descriptor the kernel may touch until its completion arrives. A connection is freed
//! only when no operation refers to it any more (`refs == 0`), so slab keys are never
//! reused under an in-flight operation.
//!
//! This module owns sockets, framing and buffers; it must not interpret file requests
//! (that is `fsops`) or channel traffic (`udsmux`).

pub(crate) mod buf;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use qtfs_proto::consts::{self, feat};
use qtfs_proto::handshake::ServerHandshake;
use qtfs_proto::{Attach, FrameHeader, HEADER_SIZE, Hello, MAX_PAYLOAD, Op, Wire, push_frame};
use slab::Slab;

use crate::creds::{self, Ident};
use crate::fsops::whitelist::Whitelist;
use crate::fsops::{self, FsReq};
use crate::session::Session;
use crate::stats::{ConnShared, Done};
use crate::{Shared, udsmux};

use buf::BufPool;

/// Receive buffer per connection (grows for one large frame, then shrinks back).
pub(crate) const RX_BUF: usize = 64 * 1024;
/// Queued response bytes above which a connection is not read from.
const TX_HIGH: usize = 16 << 20;
const RING_ENTRIES: u32 = 1024;
/// user_data of completions nobody waits for (linked timeouts, cancels).
pub(crate) const UD_IGNORE: u64 = u64::MAX;
const MAX_IOV: usize = 64;

/// A listening socket a core accepts from.
#[derive(Debug, Clone)]
pub(crate) struct ListenFd {
    pub fd: Arc<OwnedFd>,
    pub tcp: bool,
    pub name: String,
}

/// `Chan` is a channel or channel-listener operation; its buffers live in `udsmux` state.
pub(crate) enum Slot {
    Accept { listener: usize },
    Recv { conn: usize },
    Send { conn: usize },
    Wake,
    Tick,
    Fs(Box<FsReq>),
    Epoll(Box<fsops::EpollReg>),
    Chan(udsmux::ChanOp),
}

enum ConnState {
    Hello(Box<ServerHandshake<'static>>),
    Attach(Box<ServerHandshake<'static>>),
    Active,
}

/// The in-flight `sendmsg` of a connection; boxed so that the kernel's pointers to the
/// iovecs and msghdr stay valid.
struct SendOp {
    segs: Vec<Vec<u8>>,
    /// Bytes of `segs[0]` already sent.
    first_off: usize,
    iov: Vec<libc::iovec>,
    msg: libc::msghdr,
}

pub(crate) struct Conn {
    pub id: u64,
    fd: OwnedFd,
    pub shared: Arc<ConnShared>,
    state: ConnState,
    pub session: Option<Arc<Session>>,
    rx: Vec<u8>,
    recv_armed: bool,
    /// The receive buffer is out on loan to `process_rx`, which re-arms at its end.
    in_rx: bool,
    /// Queued responses; the last one may still be appended to when `tx_tail_open`.
    tx: VecDeque<Vec<u8>>,
    tx_tail_open: bool,
    tx_bytes: usize,
    send: Option<Box<SendOp>>,
    pub inflight: u32,
    /// Operations (recv, send, requests, registrations) that refer to this connection.
    pub refs: u32,
    pub closing: bool,
    close_after_flush: bool,
    dirty: bool,
    pub epolls: Vec<usize>,
}

pub(crate) struct Core {
    pub idx: usize,
    pub ring: IoUring,
    pub shared: Arc<Shared>,
    pub conns: Slab<Conn>,
    pub ops: Slab<Slot>,
    pub bufs: BufPool,
    pub wl: Arc<Whitelist>,
    wl_gen: u64,
    /// Spare requests. Boxed on purpose: the kernel holds pointers into a request, so
    /// its address must not change while it moves between the pool and the slab.
    #[allow(clippy::vec_box)]
    reqs: Vec<Box<FsReq>>,
    personalities: HashMap<Ident, u16>,
    pub base_personality: Option<u16>,
    dirty: Vec<usize>,
    done: Vec<Done>,
    listeners: Vec<ListenFd>,
    wake_fd: OwnedFd,
    wake_buf: Box<u64>,
    tick_ts: Box<types::Timespec>,
    cqes: Vec<(u64, i32, u32)>,
    /// Spare send operations (their vectors keep their capacity); boxed for the same
    /// reason as `reqs`.
    #[allow(clippy::vec_box)]
    spare_sends: Vec<Box<SendOp>>,
    stopping: bool,
    tearing_down: bool,
    stop_deadline: Option<Instant>,
    last_reap: Instant,
    /// Unix-socket channels of this core's connections. Declared after `ring`, so the
    /// ring (and its registered buffer ring) is gone before this memory is freed.
    pub(crate) mux: udsmux::State,
}

fn build_ring() -> io::Result<IoUring> {
    // Newest features first; fall back for older kernels.
    let attempts: [fn(&mut io_uring::Builder); 3] = [
        |b| {
            b.setup_single_issuer().setup_defer_taskrun().setup_submit_all();
        },
        |b| {
            b.setup_coop_taskrun().setup_submit_all();
        },
        |_| {},
    ];
    let mut last = None;
    for f in attempts {
        let mut b = IoUring::builder();
        b.setup_cqsize(RING_ENTRIES * 4);
        f(&mut b);
        match b.build(RING_ENTRIES) {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("io_uring setup failed")))
}

impl Core {
    pub fn new(idx: usize, shared: Arc<Shared>, listeners: Vec<ListenFd>, wake_fd: OwnedFd) -> io::Result<Core> {
        let ring = build_ring()?;
        let wl = shared.whitelist.read().clone();
        let wl_gen = shared.wl_gen.load(Ordering::Acquire);
        let base_personality = if creds::can_impersonate() {
            Some(creds::register_personality(&ring.submitter(), &Ident::default())?)
        } else {
            None
        };
        Ok(Core {
            idx,
            ring,
            shared,
            conns: Slab::with_capacity(64),
            ops: Slab::with_capacity(1024),
            bufs: BufPool::default(),
            wl,
            wl_gen,
            reqs: Vec::new(),
            personalities: HashMap::new(),
            base_personality,
            dirty: Vec::new(),
            done: Vec::with_capacity(1024),
            listeners,
            wake_fd,
            wake_buf: Box::new(0),
            tick_ts: Box::new(types::Timespec::new().sec(1)),
            cqes: Vec::with_capacity(RING_ENTRIES as usize * 4),
            spare_sends: Vec::new(),
            stopping: false,
            tearing_down: false,
            stop_deadline: None,
            last_reap: Instant::now(),
            mux: udsmux::State::default(),
        })
    }

    /// Queues an SQE, flushing the submission queue to the kernel if it is full.
    pub fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: every pointer in `e` refers to memory owned by an `ops` slot (or
            // the core) that stays alive and unmoved until the completion is handled.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
            if let Err(err) = self.ring.submit() {
                tracing::error!("io_uring submit: {err}");
            }
        }
    }

    /// Inserts `slot`, returns its user_data.
    pub(crate) fn slot(&mut self, s: Slot) -> u64 {
        self.ops.insert(s) as u64
    }

    /// Personality for an identity (registered on first use; root = the base one).
    pub fn personality(&mut self, id: &Ident) -> Option<u16> {
        let base = self.base_personality?;
        if id.is_root() {
            return Some(base);
        }
        if let Some(p) = self.personalities.get(id) {
            return Some(*p);
        }
        if self.personalities.len() >= 1024 {
            // Evict everything: in-flight requests hold their own credential references.
            for (_, p) in self.personalities.drain() {
                let _ = self.ring.submitter().unregister_personality(p);
            }
        }
        match creds::register_personality(&self.ring.submitter(), id) {
            Ok(p) => {
                self.personalities.insert(id.clone(), p);
                Some(p)
            }
            Err(e) => {
                tracing::warn!(uid = id.uid, "cannot register personality: {e}");
                None
            }
        }
    }

    pub fn new_req(&mut self) -> Box<FsReq> {
        self.reqs.pop().unwrap_or_default()
    }

    pub fn free_req(&mut self, mut r: Box<FsReq>) {
        // Temporary descriptors are closed by the ring with the next submit instead of
        // one close(2) each.
        for fd in r.take_fds() {
            use std::os::fd::IntoRawFd;
            self.push(opcode::Close::new(types::Fd(fd.into_raw_fd())).build().user_data(UD_IGNORE));
        }
        r.reset(&mut self.bufs);
        if self.reqs.len() < 4096 {
            self.reqs.push(r);
        }
    }

    /// Submits the next ring operation of a request.
    pub fn submit_req(&mut self, e: squeue::Entry, req: Box<FsReq>) {
        let p = req.personality;
        let ud = self.slot(Slot::Fs(req));
        let e = e.user_data(ud);
        let e = match p {
            Some(p) => e.personality(p),
            None => e,
        };
        self.push(e);
    }

    pub fn submit_epoll(&mut self, e: squeue::Entry, reg: Box<fsops::EpollReg>) -> usize {
        let p = self.base_personality;
        let ud = self.slot(Slot::Epoll(reg));
        let e = e.user_data(ud);
        self.push(match p {
            Some(p) => e.personality(p),
            None => e,
        });
        ud as usize
    }

    pub fn record(&mut self, d: Done) {
        self.done.push(d);
    }

    // ------------------------------------------------------------------ responses

    fn tx_tail(&mut self, key: usize, need: usize) -> &mut Vec<u8> {
        let c = &mut self.conns[key];
        if !c.tx_tail_open || c.tx.back().is_none_or(|b| b.len() + need > b.capacity()) {
            let b = self.bufs.get(need.max(RX_BUF));
            c.tx.push_back(b);
            c.tx_tail_open = true;
        }
        c.tx.back_mut().expect("tail exists")
    }

    fn mark_dirty(&mut self, key: usize) {
        let c = &mut self.conns[key];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(key);
        }
    }

    /// Queues a response carrying `msg`.
    pub fn respond<'m, M: Wire<'m>>(&mut self, key: usize, op: u16, id: u64, msg: &M) -> usize {
        self.send_frame(key, FrameHeader::response(op, id, 0), msg)
    }

    /// Queues any frame carrying `msg`; returns its size.
    pub fn send_frame<'m, M: Wire<'m>>(&mut self, key: usize, h: FrameHeader, msg: &M) -> usize {
        if self.conns[key].closing && !self.conns[key].close_after_flush {
            return 0;
        }
        let n = HEADER_SIZE + msg.encoded_len();
        let tail = self.tx_tail(key, n);
        push_frame(tail, h, msg);
        let c = &mut self.conns[key];
        c.tx_bytes += n;
        self.mark_dirty(key);
        n
    }

    /// Queues an error response.
    pub fn respond_err(&mut self, key: usize, op: u16, id: u64, errno: i32) {
        if self.conns[key].closing && !self.conns[key].close_after_flush {
            return;
        }
        let tail = self.tx_tail(key, HEADER_SIZE);
        FrameHeader::error(op, id, errno).push(tail);
        self.conns[key].tx_bytes += HEADER_SIZE;
        self.mark_dirty(key);
    }

    /// Queues a complete frame already built in `frame` (e.g. header + read data).
    pub fn respond_owned(&mut self, key: usize, frame: Vec<u8>) {
        let c = &mut self.conns[key];
        if c.closing && !c.close_after_flush {
            self.bufs.put(frame);
            return;
        }
        c.tx_bytes += frame.len();
        c.tx.push_back(frame);
        c.tx_tail_open = false;
        self.mark_dirty(key);
    }

    // ------------------------------------------------------------------ run loop

    pub fn run(&mut self) {
        for i in 0..self.listeners.len() {
            self.arm_accept(i);
        }
        self.arm_wake();
        self.arm_tick();
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) || e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => {
                    tracing::error!(core = self.idx, "io_uring_enter: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            self.refresh_whitelist();
            self.cqes.clear();
            for c in self.ring.completion() {
                self.cqes.push((c.user_data(), c.result(), c.flags()));
            }
            for i in 0..self.cqes.len() {
                let (ud, res, flags) = self.cqes[i];
                self.complete(ud, res, flags);
            }
            self.end_turn();
            if self.stopping && self.idle_or_late() {
                break;
            }
        }
        self.teardown();
    }

    fn idle_or_late(&self) -> bool {
        let busy = self.conns.iter().any(|(_, c)| c.inflight > 0 || c.send.is_some());
        !busy || self.stop_deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Closes every connection and cancels every operation, waiting (bounded) for the
    /// kernel to finish with our buffers before they are dropped.
    fn teardown(&mut self) {
        self.tearing_down = true;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close_conn(k);
        }
        self.push(opcode::AsyncCancel2::new(types::CancelBuilder::any()).build().user_data(UD_IGNORE));
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        while !self.ops.is_empty() && Instant::now() < deadline {
            let ts = types::Timespec::new().nsec(50_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.cqes.clear();
            for c in self.ring.completion() {
                self.cqes.push((c.user_data(), c.result(), c.flags()));
            }
            for i in 0..self.cqes.len() {
                let (ud, res, flags) = self.cqes[i];
                self.complete(ud, res, flags);
            }
            self.end_turn();
        }
        if !self.ops.is_empty() {
            // Operations the kernel still holds (e.g. an open blocked in a worker): their
            // memory must outlive us rather than be freed under the kernel.
            tracing::warn!(
                core = self.idx,
                left = self.ops.len(),
                "operations still in flight at exit; leaking their buffers"
            );
            std::mem::forget(std::mem::take(&mut self.ops));
            udsmux::teardown(self, true);
        }
        tracing::debug!(core = self.idx, "core stopped");
    }

    fn end_turn(&mut self) {
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
            self.shared.stats[self.idx].lock().record(&self.done);
            self.done.clear();
        }
        udsmux::end_turn(self);
    }

    /// Picks up a whitelist change before handling anything of this turn.
    fn refresh_whitelist(&mut self) {
        let g = self.shared.wl_gen.load(Ordering::Acquire);
        if g != self.wl_gen {
            self.wl = self.shared.whitelist.read().clone();
            self.wl_gen = g;
        }
    }

    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        if ud == UD_IGNORE {
            return;
        }
        let key = ud as usize;
        let more = cqueue::more(flags);
        let Some(slot) = self.ops.get(key) else {
            tracing::error!(ud, "completion for an unknown slot");
            return;
        };
        match slot {
            Slot::Accept { listener } => {
                let l = *listener;
                if !more {
                    self.ops.remove(key);
                }
                self.on_accept(l, res, more);
            }
            Slot::Recv { conn } => {
                let c = *conn;
                self.ops.remove(key);
                self.on_recv(c, res);
            }
            Slot::Send { conn } => {
                let c = *conn;
                self.ops.remove(key);
                self.on_send(c, res);
            }
            Slot::Wake => {
                self.ops.remove(key);
                self.on_wake();
            }
            Slot::Tick => {
                self.ops.remove(key);
                self.on_tick();
            }
            Slot::Fs(_) => {
                let Slot::Fs(req) = self.ops.remove(key) else { unreachable!() };
                fsops::complete(self, req, res);
            }
            Slot::Chan(op) => {
                let op = *op;
                if !more {
                    self.ops.remove(key);
                }
                udsmux::complete(self, op, res, flags, more);
            }
            Slot::Epoll(_) => {
                if more {
                    fsops::epoll_event(self, key, res);
                } else {
                    let Slot::Epoll(reg) = self.ops.remove(key) else { unreachable!() };
                    fsops::epoll_done(self, key, *reg, res);
                }
            }
        }
    }

    // ------------------------------------------------------------------ accept

    fn arm_accept(&mut self, i: usize) {
        if self.stopping {
            return;
        }
        let fd = self.listeners[i].fd.as_raw_fd();
        let ud = self.slot(Slot::Accept { listener: i });
        let e = opcode::AcceptMulti::new(types::Fd(fd)).flags(libc::SOCK_CLOEXEC).build().user_data(ud);
        self.push(e);
    }

    fn on_accept(&mut self, listener: usize, res: i32, more: bool) {
        if !more {
            self.arm_accept(listener);
        }
        if res < 0 {
            if res != -libc::ECANCELED {
                tracing::warn!(core = self.idx, listener = %self.listeners[listener].name, "accept: {}", io::Error::from_raw_os_error(-res));
            }
            return;
        }
        // SAFETY: a successful accept returned a new descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(res) };
        if self.stopping {
            return;
        }
        let tcp = self.listeners[listener].tcp;
        if tcp {
            let _ = crate::sys::setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        }
        let peer = crate::sys::peer_name(fd.as_raw_fd());
        let id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let shared = ConnShared::new(id, self.idx as u32, peer.clone());
        self.shared.conns.lock().insert(id, shared.clone());
        let hs = ServerHandshake::new(self.shared.psk.as_ref());
        let key = self.conns.insert(Conn {
            id,
            fd,
            shared,
            state: ConnState::Hello(Box::new(hs)),
            session: None,
            rx: Vec::with_capacity(RX_BUF),
            recv_armed: false,
            in_rx: false,
            tx: VecDeque::new(),
            tx_tail_open: false,
            tx_bytes: 0,
            send: None,
            inflight: 0,
            refs: 0,
            closing: false,
            close_after_flush: false,
            dirty: false,
            epolls: Vec::new(),
        });
        tracing::debug!(core = self.idx, conn = id, %peer, "accepted");
        self.arm_recv(key);
    }

    // ------------------------------------------------------------------ receive

    fn arm_recv(&mut self, key: usize) {
        let max_inflight = self.shared.cfg.max_inflight;
        let c = &mut self.conns[key];
        if c.recv_armed || c.in_rx || c.closing || c.inflight >= max_inflight || c.tx_bytes > TX_HIGH {
            return;
        }
        if c.rx.capacity() - c.rx.len() < 4096 {
            c.rx.reserve(RX_BUF);
        }
        let ptr = c.rx.as_mut_ptr_range().end;
        let room = c.rx.capacity() - c.rx.len();
        let fd = c.fd.as_raw_fd();
        c.recv_armed = true;
        c.refs += 1;
        let ud = self.slot(Slot::Recv { conn: key });
        let e = opcode::Recv::new(types::Fd(fd), ptr, room as u32).build().user_data(ud);
        self.push(e);
    }

    fn on_recv(&mut self, key: usize, res: i32) {
        let c = &mut self.conns[key];
        c.recv_armed = false;
        c.refs -= 1;
        if res <= 0 {
            if res < 0 && res != -libc::ECONNRESET && res != -libc::ECANCELED {
                tracing::debug!(conn = c.id, "recv: {}", io::Error::from_raw_os_error(-res));
            }
            self.close_conn(key);
            return;
        }
        // SAFETY: the kernel wrote `res` bytes into the spare capacity we handed it.
        unsafe { c.rx.set_len(c.rx.len() + res as usize) };
        c.shared.add_in(res as usize);
        if c.closing {
            self.maybe_free(key);
            return;
        }
        self.process_rx(key);
    }

    /// Dispatches every complete frame in the receive buffer (as far as backpressure
    /// allows) and re-arms the receive.
    pub(crate) fn process_rx(&mut self, key: usize) {
        let mut buf = std::mem::take(&mut self.conns[key].rx);
        self.conns[key].in_rx = true;
        let max_inflight = self.shared.cfg.max_inflight;
        let mut pos = 0usize;
        let mut bad = false;
        loop {
            let c = &self.conns[key];
            if c.closing || c.inflight >= max_inflight || c.tx_bytes > TX_HIGH {
                break;
            }
            let rest = &buf[pos..];
            if rest.len() < HEADER_SIZE {
                break;
            }
            let h = match FrameHeader::decode(rest, MAX_PAYLOAD) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(conn = c.id, peer = %c.shared.peer, "malformed frame header ({e}); closing the connection");
                    bad = true;
                    break;
                }
            };
            let total = HEADER_SIZE + h.len as usize;
            if rest.len() < total {
                break;
            }
            self.on_frame(key, h, &rest[HEADER_SIZE..total]);
            pos += total;
        }
        buf.drain(..pos);
        self.conns[key].in_rx = false;
        if bad {
            self.conns[key].rx = buf;
            self.close_conn(key);
            return;
        }
        // Make room for the frame at the front if it is larger than the buffer.
        if buf.len() >= HEADER_SIZE
            && let Ok(h) = FrameHeader::decode(&buf, MAX_PAYLOAD)
        {
            let need = HEADER_SIZE + h.len as usize;
            if buf.capacity() < need {
                buf.reserve(need - buf.len());
            }
        } else if buf.is_empty() && buf.capacity() > 2 * RX_BUF {
            // A large frame is done: give the memory back.
            buf = Vec::with_capacity(RX_BUF);
        }
        self.conns[key].rx = buf;
        self.arm_recv(key);
    }

    fn on_frame(&mut self, key: usize, h: FrameHeader, payload: &[u8]) {
        let c = &mut self.conns[key];
        match &mut c.state {
            ConnState::Active => {}
            ConnState::Hello(_) | ConnState::Attach(_) => {
                self.handshake(key, h, payload);
                return;
            }
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
            Op::CHAN_OPEN
            | Op::CHAN_DATA
            | Op::CHAN_CREDIT
            | Op::CHAN_CLOSE
            | Op::CHAN_LISTEN
            | Op::CHAN_UNLISTEN
            | Op::CHAN_SCM => udsmux::on_frame(self, key, h, payload),
            _ if (0x0300..0x0400).contains(&(op as u16)) => {
                // Admin requests are served on the admin socket only.
                if h.is_request() {
                    self.respond_err(key, h.op, h.id, consts::errno::EPERM);
                }
            }
            _ if op as u16 >= 0x0400 => {
                // Remote exec travels inside channels, never to the engine itself.
                if h.is_request() {
                    self.respond_err(key, h.op, h.id, consts::errno::ENOSYS);
                }
            }
            _ if h.is_request() => fsops::dispatch(self, key, h, op, payload),
            _ => tracing::debug!(conn = self.conns[key].id, op = %op, "unexpected non-request frame ignored"),
        }
    }

    fn handshake(&mut self, key: usize, h: FrameHeader, payload: &[u8]) {
        let c = &mut self.conns[key];
        let peer = c.shared.peer.clone();
        let state = std::mem::replace(&mut c.state, ConnState::Active);
        match (state, h.op()) {
            (ConnState::Hello(mut hs), Some(Op::HELLO)) if h.is_request() => {
                let ack = Hello::decode(payload).map_err(|e| e.to_string()).and_then(|hello| {
                    hs.on_hello(&hello, feat::ALL, self.shared.cfg.max_inflight, "qtfs-engine")
                        .map_err(|e| e.to_string())
                });
                match ack {
                    Ok(ack) => {
                        self.respond(key, h.op, h.id, &ack);
                        self.conns[key].state = ConnState::Attach(hs);
                    }
                    Err(e) => {
                        tracing::warn!(%peer, "handshake refused: {e}");
                        self.fail_handshake(key, h, consts::errno::EPROTO);
                    }
                }
            }
            (ConnState::Attach(hs), Some(Op::ATTACH)) if h.is_request() => {
                let req = Attach::decode(payload)
                    .map_err(|_| consts::errno::EBADMSG)
                    .and_then(|a| hs.on_attach(&a).map_err(|_| consts::errno::EACCES));
                match req {
                    Ok(req) => {
                        let (s, resumed) = self.shared.sessions.attach(
                            req.session_id,
                            &req.session_token,
                            self.shared.cfg.max_handles,
                        );
                        let ack = hs.attach_ack(s.id, crate::session::Sessions::token_of(&s), resumed);
                        self.respond(key, h.op, h.id, &ack);
                        let c = &mut self.conns[key];
                        c.shared.session.store(s.id, Ordering::Relaxed);
                        c.shared.state.store(consts::CONN_ACTIVE, Ordering::Relaxed);
                        tracing::info!(core = self.idx, conn = c.id, %peer, session = format_args!("{:x}", s.id), resumed, "client attached");
                        c.session = Some(s);
                    }
                    Err(e) => {
                        if e == consts::errno::EACCES {
                            tracing::warn!(%peer, "authentication failed (wrong or missing key); closing");
                        } else {
                            tracing::warn!(%peer, "malformed ATTACH; closing");
                        }
                        self.fail_handshake(key, h, e);
                    }
                }
            }
            _ => {
                tracing::warn!(%peer, op = h.op, "unexpected frame during handshake; closing");
                self.fail_handshake(key, h, consts::errno::EPROTO);
            }
        }
    }

    fn fail_handshake(&mut self, key: usize, h: FrameHeader, errno: i32) {
        let c = &mut self.conns[key];
        c.closing = true;
        c.close_after_flush = true;
        if h.is_request() {
            self.respond_err(key, h.op, h.id, errno);
        } else {
            self.close_conn(key);
        }
    }

    // ------------------------------------------------------------------ send

    fn flush(&mut self, key: usize) {
        let c = &mut self.conns[key];
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
        let c = &mut self.conns[key];
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
            let off = if i == 0 { first_off } else { 0 };
            op.iov.push(libc::iovec { iov_base: s[off..].as_ptr() as *mut libc::c_void, iov_len: s.len() - off });
        }
        op.msg.msg_iov = op.iov.as_mut_ptr();
        op.msg.msg_iovlen = op.iov.len();
        let c = &mut self.conns[key];
        let fd = c.fd.as_raw_fd();
        let msg: *const libc::msghdr = &op.msg;
        c.send = Some(op);
        c.refs += 1;
        let ud = self.slot(Slot::Send { conn: key });
        let e = opcode::SendMsg::new(types::Fd(fd), msg).flags(libc::MSG_NOSIGNAL as u32).build().user_data(ud);
        self.push(e);
    }

    fn on_send(&mut self, key: usize, res: i32) {
        let c = &mut self.conns[key];
        c.refs -= 1;
        let mut op = c.send.take().expect("send in flight");
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
            let len = s.len() - if done == 0 { op.first_off } else { 0 };
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
        let was_paused = {
            let c = &self.conns[key];
            !c.recv_armed && !c.closing
        };
        self.flush(key);
        if was_paused && self.conns.contains(key) {
            self.maybe_resume(key);
        }
        if self.conns.contains(key) && self.conns[key].closing {
            self.maybe_free(key);
        }
    }

    /// Called when a request of `key` finished: frees the connection if it is closing,
    /// or resumes reading if backpressure had stopped it.
    pub fn request_done(&mut self, key: usize) {
        let c = &mut self.conns[key];
        c.inflight -= 1;
        c.refs -= 1;
        c.shared.inflight.store(c.inflight, Ordering::Relaxed);
        if c.closing {
            self.maybe_free(key);
        } else {
            self.maybe_resume(key);
        }
    }

    /// Keeps connection `key` allocated while a channel or listener refers to it.
    pub(crate) fn conn_hold(&mut self, key: usize) {
        self.conns[key].refs += 1;
    }

    /// Drops a reference taken by `conn_hold`; frees the connection if it is closing
    /// and nothing else refers to it.
    pub(crate) fn conn_release(&mut self, key: usize) {
        let c = &mut self.conns[key];
        c.refs -= 1;
        if c.closing {
            self.maybe_free(key);
        }
    }

    pub fn request_started(&mut self, key: usize) {
        let c = &mut self.conns[key];
        c.inflight += 1;
        c.refs += 1;
        c.shared.inflight.store(c.inflight, Ordering::Relaxed);
    }

    fn maybe_resume(&mut self, key: usize) {
        let c = &self.conns[key];
        if !c.recv_armed && !c.in_rx && !c.closing && c.inflight < self.shared.cfg.max_inflight && c.tx_bytes <= TX_HIGH
        {
            if c.rx.len() >= HEADER_SIZE {
                self.process_rx(key);
            } else {
                self.arm_recv(key);
            }
        }
    }

    // ------------------------------------------------------------------ close

    /// Starts closing a connection: no more reading, outstanding work is drained, the
    /// descriptor is closed once nothing refers to it.
    pub fn close_conn(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        if !c.closing || c.close_after_flush {
            c.closing = true;
            c.close_after_flush = false;
            c.shared.state.store(consts::CONN_CLOSING, Ordering::Relaxed);
            // SAFETY: shutdown on our own socket: wakes the pending recv and send.
            unsafe { libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_RDWR) };
            let epolls = std::mem::take(&mut c.epolls);
            for ud in epolls {
                self.push(opcode::PollRemove::new(ud as u64).build().user_data(UD_IGNORE));
            }
            udsmux::conn_closing(self, key);
        }
        self.maybe_free(key);
    }

    fn maybe_free(&mut self, key: usize) {
        let c = &self.conns[key];
        if c.refs > 0 || !c.closing || c.close_after_flush {
            return;
        }
        let c = self.conns.remove(key);
        for b in c.tx {
            self.bufs.put(b);
        }
        self.shared.conns.lock().remove(&c.id);
        if let Some(s) = &c.session {
            s.detach();
        }
        tracing::debug!(core = self.idx, conn = c.id, peer = %c.shared.peer, "connection closed");
    }

    // ------------------------------------------------------------------ housekeeping

    fn arm_wake(&mut self) {
        if self.tearing_down {
            return;
        }
        let fd = self.wake_fd.as_raw_fd();
        let ptr: *mut u64 = &mut *self.wake_buf;
        let ud = self.slot(Slot::Wake);
        let e = opcode::Read::new(types::Fd(fd), ptr.cast(), 8).build().user_data(ud);
        self.push(e);
    }

    fn on_wake(&mut self) {
        if self.shared.shutdown.load(Ordering::Acquire) && !self.stopping {
            self.stopping = true;
            self.stop_deadline = Some(Instant::now() + std::time::Duration::from_secs(5));
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

    fn on_tick(&mut self) {
        udsmux::tick(self);
        if self.idx == 0 && self.last_reap.elapsed().as_secs() >= 1 {
            self.last_reap = Instant::now();
            self.shared.sessions.reap(self.shared.cfg.session_grace);
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
}
