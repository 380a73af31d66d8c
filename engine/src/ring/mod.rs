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
//! only when no operation refers to it any more (`refs == 0`) and its receive buffer is
//! not being parsed (`in_rx`), so slab keys are never reused under an in-flight
//! operation or a frame being handled. Closing a connection cancels its in-flight
//! requests, so a request that would never finish (a READ on an idle FIFO) cannot keep
//! the connection, its session and their descriptors alive.
//!
//! Untrusted input: before ATTACH a connection may only send frames of at most
//! `PREAUTH_MAX_PAYLOAD` bytes into a `PREAUTH_RX` buffer, must finish its handshake
//! within `HANDSHAKE_TIMEOUT`, and is admitted only within the bounds of [`gate`].
//!
//! Shared resources: a connection whose session's channels hold their
//! `--channel-buffer-budget` of queued bytes is not read until they drain (so a peer
//! that ignores channel credit, or fills many windows at once, cannot grow memory);
//! each ring's io-wq pool is bounded (`io_workers`) and one session may have at most
//! half of it busy (`submit_req` defers the rest), so no peer can take every worker;
//! an accept that fails (EMFILE…) pauses that listener for a growing delay instead of
//! failing again at once.
//!
//! Failure containment: a panic while handling a completion that belongs to one
//! connection closes that connection only (see `complete_isolated`); anything else
//! escaping the loop, or `io_uring_enter` failing `MAX_ENTER_ERRORS` times in a row,
//! ends the loop and [`supervise`] restarts the core with a fresh ring.
//!
//! This module owns sockets, framing and buffers; it must not interpret file requests
//! (that is `fsops`) or channel traffic (`udsmux`).

// Everything here handles bytes from untrusted peers: a slip must close a connection,
// not panic the core. (`fsops` and `udsmux` deny the same lints.)
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub(crate) mod buf;
pub(crate) mod gate;
mod supervise;
#[cfg(test)]
mod tests;

pub(crate) use supervise::supervise;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use qtfs_proto::consts;
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
use gate::PreAuthGate;

/// Receive buffer per connection (grows for one large frame, then shrinks back).
pub(crate) const RX_BUF: usize = 64 * 1024;
/// Largest payload accepted before ATTACH succeeded: HELLO is at most 301 bytes (a
/// 255-byte client name), ATTACH 56; anything larger is an attack or a broken peer,
/// and closes the connection like any other malformed header.
pub(crate) const PREAUTH_MAX_PAYLOAD: usize = 512;
/// Receive buffer of a connection before ATTACH: one whole handshake frame fits.
const PREAUTH_RX: usize = 1024;
/// A connection that has not attached within this long is closed.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Consecutive failed `io_uring_enter` calls after which the loop gives up on its ring.
const MAX_ENTER_ERRORS: u32 = 100;
/// Connections freed since the last trim after which idle memory is given back.
const TRIM_AFTER_FREES: u32 = 8;
/// Queued response bytes above which a connection is not read from.
const TX_HIGH: usize = 16 << 20;
const RING_ENTRIES: u32 = 1024;
/// user_data of completions nobody waits for (linked timeouts, cancels).
pub(crate) const UD_IGNORE: u64 = u64::MAX;
const MAX_IOV: usize = 64;
/// First and largest pause of a listener after a failed accept (EMFILE, ENFILE…): the
/// refused connection stays in the backlog, so re-arming at once fails at once again.
const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(10);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// io-wq workers (bounded and unbounded) of each ring: enough for the blocking work of
/// many clients, few enough that a core's threads stay bounded (the unbounded pool's
/// default is RLIMIT_NPROC).
fn io_workers() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get()) as u32;
    cpus.saturating_mul(4).clamp(16, 64)
}

/// Whether an operation may occupy an io-wq worker. Polls, timers and cancels never do;
/// everything else (path walks, fsync, reads and writes of disk files…) may.
fn worker_bound(e: &squeue::Entry) -> bool {
    let op = e.get_opcode() as u8;
    ![
        opcode::PollAdd::CODE,
        opcode::PollRemove::CODE,
        opcode::Timeout::CODE,
        opcode::LinkTimeout::CODE,
        opcode::AsyncCancel::CODE,
        opcode::Nop::CODE,
    ]
    .contains(&op)
}

