//! The reactor of a core: one thread, one io_uring, every connection it accepted.
//!
//! Each turn submits every SQE produced by the previous turn with one `io_uring_enter`,
//! waits for at least one completion, drains the completion queue, and handles each
//! completion: accepted sockets become connections, received bytes are split into
//! frames, and past the handshake each frame goes to the core's [`Service`]; finished
//! service operations go back to it. At the end of the turn every connection with queued
//! responses gets one `sendmsg` (responses coalesced, large read data sent from its own
//! buffer without copying).
//!
//! The reactor knows no service: what a request means (file operations, channels) is
//! behind [`Service`], a generic parameter of the loop (static dispatch, no `dyn`). A
//! service submits its operations with user_data [`svc_ud`] (its id and its own token)
//! and gets their completions back with that user_data; it reaches sockets, framing,
//! buffers and personalities only through [`Reactor`]'s API. The per-core glue that
//! picks the services lives above this module (`worker`).
//!
//! Ownership: a reactor operation lives in the `ops` slab, a service operation in its
//! service's own table; each owns every buffer and descriptor the kernel may touch until
//! its completion arrives. A connection is freed only when no operation refers to it any
//! more (`refs == 0`) and its receive buffer is not being parsed (`in_rx`), so slab keys
//! are never reused under an in-flight operation or a frame being handled. Closing a
//! connection tells the service ([`Service::conn_closing`]), which cancels its in-flight
//! requests, so a request that would never finish (a READ on an idle FIFO) cannot keep
//! the connection, its session and their descriptors alive.
//!
//! Re-entry: a service handler holds the service, so the reactor never calls back into
//! it from inside one. What a handler triggers that needs the service (a connection
//! closing, frames to parse once backpressure lifts) is queued and handled by the loop
//! as soon as the handler returns (`run::settle`), in the same turn.
//!
//! Untrusted input: before ATTACH a connection may only send frames of at most
//! `PREAUTH_MAX_PAYLOAD` bytes into a `PREAUTH_RX` buffer, must finish its handshake
//! within `HANDSHAKE_TIMEOUT`, and is admitted only within the bounds of [`gate`].
//!
//! Shared resources: a connection whose session's channels hold their
//! `--channel-buffer-budget` of queued bytes is not read until they drain (so a peer
//! that ignores channel credit, or fills many windows at once, cannot grow memory);
//! each ring's io-wq pool is bounded (`io_workers`) and one session may have at most
//! half of it busy (`submit_for` defers the rest), so no peer can take every worker;
//! an accept that fails (EMFILE…) pauses that listener for a growing delay instead of
//! failing again at once.
//!
//! Failure containment: a panic while handling a completion that belongs to one
//! connection closes that connection only (see `run::complete_isolated`); anything else
//! escaping the loop, or `io_uring_enter` failing `MAX_ENTER_ERRORS` times in a row,
//! ends the loop and the core's supervisor restarts it with a fresh ring.

// Everything here handles bytes from untrusted peers: a slip must close a connection,
// not panic the core. (`fsops` and `udsmux` deny the same lints.)
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub(crate) mod buf;
mod conn;
pub(crate) mod gate;
mod run;
mod salvage;
mod stream;
#[cfg(test)]
mod tests;

pub(crate) use conn::Conn;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, squeue, types};
use qtfs_proto::{FrameHeader, Op};
use slab::Slab;

use crate::Shared;
use crate::creds::{self, Ident};
use crate::stats::Done;
use crate::whitelist::Whitelist;

use buf::BufPool;
use conn::SendOp;
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

/// user_data bit of service operations; the reactor's own are slab keys below it.
const SVC_BIT: u64 = 1 << 63;
const SVC_SHIFT: u32 = 48;
const TOKEN_MASK: u64 = (1 << SVC_SHIFT) - 1;

/// The user_data of operation `token` of service `svc` (a small id of the service's
/// choosing, below 0x7f so that no user_data equals [`UD_IGNORE`]).
pub(crate) const fn svc_ud(svc: u8, token: usize) -> u64 {
    SVC_BIT | ((svc as u64 & 0x7f) << SVC_SHIFT) | (token as u64 & TOKEN_MASK)
}

/// The service id and token of a service operation's user_data.
pub(crate) const fn svc_of(ud: u64) -> Option<(u8, usize)> {
    if ud & SVC_BIT == 0 || ud == UD_IGNORE {
        return None;
    }
    Some((((ud >> SVC_SHIFT) & 0x7f) as u8, (ud & TOKEN_MASK) as usize))
}

