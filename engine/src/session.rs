//! Sessions, exports and open handles: the only client state the engine keeps.
//!
//! A session is created by ATTACH and joined by further connections that present its id
//! and token. Exports (MOUNT) and handles (OPEN/CREATE) belong to the session, so any of
//! its connections, on any core, may use them. When the last connection of a session
//! goes away the session waits `grace` for a reconnect; after that its handles are
//! dropped, which closes their descriptors.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use qtfs_proto::errno;

use crate::creds::{IdPolicy, Ident};

/// An exported HOST directory.
#[derive(Debug)]
pub struct Export {
    pub id: u32,
    /// O_PATH descriptor of the export root; every path resolves beneath it.
    pub root: OwnedFd,
    /// Canonical HOST path of the root (for whitelist checks and logs).
    pub host_path: Vec<u8>,
    /// Its `--export-policy`, fixed at MOUNT; None = the engine-wide policy.
    pub ids: Option<Arc<IdPolicy>>,
}

/// How a file's data is best read and written (decided at open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// Memory-backed regular file (tmpfs): read and write inline, they never wait.
    Memory,
    /// Regular file on a file system with non-blocking reads: try `RWF_NOWAIT` inline,
    /// fall back to the ring; writes through the ring.
    NowaitRead,
    /// Everything else (devices, sockets, file systems without non-blocking I/O): always
    /// through the ring.
    Ring,
    /// A FIFO or a terminal (`fsops::fifo`). Its descriptor is always `O_NONBLOCK` (so that nothing on it can occupy an
    /// io_uring worker thread): reads and writes run inline and, for a client that did
    /// not ask for `O_NONBLOCK`, wait for readiness with `IORING_OP_POLL_ADD` and retry.
    Fifo,
}

/// An open file of a session.
#[derive(Debug)]
pub struct OpenFile {
    pub fd: OwnedFd,
    /// Open flags (local values).
    pub flags: i32,
    pub export: u32,
    pub io: IoMode,
    /// The HOST identity the open ran with; requests on the handle that carry no identity
    /// of their own (READ, WRITE, FSYNC, FALLOCATE, LLSEEK, IOCTL) run with it, never with
    /// the engine's or whatever identity the worker thread happens to hold.
    pub ident: Ident,
    /// The policy of the export it was opened in (it outlives an UMOUNT of the export).
    pub ids: Option<Arc<IdPolicy>>,
}

impl OpenFile {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    pub fn is_append(&self) -> bool {
        self.flags & libc::O_APPEND != 0
    }
    /// The client asked for `O_NONBLOCK`.
    pub fn is_nonblock(&self) -> bool {
        self.flags & libc::O_NONBLOCK != 0
    }
}

struct Slot {
    generation: u32,
    file: Option<Arc<OpenFile>>,
}

/// The engine's descriptor budget, shared by every session: handles stop (EMFILE) while
/// fewer than `reserve` descriptors of `RLIMIT_NOFILE` would remain, so that connections,
/// channels, path walks and new clients always find descriptors; one connection opening
/// files without end can no longer make everyone else's opens fail.
#[derive(Debug)]
pub struct FdBudget {
    /// `RLIMIT_NOFILE` (soft, after `sys::raise_nofile`).
    pub limit: usize,
    /// Descriptors kept free of handles: 1/16 of the limit, at least 256 (at most half).
    pub reserve: usize,
    /// Handles open across every session.
    pub handles: AtomicUsize,
}

impl FdBudget {
    pub fn new(limit: usize) -> FdBudget {
        let reserve = (limit / 16).max(256).min(limit / 2);
        FdBudget { limit, reserve, handles: AtomicUsize::new(0) }
    }

    /// Handles all sessions together may hold.
    pub fn handle_cap(&self) -> usize {
        self.limit - self.reserve
    }

    /// The default per-session handle cap (`--max-handles` not given): a quarter of the
    /// limit, so that one session never holds more than a quarter of the descriptors.
    pub fn default_per_session(&self) -> usize {
        (self.limit / 4).max(1)
    }
}

/// Generational handle table: a handle is `(generation << 32) | (index + 1)`, so a stale
/// handle never reaches a newer file that reused the slot.
#[derive(Default)]
pub struct HandleTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    /// The engine-wide budget this table counts against (none in unit tests).
    budget: Option<Arc<FdBudget>>,
}

