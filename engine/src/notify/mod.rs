//! Prompt coherence: tells clients within milliseconds what changed in the exports they
//! mounted, whoever changed it (a HOST process, another client, the same client through
//! another connection).
//!
//! How: one fanotify group (`FAN_REPORT_DFID_NAME`) with a `FAN_MARK_FILESYSTEM` mark on
//! each file system holding an export that a session asked to hear about (a MOUNT on a
//! connection that agreed on `feat::INVAL`). Each event names a directory (by file handle)
//! and an entry name; the watcher thread turns the handle into the directory's HOST path
//! (`open_by_handle_at`, then its `/proc/self/fd` link), keeps the events beneath some
//! watched export (everything else on the file system is dropped) and queues an INVAL
//! (export id, export-relative path, `inval::*` flags) for every session that mounted
//! that export. Why fanotify rather than inotify: one mark per file system covers every
//! directory and file of every export, with no per-lookup bookkeeping in the request path
//! and no watch limit per directory; the cost is that every change on a marked file
//! system wakes the watcher, which resolves each distinct directory once per batch.
//! Needs CAP_SYS_ADMIN (filesystem marks) and CAP_DAC_READ_SEARCH (`open_by_handle_at`),
//! and file handles on the export's file system (ext4, xfs, btrfs, tmpfs ≥ 5.13…): where
//! it cannot run, the engine does not offer `feat::INVAL` and clients rely on their
//! attribute timeouts.
//!
//! Coalescing and bounds: after the first event of a batch the watcher collects more for
//! `COALESCE`, then queues them; a queued (export, path) absorbs later events for it
//! (flags are or-ed) until a core sends it, so a file written continuously costs one
//! message per path per batch. Each session's queue holds at most `MAX_QUEUE` paths;
//! beyond that it is emptied and replaced by one `inval::ALL` per export ("drop
//! everything"), as is every queue when the kernel's event queue overflows.
//!
//! Own changes are not echoed to a session that asked (`feat::NO_ECHO`, with INVAL on the
//! connection of its MOUNT): its kernel cache already holds the result of a change it
//! made (the reply carried it), so an INVAL for it would only throw that away
//! (a `stat` after `create` costing a LOOKUP, a written file's pages dropped). The
//! fanotify event carries the pid of the process that made the change; an event made by
//! this engine's process (any of its threads, io_uring workers included) was made for
//! some session's request, and every request that may change a file system marks its
//! session as a maker before it acts ([`Notify::begin_change`]) until
//! [`ORIGIN_TTL`] after it ended. When a batch of events is read and exactly one session
//! is such a maker, the engine's own events of the batch can only be that session's: they
//! go to every watcher but it. With two makers, or events a HOST process made, everyone
//! hears everything. If the watcher lags (a batch that hit its size cap) nothing is
//! withheld. What a wrong guess could cost is bounded by the attribute timeout, as for
//! any missed event.
//!
//! Cores are never blocked: the watcher only takes this module's mutex (never held
//! across a system call or a send) and kicks each core's wake-up eventfd; a core drains
//! the queues of its own connections' sessions in its loop ([`drain`]), at most
//! `MAX_PER_DRAIN` messages per connection per wake, and only into a connection with
//! less than `TX_LIMIT` bytes already queued (the rest waits for the watcher's next
//! kick, at most `RETRY` later).
//!
//! Owns the fanotify group, the watcher thread, the registrations, the makers of changes
//! and the per-session queues (the records themselves are parsed in `events`). It does
//! not decide what a session may see: paths come from exports the session mounted, and
//! an INVAL carries no data, only a name to forget.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use qtfs_proto::consts::{feat, inval};
use qtfs_proto::{FrameHeader, InvalMsg, Op, Path};

use crate::ring::Reactor;
use crate::session::{Changes, Export, Session, Sessions};
use crate::sys;

mod events;
use events::{Event, parse_events};

