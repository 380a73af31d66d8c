//! Unix-socket channels multiplexed on client connections (the socket proxy, and later
//! remote exec): CHAN_OPEN/DATA/CREDIT/CLOSE/LISTEN/UNLISTEN/SCM.
//!
//! A channel joins one QTP connection to one local descriptor: a unix socket the engine
//! connected (client-opened channels), one it accepted on a HOST listener (engine-opened
//! channels, ids with `CHAN_ID_PEER`), or one end of a pipe that relays a descriptor
//! passed with SCM_RIGHTS. Every byte moves through the core's ring: receives name a
//! provided-buffer group ([`bufring`]) so idle channels hold no buffer, sends are queued
//! per channel and owned by it until their completion arrives.
//!
//! Flow control is per channel and credit based (see `proto/PROTOCOL.md`, Channels): the
//! engine reads its local socket only while it holds credit from the peer, and grants the
//! peer at most [`WINDOW`] bytes beyond what it has written locally. A local reader that
//! stops reading therefore stops only its own channel; file requests and other channels
//! on the same connection keep going — until the session's channels together hold
//! `--channel-buffer-budget` queued bytes: then the session's connections are not read
//! until they drain (`ring`), which bounds a peer that ignores credit or fills many
//! windows at once.
//!
//! Security: a client names a HOST socket path; the engine resolves it with the caller's
//! identity (io_uring personality) to an `O_PATH` descriptor of the socket file itself
//! (a symlink as the final component is refused, like `O_NOFOLLOW`), checks that
//! descriptor's real path against `[Udsconnect]`, and connects *through the descriptor*
//! (`/proc/self/fd/N`, a magic link the kernel follows to exactly that inode) with the
//! caller's identity. The object checked is the object connected: no path component can
//! be swapped for a symlink between the check and the connect. CHAN_LISTEN likewise
//! creates, renames and later removes its socket file inside the directory descriptor
//! whose real path it checked. The HOST server sees the caller's uid/gid (after the
//! operator's id map, `creds::IdPolicy`) in `SO_PEERCRED` and `SCM_CREDENTIALS`. Descriptors passed from the DPU are recreated
//! without ever creating or truncating files (`SCM_FILE` is reopened with the caller's
//! identity and must pass the `[Open]` (and `[Write]`) whitelist); pipe and listener
//! records name relay channels, never raw descriptor numbers.
//!
//! The channel rules both ends share — kinds and states, credit, message assembly, SCM
//! records and their bounds, the passed-file reopen policy — are the channel core's
//! (`qtfs-chan`, also used by udsproxyd); this module does their I/O on the ring: `open`
//! (CHAN_OPEN both ways), `listen` (listeners and accepted connections), `data` (bytes
//! and credit), `close`, `scm` and `cmsg` (descriptors passed across).
//!
//! This module owns channel and listener state; it must not interpret file requests, and
//! reaches sockets and framing only through the reactor's API (`ring::Reactor`, in `Ctx`).

// Channel frames come from untrusted peers: a slip must drop the frame or close the
// channel or connection, never panic the core.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

mod bufring;
mod service;

pub(crate) use service::SVC;

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types};
use qtfs_proto::consts::{self, CHAN_ID_PEER, WlType, errno};
use qtfs_proto::header::flags as hflags;
use qtfs_proto::*;
use slab::Slab;

use qtfs_chan::{Delivery, Flow, Kind, OutMsg, St};

use crate::creds::{self, Ident};
use crate::ring::UD_IGNORE;
use crate::stats::{ChanShared, Done};
use crate::sys;

use service::Ctx;

use bufring::{BGID, BUF_SIZE, BufRing};

/// Bytes the engine lets its peer send ahead on one channel (its receive window).
pub(crate) use qtfs_chan::WINDOW;
/// Control-message space: enough for `SCM_MAX_FD` (253) descriptors.
const CMSG_WORDS: usize = 160;
// A receive buffer holds exactly one largest message.
const _: () = assert!(BUF_SIZE == qtfs_chan::MSG_MAX);
const LISTEN_BACKLOG: i32 = 128;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// Queued local-write bytes are coalesced into one send up to this size (streams).
const COALESCE: usize = 256 * 1024;

/// A ring operation of a channel or listener (what its user_data's token names).
#[derive(Clone, Copy, Debug)]
pub(crate) enum ChanOp {
    /// O_PATH resolution of the target path with the caller's identity.
    Resolve(usize),
    Connect(usize),
    Recv(usize),
    Send(usize),
    /// Multishot accept on a listener.
    Accept(usize),
}

