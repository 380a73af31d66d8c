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
//! The channel rules (credit, message assembly, SCM records, the passed-file policy) are
//! the channel core's (`qtfs-chan`), shared with the engine; this module and its
//! children do the I/O around them: `chan` the frames from the engine and the channels'
//! local sockets, `scm` the descriptors passed across.
//!
//! This module owns channels, their sockets and the engine connection; it must not
//! interpret the local request protocol (`front`) or admin requests (`admin`).

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use qtfs_client::{ClientConfig, Connection};
use qtfs_proto::consts::{self, CHAN_ID_PEER};
use qtfs_proto::*;

use qtfs_chan::{ChanStat, Flow};

use crate::Shared;
use crate::sys;

mod chan;
mod scm;

pub use qtfs_chan::{Kind, MSG_MAX, WINDOW};
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

/// A channel: its data path (the channel core's [`Flow`]) and its local socket.
struct Chan {
    flow: Flow,
    fd: Option<OwnedFd>,
    ident: Ident,
    readable: bool,
    writable: bool,
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

use qtfs_chan::wire_errno as e_local;

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
                if let Err(e) = sys::set_nonblock(fd.as_raw_fd(), true).and_then(|_| {
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
            match sys::send_nb(up.fd.as_raw_fd(), &up.tx[up.tx_off..]) {
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
            let (h, m) = qtfs_chan::accepted_open(id, req, kind, lid, (uid, gid), b"");
            self.push(h, &m);
            self.pending.insert(req, Pending::Accepted { id, kind, fd });
        }
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