impl HandleTable {
    pub fn with_budget(budget: Arc<FdBudget>) -> HandleTable {
        HandleTable { slots: Vec::new(), free: Vec::new(), live: 0, budget: Some(budget) }
    }

    pub fn insert(&mut self, f: Arc<OpenFile>, limit: usize) -> Result<u64, i32> {
        if self.live >= limit {
            crate::log_limited!(
                tracing::Level::WARN,
                limit,
                "a session reached its handle limit: EMFILE (--max-handles)"
            );
            return Err(errno::EMFILE);
        }
        if let Some(b) = &self.budget
            && b.handles.fetch_add(1, Ordering::AcqRel) >= b.handle_cap()
        {
            b.handles.fetch_sub(1, Ordering::AcqRel);
            crate::log_limited!(
                tracing::Level::WARN,
                limit = b.limit,
                reserve = b.reserve,
                "descriptor reserve reached: new handles fail with EMFILE until others are closed"
            );
            return Err(errno::EMFILE);
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { generation: 0, file: None });
                self.slots.len() as u32 - 1
            }
        };
        let s = &mut self.slots[idx as usize];
        s.generation = s.generation.wrapping_add(1).max(1);
        s.file = Some(f);
        self.live += 1;
        Ok(((s.generation as u64) << 32) | (idx as u64 + 1))
    }

    fn slot(&self, h: u64) -> Option<(usize, &Slot)> {
        let idx = (h & 0xffff_ffff).checked_sub(1)? as usize;
        let s = self.slots.get(idx)?;
        (s.generation == (h >> 32) as u32 && s.file.is_some()).then_some((idx, s))
    }

    pub fn get(&self, h: u64) -> Option<Arc<OpenFile>> {
        self.slot(h).and_then(|(_, s)| s.file.clone())
    }

    pub fn remove(&mut self, h: u64) -> Option<Arc<OpenFile>> {
        let (idx, _) = self.slot(h)?;
        let f = self.slots[idx].file.take();
        self.free.push(idx as u32);
        self.live -= 1;
        if let Some(b) = &self.budget {
            b.handles.fetch_sub(1, Ordering::AcqRel);
        }
        f
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn clear(&mut self) {
        if let Some(b) = &self.budget {
            b.handles.fetch_sub(self.live, Ordering::AcqRel);
        }
        self.slots.clear();
        self.free.clear();
        self.live = 0;
    }
}

impl Drop for HandleTable {
    fn drop(&mut self) {
        self.clear();
    }
}

/// One client session.
pub struct Session {
    pub id: u64,
    token: [u8; 16],
    pub exports: RwLock<Vec<Arc<Export>>>,
    pub handles: RwLock<HandleTable>,
    pub conns: AtomicU32,
    detached_at: Mutex<Option<Instant>>,
    pub max_handles: usize,
    /// The host part of the address that created the session (`--max-sessions-per-peer`).
    pub peer: Option<String>,
    /// Channels of the session and the bytes they hold queued (`--max-channels`,
    /// `--channel-buffer-budget`).
    pub chans: AtomicUsize,
    pub chan_bytes: AtomicUsize,
    /// Its requests that may change a file system (`notify`: a session is not told of its
    /// own changes).
    pub changes: Changes,
}

/// A session's requests that may change a file system: how many are in flight and when
/// the last one ended. Counted by the cores on the session itself (no lock shared by the
/// cores); read by the export watcher (`notify`).
#[derive(Debug, Default)]
pub struct Changes {
    in_flight: AtomicU32,
    /// Milliseconds on the watcher's clock when the last one ended, plus one (0: never).
    last_ms: AtomicU64,
}

impl Changes {
    /// A changing request begins.
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// It ended at `now_ms`. An end without a begin changes nothing.
    pub fn end(&self, now_ms: u64) {
        let _ = self.in_flight.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1));
        self.last_ms.store(now_ms + 1, Ordering::Release);
    }

    /// Whether a request of the session changes things now or ended less than `ttl_ms` ago.
    pub fn active(&self, now_ms: u64, ttl_ms: u64) -> bool {
        let last = self.last_ms.load(Ordering::Acquire);
        self.in_flight.load(Ordering::Acquire) > 0 || (last > 0 && now_ms.saturating_sub(last - 1) < ttl_ms)
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).field("conns", &self.conns.load(Ordering::Relaxed)).finish()
    }
}

