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
//! This module owns channel and listener state; it must not interpret file requests, and
//! reaches sockets and framing only through the `Core` API.

// Channel frames come from untrusted peers: a slip must drop the frame or close the
// channel or connection, never panic the core.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

mod bufring;

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use io_uring::{cqueue, opcode, squeue, types};
use qtfs_proto::consts::{self, CHAN_ID_PEER, WlType, errno};
use qtfs_proto::header::flags as hflags;
use qtfs_proto::*;
use slab::Slab;

use crate::creds::{self, Ident};
use crate::ring::{Core, Slot, UD_IGNORE};
use crate::stats::{ChanShared, Done};
use crate::sys;

use bufring::{BGID, BUF_SIZE, BufRing};

/// Bytes the engine lets its peer send ahead on one channel (its receive window).
pub(crate) const WINDOW: u32 = 1 << 20;
/// Largest message assembled from CHAN_DATA frames with MORE.
const MAX_ASSEMBLE: usize = 4 << 20;
/// Control-message space: enough for `SCM_MAX_FD` (253) descriptors.
const CMSG_WORDS: usize = 160;
const MAX_SCM_FDS: usize = 253;
const LISTEN_BACKLOG: i32 = 128;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// Queued local-write bytes are coalesced into one send up to this size (streams).
const COALESCE: usize = 256 * 1024;

/// A ring operation of a channel or listener (the `Slot::Chan` payload).
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Stream,
    Seqpacket,
    Dgram,
    /// Relay of a passed pipe: bytes from the peer are written into our end.
    PipeIn,
    /// Relay of a passed pipe: bytes read from our end go to the peer.
    PipeOut,
}

