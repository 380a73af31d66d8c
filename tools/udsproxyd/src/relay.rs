//! A relay loop: one thread, one epoll, one connection to the engine, and every channel
//! that travels on it.
//!
//! Nothing here blocks except `epoll_wait` (and the engine (re)connect, which happens
//! only while this loop has no connection and therefore no channel). Every socket is
//! non-blocking and edge-triggered: a channel is read while the engine has granted it
//! credit, straight into the connection's send buffer behind a reserved frame header
//! (one copy less); bytes from the engine are written to the local socket at once, or
//! queued (at most the window we granted) until it drains. Credit is returned as the
//! local socket takes the bytes, so a program that stops reading stalls only its own
//! channel. Frames for the engine are flushed once per loop turn (coalesced).
//!
//! The same connection carries the affinity requests `front` accepted (SCHED_GETAFFINITY
//! and SCHED_SETAFFINITY, one frame each, answered when the engine answers).
//!
//! This module owns channels, their sockets and the engine connection; it must not
//! interpret the local request protocol (`front`) or admin requests (`admin`).

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use qtfs_client::{ClientConfig, Connection};
use qtfs_proto::consts::{self, CHAN_ID_PEER};
use qtfs_proto::header::flags as hflags;
use qtfs_proto::*;

use crate::sys;
use crate::{ChanStat, Shared};

/// Bytes we let the engine send ahead on one channel.
pub const WINDOW: u32 = 1 << 20;
/// Largest SEQPACKET/DGRAM message relayed (the engine's buffer size).
pub const MSG_MAX: usize = 256 * 1024;
/// Largest single read of a stream.
const READ_CHUNK: usize = 256 * 1024;
/// Unsent bytes for the engine above which local sockets are not read.
const TX_HIGH: usize = 8 << 20;
/// Reads of one channel per turn before others get theirs.
const READ_BUDGET: usize = 8;
/// A datagram channel nobody used for this long is closed (a datagram socket's peer
/// going away cannot be observed).
const DGRAM_IDLE: Duration = Duration::from_secs(300);

const T_UP: u64 = 1 << 56;
const T_WAKE: u64 = 2 << 56;
const T_CHAN: u64 = 3 << 56;
const T_LISTEN: u64 = 4 << 56;
const T_MASK: u64 = 0xff << 56;

const EV_CHAN: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Stream,
    Seqpacket,
    Dgram,
    /// Relay of a passed pipe: bytes from the engine are written into our end.
    PipeIn,
    /// Relay of a passed pipe: bytes read from our end go to the engine.
    PipeOut,
}

impl Kind {
    pub fn from_wire(k: u32) -> Option<Kind> {
        match k {
            consts::CHAN_STREAM => Some(Kind::Stream),
            consts::CHAN_SEQPACKET => Some(Kind::Seqpacket),
            consts::CHAN_DGRAM => Some(Kind::Dgram),
            _ => None,
        }
    }
    pub fn wire(self) -> u32 {
        match self {
            Kind::Seqpacket => consts::CHAN_SEQPACKET,
            Kind::Dgram => consts::CHAN_DGRAM,
            _ => consts::CHAN_STREAM,
        }
    }
    pub fn sock_type(self) -> i32 {
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
    fn reads_local(self) -> bool {
        self != Kind::PipeIn
    }
    fn writes_local(self) -> bool {
        self != Kind::PipeOut
    }
}

/// Who a channel acts for (files passed to it are opened with this identity).
#[derive(Clone, Debug, Default)]
pub struct Ident {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// A request from the front thread.
pub enum Cmd {
    /// Open a channel for a requester and answer it (with the connected socket).
    Open { requester: OwnedFd, kind: Kind, path: Vec<u8>, ident: Ident, t0: Instant },
    /// Get (`mask` None) or set the CPU affinity of HOST `pid` and answer the requester.
    Affinity { requester: OwnedFd, pid: i32, mask: Option<Vec<u8>> },
}

/// What other threads see of a loop.
pub struct LoopHandle {
    pub cmds: Mutex<Vec<Cmd>>,
    pub wake: OwnedFd,
    pub connected: AtomicBool,
    /// The engine offered KILL/SCHED_* (feature SYSCALLS) on this connection.
    pub syscalls: AtomicBool,
    pub conn_id: AtomicU64,
    pub channels: AtomicU32,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub frames: AtomicU64,
}

impl LoopHandle {
    pub fn new() -> std::io::Result<LoopHandle> {
        Ok(LoopHandle {
            cmds: Mutex::new(Vec::new()),
            wake: sys::eventfd()?,
            connected: AtomicBool::new(false),
            syscalls: AtomicBool::new(false),
            conn_id: AtomicU64::new(0),
            channels: AtomicU32::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            frames: AtomicU64::new(0),
        })
    }