impl Session {
    pub fn export(&self, id: u32) -> Option<Arc<Export>> {
        self.exports.read().iter().find(|e| e.id == id).cloned()
    }

    /// Adds an export; returns its id.
    pub fn add_export(&self, root: OwnedFd, host_path: Vec<u8>, ids: Option<Arc<IdPolicy>>) -> Result<u32, i32> {
        let mut ex = self.exports.write();
        if let Some(e) = ex.iter().find(|e| e.host_path == host_path) {
            return Ok(e.id);
        }
        if ex.len() >= 1024 {
            return Err(errno::ENOSPC);
        }
        let id = ex.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        ex.push(Arc::new(Export { id, root, host_path, ids }));
        Ok(id)
    }

    pub fn remove_export(&self, id: u32) -> bool {
        let mut ex = self.exports.write();
        let n = ex.len();
        ex.retain(|e| e.id != id);
        ex.len() != n
    }

    pub fn file(&self, h: u64) -> Option<Arc<OpenFile>> {
        self.handles.read().get(h)
    }

    pub fn attach(&self) {
        self.conns.fetch_add(1, Ordering::AcqRel);
        *self.detached_at.lock() = None;
    }

    pub fn detach(&self) {
        if self.conns.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.detached_at.lock() = Some(Instant::now());
        }
    }
}

/// Every session of the engine.
pub struct Sessions {
    map: Mutex<HashMap<u64, Arc<Session>>>,
    /// Descriptors: read from `RLIMIT_NOFILE` when created (the engine raises the limit
    /// to its hard value first).
    pub budget: Arc<FdBudget>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::with_limit(crate::sys::nofile_limit() as usize)
    }
}

/// The host part of a peer address (`127.0.0.1:5000` → `127.0.0.1`, `vsock:3:99` →
/// `vsock:3`): connections from one machine count as one peer.
pub fn peer_host(peer: &str) -> &str {
    peer.rsplit_once(':').map_or(peer, |(h, _)| h)
}

impl Sessions {
    /// Calls `f` with every session's id and changing requests (the export watcher).
    pub fn each_changes(&self, mut f: impl FnMut(u64, &Changes)) {
        for (id, s) in self.map.lock().iter() {
            f(*id, &s.changes);
        }
    }

    pub fn with_limit(nofile: usize) -> Sessions {
        Sessions { map: Mutex::new(HashMap::new()), budget: Arc::new(FdBudget::new(nofile.max(64))) }
    }

    /// Rejoins `(id, token)` if it exists, else creates a new session. Returns the
    /// session and whether it was resumed.
    pub fn attach(&self, id: u64, token: &[u8; 16], max_handles: usize) -> (Arc<Session>, bool) {
        self.attach_from(None, id, token, max_handles, usize::MAX).expect("no per-peer bound")
    }

    /// [`Sessions::attach`] for a connection from `peer` (its address): a new session is
    /// refused with EMFILE when the peer's host already has `max_per_peer` sessions.
    /// `max_handles` 0 means the default share of the descriptor limit.
    pub fn attach_from(
        &self,
        peer: Option<&str>,
        id: u64,
        token: &[u8; 16],
        max_handles: usize,
        max_per_peer: usize,
    ) -> Result<(Arc<Session>, bool), i32> {
        let mut map = self.map.lock();
        if id != 0
            && let Some(s) = map.get(&id)
            && constant_time_eq(&s.token, token)
        {
            s.attach();
            return Ok((s.clone(), true));
        }
        let peer = peer.map(|p| peer_host(p).to_string());
        if let Some(p) = &peer
            && map.values().filter(|s| s.peer.as_ref() == Some(p)).count() >= max_per_peer
            && !Self::evict_detached(&mut map, p)
        {
            crate::log_limited!(
                tracing::Level::WARN,
                peer = %p,
                max_per_peer,
                "session refused: the peer has too many sessions (--max-sessions-per-peer)"
            );
            return Err(errno::EMFILE);
        }
        let max_handles = if max_handles == 0 { self.budget.default_per_session() } else { max_handles };
        let mut rnd = [0u8; 24];
        qtfs_proto::handshake::random_bytes(&mut rnd);
        let mut new_id = u64::from_le_bytes(rnd[..8].try_into().expect("8 bytes")) | 1;
        while map.contains_key(&new_id) {
            new_id = new_id.wrapping_add(2);
        }
        let s = Arc::new(Session {
            id: new_id,
            token: rnd[8..24].try_into().expect("16 bytes"),
            exports: RwLock::new(Vec::new()),
            handles: RwLock::new(HandleTable::with_budget(self.budget.clone())),
            conns: AtomicU32::new(0),
            detached_at: Mutex::new(None),
            max_handles: max_handles.min(self.budget.handle_cap()),
            peer,
            chans: AtomicUsize::new(0),
            chan_bytes: AtomicUsize::new(0),
            changes: Changes::default(),
        });
        s.attach();
        map.insert(new_id, s.clone());
        Ok((s, false))
    }

