//! Connections: accepting them (within the pre-auth gate), their handshake, closing and
//! freeing them.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use io_uring::{opcode, types};
use qtfs_proto::consts;
use qtfs_proto::handshake::ServerHandshake;
use qtfs_proto::{Attach, FrameHeader, Hello, MAX_PAYLOAD, Op, Wire};

use super::{
    ACCEPT_PAUSE_MAX, ACCEPT_PAUSE_MIN, HANDSHAKE_TIMEOUT, PREAUTH_MAX_PAYLOAD, PREAUTH_RX, RX_BUF, Reactor, Slot,
    UD_IGNORE, gate,
};
use crate::session::Session;
use crate::stats::ConnShared;

pub(super) enum ConnState {
    Hello(Box<ServerHandshake<'static>>),
    Attach(Box<ServerHandshake<'static>>),
    Active,
}

/// The in-flight `sendmsg` of a connection; boxed so that the kernel's pointers to the
/// iovecs and msghdr stay valid.
pub(crate) struct SendOp {
    pub(super) segs: Vec<Vec<u8>>,
    /// Bytes of `segs[0]` already sent.
    pub(super) first_off: usize,
    pub(super) iov: Vec<libc::iovec>,
    pub(super) msg: libc::msghdr,
}

pub(crate) struct Conn {
    pub id: u64,
    pub(super) fd: OwnedFd,
    pub shared: Arc<ConnShared>,
    pub(super) state: ConnState,
    pub session: Option<Arc<Session>>,
    pub(super) rx: Vec<u8>,
    pub(super) recv_armed: bool,
    /// The receive buffer is out on loan to `process_rx`, which re-arms at its end; the
    /// connection is not freed meanwhile.
    pub(super) in_rx: bool,
    /// Queued responses; the last one may still be appended to when `tx_tail_open`.
    pub(super) tx: VecDeque<Vec<u8>>,
    pub(super) tx_tail_open: bool,
    pub(super) tx_bytes: usize,
    pub(super) send: Option<Box<SendOp>>,
    pub inflight: u32,
    /// Operations (recv, send, requests, registrations) that refer to this connection.
    pub refs: u32,
    pub closing: bool,
    pub(super) close_after_flush: bool,
    pub(super) dirty: bool,
    /// user_data of multishot polls a service armed for this connection (EPOLL_CTL
    /// registrations): removed when it closes.
    pub polls: Vec<u64>,
    /// The place this connection holds in the pre-auth gate (its peer key) until it
    /// attaches or goes away.
    pub(super) gate: Option<Box<str>>,
    /// Not read because its session's channels hold their `--channel-buffer-budget`.
    pub(super) chan_paused: bool,
}

impl Conn {
    pub(super) fn active(&self) -> bool {
        matches!(self.state, ConnState::Active)
    }

    /// Whether its session's channels hold their queued-bytes budget: then nothing more
    /// is read from it (CHAN_DATA beyond credit, or within many windows at once, would
    /// otherwise be queued without bound) until the local sockets drain.
    pub(super) fn over_chan_budget(&self, budget: usize) -> bool {
        self.session.as_ref().is_some_and(|s| s.chan_bytes.load(Ordering::Acquire) >= budget)
    }

    /// Response bytes queued and not yet handed to the kernel.
    pub(crate) fn tx_queued(&self) -> usize {
        self.tx_bytes
    }

    /// Largest payload this connection may send now.
    pub(super) fn max_payload(&self) -> usize {
        if self.active() { MAX_PAYLOAD } else { PREAUTH_MAX_PAYLOAD }
    }
}

impl Reactor {
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

    pub(super) fn arm_accept(&mut self, i: usize) {
        if self.stopping {
            return;
        }
        let Some(l) = self.listeners.get(i) else { return };
        let fd = l.fd.as_raw_fd();
        let ud = self.slot(Slot::Accept { listener: i });
        let e = opcode::AcceptMulti::new(types::Fd(fd)).flags(libc::SOCK_CLOEXEC).build().user_data(ud);
        self.push(e);
    }

    pub(super) fn on_accept(&mut self, listener: usize, res: i32, more: bool) {
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
            polls: Vec::new(),
            gate: Some(gate),
            chan_paused: false,
        });
        self.handshakes.push_back((Instant::now() + HANDSHAKE_TIMEOUT, key, id));
        tracing::debug!(core = self.idx, conn = id, %peer, "accepted");
        self.arm_recv(key);
    }

    // ------------------------------------------------------------------ handshake

    pub(super) fn handshake(&mut self, key: usize, h: FrameHeader, payload: &[u8]) {
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

    /// Closes connections that did not attach within `HANDSHAKE_TIMEOUT`.
    pub(super) fn expire_handshakes(&mut self) {
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

    // ------------------------------------------------------------------ close

    /// Starts closing a connection: no more reading, its service is told (which cancels
    /// its in-flight requests), the descriptor is closed once nothing refers to it.
    pub fn close_conn(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else { return };
        if !c.closing || c.close_after_flush {
            c.closing = true;
            c.close_after_flush = false;
            c.shared.state.store(consts::CONN_CLOSING, Ordering::Relaxed);
            // SAFETY: shutdown on our own socket: wakes the pending recv and send.
            unsafe { libc::shutdown(c.fd.as_raw_fd(), libc::SHUT_RDWR) };
            let polls = std::mem::take(&mut c.polls);
            let cancel = c.inflight > 0;
            for ud in polls {
                self.push(opcode::PollRemove::new(ud).build().user_data(UD_IGNORE));
            }
            if cancel {
                self.flush_deferred(key);
            }
            self.closed.push(key);
        }
        self.maybe_free(key);
    }

    pub(super) fn maybe_free(&mut self, key: usize) {
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
}