/// What a core serves past the handshake: frames in, completions in. The loop is
/// generic over it, so every call is static.
pub(crate) trait Service {
    /// A frame (operation `op`) of an attached connection (the reactor answers PING,
    /// HELLO, ATTACH and operations it does not know).
    fn on_frame(&mut self, r: &mut Reactor, conn: usize, h: FrameHeader, op: Op, payload: &[u8]);
    /// The completion of an operation submitted with user_data `ud` ([`svc_ud`]).
    /// Multishot operations stay armed while `cqueue::more(flags)`.
    fn on_completion(&mut self, r: &mut Reactor, ud: u64, res: i32, flags: u32);
    /// The connection operation `ud` belongs to, if exactly one: a panic while handling
    /// its completion then closes that connection only.
    fn owner(&self, _ud: u64) -> Option<usize> {
        None
    }
    /// Connection `conn` started closing (it may already be freed): cancel what it waits
    /// for, drop what refers to it.
    fn conn_closing(&mut self, _r: &mut Reactor, _conn: usize) {}
    /// The core's eventfd fired (another thread queued work for this core).
    fn on_wake(&mut self, _r: &mut Reactor) {}
    /// Once a second; `trim` after connections went away (give spare memory back).
    fn on_tick(&mut self, _r: &mut Reactor, _trim: bool) {}
    /// End of a turn, before responses are flushed.
    fn end_turn(&mut self, _r: &mut Reactor) {}
    /// A completion arrived after the loop died: drop what the operation held (close a
    /// descriptor it returned) without handling it.
    fn abandon(&mut self, _ud: u64, _res: i32, _flags: u32) {}
    /// The kernel may still hold pointers into this service's memory: leak it.
    fn leak(&mut self) {}
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

/// io-wq workers (bounded and unbounded) of each ring: enough for the blocking work of
/// many clients, few enough that a core's threads stay bounded (the unbounded pool's
/// default is RLIMIT_NPROC).
fn io_workers() -> u32 {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get()) as u32;
    cpus.saturating_mul(4).clamp(16, 64)
}

/// A listening socket a core accepts from.
#[derive(Debug, Clone)]
pub(crate) struct ListenFd {
    pub fd: Arc<OwnedFd>,
    pub tcp: bool,
    pub name: String,
}

/// The reactor's own operations. `AcceptPause(listener, timespec)` is a listener's
/// pause after a failed accept.
pub(crate) enum Slot {
    Accept { listener: usize },
    AcceptPause(usize, Box<types::Timespec>),
    Recv { conn: usize },
    Send { conn: usize },
    Wake,
    Tick,
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

pub(crate) struct Reactor {
    pub idx: usize,
    pub ring: IoUring,
    pub shared: Arc<Shared>,
    pub conns: Slab<Conn>,
    ops: Slab<Slot>,
    /// Service operations in flight (their state is the service's).
    svc_ops: usize,
    pub bufs: BufPool,
    pub wl: Arc<Whitelist>,
    wl_gen: u64,
    personalities: HashMap<Ident, u16>,
    pub base_personality: Option<u16>,
    dirty: Vec<usize>,
    done: Vec<Done>,
    listeners: Vec<ListenFd>,
    wake_fd: OwnedFd,
    wake_buf: Box<u64>,
    tick_ts: Box<types::Timespec>,
    cqes: Vec<(u64, i32, u32)>,
    /// Spare send operations (their vectors keep their capacity). Boxed on purpose: the
    /// kernel holds pointers into one, so its address must not change while it moves.
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
    /// Connections that started closing, for `Service::conn_closing` (see Re-entry).
    closed: Vec<usize>,
    /// Connections whose received frames are to be parsed again (see Re-entry).
    to_parse: Vec<usize>,
    /// Pause of each listener after its last failed accept (zero: none).
    accept_pause: Vec<Duration>,
    /// Worker-bound operations one session may have in flight on this ring: half its
    /// io-wq workers, so another session always finds one.
    session_worker_cap: u32,
    /// Worker-bound operations in flight (user_data → session), per session, and the
    /// operations (with their connection) of sessions at their cap, submitted as theirs
    /// complete.
    worker_ops: HashMap<u64, u64>,
    worker_busy: HashMap<u64, u32>,
    deferred: HashMap<u64, VecDeque<(squeue::Entry, usize)>>,
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

impl Reactor {
    pub fn new(
        idx: usize,
        shared: Arc<Shared>,
        listeners: Vec<ListenFd>,
        wake_fd: OwnedFd,
        gate: Arc<PreAuthGate>,
    ) -> io::Result<Reactor> {
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
        Ok(Reactor {
            idx,
            ring,
            shared,
            conns: Slab::with_capacity(64),
            ops: Slab::with_capacity(64),
            svc_ops: 0,
            bufs: BufPool::default(),
            wl,
            wl_gen,
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
            closed: Vec::new(),
            to_parse: Vec::new(),
            accept_pause: Vec::new(),
            session_worker_cap: (workers / 2).max(1),
            worker_ops: HashMap::new(),
            worker_busy: HashMap::new(),
            deferred: HashMap::new(),
        })
    }