/// Events collected after the first one of a batch before they are queued.
pub const COALESCE: Duration = Duration::from_millis(2);
/// Paths one session may have queued; beyond, the queue becomes "drop everything".
pub const MAX_QUEUE: usize = 4096;
/// Messages one connection is given per wake-up of its core.
const MAX_PER_DRAIN: usize = 256;
/// A connection with this many response bytes queued gets no INVAL until it drains.
const TX_LIMIT: usize = 1 << 20;
/// While any queue is not empty, cores are kicked again this often.
const RETRY: Duration = Duration::from_millis(20);
/// How long after its last changing request ended a session still counts as the maker of
/// the engine's events (far above the watcher's normal delay of a few milliseconds).
pub const ORIGIN_TTL: Duration = Duration::from_secs(5);
/// Events read in one batch at most; a batch that reaches it means the watcher lags.
const BATCH_MAX: usize = 16384;
/// Dead registrations (UMOUNT, sessions gone) are swept this often.
const SWEEP: Duration = Duration::from_secs(1);

/// The events watched: data and attribute changes, names created, removed and moved.
const MASK: u64 = libc::FAN_MODIFY
    | libc::FAN_ATTRIB
    | libc::FAN_CREATE
    | libc::FAN_DELETE
    | libc::FAN_MOVED_FROM
    | libc::FAN_MOVED_TO
    | libc::FAN_ONDIR;

/// One export one session asked to hear about.
struct Watcher {
    sid: u64,
    export_id: u32,
    export: Weak<Export>,
    host_path: Vec<u8>,
    /// The file system's mount the export lives on (keys the resolution cache).
    mnt: u64,
    /// A readable descriptor of the export root: `open_by_handle_at` needs one on the
    /// same mount (an `O_PATH` one is refused).
    mount_fd: Arc<OwnedFd>,
    /// The session asked not to hear of its own changes (`feat::NO_ECHO`).
    no_echo: bool,
}

/// A file system with a mark.
struct Marked {
    /// Descriptor used to place (and remove) the mark.
    fd: Arc<OwnedFd>,
    watchers: Vec<Watcher>,
}

/// The pending invalidations of one session.
#[derive(Default)]
struct Queue {
    order: VecDeque<(u32, Vec<u8>)>,
    flags: HashMap<(u32, Vec<u8>), u32>,
    /// Exports whose queue overflowed: "drop everything" goes first.
    flush: Vec<u32>,
}

impl Queue {
    fn push(&mut self, export: u32, path: Vec<u8>, f: u32) {
        if self.flush.contains(&export) {
            return;
        }
        if let Some(old) = self.flags.get_mut(&(export, path.clone())) {
            *old |= f;
            return;
        }
        if self.order.len() >= MAX_QUEUE {
            let mut ex: Vec<u32> = self.order.iter().map(|(e, _)| *e).collect();
            ex.push(export);
            ex.sort_unstable();
            ex.dedup();
            self.order.clear();
            self.flags.clear();
            for e in ex {
                self.flush_all(e);
            }
            return;
        }
        self.order.push_back((export, path.clone()));
        self.flags.insert((export, path), f);
    }

    fn flush_all(&mut self, export: u32) {
        self.order.retain(|(e, _)| *e != export);
        self.flags.retain(|(e, _), _| *e != export);
        if !self.flush.contains(&export) {
            self.flush.push(export);
        }
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty() && self.flush.is_empty()
    }

    fn take(&mut self, max: usize, out: &mut Vec<(u32, u32, Vec<u8>)>) {
        while out.len() < max
            && let Some(e) = self.flush.pop()
        {
            out.push((e, inval::ALL, Vec::new()));
        }
        while out.len() < max
            && let Some(k) = self.order.pop_front()
        {
            let f = self.flags.remove(&k).unwrap_or(inval::ATTR | inval::DATA | inval::ENTRY);
            out.push((k.0, f, k.1));
        }
    }
}