    pub fn post(&self, c: Cmd) {
        self.cmds.lock().push(c);
        sys::eventfd_kick(self.wake.as_raw_fd());
    }
}

struct Up {
    fd: OwnedFd,
    rx: Vec<u8>,
    tx: Vec<u8>,
    tx_off: usize,
}

impl Up {
    fn backlog(&self) -> usize {
        self.tx.len() - self.tx_off
    }
}

struct OutMsg {
    data: Vec<u8>,
    off: usize,
    fds: Vec<OwnedFd>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Open,
}

struct Chan {
    kind: Kind,
    #[allow(dead_code)]
    st: St,
    fd: Option<OwnedFd>,
    ident: Ident,
    credit_tx: u64,
    credit_rx: u64,
    owed: u64,
    peer_window: u64,
    readable: bool,
    writable: bool,
    rd_eof: bool,
    peer_eof: bool,
    shut_done: bool,
    outq: VecDeque<OutMsg>,
    asm: Vec<u8>,
    asm_fds: Vec<OwnedFd>,
    scm_fds: Vec<OwnedFd>,
    scm_err: i32,
    stat: Arc<ChanStat>,
    last_io: Instant,
    /// Listener relays created for descriptors passed on this channel.
    owned_listeners: Vec<u32>,
}

enum Pending {
    /// Our CHAN_OPEN for a requester.
    Open {
        id: u32,
        kind: Kind,
        ours: OwnedFd,
        app: OwnedFd,
        requester: OwnedFd,
        path: Vec<u8>,
        ident: Ident,
        t0: Instant,
    },
    /// Our CHAN_OPEN for a connection accepted on a listening socket the DPU passed.
    Accepted { id: u32, kind: Kind, fd: OwnedFd },
    /// Our CHAN_LISTEN for a --reverse entry.
    Listen { rev: usize },
    /// Our SCHED_GETAFFINITY (`get`) or SCHED_SETAFFINITY for a requester.
    Affinity { requester: OwnedFd, get: bool },
}

/// A listening socket a DPU program passed to the HOST: we accept here and relay.
struct Exported {
    fd: OwnedFd,
    kind: Kind,
}

pub struct Loop {
    idx: usize,
    sh: Arc<Shared>,
    h: Arc<LoopHandle>,
    ep: OwnedFd,
    up: Option<Up>,
    retry_at: Instant,
    backoff: Duration,
    down_logged: bool,
    chans: HashMap<u32, Chan>,
    pending: HashMap<u64, Pending>,
    next_chan: u32,
    next_req: u64,
    ready: VecDeque<u32>,
    /// Engine listener id → index of the --reverse entry.
    rev_ids: HashMap<u32, usize>,
    exported: HashMap<u32, Exported>,
    /// Listening sockets the HOST passed: listener id → (kind, abstract address).
    imported: HashMap<u32, (Kind, Vec<u8>)>,
    last_sweep: Instant,
}

fn e_local(e: i32) -> i32 {
    errno::from_local(e)
}

impl Loop {
    pub fn new(idx: usize, sh: Arc<Shared>, h: Arc<LoopHandle>) -> std::io::Result<Loop> {
        let ep = sys::epoll_create()?;
        sys::epoll_add(ep.as_raw_fd(), h.wake.as_raw_fd(), libc::EPOLLIN as u32, T_WAKE)?;
        Ok(Loop {
            idx,
            sh,
            h,
            ep,
            up: None,
            retry_at: Instant::now(),
            backoff: Duration::from_millis(100),
            down_logged: false,
            chans: HashMap::new(),
            pending: HashMap::new(),
            next_chan: 0,
            next_req: 0,
            ready: VecDeque::new(),
            rev_ids: HashMap::new(),
            exported: HashMap::new(),
            imported: HashMap::new(),
            last_sweep: Instant::now(),
        })
    }

    pub fn run(&mut self) {
        let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        while !self.sh.shutdown.load(Ordering::Acquire) {
            if self.up.is_none() && Instant::now() >= self.retry_at {
                self.connect();
            }
            let timeout = if !self.ready.is_empty() {
                0
            } else if self.up.is_none() {
                self.retry_at.saturating_duration_since(Instant::now()).as_millis().min(1000) as i32
            } else {
                1000
            };
            let n = sys::epoll_wait(self.ep.as_raw_fd(), &mut evs, timeout);
            for ev in &evs[..n] {
                let (token, events) = (ev.u64, ev.events);
                self.event(token, events);
            }
            self.run_ready();
            self.flush();
            if self.last_sweep.elapsed() >= Duration::from_secs(5) {
                self.last_sweep = Instant::now();
                self.sweep();
            }
        }
        self.lost("udsproxyd stopping");
    }

    fn event(&mut self, token: u64, events: u32) {
        let id = token as u32;
        match token & T_MASK {
            T_UP => {
                if events & libc::EPOLLOUT as u32 != 0 {
                    self.flush();
                    self.run_ready();
                }
                if events & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32 != 0 {
                    self.read_up(events & (libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32 != 0);
                }
            }
            T_WAKE => {
                sys::eventfd_drain(self.h.wake.as_raw_fd());
                let cmds = std::mem::take(&mut *self.h.cmds.lock());
                for c in cmds {
                    self.command(c);
                }
            }
            T_CHAN => {
                let Some(c) = self.chans.get_mut(&id) else { return };
                if events & libc::EPOLLOUT as u32 != 0 {
                    c.writable = true;
                    self.drain_out(id);
                }
                if let Some(c) = self.chans.get_mut(&id)
                    && events & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLRDHUP) as u32 != 0
                {
                    c.readable = true;
                    self.try_read(id);
                }
            }
            T_LISTEN => self.accept_exported(id),
            _ => {}
        }
    }

    // ------------------------------------------------------------------ engine connection

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.sh.cfg.server.clone());
        c.name = format!("udsproxyd/{}#{}", std::process::id(), self.idx);
        c.connect_timeout = Duration::from_secs(2);
        c.insecure = self.sh.cfg.insecure;
        c.psk = self.sh.cfg.psk.clone();
        c
    }