/// Kernel-visible parts of a channel operation; boxed so their addresses stay fixed while
/// the channel moves inside the slab.
struct MsgBox {
    msg: libc::msghdr,
    iov: libc::iovec,
    cmsg: [u64; CMSG_WORDS],
    addr: libc::sockaddr_un,
    how: types::OpenHow,
}

impl MsgBox {
    fn new() -> Box<MsgBox> {
        Box::new(MsgBox {
            // SAFETY: msghdr, iovec and sockaddr_un are plain data; zeroed is valid.
            msg: unsafe { std::mem::zeroed() },
            iov: libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 },
            cmsg: [0; CMSG_WORDS],
            // SAFETY: as above.
            addr: unsafe { std::mem::zeroed() },
            how: types::OpenHow::new(),
        })
    }
}

struct Chan {
    conn: usize,
    wire: u32,
    st: St,
    /// The channel core's data path: kind, credit, message assembly, the local write
    /// queue, passed descriptors, half-close state.
    flow: Flow,
    fd: Option<OwnedFd>,
    /// O_PATH descriptor of the target while opening.
    opath: Option<OwnedFd>,
    personality: Option<u16>,
    ident: Ident,
    shared: Arc<ChanShared>,
    recv_ud: Option<u64>,
    send_ud: Option<u64>,
    op_ud: Option<u64>,
    refs: u32,
    /// The peer closed the channel (no CHAN_CLOSE goes back).
    peer_closed: bool,
    /// The connection dropped without the channel being closed: the local socket is kept
    /// open (not shut down) for the session grace period instead of closed.
    orphan: bool,
    starved: bool,
    /// The front of `flow.outq` is being sent.
    sending: bool,
    rbox: Box<MsgBox>,
    sbox: Box<MsgBox>,
    /// NUL-terminated path handed to the kernel while resolving.
    cpath: Vec<u8>,
    /// The CHAN_OPEN request being answered (client-opened channels).
    open_id: u64,
    open_t0: Instant,
    /// Relay channels and listeners created for descriptors passed on this channel: they
    /// close with it when they have no end of their own.
    owned_listeners: Vec<u32>,
    /// The session the channel counts against (`--max-channels`,
    /// `--channel-buffer-budget`), and the bytes it holds queued (in `flow.outq` and
    /// `flow.asm`) that are counted in the session's `chan_bytes`.
    session: Option<Arc<crate::session::Session>>,
    held: usize,
}

struct Listener {
    conn: usize,
    id: u32,
    kind: Kind,
    /// Accepting socket (CHAN_LISTEN, or a listening socket the HOST passed to the DPU);
    /// None for an imported relay, which only remembers where to connect.
    fd: Option<OwnedFd>,
    /// CHAN_LISTEN: the HOST path; imported relay: the abstract address.
    addr: Vec<u8>,
    /// The socket file created for CHAN_LISTEN (unlinked on close only if still ours).
    file: Option<SockFile>,
    accept_ud: Option<u64>,
    refs: u32,
    closing: bool,
}

/// The socket file of a CHAN_LISTEN listener: the directory it was created in (held open,
/// so that removing it later acts in that same directory even if the path now leads
/// elsewhere), its name there, and its (dev, ino).
struct SockFile {
    dir: OwnedFd,
    name: CString,
    dev: u64,
    ino: u64,
}

/// A listening socket, the path it is bound to, and its socket file.
type HostListener = (OwnedFd, Vec<u8>, SockFile);

/// Per-core channel state.
#[derive(Default)]
pub(crate) struct State {
    chans: Slab<Chan>,
    ids: HashMap<(usize, u32), usize>,
    listeners: Slab<Listener>,
    lids: HashMap<(usize, u32), usize>,
    bufs: Option<BufRing>,
    bufs_failed: bool,
    starved: Vec<usize>,
    next_peer: u32,
    next_req: u64,
    /// (connection, request id) of our CHAN_OPEN requests → channel.
    peer_reqs: HashMap<(usize, u64), usize>,
    /// Personalities with the effective ids switched (see `chan_personality`).
    personalities: HashMap<Ident, u16>,
    /// Ring operations in flight, by token.
    ops: Slab<ChanOp>,
    /// Local sockets of channels whose connection dropped, and when (see `conn_closing`).
    orphans: Vec<(std::time::Instant, OwnedFd)>,
}