/// A listening socket a core accepts from.
#[derive(Debug, Clone)]
pub(crate) struct ListenFd {
    pub fd: Arc<OwnedFd>,
    pub tcp: bool,
    pub name: String,
}

/// `Chan` is a channel or channel-listener operation; its buffers live in `udsmux` state.
/// `AcceptPause(listener, timespec)` is a listener's pause after a failed accept.
pub(crate) enum Slot {
    Accept { listener: usize },
    AcceptPause(usize, Box<types::Timespec>),
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
    /// The receive buffer is out on loan to `process_rx`, which re-arms at its end; the
    /// connection is not freed meanwhile.
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
    /// The place this connection holds in the pre-auth gate (its peer key) until it
    /// attaches or goes away.
    gate: Option<Box<str>>,
    /// Not read because its session's channels hold their `--channel-buffer-budget`.
    chan_paused: bool,
}

impl Conn {
    fn active(&self) -> bool {
        matches!(self.state, ConnState::Active)
    }

    /// Whether its session's channels hold their queued-bytes budget: then nothing more
    /// is read from it (CHAN_DATA beyond credit, or within many windows at once, would
    /// otherwise be queued without bound) until the local sockets drain.
    fn over_chan_budget(&self, budget: usize) -> bool {
        self.session.as_ref().is_some_and(|s| s.chan_bytes.load(Ordering::Acquire) >= budget)
    }

    /// Response bytes queued and not yet handed to the kernel.
    pub(crate) fn tx_queued(&self) -> usize {
        self.tx_bytes
    }

    /// Largest payload this connection may send now.
    fn max_payload(&self) -> usize {
        if self.active() { MAX_PAYLOAD } else { PREAUTH_MAX_PAYLOAD }
    }
}

/// How a core's loop ended.
#[derive(Debug)]
pub(crate) enum Exit {
    /// The engine is stopping; everything was closed.
    Stopped,
    /// The ring failed (`io_uring_enter` `MAX_ENTER_ERRORS` times in a row, or a
    /// submission could not be made); the core must be rebuilt.
    RingFailed(io::Error),
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
    /// Shared bounds on connections that have not attached yet.
    gate: Arc<PreAuthGate>,
    /// (deadline, key, id) of connections in their handshake, oldest first.
    handshakes: VecDeque<(Instant, usize, u64)>,
    /// Connections refused at accept since the last warning about it, and when that was.
    refused: u64,
    refused_logged: Option<Instant>,
    /// Connections freed since memory was last given back, and whether one of them had
    /// grown a large receive buffer.
    freed: u32,
    freed_big: bool,
    /// A submission failed for good: the loop ends with `Exit::RingFailed`.
    ring_broken: Option<io::Error>,
    /// Connections paused for `--channel-buffer-budget` whose session's channels wrote
    /// bytes this turn (`chan_drained`).
    chan_resume: Vec<usize>,
    /// Pause of each listener after its last failed accept (zero: none).
    accept_pause: Vec<Duration>,
    /// Worker-bound operations one session may have in flight on this ring: half its
    /// io-wq workers, so another session always finds one.
    session_worker_cap: u32,
    /// Worker-bound operations in flight (user_data → session), per session, and the
    /// request steps of sessions at their cap, submitted as theirs complete.
    worker_ops: HashMap<usize, u64>,
    worker_busy: HashMap<u64, u32>,
    #[allow(clippy::type_complexity)]
    deferred: HashMap<u64, VecDeque<(squeue::Entry, Box<FsReq>)>>,
    /// Requests parked on a ring timer until they may be retried (lock waits, see
    /// `fsops::waiter`).
    pub(crate) waiters: fsops::waiter::Waiters,
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

/// Errors of `io_uring_enter` that only mean "try again".
fn transient(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::ETIME))
}

/// The text of a panic payload.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "(non-text panic payload)"
    }
}