/// The only one of `makers`, if there is exactly one.
fn sole(mut makers: impl Iterator<Item = u64>) -> Option<u64> {
    match (makers.next(), makers.next()) {
        (Some(sid), None) => Some(sid),
        _ => None,
    }
}

#[derive(Default)]
struct Inner {
    /// Marked file systems by fsid.
    fs: HashMap<u64, Marked>,
    /// Registrations the watcher thread has not taken yet.
    new: Vec<(u64, u32, Weak<Export>, bool)>,
    queues: HashMap<u64, Queue>,
}

/// The watcher: see the module documentation.
pub struct Notify {
    fan: OwnedFd,
    /// Wakes the watcher thread (new registration, stop).
    ctl: OwnedFd,
    stop: AtomicBool,
    inner: Mutex<Inner>,
    /// The engine's sessions, whose changing requests make the engine's events (set at
    /// [`Notify::start`]).
    sessions: OnceLock<Arc<Sessions>>,
    /// Changes the engine makes for no file request (the socket files of CHAN_LISTEN):
    /// a maker of its own, so that they are never taken for a session's.
    internal: Changes,
    /// The clock of `Changes` (milliseconds since the watcher was made).
    epoch: Instant,
    /// This process, as fanotify names the maker of an event.
    pid: i32,
    /// Each core's wake-up eventfd and whether it has queues to look at.
    cores: OnceLock<Vec<(OwnedFd, AtomicBool)>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A C string pointer for ".".
const DOT: &std::ffi::CStr = c".";

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn fsid_of(fd: RawFd) -> io::Result<u64> {
    Ok(sys::fstatfs(fd)?.fsid)
}

impl Notify {
    /// Creates the fanotify group; fails where the kernel or our privileges cannot give
    /// one that reports directory handles and names.
    pub fn new() -> io::Result<Arc<Notify>> {
        let flags = libc::FAN_CLASS_NOTIF | libc::FAN_REPORT_DFID_NAME | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK;
        // SAFETY: plain syscall; the result is a new descriptor or -1.
        let fd = check(unsafe { libc::fanotify_init(flags, (libc::O_RDONLY | libc::O_CLOEXEC) as u32) })?;
        // SAFETY: a new descriptor we own.
        let fan = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Arc::new(Notify {
            fan,
            ctl: sys::eventfd()?,
            stop: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
            sessions: OnceLock::new(),
            internal: Changes::default(),
            epoch: Instant::now(),
            pid: std::process::id() as i32,
            cores: OnceLock::new(),
            thread: Mutex::new(None),
        }))
    }

    /// Starts the watcher thread; `wakes` are the cores' wake-up eventfds (index = core),
    /// `sessions` the engine's sessions.
    pub fn start(self: &Arc<Self>, wakes: Vec<OwnedFd>, sessions: Arc<Sessions>) -> io::Result<()> {
        let _ = self.cores.set(wakes.into_iter().map(|w| (w, AtomicBool::new(false))).collect());
        let _ = self.sessions.set(sessions);
        let me = self.clone();
        let h = std::thread::Builder::new().name("qtfs-inval".into()).spawn(move || me.run())?;
        *self.thread.lock() = Some(h);
        Ok(())
    }