impl State {
    /// A fresh id chosen by the engine (CHAN_ID_PEER set; unique on this core).
    fn peer_id(&mut self) -> u32 {
        self.next_peer = (self.next_peer + 1) & !CHAN_ID_PEER;
        if self.next_peer == 0 {
            self.next_peer = 1;
        }
        self.next_peer | CHAN_ID_PEER
    }
}

/// A channel or listener key that should name live state but does not: a bug, never
/// input (keys come from `ids`/`lids`, `peer_reqs`, an operation's slot or a record made
/// just before, and state is freed only when nothing refers to it). Logged, rate-limited;
/// the frame or completion is dropped and the core goes on.
fn gone(what: &'static str, key: usize) {
    crate::log_limited!(tracing::Level::ERROR, what, key, "channel state gone while still referred to; event dropped");
}

/// `&mut` channel `ck`, or `return $ret` (default `()`) from the caller after [`gone`].
macro_rules! chan_or {
    ($core:expr, $ck:expr) => {
        chan_or!($core, $ck, ())
    };
    ($core:expr, $ck:expr, $ret:expr) => {
        match $core.mux.chans.get_mut($ck) {
            Some(c) => c,
            None => {
                gone("channel", $ck);
                return $ret;
            }
        }
    };
}

/// `&mut` listener `lk`, or return from the caller after [`gone`].
macro_rules! listener_or {
    ($core:expr, $lk:expr) => {
        match $core.mux.listeners.get_mut($lk) {
            Some(l) => l,
            None => {
                gone("listener", $lk);
                return;
            }
        }
    };
}

mod close;
mod cmsg;
mod data;
mod listen;
mod open;
mod scm;

use close::*;
use cmsg::*;
use data::*;
use listen::*;
use open::*;
use scm::*;

/// Whether connection `key`'s session may have one more channel: EMFILE beyond
/// `--max-channels`, ENOBUFS while its channels hold `--channel-buffer-budget` bytes.
fn chan_room(core: &Ctx, key: usize) -> Result<(), i32> {
    let Some(s) = core.r.conns.get(key).and_then(|c| c.session.as_ref()) else { return Ok(()) };
    let cfg = &core.r.shared.cfg;
    if s.chans.load(Ordering::Acquire) >= cfg.max_channels {
        crate::log_limited!(
            tracing::Level::WARN,
            max = cfg.max_channels,
            "channel refused: the session has --max-channels channels"
        );
        return Err(errno::EMFILE);
    }
    if s.chan_bytes.load(Ordering::Acquire) >= cfg.channel_buffer_budget {
        crate::log_limited!(
            tracing::Level::WARN,
            "channel refused: the session's channels hold --channel-buffer-budget bytes"
        );
        return Err(errno::ENOBUFS);
    }
    Ok(())
}

/// Whether the session of channel `c` is within its queued-bytes budget (credit is
/// returned to the peer only then: a peer cannot make the engine queue more than the
/// budget plus what it was granted already).
fn under_budget(cfg: &crate::config::Config, c: &Chan) -> bool {
    c.session.as_ref().is_none_or(|s| s.chan_bytes.load(Ordering::Acquire) < cfg.channel_buffer_budget)
}

/// Counts `n` more (or, negative, fewer) queued bytes for channel `c` and its session.
fn hold(c: &mut Chan, n: isize) {
    let n = if n < 0 { -(((-n) as usize).min(c.held) as isize) } else { n };
    c.held = (c.held as isize + n) as usize;
    if let Some(s) = &c.session {
        if n >= 0 {
            s.chan_bytes.fetch_add(n as usize, Ordering::AcqRel);
        } else {
            s.chan_bytes.fetch_sub((-n) as usize, Ordering::AcqRel);
        }
    }
}

fn e_local(e: i32) -> i32 {
    errno::from_local(e)
}

/// The HOST identity a channel's caller gets: mapped, squashed and checked by the
/// operator's policy exactly like a file request's (`creds::IdPolicy`); EPERM if refused.
fn ident_of(core: &Ctx, uid: u32, gid: u32, groups: &Groups<'_>) -> Result<Ident, i32> {
    core.r.shared.cfg.ids.ident(uid, gid, groups.iter())
}

// ------------------------------------------------------------------ frames in