impl Core {
    pub fn new(
        idx: usize,
        shared: Arc<Shared>,
        listeners: Vec<ListenFd>,
        wake_fd: OwnedFd,
        gate: Arc<PreAuthGate>,
    ) -> io::Result<Core> {
        let ring = build_ring()?;
        // Bounds this thread's io-wq (the ring's workers run in it): [bounded, unbounded].
        let workers = io_workers();
        let mut max = [workers, workers];
        if let Err(e) = ring.submitter().register_iowq_max_workers(&mut max) {
            tracing::warn!(core = idx, "cannot bound the io_uring worker pool: {e}");
        }
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
            gate,
            handshakes: VecDeque::new(),
            refused: 0,
            refused_logged: None,
            freed: 0,
            freed_big: false,
            ring_broken: None,
            chan_resume: Vec::new(),
            accept_pause: Vec::new(),
            session_worker_cap: (workers / 2).max(1),
            worker_ops: HashMap::new(),
            worker_busy: HashMap::new(),
            deferred: HashMap::new(),
            waiters: fsops::waiter::Waiters::default(),
            mux: udsmux::State::default(),
        })
    }

    /// Queues an SQE, flushing the submission queue to the kernel if it is full. If
    /// the kernel keeps refusing, the entry is dropped and the ring marked broken: the
    /// loop then ends and the core is rebuilt (the operation's slot stays in `ops`, so
    /// its memory is leaked rather than freed while the kernel might know it).
    pub fn push(&mut self, e: squeue::Entry) {
        let mut busy = 0u32;
        loop {
            // SAFETY: every pointer in `e` refers to memory owned by an `ops` slot (or
            // the core) that stays alive and unmoved until the completion is handled.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
            match self.ring.submit() {
                Ok(_) => {}
                Err(err) if transient(&err) && busy < 1000 => {
                    busy += 1;
                    std::thread::yield_now();
                }
                Err(err) => {
                    tracing::error!(core = self.idx, "io_uring submit: {err}; rebuilding this core");
                    self.ring_broken.get_or_insert(err);
                    return;
                }
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

    /// Submits the next ring operation of a request. A worker-bound one of a session
    /// that has `session_worker_cap` of them in flight waits its turn (`worker_done`):
    /// operations that block (a hung network or FUSE file system below an export) must
    /// not take every io-wq worker of the core from other clients.
    pub fn submit_req(&mut self, e: squeue::Entry, req: Box<FsReq>) {
        let sid = if worker_bound(&e) {
            self.conns.get(req.conn()).and_then(|c| c.session.as_ref()).map(|s| s.id)
        } else {
            None
        };
        let Some(sid) = sid else {
            self.submit_req_now(e, req);
            return;
        };
        let busy = self.worker_busy.entry(sid).or_default();
        if *busy >= self.session_worker_cap {
            crate::log_limited!(
                tracing::Level::DEBUG,
                session = format_args!("{sid:x}"),
                "session at its share of io_uring workers; request waits"
            );
            self.deferred.entry(sid).or_default().push_back((e, req));
            return;
        }
        *busy += 1;
        let ud = self.submit_req_now(e, req);
        self.worker_ops.insert(ud, sid);
    }

    /// A worker-bound operation (user_data `ud`) completed: its session may start
    /// the next of its waiting ones.
    fn worker_done(&mut self, ud: usize) {
        let Some(sid) = self.worker_ops.remove(&ud) else { return };
        let next = self.deferred.get_mut(&sid).and_then(|q| q.pop_front());
        if let Some((e, req)) = next {
            // The finished one's place goes to the next waiting one (count unchanged).
            let ud = self.submit_req_now(e, req);
            self.worker_ops.insert(ud, sid);
        } else if let Some(b) = self.worker_busy.get_mut(&sid) {
            *b = b.saturating_sub(1);
            if *b == 0 {
                self.worker_busy.remove(&sid);
            }
        }
        if self.deferred.get(&sid).is_some_and(|q| q.is_empty()) {
            self.deferred.remove(&sid);
        }
    }

    /// Submits the waiting request steps of a closing connection: each is cancelled at
    /// once (`submit_req_now`), so it completes and releases the connection.
    fn flush_deferred(&mut self, key: usize) {
        let mut mine = Vec::new();
        for q in self.deferred.values_mut() {
            let mut i = 0;
            while i < q.len() {
                if q.get(i).is_some_and(|(_, r)| r.conn() == key) {
                    if let Some(x) = q.remove(i) {
                        mine.push(x);
                    }
                } else {
                    i += 1;
                }
            }
        }
        self.deferred.retain(|_, q| !q.is_empty());
        for (e, req) in mine {
            self.submit_req_now(e, req);
        }
    }

    /// Submits a request step now; returns its user_data.
    pub(crate) fn submit_req_now(&mut self, e: squeue::Entry, req: Box<FsReq>) -> usize {
        let p = req.personality;
        // A step started after its connection began closing (an earlier step was
        // cancelled, or finished just before the close) is cancelled at once too.
        let cancel = self.conns.get(req.conn()).is_none_or(|c| c.closing && !c.close_after_flush);
        let ud = self.slot(Slot::Fs(req));
        let e = e.user_data(ud);
        let e = match p {
            Some(p) => e.personality(p),
            None => e,
        };
        self.push(e);
        if cancel {
            self.push(opcode::AsyncCancel::new(ud).build().user_data(UD_IGNORE));
        }
        ud as usize
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

    // ------------------------------------------------------------------ run loop

    /// Serves until the engine stops (`Exit::Stopped`, after closing everything) or the
    /// ring fails (`Exit::RingFailed`, state left for [`supervise`] to salvage). A panic
    /// that escapes `complete_isolated` unwinds out of here, also to `supervise`.
    pub fn run(&mut self) -> Exit {
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
            self.drain_completions();
            self.end_turn();
            if let Some(e) = self.ring_broken.take() {
                return Exit::RingFailed(e);
            }
            if self.stopping && self.idle_or_late() {
                break;
            }
        }
        self.teardown();
        Exit::Stopped
    }

    /// Handles every completion waiting in the completion queue.
    fn drain_completions(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        for c in self.ring.completion() {
            cqes.push((c.user_data(), c.result(), c.flags()));
        }
        for &(ud, res, flags) in &cqes {
            self.complete_isolated(ud, res, flags);
        }
        self.cqes = cqes;
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
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.ops.is_empty() && Instant::now() < deadline {
            let ts = types::Timespec::new().nsec(50_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.drain_completions();
            self.end_turn();
        }
        if !self.ops.is_empty() {
            // Operations the kernel still holds (e.g. an open blocked in a worker): their
            // memory, and that of the connections they point into (receive buffers,
            // send vectors), must outlive us rather than be freed under the kernel.
            tracing::warn!(
                core = self.idx,
                left = self.ops.len(),
                "operations still in flight at exit; leaking their buffers"
            );
            std::mem::forget(std::mem::take(&mut self.ops));
            std::mem::forget(std::mem::take(&mut self.conns));
            udsmux::teardown(self, true);
        }
        tracing::debug!(core = self.idx, "core stopped");
    }

    fn end_turn(&mut self) {
        for k in std::mem::take(&mut self.chan_resume) {
            if self.conns.get(k).is_some_and(|c| c.chan_paused) {
                self.maybe_resume(k);
            }
        }
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

    /// The connection (key, id) a completion belongs to, when it belongs to exactly one.
    fn owner_of(&self, ud: u64) -> Option<(usize, u64)> {
        let conn = match self.ops.get(usize::try_from(ud).ok()?)? {
            Slot::Recv { conn } | Slot::Send { conn } => *conn,
            Slot::Fs(r) => r.conn(),
            _ => return None,
        };
        Some((conn, self.conns.get(conn)?.id))
    }

    /// Handles one completion. A panic on behalf of one connection (a bug its frames
    /// reached) closes that connection and the loop goes on; whatever that handler had
    /// half-done to the connection is abandoned with it (at worst it stays allocated,
    /// its socket shut down). A panic with no single owner (accept, timers, channels,
    /// readiness registrations) unwinds on to [`supervise`].
    fn complete_isolated(&mut self, ud: u64, res: i32, flags: u32) {
        let owner = self.owner_of(ud);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.complete(ud, res, flags)));
        let Err(p) = r else { return };
        let Some((key, id)) = owner else { std::panic::resume_unwind(p) };
        tracing::error!(
            core = self.idx,
            conn = id,
            "bug while serving this connection ({}); closing it",
            panic_text(&*p)
        );
        if let Some(c) = self.conns.get_mut(key)
            && c.id == id
        {
            c.in_rx = false;
            self.close_conn(key);
        }
    }

    fn complete(&mut self, ud: u64, res: i32, flags: u32) {
        if ud == UD_IGNORE {
            return;
        }
        let Ok(key) = usize::try_from(ud) else { return };
        let more = cqueue::more(flags);
        let Some(slot) = self.ops.get(key) else {
            tracing::error!(ud, "completion for an unknown slot");
            return;
        };
        if more {
            // A multishot operation that stays armed: its slot stays.
            match slot {
                Slot::Accept { listener } => {
                    let l = *listener;
                    self.on_accept(l, res, true);
                }
                Slot::Chan(op) => {
                    let op = *op;
                    udsmux::complete(self, op, res, flags, true);
                }
                Slot::Epoll(_) => fsops::epoll_event(self, key, res),
                _ => tracing::error!(ud, "MORE on a single-shot operation"),
            }
            return;
        }
        let Some(slot) = self.ops.try_remove(key) else { return };
        match slot {
            Slot::Accept { listener } => self.on_accept(listener, res, false),
            Slot::Recv { conn } => self.on_recv(conn, res),
            Slot::Send { conn } => self.on_send(conn, res),
            Slot::Wake => self.on_wake(),
            Slot::Tick => self.on_tick(),
            Slot::Fs(req) => {
                self.worker_done(key);
                fsops::complete(self, req, res)
            }
            Slot::AcceptPause(listener, ts) => {
                drop(ts); // the kernel has read it
                self.arm_accept(listener)
            }
            Slot::Chan(op) => udsmux::complete(self, op, res, flags, false),
            Slot::Epoll(reg) => fsops::epoll_done(self, key, *reg, res),
        }
    }

    // ------------------------------------------------------------------ accept

    /// Re-arms listener `i`'s accept after a pause that doubles with each consecutive
    /// failure (`ACCEPT_PAUSE_MIN` … `ACCEPT_PAUSE_MAX`), with one log line a second.
    fn pause_accept(&mut self, i: usize, res: i32) {
        if self.accept_pause.len() < self.listeners.len() {
            self.accept_pause.resize(self.listeners.len(), Duration::ZERO);
        }
        let Some(p) = self.accept_pause.get_mut(i) else { return };
        *p = (*p * 2).clamp(ACCEPT_PAUSE_MIN, ACCEPT_PAUSE_MAX);
        let pause = *p;
        crate::log_limited!(
            tracing::Level::WARN,
            core = self.idx,
            listener = %self.listeners.get(i).map_or("?", |l| l.name.as_str()),
            pause_ms = pause.as_millis() as u64,
            "accept: {}; pausing this listener",
            io::Error::from_raw_os_error(-res)
        );
        if self.stopping {
            return;
        }
        let ts = Box::new(types::Timespec::from(pause));
        let tp: *const types::Timespec = &*ts;
        let ud = self.slot(Slot::AcceptPause(i, ts));
        self.push(opcode::Timeout::new(tp).build().user_data(ud));
    }

    fn arm_accept(&mut self, i: usize) {
        if self.stopping {
            return;
        }
        let Some(l) = self.listeners.get(i) else { return };
        let fd = l.fd.as_raw_fd();
        let ud = self.slot(Slot::Accept { listener: i });
        let e = opcode::AcceptMulti::new(types::Fd(fd)).flags(libc::SOCK_CLOEXEC).build().user_data(ud);
        self.push(e);
    }

    fn on_accept(&mut self, listener: usize, res: i32, more: bool) {
        // Errors that concern one connection only; any other (EMFILE, ENFILE, ENOMEM…)
        // would fail again at once, for as long as it lasts.
        let backoff = res < 0 && ![-libc::ECANCELED, -libc::ECONNABORTED, -libc::EINTR, -libc::EAGAIN].contains(&res);
        if !more {
            if backoff {
                self.pause_accept(listener, res);
            } else {
                self.arm_accept(listener);
            }
        }
        let Some(l) = self.listeners.get(listener) else { return };
        if res < 0 {
            if res != -libc::ECANCELED && !backoff {
                crate::log_limited!(
                    tracing::Level::WARN,
                    core = self.idx,
                    listener = %l.name,
                    "accept: {}",
                    io::Error::from_raw_os_error(-res)
                );
            }
            return;
        }
        if let Some(p) = self.accept_pause.get_mut(listener) {
            *p = Duration::ZERO;
        }
        let tcp = l.tcp;
        // SAFETY: a successful accept returned a new descriptor we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(res) };
        if self.stopping {
            return;
        }
        let peer = crate::sys::peer_name(fd.as_raw_fd());
        let key = gate::peer_key(&peer);
        if let Err(why) = self.gate.admit(key) {
            // Closed before anything is allocated for it.
            self.refused += 1;
            if self.refused_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    core = self.idx,
                    %peer,
                    refused = self.refused,
                    "too many unauthenticated connections ({}); closing new ones",
                    match why {
                        gate::Refused::Peer => "from this peer",
                        gate::Refused::Total => "in total",
                    }
                );
                self.refused = 0;
                self.refused_logged = Some(Instant::now());
            }
            return;
        }
        let gate: Box<str> = key.into();
        if tcp {
            let _ = crate::sys::setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        }
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
            rx: Vec::with_capacity(PREAUTH_RX),
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
            gate: Some(gate),
            chan_paused: false,
        });
        self.handshakes.push_back((Instant::now() + HANDSHAKE_TIMEOUT, key, id));
        tracing::debug!(core = self.idx, conn = id, %peer, "accepted");
        self.arm_recv(key);
    }

    // ------------------------------------------------------------------ receive

    fn arm_recv(&mut self, key: usize) {
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

    fn on_recv(&mut self, key: usize, res: i32) {
        let Some(c) = self.conns.get_mut(key) else {
            tracing::error!(core = self.idx, key, "receive completed for a freed connection");
            return;
        };
        c.recv_armed = false;
        c.refs = c.refs.saturating_sub(1);
        if res <= 0 {
            if res < 0 && res != -libc::ECONNRESET && res != -libc::ECANCELED {
                tracing::debug!(conn = c.id, "recv: {}", io::Error::from_raw_os_error(-res));
            }
            self.close_conn(key);
            return;
        }
        let n = (res as usize).min(c.rx.capacity() - c.rx.len());
        // SAFETY: the kernel wrote `res` bytes into the spare capacity we handed it
        // (never more than that capacity, which `min` only restates).
        unsafe { c.rx.set_len(c.rx.len() + n) };
        c.shared.add_in(n);
        if c.closing {
            self.maybe_free(key);
            return;
        }
        self.process_rx(key);
    }

    /// Dispatches every complete frame in the receive buffer (as far as backpressure
    /// allows) and re-arms the receive.
    pub(crate) fn process_rx(&mut self, key: usize) {
        let max_inflight = self.shared.cfg.max_inflight;
        let budget = self.shared.cfg.channel_buffer_budget;
        let mut buf = match self.conns.get_mut(key) {
            Some(c) => {
                c.in_rx = true;
                std::mem::take(&mut c.rx)
            }
            None => return,
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
            self.on_frame(key, h, payload);
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

    fn on_frame(&mut self, key: usize, h: FrameHeader, payload: &[u8]) {
        #[cfg(test)]
        tests::fail_point_frame(h.op);
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
            _ => tracing::debug!(conn = c.id, op = %op, "unexpected non-request frame ignored"),
        }
    }

    fn handshake(&mut self, key: usize, h: FrameHeader, payload: &[u8]) {
        let Some(c) = self.conns.get_mut(key) else { return };
        let peer = c.shared.peer.clone();
        let state = std::mem::replace(&mut c.state, ConnState::Active);
        match (state, h.op()) {
            (ConnState::Hello(mut hs), Some(Op::HELLO)) if h.is_request() => {
                let ack = Hello::decode(payload).map_err(|e| e.to_string()).and_then(|hello| {
                    hs.on_hello(&hello, self.shared.features(), self.shared.cfg.max_inflight, "qtfs-engine")
                        .map_err(|e| e.to_string())
                });
                match ack {
                    Ok(ack) => {
                        // Back to a handshake state first: the answer is sized as one.
                        c.state = ConnState::Attach(hs);
                        self.respond(key, h.op, h.id, &ack);
                    }
                    Err(e) => {
                        c.state = ConnState::Hello(hs);
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
                        // Bounded per peer (--max-sessions-per-peer): EMFILE, then closed.
                        let (s, resumed) = match self.shared.sessions.attach_from(
                            Some(&peer),
                            req.session_id,
                            &req.session_token,
                            self.shared.cfg.max_handles,
                            self.shared.cfg.max_sessions_per_peer,
                        ) {
                            Ok(x) => x,
                            Err(e) => {
                                c.state = ConnState::Attach(hs);
                                self.fail_handshake(key, h, e);
                                return;
                            }
                        };
                        let ack = hs.attach_ack(s.id, crate::session::Sessions::token_of(&s), resumed);
                        // Authenticated: the connection leaves the pre-auth bounds.
                        if let Some(g) = c.gate.take() {
                            self.gate.release(&g);
                        }
                        self.respond(key, h.op, h.id, &ack);
                        let Some(c) = self.conns.get_mut(key) else {
                            s.detach();
                            return;
                        };
                        c.shared.session.store(s.id, Ordering::Relaxed);
                        c.shared.features.store(hs.features(), Ordering::Relaxed);
                        c.shared.state.store(consts::CONN_ACTIVE, Ordering::Relaxed);
                        tracing::info!(core = self.idx, conn = c.id, %peer, session = format_args!("{:x}", s.id), resumed, "client attached");
                        c.session = Some(s);
                    }
                    Err(e) => {
                        c.state = ConnState::Attach(hs);
                        if e == consts::errno::EACCES {
                            tracing::warn!(%peer, "authentication failed (wrong or missing key); closing");
                        } else {
                            tracing::warn!(%peer, "malformed ATTACH; closing");
                        }
                        self.fail_handshake(key, h, e);
                    }
                }
            }
            (state, _) => {
                c.state = state;
                tracing::warn!(%peer, op = h.op, flags = h.flags, "unexpected frame during handshake; closing");
                self.fail_handshake(key, h, consts::errno::EPROTO);
            }
        }
    }

    /// Ends a handshake: a request is answered with `errno` and the connection closed
    /// once that is sent; anything else closes it now.
    fn fail_handshake(&mut self, key: usize, h: FrameHeader, errno: i32) {
        let Some(c) = self.conns.get_mut(key) else { return };
        if h.is_request() {
            c.closing = true;
            c.close_after_flush = true;
            self.respond_err(key, h.op, h.id, errno);
        } else {
            self.close_conn(key);
        }
    }

    // ------------------------------------------------------------------ send

    fn flush(&mut self, key: usize) {
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

    fn on_send(&mut self, key: usize, res: i32) {
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

    /// Called when a request of `key` finished: frees the connection if it is closing,
    /// or resumes reading if backpressure had stopped it.
    pub fn request_done(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            tracing::error!(core = self.idx, key, "request finished for a freed connection");
            return;
        };
        c.inflight = c.inflight.saturating_sub(1);
        c.refs = c.refs.saturating_sub(1);
        c.shared.inflight.store(c.inflight, Ordering::Relaxed);
        if c.closing {
            self.maybe_free(key);
        } else {
            self.maybe_resume(key);
        }
    }

    /// Channel bytes of connection `key`'s session were written locally: reading
    /// resumes if it had stopped for `--channel-buffer-budget`. (Connections of the
    /// session on other cores are resumed by their core's tick.)
    /// Done at the end of the turn, never from inside a channel's handler (resuming
    /// parses frames, which may free that very channel).
    pub(crate) fn chan_drained(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|c| c.chan_paused) && !self.chan_resume.contains(&key) {
            self.chan_resume.push(key);
        }
    }

    /// Keeps connection `key` allocated while a channel or listener refers to it.
    pub(crate) fn conn_hold(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            c.refs += 1;
        }
    }

    /// Drops a reference taken by `conn_hold`; frees the connection if it is closing
    /// and nothing else refers to it.
    pub(crate) fn conn_release(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        c.refs = c.refs.saturating_sub(1);
        if c.closing {
            self.maybe_free(key);
        }
    }

    pub fn request_started(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            c.inflight += 1;
            c.refs += 1;
            c.shared.inflight.store(c.inflight, Ordering::Relaxed);
        }
    }

    fn maybe_resume(&mut self, key: usize) {
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
                self.process_rx(key);
            } else {
                self.arm_recv(key);
            }
        }
    }

    // ------------------------------------------------------------------ close

    /// Starts closing a connection: no more reading, its in-flight requests are
    /// cancelled, the descriptor is closed once nothing refers to it.
    pub fn close_conn(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        if !c.closing || c.close_after_flush {
            c.closing = true;
            c.close_after_flush = false;
            c.shared.state.store(consts::CONN_CLOSING, Ordering::Relaxed);
            // SAFETY: shutdown on our own socket: wakes the pending recv and send.
            unsafe { libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_RDWR) };
            let epolls = std::mem::take(&mut c.epolls);
            let cancel = c.inflight > 0;
            for ud in epolls {
                self.push(opcode::PollRemove::new(ud as u64).build().user_data(UD_IGNORE));
            }
            if cancel {
                self.flush_deferred(key);
                self.cancel_requests(key);
            }
            udsmux::conn_closing(self, key);
        }
        self.maybe_free(key);
    }

    /// Cancels every ring operation of `key`'s requests (a READ on an idle FIFO, an
    /// open waiting for a FIFO's other end…): nobody will read their answers, and until
    /// they finish they keep the connection, its session and their descriptors alive.
    /// Each finishes with an error, which releases the connection as usual.
    fn cancel_requests(&mut self, key: usize) {
        let uds: Vec<u64> = self
            .ops
            .iter()
            .filter_map(|(ud, s)| match s {
                Slot::Fs(r) if r.conn() == key => Some(ud as u64),
                _ => None,
            })
            .collect();
        for ud in uds {
            self.push(opcode::AsyncCancel::new(ud).build().user_data(UD_IGNORE));
        }
    }

    fn maybe_free(&mut self, key: usize) {
        let Some(c) = self.conns.get(key) else { return };
        if c.refs > 0 || !c.closing || c.close_after_flush || c.in_rx {
            return;
        }
        let c = self.conns.remove(key);
        self.freed += 1;
        self.freed_big |= c.rx.capacity() > RX_BUF;
        for b in c.tx {
            self.bufs.put(b);
        }
        if let Some(g) = &c.gate {
            self.gate.release(g);
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
        crate::notify::drain(self);
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
        #[cfg(test)]
        tests::fail_point_tick(self.idx);
        udsmux::tick(self);
        if self.idx == 0 && self.last_reap.elapsed().as_secs() >= 1 {
            self.last_reap = Instant::now();
            self.shared.sessions.reap(self.shared.cfg.session_grace);
        }
        self.expire_handshakes();
        let paused: Vec<usize> = self.conns.iter().filter(|(_, c)| c.chan_paused).map(|(k, _)| k).collect();
        for k in paused {
            self.maybe_resume(k);
        }
        self.give_back_memory();
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

    /// Closes connections that did not attach within `HANDSHAKE_TIMEOUT`.
    fn expire_handshakes(&mut self) {
        let now = Instant::now();
        while let Some(&(deadline, key, id)) = self.handshakes.front() {
            if deadline > now {
                break;
            }
            self.handshakes.pop_front();
            let Some(c) = self.conns.get(key) else { continue };
            if c.id != id || c.active() || c.closing {
                continue;
            }
            tracing::info!(core = self.idx, conn = id, peer = %c.shared.peer, "handshake not finished in time; closing");
            self.close_conn(key);
        }
    }

    /// After connections went away, gives idle memory back to the system: the spare
    /// buffers and requests beyond a small reserve, and (glibc) the heap's free pages,
    /// which a burst of large receive buffers otherwise keeps mapped in every core's
    /// arena long after the peers left.
    fn give_back_memory(&mut self) {
        if self.freed == 0 || (self.freed < TRIM_AFTER_FREES && !self.freed_big) {
            return;
        }
        self.freed = 0;
        self.freed_big = false;
        self.bufs.shrink();
        self.reqs.truncate(64);
        self.reqs.shrink_to_fit();
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