    /// Queues an SQE, flushing the submission queue to the kernel if it is full. If
    /// the kernel keeps refusing, the entry is dropped and the ring marked broken: the
    /// loop then ends and the core is rebuilt (the operation's state stays where it is,
    /// so its memory is leaked rather than freed while the kernel might know it).
    pub fn push(&mut self, e: squeue::Entry) {
        if svc_of(e.get_user_data()).is_some() {
            self.svc_ops += 1;
        }
        let mut busy = 0u32;
        loop {
            // SAFETY: every pointer in `e` refers to memory owned by an `ops` slot, a
            // service's operation or the reactor, that stays alive and unmoved until the
            // completion is handled.
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
    fn slot(&mut self, s: Slot) -> u64 {
        self.ops.insert(s) as u64
    }

    /// Whether any operation is still in flight.
    fn ops_in_flight(&self) -> bool {
        !self.ops.is_empty() || self.svc_ops > 0
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

    /// Submits service operation `e` (its user_data set) of a request of connection
    /// `conn`. A worker-bound one of a session that has `session_worker_cap` of them in
    /// flight waits its turn (`worker_done`): operations that block (a hung network or
    /// FUSE file system below an export) must not take every io-wq worker of the core
    /// from other clients.
    pub fn submit_for(&mut self, conn: usize, e: squeue::Entry) {
        let sid =
            if worker_bound(&e) { self.conns.get(conn).and_then(|c| c.session.as_ref()).map(|s| s.id) } else { None };
        let Some(sid) = sid else {
            self.submit_now(conn, e);
            return;
        };
        let busy = self.worker_busy.entry(sid).or_default();
        if *busy >= self.session_worker_cap {
            crate::log_limited!(
                tracing::Level::DEBUG,
                session = format_args!("{sid:x}"),
                "session at its share of io_uring workers; request waits"
            );
            self.deferred.entry(sid).or_default().push_back((e, conn));
            return;
        }
        *busy += 1;
        let ud = e.get_user_data();
        self.submit_now(conn, e);
        self.worker_ops.insert(ud, sid);
    }

    /// A worker-bound operation (user_data `ud`) completed: its session may start
    /// the next of its waiting ones.
    fn worker_done(&mut self, ud: u64) {
        if self.worker_ops.is_empty() {
            return;
        }
        let Some(sid) = self.worker_ops.remove(&ud) else { return };
        let next = self.deferred.get_mut(&sid).and_then(|q| q.pop_front());
        if let Some((e, conn)) = next {
            // The finished one's place goes to the next waiting one (count unchanged).
            let ud = e.get_user_data();
            self.submit_now(conn, e);
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

    /// Submits the waiting operations of a closing connection: each is cancelled at
    /// once (`submit_now`), so it completes and releases the connection.
    fn flush_deferred(&mut self, key: usize) {
        let mut mine = Vec::new();
        for q in self.deferred.values_mut() {
            let mut i = 0;
            while i < q.len() {
                if q.get(i).is_some_and(|&(_, c)| c == key) {
                    if let Some(x) = q.remove(i) {
                        mine.push(x);
                    }
                } else {
                    i += 1;
                }
            }
        }
        self.deferred.retain(|_, q| !q.is_empty());
        for (e, conn) in mine {
            self.submit_now(conn, e);
        }
    }

    /// Submits service operation `e` of connection `conn` now, outside the worker
    /// bound (timers, or operations that never block).
    pub fn submit_now(&mut self, conn: usize, e: squeue::Entry) {
        let ud = e.get_user_data();
        // A step started after its connection began closing (an earlier step was
        // cancelled, or finished just before the close) is cancelled at once too.
        let cancel = self.conns.get(conn).is_none_or(|c| c.closing && !c.close_after_flush);
        self.push(e);
        if cancel {
            self.push(opcode::AsyncCancel::new(ud).build().user_data(UD_IGNORE));
        }
    }

    pub fn record(&mut self, d: Done) {
        self.done.push(d);
    }

    /// Picks up a whitelist change before handling anything of this turn.
    fn refresh_whitelist(&mut self) {
        let g = self.shared.wl_gen.load(Ordering::Acquire);
        if g != self.wl_gen {
            self.wl = self.shared.whitelist.read().clone();
            self.wl_gen = g;
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

    pub fn request_started(&mut self, key: usize) {
        if let Some(c) = self.conns.get_mut(key) {
            c.inflight += 1;
            c.refs += 1;
            c.shared.inflight.store(c.inflight, Ordering::Relaxed);
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

    /// Keeps connection `key` allocated while something of a service refers to it.
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
}