fn on_frame(core: &mut Ctx, key: usize, h: FrameHeader, op: Op, payload: &[u8]) {
    if h.is_response() {
        if op == Op::CHAN_OPEN {
            peer_open_answered(core, key, &h, payload);
        }
        return;
    }
    match op {
        Op::CHAN_OPEN if h.is_request() => open_request(core, key, &h, payload),
        Op::CHAN_LISTEN if h.is_request() => listen_request(core, key, &h, payload),
        Op::CHAN_UNLISTEN if h.is_request() => {
            let t0 = Instant::now();
            let r = ChanUnlistenReq::decode(payload).map_err(|_| errno::EBADMSG).and_then(|m| {
                let lk = *core.mux.lids.get(&(key, m.listener)).ok_or(errno::ENOENT)?;
                close_listener(core, lk);
                Ok(Empty {})
            });
            reply(core, key, &h, Op::CHAN_UNLISTEN, t0, r);
        }
        Op::CHAN_DATA => data_frame(core, key, &h, payload),
        Op::CHAN_CREDIT => {
            let Some(ck) = lookup(core, key, h.channel) else { return };
            let c = chan_or!(core, ck);
            let r = ChanCredit::decode(payload)
                .map_err(|_| (errno::EPROTO, "malformed CHAN_CREDIT"))
                .and_then(|m| c.flow.credit.granted(m.bytes));
            match r {
                Ok(()) => {
                    publish_credit(c);
                    arm_recv(core, ck);
                }
                Err((e, why)) => fail(core, ck, e, why),
            }
        }
        Op::CHAN_CLOSE => {
            let Some(ck) = lookup(core, key, h.channel) else { return };
            match ChanClose::decode(payload) {
                Ok(m) if m.how == consts::CHAN_SHUT_WR => {
                    let c = chan_or!(core, ck);
                    if c.st == St::Open {
                        c.flow.peer_eof = true;
                        // Shuts the local write side once the queue is written, and may
                        // end (free) the channel.
                        arm_send(core, ck);
                    }
                }
                Ok(m) => {
                    if m.error != 0 {
                        tracing::debug!(chan = h.channel, error = m.error, "channel closed by the peer");
                    }
                    chan_or!(core, ck).peer_closed = true;
                    begin_close(core, ck);
                }
                Err(_) => fail(core, ck, errno::EPROTO, "malformed CHAN_CLOSE"),
            }
        }
        Op::CHAN_SCM => {
            let Some(ck) = lookup(core, key, h.channel) else { return };
            if let Err(e) = scm_import(core, key, ck, payload) {
                chan_or!(core, ck).flow.scm_failed(e);
            }
        }
        _ => {
            if h.is_request() {
                core.r.respond_err(key, h.op, h.id, errno::EPROTO);
            }
        }
    }
}

fn lookup(core: &Ctx, key: usize, wire: u32) -> Option<usize> {
    let ck = core.mux.ids.get(&(key, wire)).copied();
    if ck.is_none() {
        tracing::trace!(chan = wire, "frame for an unknown channel ignored");
    }
    ck
}

fn reply<'m, M: Wire<'m>>(core: &mut Ctx, key: usize, h: &FrameHeader, op: Op, t0: Instant, r: Result<M, i32>) {
    core.r.answer(key, h, op, t0, r);
}

/// Creates a channel record (not yet in any ring operation) and registers it.
fn new_chan(core: &mut Ctx, key: usize, wire: u32, kind: Kind, st: St, ident: Ident, path: &[u8]) -> usize {
    // `key` is the connection being served (its frame, or a listener that holds it).
    let (conn_id, session) = core.r.conns.get(key).map_or((0, None), |c| (c.id, c.session.clone()));
    let shared = Arc::new(ChanShared::new(conn_id, wire, kind, path, st, &qtfs_chan::Credit::default()));
    core.r.shared.chans.lock().insert((conn_id, wire), shared.clone());
    let personality = chan_personality(core, &ident);
    let ck = core.mux.chans.insert(Chan {
        conn: key,
        wire,
        st,
        flow: Flow::new(kind),
        fd: None,
        opath: None,
        personality,
        ident,
        shared,
        recv_ud: None,
        send_ud: None,
        op_ud: None,
        refs: 0,
        peer_closed: false,
        orphan: false,
        starved: false,
        sending: false,
        rbox: MsgBox::new(),
        sbox: MsgBox::new(),
        cpath: Vec::new(),
        open_id: 0,
        open_t0: Instant::now(),
        owned_listeners: Vec::new(),
        session: session.clone(),
        held: 0,
    });
    if let Some(s) = &session {
        s.chans.fetch_add(1, Ordering::AcqRel);
    }
    core.mux.ids.insert((key, wire), ck);
    core.r.conn_hold(key);
    if let Some(c) = core.r.conns.get(key) {
        c.shared.channels.fetch_add(1, Ordering::Relaxed);
    }
    ck
}