    /// Ends `peer`'s session that has been without connections the longest, before its
    /// grace period is over, to make room for a new one (a client that reconnects without
    /// resuming must not lock itself out); false if every session of the peer is in use.
    fn evict_detached(map: &mut HashMap<u64, Arc<Session>>, peer: &str) -> bool {
        let oldest = map
            .values()
            .filter(|s| s.peer.as_deref() == Some(peer) && s.conns.load(Ordering::Acquire) == 0)
            .filter_map(|s| s.detached_at.lock().map(|t| (t, s.id)))
            .min()
            .map(|(_, id)| id);
        let Some(id) = oldest.and_then(|id| map.remove(&id)) else { return false };
        tracing::info!(
            session = format_args!("{:x}", id.id),
            peer,
            "detached session ended early: the peer is at --max-sessions-per-peer"
        );
        id.handles.write().clear();
        id.exports.write().clear();
        true
    }

    pub fn token_of(s: &Session) -> [u8; 16] {
        s.token
    }

    /// Drops sessions without connections for longer than `grace`; returns how many.
    pub fn reap(&self, grace: Duration) -> usize {
        let mut map = self.map.lock();
        let before = map.len();
        map.retain(|_, s| {
            let idle =
                s.conns.load(Ordering::Acquire) == 0 && s.detached_at.lock().is_some_and(|t| t.elapsed() >= grace);
            if idle {
                tracing::info!(
                    session = format_args!("{:x}", s.id),
                    handles = s.handles.read().len(),
                    "session expired"
                );
                s.handles.write().clear();
                s.exports.write().clear();
            }
            !idle
        });
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Handles open across every session.
    pub fn open_handles(&self) -> usize {
        self.map.lock().values().map(|s| s.handles.read().len()).sum()
    }

    pub fn clear(&self) {
        let mut map = self.map.lock();
        for s in map.values() {
            s.handles.write().clear();
        }
        map.clear();
    }
}

fn constant_time_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<OpenFile> {
        let fd: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        Arc::new(OpenFile { fd, flags: 0, export: 1, io: IoMode::Ring, ident: Ident::default(), ids: None })
    }

    #[test]
    fn handles_are_generational() {
        let mut t = HandleTable::default();
        let h1 = t.insert(file(), 10).unwrap();
        assert!(t.get(h1).is_some());
        assert!(t.remove(h1).is_some());
        let h2 = t.insert(file(), 10).unwrap();
        assert_eq!(h1 & 0xffff_ffff, h2 & 0xffff_ffff, "slot reused");
        assert!(t.get(h1).is_none(), "stale handle must not reach the new file");
        assert!(t.get(h2).is_some());
        assert!(t.get(0).is_none());
        assert!(t.get(u64::MAX).is_none());
        assert!(t.remove(h1).is_none());
        t.insert(file(), 2).unwrap();
        assert_eq!(t.insert(file(), 2).unwrap_err(), errno::EMFILE);
    }

    #[test]
    fn attach_resume_and_reap() {
        let s = Sessions::default();
        let (a, resumed) = s.attach(0, &[0; 16], 10);
        assert!(!resumed);
        let tok = Sessions::token_of(&a);
        let (b, resumed) = s.attach(a.id, &tok, 10);
        assert!(resumed && b.id == a.id);
        let (c, resumed) = s.attach(a.id, &[9; 16], 10);
        assert!(!resumed && c.id != a.id, "a wrong token never joins");
        a.detach();
        a.detach();
        c.detach();
        assert_eq!(s.reap(Duration::from_secs(3600)), 0);
        assert_eq!(s.reap(Duration::ZERO), 2);
        assert!(s.is_empty());
    }
}
