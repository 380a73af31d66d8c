//! A session: several pipelined connections to one engine, shared by many threads.
//!
//! Any thread may submit requests; each request goes to one connection (round robin),
//! its response is matched by request id, and responses may return in any order. One
//! reader thread per connection delivers responses to their waiters and hands one-way
//! frames (channel data, events) to the registered handler. When a connection drops,
//! its outstanding requests fail with [`ClientError::Disconnected`] and the next
//! submission reconnects, rejoining the session (handles stay valid) or, if the engine
//! lost it (a restart), opening a new one and bumping [`Session::epoch`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use qtfs_proto::{FrameHeader, MAX_PAYLOAD, Op, ProtoError, Wire};

use crate::conn::{ClientConfig, Connection, read_frame};
use crate::error::{ClientError, Result};
use crate::stream::Stream;
use crate::transport::{Request, Transport, remote_error, with_request};

/// A response frame with its payload.
#[derive(Debug)]
pub struct Response {
    pub header: FrameHeader,
    pub payload: Vec<u8>,
}

impl Response {
    /// Turns an error response into `ClientError::Remote`.
    pub fn ok(self) -> Result<Response> {
        if self.header.is_error() { Err(remote_error(&self.header)) } else { Ok(self) }
    }
    /// Decodes the payload as `M`.
    pub fn decode<'a, M: Wire<'a>>(&'a self) -> Result<M> {
        Ok(M::decode(&self.payload)?)
    }
}

/// Receives frames that are not responses (channel traffic, events, requests from the
/// server). Runs on the connection's reader thread: it must not block for long.
pub type FrameHandler = Arc<dyn Fn(&ConnRef, FrameHeader, Vec<u8>) + Send + Sync>;

type Waiter = SyncSender<Result<Response>>;

struct Conn {
    index: usize,
    writer: Mutex<Option<Stream>>,
    pending: Mutex<HashMap<u64, Waiter>>,
    alive: AtomicBool,
    reader: Mutex<Option<JoinHandle<()>>>,
    last_attempt: Mutex<Option<Instant>>,
}

struct Ids {
    session_id: u64,
    token: [u8; 16],
    epoch: u64,
    features: u64,
}

struct Inner {
    cfg: ClientConfig,
    conns: Vec<Arc<Conn>>,
    ids: Mutex<Ids>,
    rr: AtomicUsize,
    next_id: AtomicU64,
    handler: RwLock<Option<FrameHandler>>,
    closed: AtomicBool,
    /// Wait this long for a dropped connection to come back before failing a submit.
    reconnect_wait: Mutex<Duration>,
}

/// A handle on one connection of a session, for sending one-way frames whose order
/// matters (channel traffic must stay on its connection).
#[derive(Clone)]
pub struct ConnRef {
    inner: Weak<Inner>,
    index: usize,
}

impl ConnRef {
    pub fn index(&self) -> usize {
        self.index
    }
    /// Sends a frame on this connection.
    pub fn send(&self, header: FrameHeader, payload: &[u8]) -> Result<()> {
        let inner = self.inner.upgrade().ok_or(ClientError::Closed)?;
        send_raw(&inner.conns[self.index], header, payload)
    }
}

/// A request whose response has not been collected yet.
pub struct Pending {
    rx: Receiver<Result<Response>>,
    timeout: Option<Duration>,
    /// Request id and the connection it was sent on (what CANCEL names).
    id: u64,
    conn: usize,
}

impl Pending {
    /// Waits without the configured request timeout (a lock wait).
    pub fn no_timeout(&mut self) {
        self.timeout = None;
    }

    /// The request's id on its connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The index of the connection it was sent on.
    pub fn conn(&self) -> usize {
        self.conn
    }

    /// Waits for the response (error responses become `ClientError::Remote`).
    pub fn wait(self) -> Result<Response> {
        let r = match self.timeout {
            Some(t) => self.rx.recv_timeout(t).map_err(|e| match e {
                std::sync::mpsc::RecvTimeoutError::Timeout => ClientError::Timeout,
                std::sync::mpsc::RecvTimeoutError::Disconnected => ClientError::Disconnected,
            })?,
            None => self.rx.recv().map_err(|_| ClientError::Disconnected)?,
        };
        r?.ok()
    }

    /// Waits at most `d` for the response; `None` if it has not come (the request stays
    /// pending and can be waited for again). For tests that check a request is held back.
    pub fn wait_at_most(&mut self, d: Duration) -> Option<Result<Response>> {
        match self.rx.recv_timeout(d) {
            Ok(r) => Some(r.and_then(Response::ok)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Some(Err(ClientError::Disconnected)),
        }
    }
}

/// A pipelined multi-connection session. Cheap to clone.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids = self.inner.ids.lock();
        f.debug_struct("Session")
            .field("addr", &self.inner.cfg.addr)
            .field("session_id", &ids.session_id)
            .field("connections", &self.inner.conns.len())
            .finish()
    }
}