    /// Stops the watcher thread.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        sys::eventfd_kick(self.ctl.as_raw_fd());
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }

    /// Registers export `id` of `session` (called on the core that answered its MOUNT;
    /// the mark itself is placed by the watcher thread, which has full credentials);
    /// `no_echo`: the session is not told of its own changes (`feat::NO_ECHO`).
    pub fn watch(&self, session: &Session, id: u32, no_echo: bool) {
        let Some(e) = session.export(id) else { return };
        self.inner.lock().new.push((session.id, id, Arc::downgrade(&e), no_echo));
        sys::eventfd_kick(self.ctl.as_raw_fd());
    }

    /// A request of `session` that may change a file system is about to act.
    pub fn begin_change(&self, session: &Session) {
        session.changes.begin();
    }

    /// That request ended (answered or dropped).
    pub fn end_change(&self, session: &Session) {
        session.changes.end(self.now_ms());
    }

    /// Runs `f`, a change the engine makes for no file request (the socket files of
    /// CHAN_LISTEN), as a maker of its own.
    pub fn engine_change<T>(notify: Option<&Notify>, f: impl FnOnce() -> T) -> T {
        let Some(n) = notify else { return f() };
        n.internal.begin();
        let r = f();
        n.internal.end(n.now_ms());
        r
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The one session that may have made the engine's events read so far: the only one
    /// with a changing request in flight or ended within [`ORIGIN_TTL`] (the engine's own
    /// changes, id 0, count as a maker too, never named).
    fn sole_maker(&self) -> Option<u64> {
        let (now, ttl) = (self.now_ms(), ORIGIN_TTL.as_millis() as u64);
        let mut active = Vec::new();
        if self.internal.active(now, ttl) {
            active.push(0);
        }
        if let Some(sessions) = self.sessions.get() {
            sessions.each_changes(|sid, c| {
                if c.active(now, ttl) {
                    active.push(sid);
                }
            });
        }
        sole(active.into_iter()).filter(|&sid| sid != 0)
    }

    /// Whether session `sid` has invalidations waiting (tests).
    pub fn queued(&self, sid: u64) -> usize {
        self.inner.lock().queues.get(&sid).map_or(0, |q| q.order.len() + q.flush.len())
    }

    fn run(&self) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_sweep = Instant::now();
        let mut events: Vec<Event> = Vec::new();
        while !self.stop.load(Ordering::Acquire) {
            let busy = self.inner.lock().queues.values().any(|q| !q.is_empty());
            let timeout = if busy { RETRY } else { SWEEP };
            let (fan_ready, ctl_ready) = self.poll(timeout);
            if ctl_ready {
                let mut v = 0u64;
                // SAFETY: reads 8 bytes into a live u64 (non-blocking eventfd).
                unsafe { libc::read(self.ctl.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
                self.register();
            }
            if last_sweep.elapsed() >= SWEEP {
                last_sweep = Instant::now();
                self.sweep();
            }
            if fan_ready {
                events.clear();
                let end = Instant::now() + COALESCE;
                loop {
                    self.read_events(&mut buf, &mut events);
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() || events.len() >= BATCH_MAX || !self.poll_fan(left) {
                        break;
                    }
                }
                // Read after the events, so every request that made one is counted.
                let own = if events.len() >= BATCH_MAX { None } else { self.sole_maker() };
                self.dispatch(&events, own);
            }
            if fan_ready || busy {
                self.kick_cores();
            }
        }
    }

    /// Waits for the fanotify group or the control eventfd.
    fn poll(&self, timeout: Duration) -> (bool, bool) {
        let mut fds = [
            libc::pollfd { fd: self.fan.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: self.ctl.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: fds is a live array of 2 pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout.as_millis().min(60_000) as i32) };
        if n <= 0 {
            return (false, false);
        }
        let [a, b] = fds;
        (a.revents & libc::POLLIN != 0, b.revents & libc::POLLIN != 0)
    }

    fn poll_fan(&self, timeout: Duration) -> bool {
        let mut p = libc::pollfd { fd: self.fan.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_micros().div_ceil(1000).min(1000) as i32;
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, ms) > 0 }
    }

    /// Takes new registrations: opens their mount descriptors and marks their file
    /// systems (the first export of a file system places its mark).
    fn register(&self) {
        let new = std::mem::take(&mut self.inner.lock().new);
        for (sid, id, weak, no_echo) in new {
            let Some(e) = weak.upgrade() else { continue };
            let r = (|| -> io::Result<(u64, Watcher, Arc<OwnedFd>)> {
                let fd = sys::openat(e.root.as_raw_fd(), DOT, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
                let fsid = fsid_of(fd.as_raw_fd())?;
                let mnt = sys::mount_id(fd.as_raw_fd()).map(|(m, _)| m.id).unwrap_or(0);
                let fd = Arc::new(fd);
                let w = Watcher {
                    sid,
                    export_id: id,
                    export: weak.clone(),
                    host_path: e.host_path.clone(),
                    mnt,
                    mount_fd: fd.clone(),
                    no_echo,
                };
                Ok((fsid, w, fd))
            })();
            let (fsid, w, fd) = match r {
                Ok(x) => x,
                Err(err) => {
                    tracing::warn!(export = %String::from_utf8_lossy(&e.host_path), "cannot watch export: {err}");
                    continue;
                }
            };
            let mut g = self.inner.lock();
            if let Some(m) = g.fs.get_mut(&fsid) {
                m.watchers.push(w);
                continue;
            }
            drop(g);
            if let Err(err) = self.mark_fs(libc::FAN_MARK_ADD, &fd) {
                tracing::warn!(export = %String::from_utf8_lossy(&e.host_path), "cannot watch its file system: {err}");
                continue;
            }
            tracing::debug!(export = %String::from_utf8_lossy(&e.host_path), fsid, "watching file system");
            self.inner.lock().fs.entry(fsid).or_insert_with(|| Marked { fd, watchers: Vec::new() }).watchers.push(w);
        }
    }

    /// Forgets registrations of exports that are gone (UMOUNT, session reaped), removes
    /// marks nobody needs and queues nobody will read.
    fn sweep(&self) {
        let mut g = self.inner.lock();
        let mut unmark = Vec::new();
        g.fs.retain(|_, m| {
            m.watchers.retain(|w| w.export.strong_count() > 0);
            if m.watchers.is_empty() {
                unmark.push(m.fd.clone());
                false
            } else {
                true
            }
        });
        let live: HashSet<u64> = g.fs.values().flat_map(|m| m.watchers.iter().map(|w| w.sid)).collect();
        g.queues.retain(|sid, _| live.contains(sid));
        drop(g);
        for fd in unmark {
            let _ = self.mark_fs(libc::FAN_MARK_REMOVE, &fd);
        }
    }

    /// Adds or removes (`how`: `FAN_MARK_ADD`, `FAN_MARK_REMOVE`) our mark on the file
    /// system of the directory `dir`.
    fn mark_fs(&self, how: libc::c_uint, dir: &OwnedFd) -> io::Result<libc::c_int> {
        // SAFETY: marks (or unmarks) the file system of "." beneath a live directory
        // descriptor; DOT is a NUL-terminated string.
        check(unsafe {
            libc::fanotify_mark(
                self.fan.as_raw_fd(),
                how | libc::FAN_MARK_FILESYSTEM,
                MASK,
                dir.as_raw_fd(),
                DOT.as_ptr(),
            )
        })
    }

    /// Reads every event available now (non-blocking group).
    fn read_events(&self, buf: &mut [u8], out: &mut Vec<Event>) {
        loop {
            // SAFETY: reads into a live buffer of its length.
            let n = unsafe { libc::read(self.fan.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            parse_events(buf.get(..n as usize).unwrap_or(&[]), out);
        }
    }

    /// Turns events into queued invalidations; the engine's own events are not queued for
    /// `own`, the session that made them (see the module docs).
    fn dispatch(&self, events: &[Event], own: Option<u64>) {
        // (mount, handle) → directory path, once per batch.
        let mut cache: HashMap<(u64, &[u8]), Option<Vec<u8>>> = HashMap::new();
        let mut g = self.inner.lock();
        let Inner { fs, queues, .. } = &mut *g;
        for ev in events {
            if ev.overflow {
                tracing::warn!("fanotify queue overflowed: every watching session drops its caches");
                for m in fs.values() {
                    for w in &m.watchers {
                        queues.entry(w.sid).or_default().flush_all(w.export_id);
                    }
                }
                continue;
            }
            let Some(flags) = ev.flags() else { continue };
            let Some(m) = fs.get(&ev.fsid) else { continue };
            let skip = if ev.pid == self.pid { own } else { None };
            for w in &m.watchers {
                if w.no_echo && skip == Some(w.sid) {
                    continue;
                }
                let dir = cache
                    .entry((w.mnt, ev.handle.as_slice()))
                    .or_insert_with(|| resolve(w.mount_fd.as_raw_fd(), ev.handle_type, &ev.handle));
                let Some(dir) = dir else { continue };
                let Some(rel) = beneath(dir, &w.host_path) else { continue };
                let path = if ev.name == b"." {
                    rel.to_vec()
                } else if rel.is_empty() {
                    ev.name.clone()
                } else {
                    let mut p = Vec::with_capacity(rel.len() + 1 + ev.name.len());
                    p.extend_from_slice(rel);
                    p.push(b'/');
                    p.extend_from_slice(&ev.name);
                    p
                };
                queues.entry(w.sid).or_default().push(w.export_id, path, flags);
            }
        }
    }

    fn kick_cores(&self) {
        let Some(cores) = self.cores.get() else { return };
        for (fd, pending) in cores {
            pending.store(true, Ordering::Release);
            sys::eventfd_kick(fd.as_raw_fd());
        }
    }

    /// Up to `max` queued invalidations of session `sid`.
    fn take(&self, sid: u64, max: usize, out: &mut Vec<(u32, u32, Vec<u8>)>) {
        if let Some(q) = self.inner.lock().queues.get_mut(&sid) {
            q.take(max, out);
        }
    }
}

/// `dir` relative to `root` when it is `root` or beneath it.
fn beneath<'a>(dir: &'a [u8], root: &[u8]) -> Option<&'a [u8]> {
    let rest = dir.strip_prefix(root)?;
    if rest.is_empty() {
        return Some(rest);
    }
    if root == b"/" {
        return Some(rest);
    }
    rest.strip_prefix(b"/")
}

/// The HOST path of the directory a file handle names (None: gone, or unreachable).
fn resolve(mount_fd: RawFd, handle_type: i32, handle: &[u8]) -> Option<Vec<u8>> {
    let hdr = std::mem::size_of::<libc::file_handle>();
    // u64 storage keeps the struct aligned.
    let mut storage = vec![0u64; (hdr + handle.len()).div_ceil(8)];
    let fh: *mut libc::file_handle = storage.as_mut_ptr().cast();
    // SAFETY: storage holds the header plus `handle.len()` bytes, suitably aligned; the
    // handle bytes go right after the header (its flexible array member).
    unsafe {
        (*fh).handle_bytes = handle.len() as u32;
        (*fh).handle_type = handle_type;
        std::ptr::copy_nonoverlapping(handle.as_ptr(), fh.cast::<u8>().add(hdr), handle.len());
    }
    // SAFETY: a well-formed file_handle; the result is a new descriptor or -1.
    let fd = unsafe { libc::open_by_handle_at(mount_fd, fh, libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let p = sys::fd_real_path(fd.as_raw_fd()).ok()?;
    // A directory removed since: its path is "… (deleted)"; its parent's event covers it.
    if p.ends_with(b" (deleted)") || p.first() != Some(&b'/') {
        return None;
    }
    Some(p)
}

/// Sends the queued invalidations of this core's connections (called when its wake-up
/// eventfd fires). Only connections that agreed on `feat::INVAL`.
pub(crate) fn drain(core: &mut Reactor) {
    let Some(n) = core.shared.notify.clone() else { return };
    let Some(cores) = n.cores.get() else { return };
    let Some((wake, pending)) = cores.get(core.idx) else { return };
    if !pending.swap(false, Ordering::AcqRel) {
        return;
    }
    let targets: Vec<(usize, u64)> = core
        .conns
        .iter()
        .filter(|(_, c)| {
            !c.closing && c.shared.features.load(Ordering::Relaxed) & feat::INVAL != 0 && c.tx_queued() < TX_LIMIT
        })
        .filter_map(|(k, c)| c.session.as_ref().map(|s| (k, s.id)))
        .collect();
    let mut batch = Vec::new();
    let mut more = false;
    for (key, sid) in targets {
        batch.clear();
        n.take(sid, MAX_PER_DRAIN, &mut batch);
        more |= batch.len() == MAX_PER_DRAIN;
        for (export, flags, path) in &batch {
            let m = InvalMsg { export: *export, flags: *flags, path: Path(path) };
            core.send_frame(key, FrameHeader::message(Op::INVAL, 0, 0), &m);
        }
    }
    if more {
        pending.store(true, Ordering::Release);
        sys::eventfd_kick(wake.as_raw_fd());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_coalesces_and_overflows_to_flush() {
        let mut q = Queue::default();
        q.push(1, b"a".to_vec(), inval::ATTR);
        q.push(1, b"a".to_vec(), inval::DATA);
        q.push(1, b"b".to_vec(), inval::ENTRY);
        let mut out = Vec::new();
        q.take(10, &mut out);
        assert_eq!(out, vec![(1, inval::ATTR | inval::DATA, b"a".to_vec()), (1, inval::ENTRY, b"b".to_vec())]);
        assert!(q.is_empty());
        for i in 0..MAX_QUEUE + 1 {
            q.push(2, format!("f{i}").into_bytes(), inval::ATTR);
        }
        // While a flush is pending, paths of that export add nothing.
        q.push(2, b"x".to_vec(), inval::ATTR);
        out.clear();
        q.take(10, &mut out);
        assert_eq!(out, vec![(2, inval::ALL, Vec::new())]);
        assert!(q.is_empty());
    }

    #[test]
    fn the_only_maker_is_named_and_an_idle_one_forgotten() {
        let ttl = ORIGIN_TTL.as_millis() as u64;
        let (a, b) = (Changes::default(), Changes::default());
        let both = |now| sole([(7, &a), (8, &b)].into_iter().filter(|(_, c)| c.active(now, ttl)).map(|(s, _)| s));
        assert_eq!(both(0), None, "no maker: the events are a HOST process's or nobody's");
        a.begin();
        a.begin();
        assert_eq!(both(0), Some(7));
        b.begin();
        assert_eq!(both(0), None, "two makers: nothing is withheld");
        b.end(0);
        assert_eq!(both(ttl / 2), None, "a maker counts for a while after its request");
        // 7 is still in flight long after it began: it stays; 8 ended long ago: gone.
        assert_eq!(both(ttl * 2), Some(7));
        a.end(ttl * 2);
        assert_eq!(both(ttl * 4), Some(7), "the second request of 7 is still in flight");
        a.end(ttl * 4);
        assert_eq!(both(ttl * 4), Some(7), "it just ended");
        assert_eq!(both(ttl * 5), None);
        // An end without a begin never underflows into "in flight".
        a.end(ttl * 5);
        assert!(!a.active(ttl * 7, ttl));
    }

    #[test]
    fn beneath_export() {
        assert_eq!(beneath(b"/srv/e", b"/srv/e"), Some(&b""[..]));
        assert_eq!(beneath(b"/srv/e/d", b"/srv/e"), Some(&b"d"[..]));
        assert_eq!(beneath(b"/srv/ex", b"/srv/e"), None);
        assert_eq!(beneath(b"/srv", b"/srv/e"), None);
        assert_eq!(beneath(b"/x", b"/"), Some(&b"x"[..]));
    }
}