    fn connect(&mut self) {
        match Connection::open(&self.client_config(), None) {
            Ok(conn) => {
                if conn.agreed.features & consts::feat::CHANNELS == 0 {
                    tracing::error!(loop_ = self.idx, "the engine does not offer channels; retrying later");
                    self.retry_later();
                    return;
                }
                let fd = conn.stream.into_fd();
                if let Err(e) = sys::set_nonblocking(fd.as_raw_fd(), true).and_then(|_| {
                    sys::epoll_add(
                        self.ep.as_raw_fd(),
                        fd.as_raw_fd(),
                        (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
                        T_UP,
                    )
                }) {
                    tracing::error!("engine connection setup: {e}");
                    self.retry_later();
                    return;
                }
                self.up = Some(Up { fd, rx: Vec::with_capacity(2 << 20), tx: Vec::with_capacity(1 << 20), tx_off: 0 });
                self.backoff = Duration::from_millis(100);
                self.h.syscalls.store(conn.agreed.features & consts::feat::SYSCALLS != 0, Ordering::Release);
                self.h.connected.store(true, Ordering::Release);
                self.h.conn_id.store(conn.agreed.session_id, Ordering::Relaxed);
                if self.down_logged {
                    self.sh.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.down_logged = false;
                tracing::info!(loop_ = self.idx, server = %self.sh.cfg.server, "connected to the engine");
                if self.idx == 0 {
                    for rev in 0..self.sh.cfg.reverse.len() {
                        self.listen_reverse(rev);
                    }
                }
            }
            Err(e) => {
                if !self.down_logged {
                    tracing::warn!(loop_ = self.idx, server = %self.sh.cfg.server, "cannot reach the engine ({e}); retrying");
                    self.down_logged = true;
                }
                self.retry_later();
            }
        }
    }

    fn retry_later(&mut self) {
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
    }

    /// The engine connection is gone: every channel and pending request goes with it.
    fn lost(&mut self, why: &str) {
        if let Some(up) = self.up.take() {
            sys::epoll_del(self.ep.as_raw_fd(), up.fd.as_raw_fd());
            tracing::warn!(loop_ = self.idx, channels = self.chans.len(), "engine connection lost: {why}");
            self.down_logged = true;
        }
        self.h.connected.store(false, Ordering::Release);
        let ids: Vec<u32> = self.chans.keys().copied().collect();
        for id in ids {
            self.remove(id);
        }
        for (_, p) in self.pending.drain() {
            match p {
                Pending::Open { requester, .. } => answer(&requester, crate::wire::PASS, None),
                // Sent, and maybe acted on: the requester must not act locally as well.
                Pending::Affinity { requester, .. } => answer_affinity(&requester, libc::EIO, &[]),
                _ => {}
            }
        }
        self.rev_ids.clear();
        for (_, l) in self.exported.drain() {
            sys::epoll_del(self.ep.as_raw_fd(), l.fd.as_raw_fd());
        }
        self.imported.clear();
        self.ready.clear();
        self.retry_at = Instant::now() + Duration::from_millis(100);
    }

    fn push<'m, M: Wire<'m>>(&mut self, h: FrameHeader, m: &M) {
        if let Some(up) = self.up.as_mut() {
            push_frame(&mut up.tx, h, m);
            self.h.frames.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&mut self) {
        let Some(up) = self.up.as_mut() else { return };
        while up.tx_off < up.tx.len() {
            match sys::send(up.fd.as_raw_fd(), &up.tx[up.tx_off..]) {
                Ok(n) => up.tx_off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = format!("send: {e}");
                    self.lost(&why);
                    return;
                }
            }
        }
        if up.tx_off == up.tx.len() {
            up.tx.clear();
            up.tx_off = 0;
        } else if up.tx_off > (1 << 20) && up.tx_off * 2 > up.tx.len() {
            up.tx.drain(..up.tx_off);
            up.tx_off = 0;
        }
    }

    fn read_up(&mut self, hup: bool) {
        loop {
            let Some(up) = self.up.as_mut() else { return };
            if up.rx.capacity() - up.rx.len() < 64 * 1024 {
                up.rx.reserve(256 * 1024);
            }
            let spare = up.rx.spare_capacity_mut();
            match sys::read_into(up.fd.as_raw_fd(), spare) {
                Ok(0) => return self.lost("closed by the engine"),
                Ok(n) => {
                    let asked = spare.len();
                    // SAFETY: the kernel wrote n bytes into the spare capacity.
                    unsafe { up.rx.set_len(up.rx.len() + n) };
                    self.h.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    self.parse_frames();
                    // A short read drained the socket and bytes arriving later raise a
                    // new edge, so the read that would only say EAGAIN is skipped —
                    // unless the peer already hung up (its EOF is reported only by the
                    // next read, and no new edge would come). Local sockets never take
                    // this shortcut: passed descriptors and out-of-band marks end a
                    // unix stream read early with bytes still queued.
                    if n < asked && !hup {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = format!("receive: {e}");
                    return self.lost(&why);
                }
            }
        }
    }

    fn parse_frames(&mut self) {
        let Some(up) = self.up.as_mut() else { return };
        let buf = std::mem::take(&mut up.rx);
        let mut pos = 0;
        let mut bad = None;
        while buf.len() - pos >= HEADER_SIZE {
            let h = match FrameHeader::decode(&buf[pos..], MAX_PAYLOAD) {
                Ok(h) => h,
                Err(e) => {
                    bad = Some(e.to_string());
                    break;
                }
            };
            let total = HEADER_SIZE + h.len as usize;
            if buf.len() - pos < total {
                break;
            }
            self.frame(h, &buf[pos + HEADER_SIZE..pos + total]);
            pos += total;
            if self.up.is_none() {
                return;
            }
        }
        if let Some(e) = bad {
            return self.lost(&format!("malformed frame from the engine ({e})"));
        }
        let Some(up) = self.up.as_mut() else { return };
        let mut buf = buf;
        buf.drain(..pos);
        up.rx = buf;
    }

    // ------------------------------------------------------------------ frames from the engine

    fn frame(&mut self, h: FrameHeader, p: &[u8]) {
        let Some(op) = h.op() else {
            if h.is_request() {
                self.push(FrameHeader::error(h.op, h.id, errno::ENOSYS), &Empty {});
            }
            return;
        };
        if h.is_response() {
            return self.response(h, p);
        }
        match op {
            Op::CHAN_OPEN if h.is_request() => self.peer_open(h, p),
            Op::CHAN_DATA => self.data(h, p),
            Op::CHAN_CREDIT => {
                let Some(c) = self.chans.get_mut(&h.channel) else { return };
                match ChanCredit::decode(p) {
                    Ok(m) => {
                        c.credit_tx = c.credit_tx.saturating_add(m.bytes as u64);
                        c.stat.credit_tx.store(c.credit_tx.min(u32::MAX as u64) as u32, Ordering::Relaxed);
                        if c.readable && !self.ready.contains(&h.channel) {
                            self.ready.push_back(h.channel);
                        }
                    }
                    Err(_) => self.fail(h.channel, errno::EPROTO, "malformed CHAN_CREDIT"),
                }
            }
            Op::CHAN_CLOSE => {
                if !self.chans.contains_key(&h.channel) {
                    return;
                }
                match ChanClose::decode(p) {
                    Ok(m) if m.how == consts::CHAN_SHUT_WR => {
                        let c = self.chans.get_mut(&h.channel).expect("checked");
                        c.peer_eof = true;
                        self.drain_out(h.channel);
                    }
                    Ok(m) => {
                        if m.error != 0 {
                            tracing::debug!(chan = h.channel, error = m.error, "channel closed by the engine");
                            self.sh.stats.chan_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        self.remove(h.channel);
                    }
                    Err(_) => self.fail(h.channel, errno::EPROTO, "malformed CHAN_CLOSE"),
                }
            }
            Op::CHAN_SCM => {
                if !self.chans.contains_key(&h.channel) {
                    return;
                }
                if let Err(e) = self.scm_import(h.channel, p) {
                    let c = self.chans.get_mut(&h.channel).expect("checked");
                    c.scm_fds.clear();
                    if c.scm_err == 0 {
                        c.scm_err = e;
                    }
                }
            }
            _ => {
                if h.is_request() {
                    self.push(FrameHeader::error(h.op, h.id, errno::EOPNOTSUPP), &Empty {});
                }
            }
        }
    }

    fn response(&mut self, h: FrameHeader, p: &[u8]) {
        let Some(pend) = self.pending.remove(&h.id) else { return };
        match pend {
            Pending::Open { id, kind, ours, app, requester, path, ident, t0 } => {
                let accept =
                    if h.is_error() { Err(h.status) } else { ChanAccept::decode(p).map_err(|_| errno::EBADMSG) };
                self.sh.stats.record_open(t0, accept.is_ok());
                match accept {
                    Ok(a) => {
                        if self.add_chan(id, kind, ours, ident, &path, a.credit).is_ok() {
                            answer(&requester, 0, Some(app.as_raw_fd()));
                            tracing::debug!(chan = id, path = %String::from_utf8_lossy(&path), "channel open");
                        } else {
                            answer(&requester, libc::EMFILE, None);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(path = %String::from_utf8_lossy(&path), errno = e, "engine refused the channel");
                        answer(&requester, e_local(e), None);
                    }
                }
            }
            Pending::Accepted { id, kind, fd } => {
                if !h.is_error()
                    && let Ok(a) = ChanAccept::decode(p)
                {
                    let _ = self.add_chan(id, kind, fd, Ident::default(), b"", a.credit);
                }
            }
            Pending::Affinity { requester, get } => {
                if h.is_error() {
                    tracing::debug!(errno = h.status, "the engine refused an affinity request");
                    answer_affinity(&requester, errno::to_local(h.status), &[]);
                } else {
                    answer_affinity(&requester, 0, if get { p } else { &[] });
                }
            }
            Pending::Listen { rev } => {
                let r = &self.sh.cfg.reverse[rev];
                if h.is_error() {
                    tracing::error!(host = %String::from_utf8_lossy(&r.host), errno = h.status, "the engine refused to listen");
                } else if let Ok(m) = ChanListenRsp::decode(p) {
                    tracing::info!(host = %String::from_utf8_lossy(&r.host), dpu = %String::from_utf8_lossy(&r.dpu), "reverse listener ready");
                    self.rev_ids.insert(m.listener, rev);
                }
            }
        }
    }

    /// Registers an open channel on its local socket.
    fn add_chan(
        &mut self,
        id: u32,
        kind: Kind,
        fd: OwnedFd,
        ident: Ident,
        path: &[u8],
        credit: u32,
    ) -> std::io::Result<()> {
        sys::set_nonblocking(fd.as_raw_fd(), true)?;
        sys::epoll_add(self.ep.as_raw_fd(), fd.as_raw_fd(), EV_CHAN, T_CHAN | id as u64)?;
        let stat = Arc::new(ChanStat {
            conn_id: self.h.conn_id.load(Ordering::Relaxed),
            channel: id,
            kind: kind.wire(),
            path: path.to_vec(),
            state: AtomicU32::new(consts::CHANST_OPEN),
            credit_tx: AtomicU32::new(credit),
            credit_rx: AtomicU32::new(WINDOW),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        });
        self.sh.chans.lock().insert((self.idx, id), stat.clone());
        self.h.channels.fetch_add(1, Ordering::Relaxed);
        self.chans.insert(
            id,
            Chan {
                kind,
                st: St::Open,
                fd: Some(fd),
                ident,
                credit_tx: credit as u64,
                credit_rx: if kind.writes_local() { WINDOW as u64 } else { 0 },
                owed: 0,
                peer_window: credit as u64,
                readable: false,
                writable: true,
                rd_eof: false,
                peer_eof: false,
                shut_done: false,
                outq: VecDeque::new(),
                asm: Vec::new(),
                asm_fds: Vec::new(),
                scm_fds: Vec::new(),
                scm_err: 0,
                stat,
                last_io: Instant::now(),
                owned_listeners: Vec::new(),
            },
        );
        Ok(())
    }

    /// The engine opens a channel: a HOST connection to a --reverse listener, or to a
    /// listening socket the HOST passed to a DPU program.
    fn peer_open(&mut self, h: FrameHeader, p: &[u8]) {
        let r = (|| -> Result<(Kind, OwnedFd), i32> {
            let m = ChanOpenReq::decode(p).map_err(|_| errno::EBADMSG)?;
            if h.channel & CHAN_ID_PEER == 0 || self.chans.contains_key(&h.channel) {
                return Err(errno::EINVAL);
            }
            let kind = Kind::from_wire(m.kind).ok_or(errno::EINVAL)?;
            let target = if let Some(&rev) = self.rev_ids.get(&m.listener) {
                let r = &self.sh.cfg.reverse[rev];
                if r.kind != m.kind {
                    return Err(errno::EINVAL);
                }
                r.dpu.clone()
            } else if let Some((k, addr)) = self.imported.get(&m.listener) {
                if *k != kind {
                    return Err(errno::EINVAL);
                }
                addr.clone()
            } else {
                return Err(errno::ECONNREFUSED);
            };
            let s = sys::unix_socket(kind.sock_type() | libc::SOCK_NONBLOCK).map_err(|e| e_local(sys::errno_of(&e)))?;
            sys::connect_unix(s.as_raw_fd(), &target).map_err(|e| e_local(sys::errno_of(&e)))?;
            Ok((kind, s))
        })();
        match r {
            Ok((kind, fd)) => {
                let credit = ChanOpenReq::decode(p).map(|m| m.credit).unwrap_or(0);
                if self.add_chan(h.channel, kind, fd, Ident::default(), b"", credit).is_err() {
                    return self.push(FrameHeader::error(h.op, h.id, errno::EMFILE), &Empty {});
                }
                let rsp =
                    FrameHeader { flags: hflags::RESPONSE, op: h.op, channel: h.channel, len: 0, id: h.id, status: 0 };
                self.push(rsp, &ChanAccept { credit: WINDOW });
            }
            Err(e) => self.push(FrameHeader::error(h.op, h.id, e), &Empty {}),
        }
    }

    fn data(&mut self, h: FrameHeader, p: &[u8]) {
        let id = h.channel;
        let Some(c) = self.chans.get_mut(&id) else { return };
        if c.peer_eof || !c.kind.writes_local() {
            return self.fail(id, errno::EPROTO, "CHAN_DATA on a channel that cannot take it");
        }
        let n = p.len() as u64;
        if n > c.credit_rx {
            return self.fail(id, errno::EPROTO, "the engine exceeded its credit");
        }
        c.credit_rx -= n;
        c.last_io = Instant::now();
        c.stat.bytes_in.fetch_add(n, Ordering::Relaxed);
        c.stat.credit_rx.store(c.credit_rx.min(u32::MAX as u64) as u32, Ordering::Relaxed);
        self.sh.stats.bytes_down.fetch_add(n, Ordering::Relaxed);
        if c.scm_err != 0 {
            let e = c.scm_err;
            return self.fail(id, e, "a passed descriptor could not be recreated");
        }
        let fds = std::mem::take(&mut c.scm_fds);
        if c.kind.is_pipe() && !fds.is_empty() {
            return self.fail(id, errno::EOPNOTSUPP, "descriptors passed on a pipe relay");
        }
        if c.kind.is_msg() && (h.has_more() || !c.asm.is_empty()) {
            if c.asm.len() + p.len() > 4 * MSG_MAX {
                return self.fail(id, e_local(libc::EMSGSIZE), "message too large");
            }
            c.asm.extend_from_slice(p);
            c.asm_fds.extend(fds);
            if h.has_more() {
                return;
            }
            let data = std::mem::take(&mut c.asm);
            let fds = std::mem::take(&mut c.asm_fds);
            return self.deliver(id, data, fds);
        }
        // Fast path: straight into the local socket when nothing is queued.
        if c.outq.is_empty() && c.writable {
            let fd = c.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
            match write_local(c.kind, fd, p, &raw) {
                Ok(w) if w == p.len() || c.kind.is_msg() => return self.consumed(id, p.len()),
                Ok(w) => {
                    c.outq.push_back(OutMsg { data: p[w..].to_vec(), off: 0, fds: Vec::new() });
                    c.writable = false;
                    return self.consumed_partial(id, w);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => c.writable = false,
                Err(e) => return self.fail(id, e_local(sys::errno_of(&e)), "local send failed"),
            }
        }
        let c = self.chans.get_mut(&id).expect("exists");
        c.outq.push_back(OutMsg { data: p.to_vec(), off: 0, fds });
    }

    /// Queues a whole message (or bytes) for the local socket and tries to write it.
    fn deliver(&mut self, id: u32, data: Vec<u8>, fds: Vec<OwnedFd>) {
        let Some(c) = self.chans.get_mut(&id) else { return };
        c.outq.push_back(OutMsg { data, off: 0, fds });
        self.drain_out(id);
    }

    /// Writes queued bytes to the local socket until it would block.
    fn drain_out(&mut self, id: u32) {
        let mut done_bytes = 0usize;
        let mut failed = None;
        {
            let Some(c) = self.chans.get_mut(&id) else { return };
            let fd = c.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            while c.writable {
                let Some(m) = c.outq.front_mut() else { break };
                let fds: Vec<RawFd> =
                    if m.off == 0 { m.fds.iter().map(|f| f.as_raw_fd()).collect() } else { Vec::new() };
                match write_local(c.kind, fd, &m.data[m.off..], &fds) {
                    Ok(w) => {
                        m.fds.clear();
                        m.off += w;
                        if m.off >= m.data.len() || c.kind.is_msg() {
                            done_bytes += m.data.len();
                            c.outq.pop_front();
                        } else {
                            c.writable = false;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => c.writable = false,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(e_local(sys::errno_of(&e)));
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            return self.fail(id, e, "local send failed");
        }
        if done_bytes > 0 {
            self.consumed(id, done_bytes);
        }
        let Some(c) = self.chans.get_mut(&id) else { return };
        if c.outq.is_empty() && c.peer_eof && !c.shut_done {
            c.shut_done = true;
            if c.kind.is_pipe() {
                c.fd = None;
            } else if let Some(fd) = &c.fd {
                sys::shutdown(fd.as_raw_fd(), libc::SHUT_WR);
            }
            self.maybe_done(id);
        }
    }

    fn consumed_partial(&mut self, id: u32, n: usize) {
        if n > 0 {
            self.consumed(id, n);
        }
    }

    /// `n` bytes reached the local socket: return credit in quarter windows.
    fn consumed(&mut self, id: u32, n: usize) {
        let Some(c) = self.chans.get_mut(&id) else { return };
        c.owed += n as u64;
        if c.owed >= WINDOW as u64 / 4 {
            let grant = c.owed.min(u32::MAX as u64) as u32;
            c.owed -= grant as u64;
            c.credit_rx += grant as u64;
            c.stat.credit_rx.store(c.credit_rx.min(u32::MAX as u64) as u32, Ordering::Relaxed);
            self.push(FrameHeader::message(Op::CHAN_CREDIT, id, 0), &ChanCredit { bytes: grant });
        }
    }

    // ------------------------------------------------------------------ local reads

    fn run_ready(&mut self) {
        for _ in 0..self.ready.len() {
            let Some(id) = self.ready.pop_front() else { break };
            self.try_read(id);
        }
    }

    /// Reads a readable channel while it has credit, into frames for the engine.
    fn try_read(&mut self, id: u32) {
        let mut budget = READ_BUDGET;
        loop {
            let (Some(up), Some(c)) = (self.up.as_mut(), self.chans.get_mut(&id)) else { return };
            if !c.readable || c.rd_eof || !c.kind.reads_local() {
                return;
            }
            let need = if c.kind.is_msg() { (MSG_MAX as u64).min(c.peer_window.max(1)) } else { 1 };
            if c.credit_tx < need {
                return; // CHAN_CREDIT puts it back on the ready list
            }
            if up.backlog() > TX_HIGH || budget == 0 {
                if !self.ready.contains(&id) {
                    self.ready.push_back(id);
                }
                return;
            }
            budget -= 1;
            let max = if c.kind.is_msg() { MSG_MAX } else { (c.credit_tx as usize).min(READ_CHUNK) };
            let start = up.tx.len();
            up.tx.resize(start + HEADER_SIZE, 0);
            up.tx.reserve(max);
            let fd = c.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
            let spare = &mut up.tx.spare_capacity_mut()[..max];
            let r = if c.kind.is_pipe() {
                sys::read_into(fd, spare).map(|len| sys::Received { len, fds: Vec::new(), ctrunc: false })
            } else {
                sys::recv_with_fds(fd, spare, c.kind.is_msg())
            };
            let rec = match r {
                Ok(rec) => rec,
                Err(e) => {
                    up.tx.truncate(start);
                    match e.kind() {
                        std::io::ErrorKind::WouldBlock => c.readable = false,
                        std::io::ErrorKind::Interrupted => continue,
                        _ => self.fail(id, e_local(sys::errno_of(&e)), "local receive failed"),
                    }
                    return;
                }
            };
            let n = rec.len;
            if rec.ctrunc || n > max {
                up.tx.truncate(start);
                return self.fail(id, e_local(libc::EMSGSIZE), "message too large or too many descriptors");
            }
            if n == 0 && rec.fds.is_empty() && c.kind != Kind::Dgram {
                up.tx.truncate(start);
                c.rd_eof = true;
                self.push(
                    FrameHeader::message(Op::CHAN_CLOSE, id, 0),
                    &ChanClose { how: consts::CHAN_SHUT_WR, error: 0 },
                );
                return self.maybe_done(id);
            }
            // SAFETY: the kernel wrote n bytes into the spare capacity after the header.
            unsafe { up.tx.set_len(start + HEADER_SIZE + n) };
            c.credit_tx -= n as u64;
            c.last_io = Instant::now();
            c.stat.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            c.stat.credit_tx.store(c.credit_tx.min(u32::MAX as u64) as u32, Ordering::Relaxed);
            self.sh.stats.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
            if rec.fds.is_empty() {
                FrameHeader::message(Op::CHAN_DATA, id, n as u32).write_to(&mut up.tx[start..start + HEADER_SIZE]);
                self.h.frames.fetch_add(1, Ordering::Relaxed);
            } else {
                // Descriptors: the CHAN_SCM frame must precede the bytes.
                let data = up.tx[start + HEADER_SIZE..].to_vec();
                up.tx.truncate(start);
                match self.scm_export(id, rec.fds) {
                    Ok((recs, count, grants)) => {
                        self.sh.stats.scm.fetch_add(count as u64, Ordering::Relaxed);
                        self.push(FrameHeader::message(Op::CHAN_SCM, id, 0), &ChanScm { count, records: Rest(&recs) });
                        self.push(FrameHeader::message(Op::CHAN_DATA, id, 0), &Data { data: Rest(&data) });
                        for g in grants {
                            self.push(FrameHeader::message(Op::CHAN_CREDIT, g, 0), &ChanCredit { bytes: WINDOW });
                        }
                    }
                    Err((e, why)) => return self.fail(id, e, &why),
                }
            }
        }
    }

    // ------------------------------------------------------------------ close

    fn fail(&mut self, id: u32, e: i32, why: &str) {
        if !self.chans.contains_key(&id) {
            return;
        }
        tracing::info!(chan = id, errno = e, "channel closed: {why}");
        self.sh.stats.chan_errors.fetch_add(1, Ordering::Relaxed);
        self.push(FrameHeader::message(Op::CHAN_CLOSE, id, 0), &ChanClose { how: consts::CHAN_CLOSE_ALL, error: e });
        self.remove(id);
    }

    fn maybe_done(&mut self, id: u32) {
        let Some(c) = self.chans.get(&id) else { return };
        let read_done = !c.kind.reads_local() || c.rd_eof;
        let write_done = !c.kind.writes_local() || c.shut_done;
        if read_done && write_done && c.outq.is_empty() {
            self.remove(id);
        }
    }

    /// Forgets a channel (no frame sent) and closes its socket.
    fn remove(&mut self, id: u32) {
        let Some(c) = self.chans.remove(&id) else { return };
        if let Some(fd) = &c.fd {
            sys::epoll_del(self.ep.as_raw_fd(), fd.as_raw_fd());
        }
        self.sh.chans.lock().remove(&(self.idx, id));
        self.h.channels.fetch_sub(1, Ordering::Relaxed);
        for l in c.owned_listeners {
            if let Some(x) = self.exported.remove(&l) {
                sys::epoll_del(self.ep.as_raw_fd(), x.fd.as_raw_fd());
            }
            self.imported.remove(&l);
        }
    }

    /// Closes datagram channels idle for too long.
    fn sweep(&mut self) {
        let idle: Vec<u32> = self
            .chans
            .iter()
            .filter(|(_, c)| c.kind == Kind::Dgram && c.last_io.elapsed() > DGRAM_IDLE)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            tracing::debug!(chan = id, "idle datagram channel closed");
            self.push(
                FrameHeader::message(Op::CHAN_CLOSE, id, 0),
                &ChanClose { how: consts::CHAN_CLOSE_ALL, error: 0 },
            );
            self.remove(id);
        }
    }

    // ------------------------------------------------------------------ commands

    fn new_id(&mut self) -> u32 {
        loop {
            self.next_chan = (self.next_chan + 1) & !CHAN_ID_PEER;
            if self.next_chan != 0 && !self.chans.contains_key(&self.next_chan) {
                return self.next_chan;
            }
        }
    }

    fn new_req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    fn command(&mut self, c: Cmd) {
        match c {
            Cmd::Open { requester, kind, path, ident, t0 } => {
                if self.up.is_none() {
                    return answer(&requester, crate::wire::PASS, None);
                }
                let (ours, app) = match sys::socketpair(kind.sock_type()) {
                    Ok(p) => p,
                    Err(e) => return answer(&requester, e_local(sys::errno_of(&e)), None),
                };
                let id = self.new_id();
                let req = self.new_req();
                let groups: Vec<u32> = ident.groups.clone();
                let m = ChanOpenReq {
                    kind: kind.wire(),
                    credit: WINDOW,
                    listener: 0,
                    uid: ident.uid,
                    gid: ident.gid,
                    groups: Groups::Ids(&groups),
                    path: Path(&path),
                };
                self.push(FrameHeader { channel: id, ..FrameHeader::request(Op::CHAN_OPEN, req, 0) }, &m);
                self.pending.insert(req, Pending::Open { id, kind, ours, app, requester, path, ident, t0 });
            }
            Cmd::Affinity { requester, pid, mask } => {
                if self.up.is_none() || !self.h.syscalls.load(Ordering::Acquire) {
                    return answer_affinity(&requester, crate::wire::PASS, &[]);
                }
                let req = self.new_req();
                let get = mask.is_none();
                match &mask {
                    None => self.push(FrameHeader::request(Op::SCHED_GETAFFINITY, req, 0), &AffinityGetReq { pid }),
                    Some(m) => self.push(
                        FrameHeader::request(Op::SCHED_SETAFFINITY, req, 0),
                        &AffinitySetReq { pid, mask: Bytes16(m) },
                    ),
                }
                self.pending.insert(req, Pending::Affinity { requester, get });
            }
        }
    }

    fn listen_reverse(&mut self, rev: usize) {
        let r = self.sh.cfg.reverse[rev].clone();
        let req = self.new_req();
        let m = ChanListenReq { kind: r.kind, mode: 0o666, uid: 0, gid: 0, groups: Groups::EMPTY, path: Path(&r.host) };
        self.push(FrameHeader::request(Op::CHAN_LISTEN, req, 0), &m);
        self.pending.insert(req, Pending::Listen { rev });
    }

    /// A connection to a listening socket a DPU program passed to the HOST.
    fn accept_exported(&mut self, lid: u32) {
        loop {
            let Some(l) = self.exported.get(&lid) else { return };
            let kind = l.kind;
            let fd = match sys::accept(l.fd.as_raw_fd()) {
                Ok(fd) => fd,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let (_, uid, gid) = sys::peer_cred(fd.as_raw_fd()).unwrap_or((0, 0, 0));
            let id = self.new_id();
            let req = self.new_req();
            let m = ChanOpenReq {
                kind: kind.wire(),
                credit: WINDOW,
                listener: lid,
                uid,
                gid,
                groups: Groups::EMPTY,
                path: Path(b""),
            };
            self.push(FrameHeader { channel: id, ..FrameHeader::request(Op::CHAN_OPEN, req, 0) }, &m);
            self.pending.insert(req, Pending::Accepted { id, kind, fd });
        }
    }

    // ------------------------------------------------------------------ descriptors

    /// Describes descriptors a DPU program passed as ScmRec records (see the engine's
    /// counterpart): files by path/flags/offset, pipes and listening sockets relayed.
    #[allow(clippy::type_complexity)]
    fn scm_export(&mut self, id: u32, fds: Vec<OwnedFd>) -> Result<(Vec<u8>, u32, Vec<u32>), (i32, String)> {
        let mut recs = Vec::new();
        let mut grants = Vec::new();
        let mut created: Vec<u32> = Vec::new();
        let mut count = 0u32;
        let ident = self.chans.get(&id).map(|c| c.ident.clone()).unwrap_or_default();
        let mut fail = None;
        for fd in fds {
            let raw = fd.as_raw_fd();
            let Ok(st) = sys::fstat(raw) else {
                fail = Some((errno::EBADF, "fstat of a passed descriptor".to_string()));
                break;
            };
            let fl = sys::get_fl(raw).unwrap_or(0);
            let fmt = st.st_mode & libc::S_IFMT;
            if fmt == libc::S_IFREG {
                let path = sys::fd_path(raw).unwrap_or_default();
                if st.st_nlink == 0 || path.first() != Some(&b'/') {
                    fail = Some((errno::EOPNOTSUPP, "cannot pass a file without a path (deleted or anonymous)".into()));
                    break;
                }
                let rec = ScmRec {
                    kind: consts::SCM_FILE,
                    flags: consts::open::from_linux(fl),
                    offset: sys::lseek_cur(raw),
                    channel: 0,
                    path: Path(&path),
                };
                rec.encode(&mut recs);
            } else if fmt == libc::S_IFIFO {
                let read_end = fl & libc::O_ACCMODE == libc::O_RDONLY;
                let link = CString::new(format!("/proc/self/fd/{raw}")).expect("no NUL");
                let oflags = (if read_end { libc::O_RDONLY } else { libc::O_WRONLY }) | libc::O_NONBLOCK;
                let own = match sys::open(&link, oflags) {
                    Ok(f) => f,
                    Err(e) => {
                        fail = Some((e_local(sys::errno_of(&e)), "reopen of a passed pipe".into()));
                        break;
                    }
                };
                let rid = self.new_id();
                let kind = if read_end { Kind::PipeOut } else { Kind::PipeIn };
                if self.add_chan(rid, kind, own, ident.clone(), b"", 0).is_err() {
                    fail = Some((errno::EMFILE, "relay channel".into()));
                    break;
                }
                created.push(rid);
                if kind == Kind::PipeIn {
                    grants.push(rid);
                }
                let rk = if read_end { consts::SCM_PIPE_READ } else { consts::SCM_PIPE_WRITE };
                ScmRec { kind: rk, flags: 0, offset: 0, channel: rid, path: Path(b"") }.encode(&mut recs);
            } else if fmt == libc::S_IFSOCK
                && sys::sock_domain(raw).ok() == Some(libc::AF_UNIX)
                && sys::sock_listening(raw)
            {
                let kind =
                    if sys::sock_type(raw).ok() == Some(libc::SOCK_SEQPACKET) { Kind::Seqpacket } else { Kind::Stream };
                let lid = self.new_id();
                // Accepting must not block the loop; the description is shared with the
                // sender, which hands it over precisely so that we accept on it.
                if sys::set_nonblocking(raw, true).is_err()
                    || sys::epoll_add(self.ep.as_raw_fd(), raw, libc::EPOLLIN as u32, T_LISTEN | lid as u64).is_err()
                {
                    fail = Some((errno::EBADF, "cannot watch a passed listening socket".into()));
                    break;
                }
                self.exported.insert(lid, Exported { fd, kind });
                if let Some(c) = self.chans.get_mut(&id) {
                    c.owned_listeners.push(lid);
                }
                ScmRec { kind: consts::SCM_LISTENER, flags: kind.wire(), offset: 0, channel: lid, path: Path(b"") }
                    .encode(&mut recs);
            } else {
                let what = match fmt {
                    libc::S_IFSOCK => "a socket that is not a listening unix socket",
                    libc::S_IFCHR => "a character device",
                    libc::S_IFBLK => "a block device",
                    libc::S_IFDIR => "a directory",
                    _ => "an anonymous descriptor (eventfd, memfd, ...)",
                };
                fail = Some((errno::EOPNOTSUPP, format!("cannot pass {what} across hosts")));
                break;
            }
            count += 1;
        }
        if let Some(f) = fail {
            for rid in created {
                self.remove(rid);
            }
            return Err(f);
        }
        Ok((recs, count, grants))
    }

    /// Recreates descriptors the HOST passed, to travel with the next CHAN_DATA.
    fn scm_import(&mut self, id: u32, p: &[u8]) -> Result<(), i32> {
        let m = ChanScm::decode(p).map_err(|_| errno::EPROTO)?;
        if m.count > 253 {
            return Err(e_local(libc::ETOOMANYREFS));
        }
        let ident = self.chans.get(&id).map(|c| c.ident.clone()).unwrap_or_default();
        let mut fds = Vec::new();
        let mut created = Vec::new();
        let mut listeners = Vec::new();
        let mut grants = Vec::new();
        let r = (|| -> Result<(), i32> {
            for rec in RecordIter::<ScmRec>::new(m.records.0) {
                let rec = rec.map_err(|_| errno::EPROTO)?;
                match rec.kind {
                    consts::SCM_FILE => fds.push(reopen_file(&ident, &rec)?),
                    consts::SCM_PIPE_READ | consts::SCM_PIPE_WRITE | consts::SCM_LISTENER => {
                        let rid = rec.channel;
                        if rid & CHAN_ID_PEER == 0 || self.chans.contains_key(&rid) || self.imported.contains_key(&rid)
                        {
                            return Err(errno::EPROTO);
                        }
                        let errno_of = |e: std::io::Error| e_local(sys::errno_of(&e));
                        if rec.kind == consts::SCM_LISTENER {
                            let kind = match Kind::from_wire(rec.flags) {
                                Some(k @ (Kind::Stream | Kind::Seqpacket)) => k,
                                _ => return Err(errno::EOPNOTSUPP),
                            };
                            let s = sys::unix_socket(kind.sock_type()).map_err(errno_of)?;
                            sys::autobind_unix(s.as_raw_fd()).map_err(errno_of)?;
                            sys::listen(s.as_raw_fd(), 128).map_err(errno_of)?;
                            let addr = sys::unix_local_name(s.as_raw_fd()).map_err(errno_of)?;
                            self.imported.insert(rid, (kind, addr));
                            listeners.push(rid);
                            fds.push(s);
                            continue;
                        }
                        let (r, w) = sys::pipe().map_err(errno_of)?;
                        let (kind, ours, theirs) = if rec.kind == consts::SCM_PIPE_READ {
                            (Kind::PipeIn, w, r)
                        } else {
                            (Kind::PipeOut, r, w)
                        };
                        self.add_chan(rid, kind, ours, ident.clone(), b"", 0).map_err(errno_of)?;
                        created.push(rid);
                        if kind == Kind::PipeIn {
                            grants.push(rid);
                        }
                        fds.push(theirs);
                    }
                    _ => return Err(errno::EOPNOTSUPP),
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => {
                for g in grants {
                    self.push(FrameHeader::message(Op::CHAN_CREDIT, g, 0), &ChanCredit { bytes: WINDOW });
                }
                if let Some(c) = self.chans.get_mut(&id) {
                    c.scm_fds.extend(fds);
                    c.owned_listeners.extend(listeners);
                }
                Ok(())
            }
            Err(e) => {
                tracing::info!(chan = id, errno = e, "descriptors passed by the HOST refused");
                for rid in created {
                    self.fail(rid, e, "descriptor passing failed");
                }
                for l in listeners {
                    self.imported.remove(&l);
                }
                Err(e)
            }
        }
    }
}

/// SCM_FILE from the HOST: reopened by path with the channel's identity, never created
/// or truncated. The object is looked at through an O_PATH descriptor first (a device
/// node or FIFO is never opened), then reopened through that descriptor's canonical path
/// without following symlinks, and must still be the same regular file.
fn reopen_file(ident: &Ident, rec: &ScmRec<'_>) -> Result<OwnedFd, i32> {
    let errno_of = |e: std::io::Error| e_local(sys::errno_of(&e));
    if rec.path.0.first() != Some(&b'/') {
        return Err(errno::EINVAL);
    }
    let w = rec.flags & !(consts::open::CREAT | consts::open::EXCL | consts::open::TRUNC | consts::open::DIRECTORY);
    let flags = consts::open::to_linux(w).ok_or(errno::EINVAL)? | libc::O_NOCTTY | libc::O_NONBLOCK;
    let c = CString::new(rec.path.0).map_err(|_| errno::EINVAL)?;
    let opath = sys::as_user(ident.uid, ident.gid, &ident.groups, || sys::open(&c, libc::O_PATH)).map_err(errno_of)?;
    let st = sys::fstat(opath.as_raw_fd()).map_err(errno_of)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(errno::EOPNOTSUPP);
    }
    let real = CString::new(sys::fd_path(opath.as_raw_fd()).map_err(errno_of)?).map_err(|_| errno::EINVAL)?;
    let fd =
        sys::as_user(ident.uid, ident.gid, &ident.groups, || sys::open_nofollow(&real, flags)).map_err(errno_of)?;
    let st2 = sys::fstat(fd.as_raw_fd()).map_err(errno_of)?;
    if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino) {
        return Err(errno::EAGAIN);
    }
    if rec.flags & consts::open::NONBLOCK == 0 {
        let _ = sys::set_nonblocking(fd.as_raw_fd(), false);
    }
    if rec.offset > 0 {
        sys::lseek_set(fd.as_raw_fd(), rec.offset);
    }
    Ok(fd)
}

/// One non-blocking write of `data` (and descriptors) to a channel's local end.
fn write_local(kind: Kind, fd: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    if kind.is_pipe() {
        sys::write(fd, data)
    } else if fds.is_empty() {
        sys::send(fd, data)
    } else {
        sys::send_with_fds(fd, data, fds)
    }
}

/// Answers an affinity requester: a status (0, [`crate::wire::PASS`] or a local errno)
/// and, for a GET that succeeded, the HOST's mask.
pub fn answer_affinity(requester: &OwnedFd, status: i32, mask: &[u8]) {
    let mut b = [0u8; crate::wire::AFF_RSP_MAX];
    let n = crate::wire::encode_affinity_answer(&mut b, status, mask);
    if let Err(e) = sys::send_with_fds(requester.as_raw_fd(), &b[..n], &[]) {
        tracing::debug!("cannot answer a requester: {e}");
    }
}

/// Answers a requester (and closes its connection when the caller drops it).
pub fn answer(requester: &OwnedFd, status: i32, fd: Option<RawFd>) {
    let a = crate::wire::encode_answer(status);
    let fds: Vec<RawFd> = fd.into_iter().collect();
    if let Err(e) = sys::send_with_fds(requester.as_raw_fd(), &a, &fds) {
        tracing::debug!("cannot answer a requester: {e}");
    }
}