fn send_raw(conn: &Conn, header: FrameHeader, payload: &[u8]) -> Result<()> {
    let mut h = header;
    h.len = payload.len() as u32;
    let hb = h.encode();
    let mut w = conn.writer.lock();
    let s = w.as_mut().ok_or(ClientError::Disconnected)?;
    if let Err(e) = s.write_all_vectored(&[&hb, payload]) {
        s.shutdown();
        conn.alive.store(false, Ordering::Release);
        return Err(ClientError::io("send", e));
    }
    Ok(())
}

impl Session {
    /// Opens `connections` connections (at least one) forming one session.
    pub fn connect(cfg: ClientConfig, connections: usize) -> Result<Session> {
        let n = connections.max(1);
        let first = Connection::open(&cfg, None)?;
        let ids = Ids {
            session_id: first.agreed.session_id,
            token: first.agreed.session_token,
            epoch: 0,
            features: first.agreed.features,
        };
        let conns = (0..n)
            .map(|index| {
                Arc::new(Conn {
                    index,
                    writer: Mutex::new(None),
                    pending: Mutex::new(HashMap::new()),
                    alive: AtomicBool::new(false),
                    reader: Mutex::new(None),
                    last_attempt: Mutex::new(None),
                })
            })
            .collect();
        let inner = Arc::new(Inner {
            cfg,
            conns,
            ids: Mutex::new(ids),
            rr: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            handler: RwLock::new(None),
            closed: AtomicBool::new(false),
            reconnect_wait: Mutex::new(Duration::ZERO),
        });
        install(&inner, 0, first)?;
        for i in 1..n {
            let (sid, token) = {
                let ids = inner.ids.lock();
                (ids.session_id, ids.token)
            };
            let c = Connection::open(&inner.cfg, Some((sid, token)))?;
            if c.agreed.session_id != sid {
                return Err(ProtoError::Handshake("server did not join the extra connection to the session").into());
            }
            install(&inner, i, c)?;
        }
        Ok(Session { inner })
    }

    /// Registers the handler for frames that are not responses.
    pub fn set_frame_handler(&self, h: FrameHandler) {
        *self.inner.handler.write() = Some(h);
    }

    /// How long a submission waits for a dropped connection to reconnect (default 0:
    /// fail at once with `Disconnected`).
    pub fn set_reconnect_wait(&self, d: Duration) {
        *self.inner.reconnect_wait.lock() = d;
    }

    pub fn session_id(&self) -> u64 {
        self.inner.ids.lock().session_id
    }

    /// Increments each time the engine lost the session and a new one was opened:
    /// handles and export ids from an older epoch are invalid.
    pub fn epoch(&self) -> u64 {
        self.inner.ids.lock().epoch
    }

    /// Session id and token, for attaching another connection to this session.
    pub fn resume_info(&self) -> (u64, [u8; 16]) {
        let ids = self.inner.ids.lock();
        (ids.session_id, ids.token)
    }

    /// Drops connection `i` now (its outstanding requests fail with `Disconnected`); the
    /// next request on it reconnects and rejoins the session.
    pub fn reset_connection(&self, i: usize) {
        let c = &self.inner.conns[i % self.inner.conns.len()];
        if let Some(s) = c.writer.lock().as_ref() {
            s.shutdown();
        }
    }

    pub fn features(&self) -> u64 {
        self.inner.ids.lock().features
    }