impl Kind {
    fn from_wire(k: u32) -> Option<Kind> {
        match k {
            consts::CHAN_STREAM => Some(Kind::Stream),
            consts::CHAN_SEQPACKET => Some(Kind::Seqpacket),
            consts::CHAN_DGRAM => Some(Kind::Dgram),
            _ => None,
        }
    }
    fn wire(self) -> u32 {
        match self {
            Kind::Seqpacket => consts::CHAN_SEQPACKET,
            Kind::Dgram => consts::CHAN_DGRAM,
            _ => consts::CHAN_STREAM,
        }
    }
    fn sock_type(self) -> i32 {
        match self {
            Kind::Seqpacket => libc::SOCK_SEQPACKET,
            Kind::Dgram => libc::SOCK_DGRAM,
            _ => libc::SOCK_STREAM,
        }
    }
    fn is_msg(self) -> bool {
        matches!(self, Kind::Seqpacket | Kind::Dgram)
    }
    fn is_pipe(self) -> bool {
        matches!(self, Kind::PipeIn | Kind::PipeOut)
    }
    /// Whether we read the local descriptor (and send to the peer).
    fn reads_local(self) -> bool {
        self != Kind::PipeIn
    }
    /// Whether we write the local descriptor (with what the peer sends).
    fn writes_local(self) -> bool {
        self != Kind::PipeOut
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    /// Client-opened: resolving the path.
    Resolving,
    /// Client-opened: connecting.
    Connecting,
    /// Engine-opened: waiting for the peer's answer to our CHAN_OPEN.
    PeerOpening,
    Open,
    Closing,
}

impl St {
    fn wire(self) -> u32 {
        match self {
            St::Resolving | St::Connecting | St::PeerOpening => consts::CHANST_OPENING,
            St::Open => consts::CHANST_OPEN,
            St::Closing => consts::CHANST_CLOSING,
        }
    }
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

/// Bytes (and descriptors) waiting to be written to the local descriptor.
struct OutMsg {
    data: Vec<u8>,
    off: usize,
    fds: Vec<OwnedFd>,
}

struct Chan {
    conn: usize,
    wire: u32,
    kind: Kind,
    st: St,
    fd: Option<OwnedFd>,
    /// O_PATH descriptor of the target while opening.
    opath: Option<OwnedFd>,
    personality: Option<u16>,
    ident: Ident,
    shared: Arc<ChanShared>,
    /// Bytes we may still send to the peer.
    credit_tx: u64,
    /// Bytes the peer may still send us.
    credit_rx: u64,
    /// Bytes written locally and not yet returned to the peer as credit.
    owed: u64,
    /// The peer's window (its initial grant): message channels read only with this much
    /// credit (or a full buffer's worth) in hand, so a message never exceeds the credit.
    peer_window: u64,
    recv_ud: Option<u64>,
    send_ud: Option<u64>,
    op_ud: Option<u64>,
    refs: u32,
    /// Local end reached EOF; SHUT_WR sent to the peer.
    rd_eof: bool,
    /// The peer sent SHUT_WR.
    peer_eof: bool,
    /// Our local write side was shut down after the peer's SHUT_WR.
    shut_done: bool,
    /// The peer closed the channel (no CHAN_CLOSE goes back).
    peer_closed: bool,
    /// The connection dropped without the channel being closed: the local socket is kept
    /// open (not shut down) for the session grace period instead of closed.
    orphan: bool,
    starved: bool,
    outq: VecDeque<OutMsg>,
    /// The front of `outq` is being sent.
    sending: bool,
    assembling: Vec<u8>,
    asm_fds: Vec<OwnedFd>,
    scm_fds: Vec<OwnedFd>,
    scm_err: i32,
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
    /// `--channel-buffer-budget`), and the bytes it holds queued (in `outq` and
    /// `assembling`) that are counted in the session's `chan_bytes`.
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

/// Whether connection `key`'s session may have one more channel: EMFILE beyond
/// `--max-channels`, ENOBUFS while its channels hold `--channel-buffer-budget` bytes.
fn chan_room(core: &Core, key: usize) -> Result<(), i32> {
    let Some(s) = core.conns.get(key).and_then(|c| c.session.as_ref()) else { return Ok(()) };
    let cfg = &core.shared.cfg;
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
fn ident_of(core: &Core, uid: u32, gid: u32, groups: &Groups<'_>) -> Result<Ident, i32> {
    core.shared.cfg.ids.ident(uid, gid, groups.iter())
}

// ------------------------------------------------------------------ frames in

pub(crate) fn on_frame(core: &mut Core, key: usize, h: FrameHeader, payload: &[u8]) {
    let Some(op) = h.op() else { return };
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
            match ChanCredit::decode(payload) {
                Ok(m) => {
                    let c = chan_or!(core, ck);
                    c.credit_tx = c.credit_tx.saturating_add(m.bytes as u64);
                    if c.credit_tx > u32::MAX as u64 * 4 {
                        fail(core, ck, errno::EPROTO, "credit overflow");
                        return;
                    }
                    c.shared.credit_tx.store(c.credit_tx.min(u32::MAX as u64) as u32, Ordering::Relaxed);
                    arm_recv(core, ck);
                }
                Err(_) => fail(core, ck, errno::EPROTO, "malformed CHAN_CREDIT"),
            }
        }
        Op::CHAN_CLOSE => {
            let Some(ck) = lookup(core, key, h.channel) else { return };
            match ChanClose::decode(payload) {
                Ok(m) if m.how == consts::CHAN_SHUT_WR => {
                    let c = chan_or!(core, ck);
                    if c.st == St::Open {
                        c.peer_eof = true;
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
                let c = chan_or!(core, ck);
                c.scm_fds.clear();
                if c.scm_err == 0 {
                    c.scm_err = e;
                }
            }
        }
        _ => {
            if h.is_request() {
                core.respond_err(key, h.op, h.id, errno::EPROTO);
            }
        }
    }
}

fn lookup(core: &Core, key: usize, wire: u32) -> Option<usize> {
    let ck = core.mux.ids.get(&(key, wire)).copied();
    if ck.is_none() {
        tracing::trace!(chan = wire, "frame for an unknown channel ignored");
    }
    ck
}

fn reply<'m, M: Wire<'m>>(core: &mut Core, key: usize, h: &FrameHeader, op: Op, t0: Instant, r: Result<M, i32>) {
    let (ok, n) = match r {
        Ok(m) => (true, core.respond(key, h.op, h.id, &m)),
        Err(e) => {
            core.respond_err(key, h.op, h.id, e);
            (false, 0)
        }
    };
    core.record(Done {
        op_index: op.index() as u16,
        ok,
        bytes_in: h.len,
        bytes_out: n as u32,
        latency_ns: t0.elapsed().as_nanos() as u64,
    });
}

/// Creates a channel record (not yet in any ring operation) and registers it.
fn new_chan(core: &mut Core, key: usize, wire: u32, kind: Kind, st: St, ident: Ident, path: &[u8]) -> usize {
    // `key` is the connection being served (its frame, or a listener that holds it).
    let (conn_id, session) = core.conns.get(key).map_or((0, None), |c| (c.id, c.session.clone()));
    let shared = Arc::new(ChanShared {
        conn_id,
        channel: wire,
        kind: kind.wire(),
        path: path.to_vec(),
        state: AtomicU32::new(st.wire()),
        credit_tx: AtomicU32::new(0),
        credit_rx: AtomicU32::new(0),
        bytes_in: AtomicU64::new(0),
        bytes_out: AtomicU64::new(0),
    });
    core.shared.chans.lock().insert((conn_id, wire), shared.clone());
    let personality = chan_personality(core, &ident);
    let ck = core.mux.chans.insert(Chan {
        conn: key,
        wire,
        kind,
        st,
        fd: None,
        opath: None,
        personality,
        ident,
        shared,
        credit_tx: 0,
        credit_rx: 0,
        owed: 0,
        peer_window: 0,
        recv_ud: None,
        send_ud: None,
        op_ud: None,
        refs: 0,
        rd_eof: false,
        peer_eof: false,
        shut_done: false,
        peer_closed: false,
        orphan: false,
        starved: false,
        outq: VecDeque::new(),
        sending: false,
        assembling: Vec::new(),
        asm_fds: Vec::new(),
        scm_fds: Vec::new(),
        scm_err: 0,
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
    core.conn_hold(key);
    if let Some(c) = core.conns.get(key) {
        c.shared.channels.fetch_add(1, Ordering::Relaxed);
    }
    ck
}

/// The io_uring personality a channel's operations run with: the caller's effective
/// uid/gid/groups (so the HOST server sees them in SO_PEERCRED and SCM_CREDENTIALS, and
/// HOST permissions apply to them); the engine's own for root. None when the engine
/// cannot take other identities (not root).
fn chan_personality(core: &mut Core, id: &Ident) -> Option<u16> {
    let base = core.base_personality?;
    if id.is_root() {
        return Some(base);
    }
    if let Some(p) = core.mux.personalities.get(id) {
        return Some(*p);
    }
    if core.mux.personalities.len() >= 1024 {
        // In-flight operations hold their own references to the credentials.
        for (_, p) in core.mux.personalities.drain() {
            let _ = core.ring.submitter().unregister_personality(p);
        }
    }
    match creds::register_socket_personality(&core.ring.submitter(), id) {
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

fn set_state(core: &mut Core, ck: usize, st: St) {
    let c = chan_or!(core, ck);
    c.st = st;
    c.shared.state.store(st.wire(), Ordering::Relaxed);
}

fn publish_credit(c: &Chan) {
    c.shared.credit_tx.store(c.credit_tx.min(u32::MAX as u64) as u32, Ordering::Relaxed);
    c.shared.credit_rx.store(c.credit_rx.min(u32::MAX as u64) as u32, Ordering::Relaxed);
}

// ------------------------------------------------------------------ open

fn open_request(core: &mut Core, key: usize, h: &FrameHeader, payload: &[u8]) {
    let t0 = Instant::now();
    let m = match ChanOpenReq::decode(payload) {
        Ok(m) => m,
        Err(_) => return reply::<Empty>(core, key, h, Op::CHAN_OPEN, t0, Err(errno::EBADMSG)),
    };
    let wire = h.channel;
    let refuse = |core: &mut Core, e: i32| reply::<Empty>(core, key, h, Op::CHAN_OPEN, t0, Err(e));
    if wire == 0 || wire & CHAN_ID_PEER != 0 {
        return refuse(core, errno::EINVAL);
    }
    if core.mux.ids.contains_key(&(key, wire)) {
        return refuse(core, errno::EEXIST);
    }
    if core.conns.get(key).is_none_or(|c| c.session.is_none()) {
        return refuse(core, errno::EPROTO);
    }
    if let Err(e) = chan_room(core, key) {
        return refuse(core, e);
    }
    let Some(kind) = Kind::from_wire(m.kind) else { return refuse(core, e_local(libc::EPROTONOSUPPORT)) };
    let ident = match ident_of(core, m.uid, m.gid, &m.groups) {
        Ok(id) => id,
        Err(e) => return refuse(core, e),
    };
    let relay_addr = if m.listener != 0 {
        // A connection accepted on the DPU for a listening socket the DPU passed us.
        let Some(&lk) = core.mux.lids.get(&(key, m.listener)) else { return refuse(core, errno::ECONNREFUSED) };
        let Some(l) = core.mux.listeners.get(lk) else { return refuse(core, errno::ECONNREFUSED) };
        if l.fd.is_some() || l.closing || l.kind != kind {
            return refuse(core, errno::ECONNREFUSED);
        }
        Some(l.addr.clone())
    } else {
        if m.path.0.first() != Some(&b'/') {
            return refuse(core, errno::EINVAL);
        }
        None
    };
    let ck = new_chan(core, key, wire, kind, St::Resolving, ident, m.path.0);
    core.request_started(key);
    let c = chan_or!(core, ck);
    c.open_id = h.id;
    c.open_t0 = t0;
    c.credit_tx = m.credit as u64;
    c.peer_window = m.credit as u64;
    match relay_addr {
        Some(addr) => connect_to(core, ck, &addr),
        None => {
            c.cpath.extend_from_slice(m.path.0);
            c.cpath.push(0);
            // O_NOFOLLOW: a final symlink is opened as itself and then refused below (not a
            // socket); symlinks in the parent directories are followed, and the real path of
            // what they lead to is what the whitelist sees.
            c.rbox.how = types::OpenHow::new()
                .flags((libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64)
                .resolve(RESOLVE_NO_MAGICLINKS);
            let path = c.cpath.as_ptr() as *const libc::c_char;
            let how: *const types::OpenHow = &c.rbox.how;
            let p = c.personality;
            let e = opcode::OpenAt2::new(types::Fd(libc::AT_FDCWD), path, how).build();
            submit(core, ck, e, ChanOp::Resolve(ck), p);
        }
    }
}

/// Submits a channel operation (holding a reference on the channel).
fn submit(core: &mut Core, ck: usize, e: squeue::Entry, op: ChanOp, personality: Option<u16>) -> u64 {
    let ud = core.slot(Slot::Chan(op));
    let e = e.user_data(ud);
    let e = match personality {
        Some(p) => e.personality(p),
        None => e,
    };
    core.push(e);
    let c = chan_or!(core, ck, ud);
    c.refs += 1;
    match op {
        ChanOp::Recv(_) => c.recv_ud = Some(ud),
        ChanOp::Send(_) => c.send_ud = Some(ud),
        _ => c.op_ud = Some(ud),
    }
    ud
}

fn resolved(core: &mut Core, ck: usize, res: i32) {
    if res < 0 {
        return open_failed(core, ck, e_local(-res));
    }
    // SAFETY: a successful openat2 returned a descriptor we now own.
    let opath = unsafe { OwnedFd::from_raw_fd(res) };
    let real = match sys::fd_real_path(opath.as_raw_fd()) {
        Ok(p) => p,
        Err(e) => return open_failed(core, ck, e_local(sys::errno_of(&e))),
    };
    let is_sock = sys::fstat(opath.as_raw_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK);
    if !is_sock {
        // What a local connect to a non-socket reports.
        return open_failed(core, ck, errno::ECONNREFUSED);
    }
    if !core.wl.allows(WlType::Udsconnect, &real) {
        tracing::info!(path = %String::from_utf8_lossy(&real), "channel refused: not in [Udsconnect]");
        return open_failed(core, ck, errno::ECONNREFUSED);
    }
    // Connect to the inode checked above, never to a name resolved again: the kernel
    // follows /proc/self/fd/N to the descriptor's own file (allowed for our own
    // descriptors whatever the caller's identity), which is the socket whose real path
    // the whitelist just saw. The descriptor stays open until the connect completes.
    let via = sys::proc_fd_path(opath.as_raw_fd());
    let len = via.iter().position(|&b| b == 0).unwrap_or(via.len());
    chan_or!(core, ck).opath = Some(opath);
    connect_to(core, ck, via.get(..len).unwrap_or_default());
}

/// Creates the local socket and connects it (with the caller's identity) to `addr`.
fn connect_to(core: &mut Core, ck: usize, addr: &[u8]) {
    let kind = chan_or!(core, ck).kind;
    let sock = match sys::unix_socket(kind.sock_type()) {
        Ok(s) => s,
        Err(e) => return open_failed(core, ck, e_local(sys::errno_of(&e))),
    };
    if kind == Kind::Dgram
        && let Err(e) = sys::autobind_unix(sock.as_raw_fd())
    {
        return open_failed(core, ck, e_local(sys::errno_of(&e)));
    }
    let (sa, len) = match sys::sockaddr_un(addr) {
        Ok(v) => v,
        Err(e) => return open_failed(core, ck, e_local(sys::errno_of(&e))),
    };
    let c = chan_or!(core, ck);
    c.rbox.addr = sa;
    let fd = sock.as_raw_fd();
    c.fd = Some(sock);
    c.st = St::Connecting;
    let p = c.personality;
    let sa: *const libc::sockaddr = (&c.rbox.addr as *const libc::sockaddr_un).cast();
    let e = opcode::Connect::new(types::Fd(fd), sa, len).build();
    submit(core, ck, e, ChanOp::Connect(ck), p);
}

fn connected(core: &mut Core, ck: usize, res: i32) {
    chan_or!(core, ck).opath = None;
    if res < 0 {
        return open_failed(core, ck, e_local(-res));
    }
    set_state(core, ck, St::Open);
    let c = chan_or!(core, ck);
    c.credit_rx = WINDOW as u64;
    publish_credit(c);
    tracing::debug!(chan = c.wire, path = %String::from_utf8_lossy(&c.shared.path), "channel open");
    answer_open(core, ck, Ok(()));
    arm_recv(core, ck);
}

/// Answers a client-opened channel's CHAN_OPEN with an error and forgets the channel.
fn open_failed(core: &mut Core, ck: usize, e: i32) {
    let c = chan_or!(core, ck);
    c.peer_closed = true;
    tracing::debug!(chan = c.wire, path = %String::from_utf8_lossy(&c.shared.path), errno = e, "channel open failed");
    answer_open(core, ck, Err(e));
    begin_close(core, ck);
}

/// Answers the CHAN_OPEN request of a client-opened channel (once).
fn answer_open(core: &mut Core, ck: usize, r: Result<(), i32>) {
    let c = chan_or!(core, ck);
    if c.open_id == 0 {
        return;
    }
    let (key, id, t0, wire, len) = (c.conn, c.open_id, c.open_t0, c.wire, c.cpath.len());
    c.open_id = 0;
    let (ok, n) = match r {
        Ok(()) => {
            let h =
                FrameHeader { flags: hflags::RESPONSE, op: Op::CHAN_OPEN as u16, channel: wire, len: 0, id, status: 0 };
            (true, core.send_frame(key, h, &ChanAccept { credit: WINDOW }))
        }
        Err(e) => {
            core.respond_err(key, Op::CHAN_OPEN as u16, id, e);
            (false, 0)
        }
    };
    core.record(Done {
        op_index: Op::CHAN_OPEN.index() as u16,
        ok,
        bytes_in: len as u32,
        bytes_out: n as u32,
        latency_ns: t0.elapsed().as_nanos() as u64,
    });
    core.request_done(key);
}

/// The peer answered one of our CHAN_OPEN requests (an accepted HOST connection).
fn peer_open_answered(core: &mut Core, key: usize, h: &FrameHeader, payload: &[u8]) {
    let Some(ck) = core.mux.peer_reqs.remove(&(key, h.id)) else { return };
    if core.mux.chans.get(ck).is_none_or(|c| c.st != St::PeerOpening) {
        return;
    }
    let accept = if h.is_error() { Err(h.status) } else { ChanAccept::decode(payload).map_err(|_| errno::EBADMSG) };
    match accept {
        Ok(a) => {
            set_state(core, ck, St::Open);
            let c = chan_or!(core, ck);
            c.credit_tx = a.credit as u64;
            c.peer_window = a.credit as u64;
            publish_credit(c);
            arm_recv(core, ck);
            arm_send(core, ck);
        }
        Err(e) => {
            let c = chan_or!(core, ck);
            tracing::debug!(chan = c.wire, errno = e, "peer refused an accepted connection");
            c.peer_closed = true;
            begin_close(core, ck);
        }
    }
}

// ------------------------------------------------------------------ listeners

fn listen_request(core: &mut Core, key: usize, h: &FrameHeader, payload: &[u8]) {
    let t0 = Instant::now();
    let r = ChanListenReq::decode(payload).map_err(|_| errno::EBADMSG).and_then(|m| {
        let kind = Kind::from_wire(m.kind).ok_or(e_local(libc::EPROTONOSUPPORT))?;
        if kind == Kind::Dgram {
            return Err(errno::EOPNOTSUPP);
        }
        if core.conns.get(key).is_none_or(|c| c.session.is_none()) {
            return Err(errno::EPROTO);
        }
        let ident = ident_of(core, m.uid, m.gid, &m.groups)?;
        let (fd, path, file) = host_listen(core, &ident, kind, m.mode, m.path.0)?;
        let id = core.mux.peer_id();
        let lk = add_listener(core, key, id, kind, Some(fd), path.clone(), Some(file));
        arm_accept(core, lk);
        tracing::info!(listener = id, path = %String::from_utf8_lossy(&path), "listening for the peer");
        Ok(ChanListenRsp { listener: id })
    });
    reply(core, key, h, Op::CHAN_LISTEN, t0, r);
}

/// Creates a listening socket at a HOST path for CHAN_LISTEN: resolved and created with
/// the caller's identity, checked against `[Udsconnect]`, bound under a temporary name
/// and renamed into place so it never exists with the wrong mode. Direct system calls
/// (metadata operations on the HOST file system, done once per listener).
///
/// Every step after the check names the file *inside the directory descriptor that was
/// checked* (`/proc/self/fd/N/NAME`, `*at` calls), never by its full path again, so a
/// directory swapped for a symlink meanwhile cannot move the socket out of the whitelist.
fn host_listen(core: &Core, ident: &Ident, kind: Kind, mode: u32, path: &[u8]) -> Result<HostListener, i32> {
    let errno_of = |e: std::io::Error| e_local(sys::errno_of(&e));
    if path.first() != Some(&b'/') {
        return Err(errno::EINVAL);
    }
    let cut = path.iter().rposition(|&c| c == b'/').unwrap_or(0);
    // cut < path.len() (a '/' found there): both parts exist; an empty name is refused.
    let (parent, name) = (path.get(..cut.max(1)).unwrap_or_default(), path.get(cut + 1..).unwrap_or_default());
    if name.is_empty() || name == b"." || name == b".." {
        return Err(errno::EINVAL);
    }
    let cparent = CString::new(parent).map_err(|_| errno::EINVAL)?;
    let dir = creds::with_ident(ident, || {
        sys::openat2(libc::AT_FDCWD, &cparent, libc::O_PATH | libc::O_DIRECTORY, 0, RESOLVE_NO_MAGICLINKS)
    })
    .map_err(errno_of)
    .and_then(|r| r.map_err(errno_of));
    creds::reset();
    let dir = dir?;
    let real_parent = sys::fd_real_path(dir.as_raw_fd()).map_err(errno_of)?;
    let mut full = real_parent;
    if full.last() != Some(&b'/') {
        full.push(b'/');
    }
    full.extend_from_slice(name);
    if !core.wl.allows(WlType::Udsconnect, &full) {
        tracing::info!(path = %String::from_utf8_lossy(&full), "listen refused: not in [Udsconnect]");
        return Err(errno::EACCES);
    }
    let tmp_name = format!(".qtfs-uds-{}-{}-{}", std::process::id(), core.idx, next_tmp()).into_bytes();
    let (target, ctarget) = (in_dir(&dir, name), in_dir_c(&dir, name)?);
    let (tmp, ctmp) = (in_dir(&dir, &tmp_name), in_dir_c(&dir, &tmp_name)?);
    let cname = CString::new(name).map_err(|_| errno::EINVAL)?;
    let ctmp_name = CString::new(tmp_name).map_err(|_| errno::EINVAL)?;
    let sock = sys::unix_socket(kind.sock_type()).map_err(errno_of)?;
    let mode = if mode & 0o7777 == 0 { 0o666 } else { mode & 0o7777 };
    let dfd = dir.as_raw_fd();
    let r = creds::with_ident(ident, || -> std::io::Result<()> {
        sys::bind_unix(sock.as_raw_fd(), &tmp)?;
        let drop_tmp = || {
            let _ = sys::unlinkat(dfd, &ctmp_name, 0);
        };
        if let Err(e) = sys::chmod(&ctmp, mode).and_then(|_| sys::listen(sock.as_raw_fd(), LISTEN_BACKLOG)) {
            drop_tmp();
            return Err(e);
        }
        if let Some(st) = sys::lstat(&ctarget)? {
            if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
                drop_tmp();
                return Err(std::io::Error::from_raw_os_error(libc::EEXIST));
            }
            if sys::unix_path_is_live(&target, kind.sock_type()) {
                drop_tmp();
                return Err(std::io::Error::from_raw_os_error(libc::EADDRINUSE));
            }
        }
        sys::renameat2(dfd, &ctmp_name, dfd, &cname, 0).inspect_err(|_| drop_tmp())
    });
    creds::reset();
    r.map_err(errno_of)?.map_err(errno_of)?;
    let st = sys::lstat(&ctarget).map_err(errno_of)?.ok_or(errno::ENOENT)?;
    Ok((sock, full, SockFile { dir, name: cname, dev: st.st_dev, ino: st.st_ino }))
}

/// `/proc/self/fd/N/NAME`: NAME inside the directory open as `dir`, whatever path leads
/// there now (the kernel follows the magic link to the descriptor's own directory).
fn in_dir(dir: &OwnedFd, name: &[u8]) -> Vec<u8> {
    let p = sys::proc_fd_path(dir.as_raw_fd());
    let mut v: Vec<u8> = p.iter().copied().take_while(|&b| b != 0).collect();
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

fn in_dir_c(dir: &OwnedFd, name: &[u8]) -> Result<CString, i32> {
    CString::new(in_dir(dir, name)).map_err(|_| errno::EINVAL)
}

fn next_tmp() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn add_listener(
    core: &mut Core,
    key: usize,
    id: u32,
    kind: Kind,
    fd: Option<OwnedFd>,
    addr: Vec<u8>,
    file: Option<SockFile>,
) -> usize {
    let lk = core.mux.listeners.insert(Listener {
        conn: key,
        id,
        kind,
        fd,
        addr,
        file,
        accept_ud: None,
        refs: 0,
        closing: false,
    });
    core.mux.lids.insert((key, id), lk);
    core.conn_hold(key);
    lk
}

fn arm_accept(core: &mut Core, lk: usize) {
    let l = listener_or!(core, lk);
    if l.closing || l.accept_ud.is_some() {
        return;
    }
    let Some(fd) = l.fd.as_ref().map(|f| f.as_raw_fd()) else { return };
    let ud = core.slot(Slot::Chan(ChanOp::Accept(lk)));
    core.push(opcode::AcceptMulti::new(types::Fd(fd)).flags(libc::SOCK_CLOEXEC).build().user_data(ud));
    let l = listener_or!(core, lk);
    l.accept_ud = Some(ud);
    l.refs += 1;
}

fn accepted(core: &mut Core, lk: usize, res: i32, more: bool) {
    // Owned first, so that it is closed on every path below.
    let fd = if res >= 0 {
        // SAFETY: a successful accept returned a descriptor we now own.
        Some(unsafe { OwnedFd::from_raw_fd(res) })
    } else {
        None
    };
    let l = listener_or!(core, lk);
    if !more {
        l.accept_ud = None;
        l.refs = l.refs.saturating_sub(1);
    }
    match fd {
        None if res != -libc::ECANCELED && !l.closing => {
            tracing::warn!(listener = l.id, "accept: {}", std::io::Error::from_raw_os_error(-res));
        }
        Some(fd) if !l.closing => peer_open(core, lk, fd),
        _ => {}
    }
    let l = listener_or!(core, lk);
    if l.closing {
        maybe_free_listener(core, lk);
    } else if !more {
        arm_accept(core, lk);
    }
}

/// A HOST connection accepted on a listener becomes an engine-opened channel.
fn peer_open(core: &mut Core, lk: usize, fd: OwnedFd) {
    let l = listener_or!(core, lk);
    let (key, lid, kind) = (l.conn, l.id, l.kind);
    let path = if l.file.is_some() { l.addr.clone() } else { Vec::new() };
    if core.conns.get(key).is_none_or(|c| c.closing) {
        return;
    }
    if chan_room(core, key).is_err() {
        return; // the accepted connection is closed: its client sees ECONNRESET/EOF
    }
    let (_, uid, gid) = sys::peer_cred(fd.as_raw_fd()).unwrap_or((0, 0, 0));
    let wire = core.mux.peer_id();
    let ck = new_chan(core, key, wire, kind, St::PeerOpening, Ident::default(), &path);
    core.mux.next_req += 1;
    let req = core.mux.next_req;
    core.mux.peer_reqs.insert((key, req), ck);
    let c = chan_or!(core, ck);
    c.fd = Some(fd);
    c.credit_rx = WINDOW as u64;
    publish_credit(c);
    let h = FrameHeader { flags: hflags::REQUEST, op: Op::CHAN_OPEN as u16, channel: wire, len: 0, id: req, status: 0 };
    let m = ChanOpenReq {
        kind: kind.wire(),
        credit: WINDOW,
        listener: lid,
        uid,
        gid,
        groups: Groups::EMPTY,
        path: Path(&path),
    };
    core.send_frame(key, h, &m);
}

fn close_listener(core: &mut Core, lk: usize) {
    let l = listener_or!(core, lk);
    if l.closing {
        return;
    }
    l.closing = true;
    let (key, id) = (l.conn, l.id);
    core.mux.lids.remove(&(key, id));
    let l = listener_or!(core, lk);
    if let Some(f) = &l.file {
        // Remove the socket file only if it is still the one we created, in the
        // directory we created it in.
        if let Ok(c) = in_dir_c(&f.dir, f.name.as_bytes())
            && let Ok(Some(st)) = sys::lstat(&c)
            && st.st_dev == f.dev
            && st.st_ino == f.ino
        {
            let _ = sys::unlinkat(f.dir.as_raw_fd(), &f.name, 0);
        }
    }
    if let Some(ud) = l.accept_ud {
        core.push(opcode::AsyncCancel::new(ud).build().user_data(UD_IGNORE));
    }
    maybe_free_listener(core, lk);
}

fn maybe_free_listener(core: &mut Core, lk: usize) {
    let l = listener_or!(core, lk);
    if !l.closing || l.refs > 0 {
        return;
    }
    let Some(l) = core.mux.listeners.try_remove(lk) else { return };
    core.conn_release(l.conn);
}

// ------------------------------------------------------------------ data

fn data_frame(core: &mut Core, key: usize, h: &FrameHeader, payload: &[u8]) {
    let Some(ck) = lookup(core, key, h.channel) else { return };
    let c = chan_or!(core, ck);
    if c.st != St::Open || c.peer_eof || !c.kind.writes_local() {
        return fail(core, ck, errno::EPROTO, "CHAN_DATA on a channel that cannot take it");
    }
    let n = payload.len() as u64;
    if n > c.credit_rx {
        return fail(core, ck, errno::EPROTO, "peer exceeded its credit");
    }
    c.credit_rx -= n;
    c.shared.credit_rx.store(c.credit_rx.min(u32::MAX as u64) as u32, Ordering::Relaxed);
    c.shared.bytes_in.fetch_add(n, Ordering::Relaxed);
    // Queued below (outq or assembling) until written locally.
    hold(c, n as isize);
    if c.scm_err != 0 {
        let e = c.scm_err;
        return fail(core, ck, e, "a passed descriptor could not be recreated");
    }
    let fds = std::mem::take(&mut c.scm_fds);
    if c.kind.is_pipe() && !fds.is_empty() {
        return fail(core, ck, errno::EOPNOTSUPP, "descriptors passed on a pipe relay");
    }
    if c.kind.is_msg() {
        if h.has_more() || !c.assembling.is_empty() {
            if c.assembling.len() + payload.len() > MAX_ASSEMBLE {
                return fail(core, ck, e_local(libc::EMSGSIZE), "message too large");
            }
            c.assembling.extend_from_slice(payload);
            c.asm_fds.extend(fds);
            if h.has_more() {
                return;
            }
            let data = std::mem::take(&mut c.assembling);
            let fds = std::mem::take(&mut c.asm_fds);
            c.outq.push_back(OutMsg { data, off: 0, fds });
        } else {
            let mut data = core.bufs.get(payload.len());
            data.extend_from_slice(payload);
            chan_or!(core, ck).outq.push_back(OutMsg { data, off: 0, fds });
        }
    } else {
        // Streams: append to the last queued chunk when it is not in flight.
        let can_append = fds.is_empty()
            && c.outq.back().is_some_and(|b| {
                b.fds.is_empty() && b.data.len() + payload.len() <= COALESCE && !(c.sending && c.outq.len() == 1)
            });
        if can_append && let Some(last) = c.outq.back_mut() {
            last.data.extend_from_slice(payload);
        } else {
            let mut data = core.bufs.get(payload.len().max(64 * 1024));
            data.extend_from_slice(payload);
            chan_or!(core, ck).outq.push_back(OutMsg { data, off: 0, fds });
        }
    }
    arm_send(core, ck);
}

fn arm_send(core: &mut Core, ck: usize) {
    let Some(c) = core.mux.chans.get_mut(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    if c.st != St::Open || c.sending || c.send_ud.is_some() {
        return;
    }
    let Some(fd) = c.fd.as_ref().map(|f| f.as_raw_fd()) else { return };
    let Some(front) = c.outq.front() else {
        if c.peer_eof && !c.shut_done {
            c.shut_done = true;
            if c.kind.is_pipe() {
                c.fd = None;
            } else {
                let _ = sys::shutdown(fd, libc::SHUT_WR);
            }
            maybe_done(core, ck);
        }
        return;
    };
    // off < data.len() while a message is queued (a finished one is popped).
    let rest = front.data.get(front.off..).unwrap_or_default();
    let (ptr, len) = (rest.as_ptr(), rest.len());
    let e = if c.kind.is_pipe() {
        opcode::Write::new(types::Fd(fd), ptr, len as u32).offset(u64::MAX).build()
    } else {
        let b = &mut *c.sbox;
        b.iov = libc::iovec { iov_base: ptr as *mut libc::c_void, iov_len: len };
        b.msg.msg_iov = &mut b.iov;
        b.msg.msg_iovlen = 1;
        b.msg.msg_control = std::ptr::null_mut();
        b.msg.msg_controllen = 0;
        if front.off == 0 && !front.fds.is_empty() {
            let raw: Vec<RawFd> = front.fds.iter().map(|f| f.as_raw_fd()).collect();
            let used = put_rights(&mut b.cmsg, &raw);
            b.msg.msg_control = b.cmsg.as_mut_ptr().cast();
            b.msg.msg_controllen = used;
        }
        opcode::SendMsg::new(types::Fd(fd), &b.msg).flags(libc::MSG_NOSIGNAL as u32).build()
    };
    c.sending = true;
    // Sends carry the caller's identity: the HOST server sees it in SCM_CREDENTIALS.
    let p = c.personality;
    submit(core, ck, e, ChanOp::Send(ck), p);
}

fn sent(core: &mut Core, ck: usize, res: i32) {
    let c = chan_or!(core, ck);
    c.send_ud = None;
    c.sending = false;
    if c.st == St::Closing {
        return;
    }
    if res < 0 {
        let e = -res;
        return fail(core, ck, e_local(e), "local send failed");
    }
    // A send is in flight only for the front of the queue.
    let Some(front) = c.outq.front_mut() else {
        return fail(core, ck, errno::EIO, "send completed with nothing queued");
    };
    front.off += res as usize;
    front.fds.clear();
    let done = front.off >= front.data.len() || c.kind.is_msg();
    if done && let Some(m) = c.outq.pop_front() {
        c.owed += m.data.len() as u64;
        hold(c, -(m.data.len() as isize));
        let key = c.conn;
        core.bufs.put(m.data);
        // The session may be back under its budget: its connection is read again.
        core.chan_drained(key);
    }
    return_credit(core, ck);
    arm_send(core, ck);
}

/// Returns owed credit in quarter windows: few CHAN_CREDIT frames, and the peer always
/// holds at least three quarters of the window once our queue has drained (enough for a
/// maximal message), so it never waits on us needlessly. Not while the session is over
/// its `--channel-buffer-budget`: the peer then runs out of credit and stops sending
/// (back-pressure); `tick` retries for channels whose queues have drained.
fn return_credit(core: &mut Core, ck: usize) {
    let cfg = &core.shared.cfg;
    let c = chan_or!(core, ck);
    if c.owed >= WINDOW as u64 / 4 && c.st == St::Open && under_budget(cfg, c) {
        let grant = c.owed.min(u32::MAX as u64) as u32;
        c.owed -= grant as u64;
        c.credit_rx += grant as u64;
        publish_credit(c);
        let (key, wire) = (c.conn, c.wire);
        core.send_frame(key, FrameHeader::message(Op::CHAN_CREDIT, wire, 0), &ChanCredit { bytes: grant });
    }
}

fn arm_recv(core: &mut Core, ck: usize) {
    if core.mux.bufs.is_none() && !core.mux.bufs_failed {
        match BufRing::new(&core.ring) {
            Ok(r) => core.mux.bufs = Some(r),
            Err(e) => {
                core.mux.bufs_failed = true;
                tracing::error!(core = core.idx, "cannot register the channel buffer ring: {e}");
            }
        }
    }
    let Some(c) = core.mux.chans.get_mut(ck) else { return };
    if c.st != St::Open || c.rd_eof || c.recv_ud.is_some() || c.starved || !c.kind.reads_local() {
        return;
    }
    if core.mux.bufs.is_none() {
        return fail(core, ck, errno::ENOMEM, "no receive buffers");
    }
    let Some(fd) = c.fd.as_ref().map(|f| f.as_raw_fd()) else { return };
    // A message must fit the credit in hand; a stream may take any part of it.
    let need = if c.kind.is_msg() { (BUF_SIZE as u64).min(c.peer_window.max(1)) } else { 1 };
    if c.credit_tx < need {
        return;
    }
    let len = c.credit_tx.min(BUF_SIZE as u64) as u32;
    let e = if c.kind.is_pipe() {
        opcode::Read::new(types::Fd(fd), std::ptr::null_mut(), len)
            .offset(u64::MAX)
            .buf_group(BGID)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
    } else {
        let b = &mut *c.rbox;
        b.iov = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: len as usize };
        b.msg.msg_iov = &mut b.iov;
        b.msg.msg_iovlen = 1;
        b.msg.msg_control = b.cmsg.as_mut_ptr().cast();
        b.msg.msg_controllen = CMSG_WORDS * 8;
        b.msg.msg_flags = 0;
        let mut flags = libc::MSG_CMSG_CLOEXEC;
        if c.kind.is_msg() {
            // The true length of a message larger than the buffer, to refuse it.
            flags |= libc::MSG_TRUNC;
        }
        opcode::RecvMsg::new(types::Fd(fd), &mut b.msg)
            .flags(flags as u32)
            .buf_group(BGID)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
    };
    submit(core, ck, e, ChanOp::Recv(ck), None);
}

fn recycle(core: &mut Core, bid: Option<u16>) {
    if let (Some(b), Some(r)) = (bid, core.mux.bufs.as_mut()) {
        r.put(b);
    }
}

fn received(core: &mut Core, ck: usize, res: i32, flags: u32) {
    let bid = cqueue::buffer_select(flags);
    let (st, kind, key, wire, fds, ctrunc) = {
        let c = chan_or!(core, ck, recycle(core, bid));
        c.recv_ud = None;
        // Descriptors that arrived with the bytes (owned from here on).
        let sock = res >= 0 && !c.kind.is_pipe();
        let fds = if sock { take_rights(&c.rbox) } else { Vec::new() };
        let ctrunc = sock && c.rbox.msg.msg_flags & libc::MSG_CTRUNC != 0;
        (c.st, c.kind, c.conn, c.wire, fds, ctrunc)
    };
    if st == St::Closing {
        return recycle(core, bid);
    }
    if res == -libc::ENOBUFS {
        chan_or!(core, ck).starved = true;
        core.mux.starved.push(ck);
        return;
    }
    if res < 0 {
        return fail(core, ck, e_local(-res), "local receive failed");
    }
    let n = res as usize;
    if ctrunc {
        recycle(core, bid);
        return fail(core, ck, e_local(libc::EMSGSIZE), "too many descriptors in one message");
    }
    if kind.is_msg() && n > BUF_SIZE {
        recycle(core, bid);
        return fail(core, ck, e_local(libc::EMSGSIZE), "message larger than the channel buffer");
    }
    if n == 0 && fds.is_empty() && kind != Kind::Dgram {
        recycle(core, bid);
        chan_or!(core, ck).rd_eof = true;
        core.send_frame(
            key,
            FrameHeader::message(Op::CHAN_CLOSE, wire, 0),
            &ChanClose { how: consts::CHAN_SHUT_WR, error: 0 },
        );
        return maybe_done(core, ck);
    }
    if !fds.is_empty() {
        match scm_export(core, key, ck, fds) {
            Ok((recs, count, grants)) => {
                core.send_frame(
                    key,
                    FrameHeader::message(Op::CHAN_SCM, wire, 0),
                    &ChanScm { count, records: Rest(&recs) },
                );
                // Relay channels exist for the peer only once it has the records.
                for g in grants {
                    core.send_frame(key, FrameHeader::message(Op::CHAN_CREDIT, g, 0), &ChanCredit { bytes: WINDOW });
                }
            }
            Err((e, why)) => {
                recycle(core, bid);
                return fail(core, ck, e, &why);
            }
        }
    }
    // The buffer ring is lent out while its bytes are copied into the connection queue.
    let ring = core.mux.bufs.take();
    let data = match (bid, ring.as_ref()) {
        (Some(b), Some(r)) => r.data(b, n),
        _ => &[][..],
    };
    core.send_frame(key, FrameHeader::message(Op::CHAN_DATA, wire, 0), &Data { data: Rest(data) });
    core.mux.bufs = ring;
    recycle(core, bid);
    let c = chan_or!(core, ck);
    c.credit_tx -= (n as u64).min(c.credit_tx);
    c.shared.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    publish_credit(c);
    core.record(Done {
        op_index: Op::CHAN_DATA.index() as u16,
        ok: true,
        bytes_in: 0,
        bytes_out: n as u32,
        latency_ns: 0,
    });
    arm_recv(core, ck);
}

// ------------------------------------------------------------------ close

/// Sends CHAN_CLOSE with an error to the peer and closes the channel.
fn fail(core: &mut Core, ck: usize, e: i32, why: &str) {
    let Some(c) = core.mux.chans.get_mut(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    if c.st == St::Closing {
        return;
    }
    tracing::info!(chan = c.wire, path = %String::from_utf8_lossy(&c.shared.path), errno = e, "channel closed: {why}");
    if !c.peer_closed {
        c.peer_closed = true;
        let (key, wire) = (c.conn, c.wire);
        core.send_frame(
            key,
            FrameHeader::message(Op::CHAN_CLOSE, wire, 0),
            &ChanClose { how: consts::CHAN_CLOSE_ALL, error: e },
        );
    }
    begin_close(core, ck);
}

/// Both directions finished in order: the channel goes away without CHAN_CLOSE_ALL.
fn maybe_done(core: &mut Core, ck: usize) {
    let Some(c) = core.mux.chans.get_mut(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    let read_done = !c.kind.reads_local() || c.rd_eof;
    let write_done = !c.kind.writes_local() || c.shut_done;
    if c.st == St::Open && read_done && write_done && c.outq.is_empty() {
        c.peer_closed = true;
        begin_close(core, ck);
    }
}

/// Stops a channel: cancels its operations and frees it once none is in flight.
fn begin_close(core: &mut Core, ck: usize) {
    let Some(c) = core.mux.chans.get_mut(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    if c.st == St::Closing {
        return maybe_free(core, ck);
    }
    c.st = St::Closing;
    c.shared.state.store(consts::CHANST_CLOSING, Ordering::Relaxed);
    let (key, wire) = (c.conn, c.wire);
    let uds = [c.recv_ud, c.send_ud, c.op_ud];
    if core.mux.ids.get(&(key, wire)) == Some(&ck) {
        core.mux.ids.remove(&(key, wire));
    }
    for ud in uds.into_iter().flatten() {
        core.push(opcode::AsyncCancel::new(ud).build().user_data(UD_IGNORE));
    }
    let c = chan_or!(core, ck);
    if let Some(fd) = &c.fd
        && !c.kind.is_pipe()
        && !c.orphan
    {
        // Wakes operations the cancel cannot reach (already inside the socket).
        let _ = sys::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR);
    }
    let owned = std::mem::take(&mut c.owned_listeners);
    for id in owned {
        if let Some(&lk) = core.mux.lids.get(&(key, id)) {
            close_listener(core, lk);
        }
    }
    maybe_free(core, ck);
}

fn maybe_free(core: &mut Core, ck: usize) {
    let Some(c) = core.mux.chans.get(ck) else {
        return; // already gone (a helper higher up the call chain ended it)
    };
    if c.st != St::Closing || c.refs > 0 {
        return;
    }
    let Some(mut c) = core.mux.chans.try_remove(ck) else { return };
    let held = c.held as isize;
    hold(&mut c, -held);
    if let Some(s) = &c.session {
        s.chans.fetch_sub(1, Ordering::AcqRel);
    }
    if c.orphan
        && let Some(fd) = c.fd.take()
    {
        core.mux.orphans.push((std::time::Instant::now(), fd));
    }
    for m in c.outq {
        core.bufs.put(m.data);
    }
    core.mux.peer_reqs.retain(|_, v| *v != ck);
    core.shared.chans.lock().remove(&(c.shared.conn_id, c.wire));
    if let Some(conn) = core.conns.get(c.conn) {
        conn.shared.channels.fetch_sub(1, Ordering::Relaxed);
    }
    core.chan_drained(c.conn);
    core.conn_release(c.conn);
}

/// A connection is closing: its channels and listeners go with it.
///
/// A connection that drops is not the peer closing its sockets: the DPU side may come
/// back over a new connection within the session grace period (a proxy or engine
/// restart, a network blip). The local sockets of its channels therefore stay open,
/// without a shutdown, until the grace period ends; a HOST server sees EOF only when the
/// DPU program really closed its end (an orderly CHAN_CLOSE/SHUT_WR). rexec_server relies
/// on this to tell a dead client (kill its processes) from a transport drop (wait for a
/// reattach).
pub(crate) fn conn_closing(core: &mut Core, key: usize) {
    let chans: Vec<usize> = core.mux.chans.iter().filter(|(_, c)| c.conn == key).map(|(k, _)| k).collect();
    for ck in chans {
        // Closing one channel never frees another (listeners go, channels stay).
        let Some(c) = core.mux.chans.get_mut(ck) else { continue };
        c.peer_closed = true;
        c.orphan = c.st != St::Closing && !c.rd_eof && !c.peer_eof;
        begin_close(core, ck);
    }
    let ls: Vec<usize> = core.mux.listeners.iter().filter(|(_, l)| l.conn == key).map(|(k, _)| k).collect();
    for lk in ls {
        close_listener(core, lk);
    }
    core.mux.peer_reqs.retain(|(k, _), _| *k != key);
}

// ------------------------------------------------------------------ completions

pub(crate) fn complete(core: &mut Core, op: ChanOp, res: i32, flags: u32, more: bool) {
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
pub(crate) fn tick(core: &mut Core) {
    // Credit withheld while a session was over its budget.
    let owing: Vec<usize> = core
        .mux
        .chans
        .iter()
        .filter(|(_, c)| c.owed >= WINDOW as u64 / 4 && c.st == St::Open)
        .map(|(k, _)| k)
        .collect();
    for ck in owing {
        return_credit(core, ck);
    }
    let grace = core.shared.cfg.session_grace;
    let before = core.mux.orphans.len();
    core.mux.orphans.retain(|(t, _)| t.elapsed() < grace);
    let closed = before - core.mux.orphans.len();
    if closed > 0 {
        tracing::info!(core = core.idx, closed, "orphaned channel sockets closed after the session grace period");
    }
}

pub(crate) fn end_turn(core: &mut Core) {
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

/// Core shutdown: whether channel memory must be leaked because the kernel may still
/// hold pointers into it (operations that did not finish).
pub(crate) fn teardown(core: &mut Core, leak: bool) {
    if leak {
        std::mem::forget(std::mem::take(&mut core.mux));
    }
}

// ------------------------------------------------------------------ descriptors

/// Writes one SCM_RIGHTS control message for `fds` into `buf`; returns its length.
fn put_rights(buf: &mut [u64; CMSG_WORDS], fds: &[RawFd]) -> usize {
    let fds = fds.get(..MAX_SCM_FDS).unwrap_or(fds);
    let data_len = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
    let (space, len) =
        unsafe { (libc::CMSG_SPACE(data_len as u32) as usize, libc::CMSG_LEN(data_len as u32) as usize) };
    let bytes: &mut [u8] =
        // SAFETY: the u64 array is viewed as bytes of the same total size.
        unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), CMSG_WORDS * 8) };
    // CMSG_SPACE of MAX_SCM_FDS descriptors (1,032 bytes) fits the 1,280-byte buffer.
    bytes.get_mut(..space).unwrap_or_default().fill(0);
    let hdr = libc::cmsghdr { cmsg_len: len as _, cmsg_level: libc::SOL_SOCKET, cmsg_type: libc::SCM_RIGHTS };
    // SAFETY: the buffer is 8-byte aligned and larger than a cmsghdr.
    unsafe { std::ptr::write(bytes.as_mut_ptr().cast::<libc::cmsghdr>(), hdr) };
    let data_off = len - data_len;
    let data = bytes.get_mut(data_off..data_off + data_len).unwrap_or_default();
    for (dst, fd) in data.chunks_exact_mut(4).zip(fds) {
        dst.copy_from_slice(&fd.to_ne_bytes());
    }
    space
}

/// The descriptors of the SCM_RIGHTS messages a receive returned.
fn take_rights(b: &MsgBox) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    let total = b.msg.msg_controllen.min(CMSG_WORDS * 8);
    // SAFETY: the control buffer is owned by the box and `total` bytes were written.
    let bytes = unsafe { std::slice::from_raw_parts(b.cmsg.as_ptr().cast::<u8>(), total) };
    let hdr_len = std::mem::size_of::<libc::cmsghdr>();
    let mut pos = 0usize;
    while let Some(hb) = bytes.get(pos..pos + hdr_len) {
        // SAFETY: hb is a whole header's bytes, 8-byte aligned (pos is CMSG_ALIGNed in an
        // array of u64).
        let h = unsafe { std::ptr::read(hb.as_ptr().cast::<libc::cmsghdr>()) };
        let clen = h.cmsg_len as usize;
        if clen < hdr_len || pos + clen > bytes.len() {
            break;
        }
        // SAFETY: CMSG_LEN(0) is pure arithmetic.
        let data_off = unsafe { libc::CMSG_LEN(0) } as usize;
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
            let data = bytes.get(pos + data_off..pos + clen).unwrap_or_default();
            for fd in data.chunks_exact(4).filter_map(|c| c.first_chunk::<4>()).map(|b| i32::from_ne_bytes(*b)) {
                if fd >= 0 {
                    // SAFETY: the kernel installed this descriptor for us with this receive.
                    out.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        pos += (clen + 7) & !7;
    }
    out
}

/// Describes descriptors received from the HOST side as ScmRec records for the peer:
/// regular files by path, flags and offset; pipes and FIFOs relayed by new channels;
/// listening unix sockets accepted here and relayed by engine-opened channels.
/// Records, their count, and relay channels to grant credit on once the records are sent.
type Exported = (Vec<u8>, u32, Vec<u32>);

fn scm_export(core: &mut Core, key: usize, ck: usize, fds: Vec<OwnedFd>) -> Result<Exported, (i32, String)> {
    let mut out = (Vec::new(), 0u32, Vec::new());
    let mut relays = Vec::new();
    let mut listeners = Vec::new();
    let mut r = Ok(());
    for fd in fds {
        r = export_one(core, key, ck, fd, &mut out, &mut relays, &mut listeners);
        if r.is_err() {
            break;
        }
    }
    match r {
        Ok(()) => Ok(out),
        Err(e) => {
            // Nothing was sent: the peer never learns of the relays.
            for rk in relays {
                if let Some(c) = core.mux.chans.get_mut(rk) {
                    c.peer_closed = true;
                }
                begin_close(core, rk);
            }
            for lk in listeners {
                close_listener(core, lk);
            }
            Err(e)
        }
    }
}

fn export_one(
    core: &mut Core,
    key: usize,
    ck: usize,
    fd: OwnedFd,
    out: &mut Exported,
    relays: &mut Vec<usize>,
    listeners: &mut Vec<usize>,
) -> Result<(), (i32, String)> {
    let raw = fd.as_raw_fd();
    let st = sys::fstat(raw).map_err(|e| (e_local(sys::errno_of(&e)), "fstat of a passed descriptor".to_string()))?;
    let fl = sys::get_fl(raw).unwrap_or(0);
    let fmt = st.st_mode & libc::S_IFMT;
    let recs = &mut out.0;
    if fmt == libc::S_IFREG {
        let path = sys::fd_real_path(raw).unwrap_or_default();
        if st.st_nlink == 0 || path.first() != Some(&b'/') {
            return Err((errno::EOPNOTSUPP, "cannot pass a file without a path (deleted or anonymous)".into()));
        }
        let offset = sys::lseek(raw, 0, libc::SEEK_CUR).unwrap_or(0);
        ScmRec { kind: consts::SCM_FILE, flags: consts::open::from_linux(fl), offset, channel: 0, path: Path(&path) }
            .encode(recs);
    } else if fmt == libc::S_IFIFO {
        // A private description of the same pipe, blocking, so the ring polls it and
        // the sender's O_NONBLOCK does not leak into our reads.
        let reopen = CString::new(format!("/proc/self/fd/{raw}"))
            .map_err(|_| (errno::EINVAL, "reopen path of a passed pipe".to_string()))?;
        let (kind, rec_kind, oflags) = if fl & libc::O_ACCMODE == libc::O_RDONLY {
            (Kind::PipeOut, consts::SCM_PIPE_READ, libc::O_RDONLY)
        } else {
            (Kind::PipeIn, consts::SCM_PIPE_WRITE, libc::O_WRONLY)
        };
        let own = sys::openat(libc::AT_FDCWD, &reopen, oflags, 0)
            .map_err(|e| (e_local(sys::errno_of(&e)), "reopen of a passed pipe".to_string()))?;
        let wire = core.mux.peer_id();
        let ident = chan_or!(core, ck, Err((errno::EIO, "channel gone".into()))).ident.clone();
        let rk = new_chan(core, key, wire, kind, St::Open, ident, b"");
        relays.push(rk);
        let c = chan_or!(core, rk, Err((errno::EIO, "relay gone".into())));
        c.fd = Some(own);
        if kind == Kind::PipeIn {
            c.credit_rx = WINDOW as u64;
            publish_credit(c);
            out.2.push(wire);
        }
        ScmRec { kind: rec_kind, flags: 0, offset: 0, channel: wire, path: Path(b"") }.encode(recs);
    } else if fmt == libc::S_IFSOCK && sys::sock_domain(raw).ok() == Some(libc::AF_UNIX) && sys::sock_listening(raw) {
        let ty = sys::sock_type(raw).unwrap_or(libc::SOCK_STREAM);
        let kind = if ty == libc::SOCK_SEQPACKET { Kind::Seqpacket } else { Kind::Stream };
        let id = core.mux.peer_id();
        let lk = add_listener(core, key, id, kind, Some(fd), Vec::new(), None);
        listeners.push(lk);
        chan_or!(core, ck, Err((errno::EIO, "channel gone".into()))).owned_listeners.push(id);
        arm_accept(core, lk);
        ScmRec { kind: consts::SCM_LISTENER, flags: kind.wire(), offset: 0, channel: id, path: Path(b"") }
            .encode(&mut out.0);
    } else {
        let what = match fmt {
            libc::S_IFSOCK => "a socket that is not a listening unix socket",
            libc::S_IFCHR => "a character device",
            libc::S_IFBLK => "a block device",
            libc::S_IFDIR => "a directory",
            _ => "an anonymous descriptor (eventfd, memfd, ...)",
        };
        return Err((errno::EOPNOTSUPP, format!("cannot pass {what} across hosts")));
    }
    out.1 += 1;
    Ok(())
}

/// Recreates descriptors the peer passed (CHAN_SCM), to travel with the next CHAN_DATA.
fn scm_import(core: &mut Core, key: usize, ck: usize, payload: &[u8]) -> Result<(), i32> {
    let m = ChanScm::decode(payload).map_err(|_| errno::EPROTO)?;
    if m.count as usize > MAX_SCM_FDS {
        return Err(e_local(libc::ETOOMANYREFS));
    }
    let ident = chan_or!(core, ck, Err(errno::EIO)).ident.clone();
    let mut fds = Vec::new();
    let mut relays: Vec<usize> = Vec::new();
    let mut listeners: Vec<usize> = Vec::new();
    let result = (|| -> Result<(), i32> {
        for rec in RecordIter::<ScmRec>::new(m.records.0) {
            let rec = rec.map_err(|_| errno::EPROTO)?;
            match rec.kind {
                consts::SCM_FILE => fds.push(reopen_file(core, &ident, &rec)?),
                consts::SCM_PIPE_READ | consts::SCM_PIPE_WRITE | consts::SCM_LISTENER => {
                    let wire = rec.channel;
                    if wire == 0
                        || wire & CHAN_ID_PEER != 0
                        || core.mux.ids.contains_key(&(key, wire))
                        || core.mux.lids.contains_key(&(key, wire))
                    {
                        return Err(errno::EPROTO);
                    }
                    if rec.kind == consts::SCM_LISTENER {
                        let kind = match Kind::from_wire(rec.flags) {
                            Some(k @ (Kind::Stream | Kind::Seqpacket)) => k,
                            _ => return Err(errno::EOPNOTSUPP),
                        };
                        let errno_of = |e: std::io::Error| e_local(sys::errno_of(&e));
                        let sock = sys::unix_socket(kind.sock_type()).map_err(errno_of)?;
                        sys::autobind_unix(sock.as_raw_fd()).map_err(errno_of)?;
                        sys::listen(sock.as_raw_fd(), LISTEN_BACKLOG).map_err(errno_of)?;
                        let addr = sys::unix_local_name(sock.as_raw_fd()).map_err(errno_of)?;
                        listeners.push(add_listener(core, key, wire, kind, None, addr, None));
                        fds.push(sock);
                        continue;
                    }
                    let (r, w) = sys::pipe().map_err(|e| e_local(sys::errno_of(&e)))?;
                    let (kind, ours, theirs) =
                        if rec.kind == consts::SCM_PIPE_READ { (Kind::PipeIn, w, r) } else { (Kind::PipeOut, r, w) };
                    let rk = new_chan(core, key, wire, kind, St::Open, ident.clone(), b"");
                    relays.push(rk);
                    let c = chan_or!(core, rk, Err(errno::EIO));
                    c.fd = Some(ours);
                    if kind == Kind::PipeIn {
                        c.credit_rx = WINDOW as u64;
                        publish_credit(c);
                        core.send_frame(
                            key,
                            FrameHeader::message(Op::CHAN_CREDIT, wire, 0),
                            &ChanCredit { bytes: WINDOW },
                        );
                    }
                    fds.push(theirs);
                }
                _ => return Err(errno::EOPNOTSUPP),
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            let ids: Vec<u32> = listeners.iter().filter_map(|&lk| core.mux.listeners.get(lk).map(|l| l.id)).collect();
            let c = chan_or!(core, ck, Err(errno::EIO));
            c.scm_fds.extend(fds);
            c.owned_listeners.extend(ids);
            for rk in relays {
                arm_recv(core, rk);
            }
            Ok(())
        }
        Err(e) => {
            let wire = core.mux.chans.get(ck).map_or(0, |c| c.wire);
            tracing::info!(chan = wire, errno = e, "passed descriptors refused");
            for rk in relays {
                fail(core, rk, e, "descriptor passing failed");
            }
            for lk in listeners {
                close_listener(core, lk);
            }
            Err(e)
        }
    }
}

/// SCM_FILE: reopens a regular file by path with the caller's identity; never creates or
/// truncates; the path must pass `[Open]` (and `[Write]` for write access). The object is
/// first looked at through an O_PATH descriptor, so a device node or FIFO named by the
/// peer is never opened (opening some devices acts); the canonical path is then opened
/// without following symlinks and must still be the same inode.
fn reopen_file(core: &Core, ident: &Ident, rec: &ScmRec<'_>) -> Result<OwnedFd, i32> {
    let errno_of = |e: std::io::Error| e_local(sys::errno_of(&e));
    if rec.path.0.first() != Some(&b'/') {
        return Err(errno::EINVAL);
    }
    let wflags =
        rec.flags & !(consts::open::CREAT | consts::open::EXCL | consts::open::TRUNC | consts::open::DIRECTORY);
    let flags = consts::open::to_linux(wflags).ok_or(errno::EINVAL)? | libc::O_NOCTTY | libc::O_NONBLOCK;
    let cpath = CString::new(rec.path.0).map_err(|_| errno::EINVAL)?;
    let r = creds::with_ident(ident, || sys::openat2(libc::AT_FDCWD, &cpath, libc::O_PATH, 0, RESOLVE_NO_MAGICLINKS));
    creds::reset();
    let opath = r.map_err(errno_of)?.map_err(errno_of)?;
    let st = sys::fstat(opath.as_raw_fd()).map_err(errno_of)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(errno::EOPNOTSUPP);
    }
    let real = sys::fd_real_path(opath.as_raw_fd()).map_err(errno_of)?;
    let acc = flags & libc::O_ACCMODE;
    if !core.wl.allows(WlType::Open, &real) || (acc != libc::O_RDONLY && !core.wl.allows(WlType::Write, &real)) {
        tracing::info!(path = %String::from_utf8_lossy(&real), "passed file refused by the whitelist");
        return Err(errno::EACCES);
    }
    let creal = CString::new(real).map_err(|_| errno::EINVAL)?;
    let r = creds::with_ident(ident, || {
        sys::openat2(libc::AT_FDCWD, &creal, flags, 0, RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)
    });
    creds::reset();
    let fd = r.map_err(errno_of)?.map_err(errno_of)?;
    let st2 = sys::fstat(fd.as_raw_fd()).map_err(errno_of)?;
    if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) {
        return Err(errno::EAGAIN);
    }
    if rec.flags & consts::open::NONBLOCK == 0 {
        set_blocking(fd.as_raw_fd());
    }
    if rec.offset > 0 {
        let _ = sys::lseek(fd.as_raw_fd(), rec.offset as i64, libc::SEEK_SET);
    }
    Ok(fd)
}

fn set_blocking(fd: RawFd) {
    if let Ok(fl) = sys::get_fl(fd) {
        let _ = sys::set_fl(fd, fl & !libc::O_NONBLOCK);
    }
}