/// The io_uring personality a channel's operations run with: the caller's effective
/// uid/gid/groups (so the HOST server sees them in SO_PEERCRED and SCM_CREDENTIALS, and
/// HOST permissions apply to them); the engine's own for root. None when the engine
/// cannot take other identities (not root).
fn chan_personality(core: &mut Ctx, id: &Ident) -> Option<u16> {
    let base = core.r.base_personality?;
    if id.is_root() {
        return Some(base);
    }
    if let Some(p) = core.mux.personalities.get(id) {
        return Some(*p);
    }
    if core.mux.personalities.len() >= 1024 {
        // In-flight operations hold their own references to the credentials.
        for (_, p) in core.mux.personalities.drain() {
            let _ = core.r.ring.submitter().unregister_personality(p);
        }
    }
    match creds::register_socket_personality(&core.r.ring.submitter(), id) {
        Ok(p) => {
            core.mux.personalities.insert(id.clone(), p);
            Some(p)
        }
        Err(e) => {
            tracing::warn!(uid = id.uid, "cannot register a channel personality: {e}");
            None
        }
    }
}

fn set_state(core: &mut Ctx, ck: usize, st: St) {
    let c = chan_or!(core, ck);
    c.st = st;
    c.shared.state.store(st.wire(), Ordering::Relaxed);
}

fn publish_credit(c: &Chan) {
    c.shared.credit_tx.store(c.flow.credit.tx_u32(), Ordering::Relaxed);
    c.shared.credit_rx.store(c.flow.credit.rx_u32(), Ordering::Relaxed);
}

// ------------------------------------------------------------------ completions

fn complete(core: &mut Ctx, op: ChanOp, res: i32, flags: u32, more: bool) {
    let ck = match op {
        ChanOp::Accept(lk) => return accepted(core, lk, res, more),
        ChanOp::Resolve(ck) | ChanOp::Connect(ck) | ChanOp::Recv(ck) | ChanOp::Send(ck) => ck,
    };
    let c = chan_or!(core, ck);
    c.refs = c.refs.saturating_sub(1);
    let closing = c.st == St::Closing;
    match op {
        ChanOp::Resolve(_) | ChanOp::Connect(_) if closing => {
            // Cancelled while opening: the request still gets its answer.
            c.op_ud = None;
            c.opath = None;
            if matches!(op, ChanOp::Resolve(_)) && res >= 0 {
                // SAFETY: a successful openat2 returned a descriptor we now own.
                drop(unsafe { OwnedFd::from_raw_fd(res) });
            }
            answer_open(core, ck, Err(e_local(libc::ECONNABORTED)));
        }
        ChanOp::Resolve(_) => {
            c.op_ud = None;
            resolved(core, ck, res)
        }
        ChanOp::Connect(_) => {
            c.op_ud = None;
            connected(core, ck, res)
        }
        ChanOp::Recv(_) => received(core, ck, res, flags),
        ChanOp::Send(_) => sent(core, ck, res),
        ChanOp::Accept(_) => unreachable!("handled above"),
    }
    if core.mux.chans.contains(ck) {
        maybe_free(core, ck);
    }
}

/// End of a loop turn: retry receives that found no free buffer.
/// Closes orphaned sockets whose grace period is over (called once a second).
fn tick(core: &mut Ctx) {
    // Credit withheld while a session was over its budget.
    let owing: Vec<usize> =
        core.mux.chans.iter().filter(|(_, c)| c.flow.credit.owes() && c.st == St::Open).map(|(k, _)| k).collect();
    for ck in owing {
        return_credit(core, ck);
    }
    let grace = core.r.shared.cfg.session_grace;
    let before = core.mux.orphans.len();
    core.mux.orphans.retain(|(t, _)| t.elapsed() < grace);
    let closed = before - core.mux.orphans.len();
    if closed > 0 {
        tracing::info!(core = core.r.idx, closed, "orphaned channel sockets closed after the session grace period");
    }
}

fn end_turn(core: &mut Ctx) {
    if core.mux.starved.is_empty() {
        return;
    }
    let starved = std::mem::take(&mut core.mux.starved);
    for ck in starved {
        if let Some(c) = core.mux.chans.get_mut(ck) {
            c.starved = false;
            arm_recv(core, ck);
        }
    }
}