    pub fn connections(&self) -> usize {
        self.inner.conns.len()
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// A handle on connection `i` (modulo the count).
    pub fn conn(&self, i: usize) -> ConnRef {
        ConnRef { inner: Arc::downgrade(&self.inner), index: i % self.inner.conns.len() }
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The connection the next request goes to (round robin).
    fn next_conn(&self) -> usize {
        self.inner.rr.fetch_add(1, Ordering::Relaxed) % self.inner.conns.len()
    }

    /// Sends a request on the next connection and returns without waiting.
    pub fn submit<'m, M: Wire<'m>>(&self, op: Op, msg: &M) -> Result<Pending> {
        self.submit_on(self.next_conn(), op, msg)
    }

    /// Sends a request on connection `i`.
    pub fn submit_on<'m, M: Wire<'m>>(&self, i: usize, op: Op, msg: &M) -> Result<Pending> {
        self.send_request(i, FrameHeader::request(op, 0, 0), msg, None)
    }

    /// Sends a request whose header names a channel (CHAN_OPEN carries the new channel's
    /// id there) on connection `i`.
    pub fn submit_on_channel<'m, M: Wire<'m>>(&self, i: usize, op: Op, channel: u32, msg: &M) -> Result<Pending> {
        self.send_request(i, FrameHeader { channel, ..FrameHeader::request(op, 0, 0) }, msg, None)
    }

    /// Like [`Session::submit`], but sends only while the session is still in `epoch`;
    /// otherwise fails with `Remote(ESTALE)` without sending. Handles are numbered per
    /// session, so after an engine restart an old handle may name another file of the
    /// new session: the check is made under the connection's send lock, after any
    /// reconnect (which bumps the epoch before the new socket is installed), so a request
    /// carrying an old handle can never reach a newer session.
    pub fn submit_in_epoch<'m, M: Wire<'m>>(&self, epoch: u64, op: Op, msg: &M) -> Result<Pending> {
        self.send_request(self.next_conn(), FrameHeader::request(op, 0, 0), msg, Some(epoch))
    }

    /// Encodes a request and sends it on connection `i` (or the next live one), refusing
    /// to send outside `epoch` when one is given.
    fn send_request<'m, M: Wire<'m>>(
        &self,
        i: usize,
        header: FrameHeader,
        msg: &M,
        epoch: Option<u64>,
    ) -> Result<Pending> {
        with_request(header, msg, &[], |req| self.send_frame(i, req, epoch))
    }

    /// Sends an encoded request, numbered here with a fresh request id, on connection `i`
    /// (or the next live one), refusing to send outside `epoch` when one is given.
    fn send_frame(&self, i: usize, mut req: Request<'_>, epoch: Option<u64>) -> Result<Pending> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(ClientError::Closed);
        }
        let conn = self.ready_conn(i)?;
        let id = self.next_id();
        req.number(id);
        let (tx, rx) = sync_channel(1);
        conn.pending.lock().insert(id, tx);
        let res = {
            let mut w = conn.writer.lock();
            match w.as_mut() {
                Some(_) if epoch.is_some_and(|e| e != inner.ids.lock().epoch) => Err(ClientError::Remote(libc::ESTALE)),
                Some(s) => req.send(s).map_err(|e| {
                    s.shutdown();
                    ClientError::io("send", e)
                }),
                None => Err(ClientError::Disconnected),
            }
        };
        if let Err(e) = res {
            conn.pending.lock().remove(&id);
            if matches!(e, ClientError::Remote(_)) {
                return Err(e);
            }
            conn.alive.store(false, Ordering::Release);
            return Err(match e {
                ClientError::Io { .. } => ClientError::Disconnected,
                o => o,
            });
        }
        let conn = inner.conns.iter().position(|c| Arc::ptr_eq(c, &conn)).unwrap_or(i);
        Ok(Pending { rx, timeout: inner.cfg.request_timeout, id, conn })
    }

    /// Sends a request and waits for its response.
    pub fn call<'m, M: Wire<'m>>(&self, op: Op, msg: &M) -> Result<Response> {
        self.submit(op, msg)?.wait()
    }

    /// Like `call`, but retries after a reconnect for up to `wait` (for idempotent
    /// requests only).
    pub fn call_idempotent<'m, M: Wire<'m>>(&self, op: Op, msg: &M, wait: Duration) -> Result<Response> {
        let deadline = Instant::now() + wait;
        loop {
            match self.call(op, msg) {
                Err(ClientError::Disconnected) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                r => return r,
            }
        }
    }

    /// Closes every connection; outstanding requests fail.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        for c in &self.inner.conns {
            if let Some(s) = c.writer.lock().take() {
                s.shutdown();
            }
        }
        for c in &self.inner.conns {
            if let Some(h) = c.reader.lock().take()
                && h.thread().id() != std::thread::current().id()
            {
                let _ = h.join();
            }
        }
    }

    /// A live connection, preferring `i`; reconnects if needed.
    fn ready_conn(&self, i: usize) -> Result<Arc<Conn>> {
        let inner = &self.inner;
        let n = inner.conns.len();
        for k in 0..n {
            let c = &inner.conns[(i + k) % n];
            if c.alive.load(Ordering::Acquire) {
                return Ok(c.clone());
            }
        }
        let deadline = Instant::now() + *inner.reconnect_wait.lock();
        loop {
            match self.reconnect(i % n) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    if Instant::now() >= deadline {
                        return Err(match e {
                            ClientError::Io { .. } => ClientError::Disconnected,
                            o => o,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn reconnect(&self, i: usize) -> Result<Arc<Conn>> {
        let inner = &self.inner;
        let conn = inner.conns[i].clone();
        {
            // Serialise attempts per connection and rate-limit them.
            let mut last = conn.last_attempt.lock();
            if conn.alive.load(Ordering::Acquire) {
                return Ok(conn.clone());
            }
            if let Some(t) = *last
                && t.elapsed() < Duration::from_millis(50)
            {
                return Err(ClientError::Disconnected);
            }
            *last = Some(Instant::now());
        }
        if let Some(h) = conn.reader.lock().take() {
            let _ = h.join();
        }
        let (sid, token) = {
            let ids = inner.ids.lock();
            (ids.session_id, ids.token)
        };
        let c = Connection::open(&inner.cfg, Some((sid, token)))?;
        if !c.agreed.resumed {
            let mut ids = inner.ids.lock();
            if ids.session_id != c.agreed.session_id {
                tracing::warn!(old = sid, new = c.agreed.session_id, "engine lost the session; opened a new one");
                ids.session_id = c.agreed.session_id;
                ids.token = c.agreed.session_token;
                ids.epoch += 1;
                ids.features = c.agreed.features;
            }
        }
        install(inner, i, c)?;
        Ok(conn)
    }
}

impl Session {
    /// One request on the next connection, waiting (within the configured request
    /// timeout) for its response; `epoch` as in [`Session::submit_in_epoch`].
    fn call_in<R>(&self, epoch: Option<u64>, req: Request<'_>, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
        let mut r = self.send_frame(self.next_conn(), req, epoch)?.wait()?;
        f(&mut r.payload)
    }

    /// The session as the transport of requests on handles of session `epoch`: each is
    /// refused with `Remote(ESTALE)`, nothing sent, once the session moved on
    /// ([`Session::submit_in_epoch`]).
    pub fn in_epoch(&self, epoch: u64) -> InEpoch<'_> {
        InEpoch { session: self, epoch }
    }
}

/// The typed operations ([`crate::Ops`]) on a session: each request goes to the next
/// connection and waits (within the configured request timeout) for its response.
impl Transport for &Session {
    fn round_trip<R>(&mut self, req: Request<'_>, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
        self.call_in(None, req, f)
    }
}

/// A session bound to one of its epochs ([`Session::in_epoch`]).
#[derive(Clone, Copy)]
pub struct InEpoch<'s> {
    session: &'s Session,
    epoch: u64,
}

impl Transport for InEpoch<'_> {
    fn round_trip<R>(&mut self, req: Request<'_>, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
        self.session.call_in(Some(self.epoch), req, f)
    }
}

/// Puts a fresh connection into slot `i` and starts its reader.
fn install(inner: &Arc<Inner>, i: usize, c: Connection) -> Result<()> {
    let conn = inner.conns[i].clone();
    let reader = c.stream.try_clone().map_err(|e| ClientError::io("dup socket", e))?;
    *conn.writer.lock() = Some(c.stream);
    conn.alive.store(true, Ordering::Release);
    let weak = Arc::downgrade(inner);
    let h = std::thread::Builder::new()
        .name(format!("qtfs-rx{i}"))
        .spawn(move || reader_loop(weak, conn, reader))
        .map_err(|e| ClientError::io("spawn reader", e))?;
    *inner.conns[i].reader.lock() = Some(h);
    Ok(())
}

fn reader_loop(inner: Weak<Inner>, conn: Arc<Conn>, mut stream: Stream) {
    let mut buf = Vec::new();
    let index = conn.index;
    loop {
        let r = read_frame(&mut stream, &mut buf, MAX_PAYLOAD);
        let h = match r {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(conn = index, "reader: {e}");
                break;
            }
        };
        let payload = std::mem::take(&mut buf);
        if h.is_response() {
            match conn.pending.lock().remove(&h.id) {
                Some(tx) => {
                    let _ = tx.send(Ok(Response { header: h, payload }));
                }
                None => tracing::warn!(id = h.id, op = h.op, "response to an unknown request id dropped"),
            }
        } else {
            let Some(inner) = inner.upgrade() else { break };
            let handler = inner.handler.read().clone();
            match handler {
                Some(f) => f(&ConnRef { inner: Arc::downgrade(&inner), index }, h, payload),
                None => tracing::debug!(op = h.op, "one-way frame without handler dropped"),
            }
        }
    }
    conn.alive.store(false, Ordering::Release);
    if let Some(s) = conn.writer.lock().take() {
        s.shutdown();
    }
    let pending: Vec<Waiter> = conn.pending.lock().drain().map(|(_, w)| w).collect();
    for w in pending {
        let _ = w.send(Err(ClientError::Disconnected));
    }
    if let Some(inner) = inner.upgrade()
        && let Some(f) = inner.handler.read().clone()
    {
        // Tell the handler the connection is gone (op 0 = connection lost).
        f(&ConnRef { inner: Arc::downgrade(&inner), index }, FrameHeader::default(), Vec::new());
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for c in &self.conns {
            if let Some(s) = c.writer.lock().take() {
                s.shutdown();
            }
        }
    }
}
