//! POSIX and flock locks through the engine (FUSE GETLK/SETLK/SETLKW, negotiated with
//! `FUSE_POSIX_LOCKS` and `FUSE_FLOCK_LOCKS`).
//!
//! The engine locks the HOST open file description of a handle (OFD byte-range locks,
//! see the engine's `fsops::locks`), while the kernel gives us locks per *lock owner*:
//! the process's file table for fcntl locks (POSIX: one owner's locks never conflict
//! with each other, whichever of its descriptors it used, and closing any of them drops
//! them all), the open file for OFD locks and flock. So this module keeps one engine
//! handle per (inode, lock owner), opened for locking only and never used for I/O: two
//! owners on this mount are two descriptions on the HOST and conflict with each other as
//! with other mounts and HOST processes; one owner's locks through two descriptors land
//! on one description and never conflict. FLUSH (a close(2) by the owner) closes the
//! owner's lock handle, which releases its locks as POSIX wants; RELEASE of a file
//! closes the lock handles used through it (flock and OFD owners). A killed holder's
//! descriptors are closed by its kernel, so its locks go too.
//!
//! flock(2) arrives as a SETLK/SETLKW with `FUSE_LK_FLOCK` whose owner is the open file
//! ([`Locks::flock`]): it is taken as a flock(2) lock (`LOCK_F_FLOCK`) on that owner's
//! HOST description, so it conflicts with flock on other mounts, with other open files
//! on this mount and with HOST flock(2), and, as locally, not with fcntl or OFD locks.
//! The kernel's RELEASE of the open file (`FUSE_RELEASE_FLOCK_UNLOCK`) closes the
//! owner's handle, which drops the lock.
//!
//! Differences from local locks (documented in the README):
//! - F_GETLK reports the pid of a HOST process holding a classic POSIX lock (which the
//!   DPU's kernel reads as one of its own pids: FUSE translates it through the mount's
//!   pid namespace); for any other holder (another mount, another owner on this mount, a
//!   HOST OFD lock) the pid is 0: client locks are OFD locks on the HOST, which have no
//!   pid (F_OFD_GETLK says -1), and FUSE's answer has no "no pid" value.
//! - The lock handle is opened with the caller's credentials by path, read-write when
//!   the caller may, else with the file's access mode; a file unlinked before its first
//!   lock cannot be locked (ENOENT).
//! - A flock or OFD lock is released by the RELEASE the kernel sends once the open file's
//!   last descriptor is closed, which it does after close(2) returned: another party may
//!   find it held for a moment after the close (LOCK_UN / F_UNLCK release at once).
//! - After an engine restart the session's locks are gone: the next lock request of an
//!   owner that held some fails with ENOLCK (never pretends it still holds them).
//!
//! Blocking waits (SETLKW) are answered from a thread of their own (at most
//! [`MAX_WAITS`], ENOLCK beyond), so a wait never holds a FUSE worker: the holder's
//! unlock on this mount always finds one. FUSE_INTERRUPT is answered ENOSYS (the kernel
//! then sends no more; see [`crate::kernel::filesystem::dispatch`]), so the waiting
//! thread watches the caller's pending signals (as [`crate::remote`] does) and sends the
//! engine CANCEL when one arrives: the caller gets EINTR.
//!
//! Shared mappings of files in use elsewhere: a read-write open of a regular file that
//! another client or a HOST process holds a lock on (one LOCK_GET on the new handle, so
//! F_OFD_GETLK on the HOST: every client's locks and HOST processes' fcntl/OFD locks)
//! is opened with direct I/O (`FOPEN_DIRECT_IO`, see [`Locks::shared_elsewhere`]): no page
//! cache, and the kernel refuses `mmap(MAP_SHARED)` of it with ENODEV (qtfs-fuse does not
//! ask for `FUSE_DIRECT_IO_ALLOW_MMAP`). Two page caches cannot be one shared memory:
//! a file used as shared memory by cooperating processes (sqlite's WAL index, `-shm`,
//! which they lock while mapped) would silently diverge. sqlite then fails cleanly
//! (SQLITE_IOERR_SHMMAP) on the second client before it writes. A file this mount
//! itself holds locks on keeps the decision made when this mount began to lock it
//! (processes of one mount share its page cache, so their mappings are coherent).
//!
//! That decision is made at open, so it cannot see a user that comes later: a HOST
//! process that maps the file after a client did, or two clients whose opens race
//! before either locks. For sqlite's wal-index the lock that makes the decision is
//! carried on the HOST too: sqlite's unix VFS (os_unix.c, `unixLockSharedMemory`) keeps
//! a lock on the `-shm` file's DMS byte ([`SHM_DMS`], 128) for as long as a connection
//! has the index open (it asks F_GETLK for a write lock first: none held means it is the
//! first user, which takes a write lock, truncates the index and goes down to a read
//! lock; a read lock held means it joins with a read lock; a write lock held means
//! SQLITE_BUSY). The DMS byte of a file named `*-shm` (requests for exactly that byte)
//! is therefore kept here for this mount's processes (`Dms`: owner → lock, conflicts
//! among them computed here), and while any of them holds it, the mount holds a *write*
//! lock on it on the HOST through a description of its own (the guard, one per file), so
//! every other party sees the index in exclusive use:
//! - a HOST process's sqlite gets SQLITE_BUSY, retries for about 10 s and fails with
//!   SQLITE_PROTOCOL ("locking protocol"), before it reads or writes;
//! - another client's open gets no page cache (the guard is a lock, see above), and its
//!   lock request fails: its sqlite re-opens the index and fails at its mapping
//!   (SQLITE_IOERR_SHMMAP). A process here whose own lock finds a user elsewhere is
//!   refused the same way: its request fails with EAGAIN (sqlite: SQLITE_BUSY) unless
//!   its descriptor has no page cache, which cannot map the file: that one is shown a
//!   read lock and granted one here only, so that its sqlite goes on to its `mmap`,
//!   which fails (SQLITE_IOERR_SHMMAP), instead of retrying SQLITE_BUSY for 10 s (and it
//!   is never told "unlocked", which would make it truncate the other user's index).
//!
//! A blocking request (SETLKW) for the DMS byte that cannot be granted at once fails
//! with ENOLCK (sqlite asks with F_SETLK). The guard is closed when the last holder here
//! unlocks or closes the file; like every lock it is lost with the session (engine
//! restart): processes that had mapped the index keep it, unguarded.
//!
//! Owns the (inode, owner) → lock handle table, the set of nodes opened uncached because
//! they were in use elsewhere, the file handles opened without page cache, and the DMS
//! state of this mount's `-shm` files.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::fences::Fences;
use crate::kernel::{Errno, ReplyEmpty, ReplyLock};
use parking_lot::Mutex;
use qtfs_client::{ClientError, Cred, Ops};
use qtfs_proto::consts::{self, open as oflags};
use qtfs_proto::*;

use crate::remote::{OpenFile, Remote, Retry, STEP, Wait, caller_signalled};

/// Lock waits (SETLKW) in progress at once; more are refused with ENOLCK.
pub const MAX_WAITS: usize = 64;

/// The kernel's "to the end of the file".
const OFFSET_MAX: u64 = i64::MAX as u64;

#[derive(Debug)]
struct Owned {
    handle: u64,
    epoch: u64,
    /// FUSE file handles the owner locked through (RELEASE of one drops the entry).
    fhs: Vec<u64>,
}

/// sqlite's DMS byte of a `-shm` file (os_unix.c: `UNIX_SHM_DMS`, after the 8 WAL lock
/// bytes at 120).
pub const SHM_DMS: u64 = 128;

/// A holder of the DMS byte on this mount.
#[derive(Debug)]
struct DmsHolder {
    ltype: u32,
    /// FUSE file handles it locked through (RELEASE of one drops it).
    fhs: Vec<u64>,
}

/// This mount's use of one `-shm` file's DMS byte (see the module docs).
#[derive(Debug, Default)]
struct Dms {
    /// Lock owner → its lock.
    holders: HashMap<u64, DmsHolder>,
    /// (handle, epoch) of the description holding the write lock on the HOST.
    guard: Option<(u64, u64)>,
}

/// The lock handles of this mount.
#[derive(Debug, Default)]
pub struct Locks {
    owners: Mutex<HashMap<(u64, u64), Owned>>,
    waits: Arc<AtomicUsize>,
    /// Nodes whose last check found them locked elsewhere (opened with direct I/O).
    uncached: Mutex<HashSet<u64>>,
    /// FUSE file handles opened without page cache (they cannot be mapped shared).
    nocache: Mutex<HashSet<u64>>,
    /// `-shm` files whose DMS byte a process here locks, by node.
    dms: Mutex<HashMap<u64, Dms>>,
    /// The kernel invalidations a granted lock makes, and the late ones it holds back.
    fences: Arc<Fences>,
}

fn to_errno(e: &ClientError) -> Errno {
    let n = e.errno();
    if n <= 0 { Errno::EIO } else { Errno::from_i32(n) }
}

fn wire_type(typ: i32) -> std::result::Result<u32, Errno> {
    match typ {
        libc::F_RDLCK => Ok(consts::LOCK_RD),
        libc::F_WRLCK => Ok(consts::LOCK_WR),
        libc::F_UNLCK => Ok(consts::LOCK_UN),
        _ => Err(Errno::EINVAL),
    }
}

fn local_type(t: u32) -> i32 {
    if t == consts::LOCK_RD { libc::F_RDLCK } else { libc::F_WRLCK }
}

/// (start, len) on the wire from the kernel's inclusive range.
fn range(start: u64, end: u64) -> (u64, u64) {
    if end >= OFFSET_MAX { (start, 0) } else { (start, end.saturating_sub(start).saturating_add(1)) }
}

/// A lock request as the file system receives it.
pub struct LockArgs<'a> {
    pub remote: &'a Remote,
    pub wait: Wait,
    pub cred: Cred,
    pub pid: u32,
    pub node: u64,
    pub fh: u64,
    pub file: Arc<OpenFile>,
    /// The file's current engine path (None: unlinked or not on the engine).
    pub path: Option<Vec<u8>>,
    pub path_of: Box<dyn Fn(u64) -> Option<Vec<u8>> + 'a>,
    pub owner: u64,
    /// To drop the kernel's cached pages and attributes of the file once a lock is
    /// taken (what NFS does): the previous holder may have changed it.
    pub notifier: Option<&'a crate::kernel::Notifier>,
}

impl Locks {
    /// The fences of this mount's locks, for the `qtfs-inval` thread ([`crate::fences`]).
    pub fn fences(&self) -> Arc<Fences> {
        self.fences.clone()
    }

    /// A lock was granted through `a`: the kernel drops what it cached of the file.
    fn granted(&self, a: &LockArgs<'_>) {
        if let Some(n) = a.notifier {
            self.fences.lock_taken(n, a.node);
        }
    }

    /// Is the regular file `node`, just opened read-write as engine `handle` (of session
    /// `epoch`), locked by another client or a HOST process? Then it must be opened with
    /// direct I/O, so that no shared mapping of it can diverge from theirs (see the
    /// module docs). While this mount holds locks on the node, the lock found could be
    /// its own: the decision made when it began to lock stands.
    pub fn shared_elsewhere(&self, remote: &Remote, node: u64, handle: u64, epoch: u64, path: &[u8]) -> bool {
        if self.dms.lock().get(&node).is_some_and(|d| d.guard.is_some_and(|(_, e)| e == remote.session.epoch())) {
            // This mount holds the `-shm` file's DMS byte on the HOST: nobody else uses
            // it as shared memory, and its processes share its page cache.
            self.uncached.lock().remove(&node);
            return false;
        }
        if self.owners.lock().keys().any(|(n, _)| *n == node) {
            return self.uncached.lock().contains(&node);
        }
        let held = match remote.conn_in(epoch).lock_get(handle, 0, 0, consts::LOCK_WR) {
            Ok(l) => l.ltype != consts::LOCK_UN,
            Err(e) => {
                tracing::debug!(node, "LOCK_GET for the page-cache decision failed: {e}");
                false
            }
        };
        let mut uncached = self.uncached.lock();
        if held {
            if uncached.insert(node) {
                tracing::info!(
                    path = %String::from_utf8_lossy(path),
                    "file is locked by another client or a HOST process: opened without page cache; \
                     shared mappings (mmap MAP_SHARED) of it are refused with ENODEV, as two page \
                     caches cannot be one shared memory (sqlite WAL across clients fails here)"
                );
            }
        } else {
            uncached.remove(&node);
        }
        held
    }

    /// File handle `fh` was opened; `nocache`: without page cache (FOPEN_DIRECT_IO).
    pub fn opened(&self, fh: u64, nocache: bool) {
        if nocache {
            self.nocache.lock().insert(fh);
        }
    }

    /// Is this request for the DMS byte of a sqlite `-shm` file (see the module docs)?
    fn is_dms(a: &LockArgs<'_>, start: u64, end: u64) -> bool {
        start == SHM_DMS && end == SHM_DMS && a.path.as_deref().is_some_and(|p| p.ends_with(b"-shm"))
    }

    /// GETLK of the DMS byte: this mount's other holders, else (when this mount does not
    /// hold the byte on the HOST) the HOST's view.
    fn dms_getlk(&self, a: &LockArgs<'_>, ltype: u32, reply: ReplyLock) {
        {
            let mut all = self.dms.lock();
            if let Some(d) = all.get_mut(&a.node) {
                drop_lost_guard(d, a.remote);
                let other = d
                    .holders
                    .iter()
                    .find(|(o, h)| **o != a.owner && (h.ltype == consts::LOCK_WR || ltype == consts::LOCK_WR));
                if let Some((_, h)) = other {
                    return reply.locked(SHM_DMS, SHM_DMS, local_type(h.ltype), 0);
                }
                if d.guard.is_some() {
                    return reply.locked(0, 0, libc::F_UNLCK, 0);
                }
            }
        }
        // Through the file's own description, which holds no locks.
        let get = |h: u64, epoch: u64| a.remote.conn_in(epoch).lock_get(h, SHM_DMS, 1, ltype);
        match a.remote.handle_op(&a.wait, &a.file, Retry::Idempotent, &a.path_of, get) {
            Ok(l) if l.ltype == consts::LOCK_UN => reply.locked(0, 0, libc::F_UNLCK, 0),
            Ok(l) => {
                // In use elsewhere. A descriptor that cannot map is shown a read lock, so
                // that its sqlite joins and fails at its mmap (module docs).
                let typ = if self.nocache.lock().contains(&a.fh) { libc::F_RDLCK } else { local_type(l.ltype) };
                reply.locked(SHM_DMS, SHM_DMS, typ, l.pid.max(0) as u32)
            }
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    /// SETLK/SETLKW of the DMS byte (module docs).
    fn dms_setlk(&self, a: &LockArgs<'_>, ltype: u32, sleep: bool, reply: ReplyEmpty) {
        let mut all = self.dms.lock();
        let d = all.entry(a.node).or_default();
        drop_lost_guard(d, a.remote);
        if ltype == consts::LOCK_UN {
            d.holders.remove(&a.owner);
            let guard = unused_guard(&mut all, a.node);
            drop(all);
            close_guard(a.remote, guard);
            return reply.ok();
        }
        let refused = Errno::from_i32(if sleep { libc::ENOLCK } else { libc::EAGAIN });
        if d.holders.iter().any(|(o, h)| *o != a.owner && (h.ltype == consts::LOCK_WR || ltype == consts::LOCK_WR)) {
            return reply.error(refused);
        }
        if d.guard.is_none() {
            match take_guard(a) {
                Ok(g) => d.guard = Some(g),
                Err(e) if e == Errno::EAGAIN => {
                    let path = a.path.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                    if ltype == consts::LOCK_RD && self.nocache.lock().contains(&a.fh) {
                        tracing::info!(
                            %path,
                            "sqlite index in use by another client or a HOST process: read lock granted on \
                             this mount only; the file has no page cache here, so its mapping fails"
                        );
                    } else {
                        tracing::warn!(
                            %path,
                            "sqlite index (WAL mode) in use by another client or a HOST process: refused \
                             (two page caches cannot be one shared memory; use rollback-journal mode to share \
                             a database across clients and the HOST)"
                        );
                        if d.holders.is_empty() {
                            all.remove(&a.node);
                        }
                        return reply.error(refused);
                    }
                }
                Err(e) => {
                    if d.holders.is_empty() {
                        all.remove(&a.node);
                    }
                    return reply.error(e);
                }
            }
        }
        let h = d.holders.entry(a.owner).or_insert_with(|| DmsHolder { ltype, fhs: Vec::new() });
        h.ltype = ltype;
        if !h.fhs.contains(&a.fh) {
            h.fhs.push(a.fh);
        }
        reply.ok()
    }

    /// The owner's lock handle and its epoch, opened if `create`.
    fn owner_handle(&self, a: &LockArgs<'_>, create: bool) -> std::result::Result<Option<(u64, u64)>, Errno> {
        {
            let mut owners = self.owners.lock();
            if let Some(o) = owners.get_mut(&(a.node, a.owner)) {
                if o.epoch != a.remote.session.epoch() {
                    // The engine lost the session, and the locks with it.
                    owners.remove(&(a.node, a.owner));
                    return Err(Errno::from_i32(libc::ENOLCK));
                }
                if !o.fhs.contains(&a.fh) {
                    o.fhs.push(a.fh);
                }
                return Ok(Some((o.handle, o.epoch)));
            }
        }
        if !create {
            return Ok(None);
        }
        let path = a.path.clone().ok_or(Errno::ENOENT)?;
        let mode = a.file.flags & oflags::ACCMODE;
        let open = |flags: u32| {
            a.remote.path_op(&a.wait, Retry::Idempotent, |export| a.remote.open(export, &path, flags, &a.cred))
        };
        let (h, epoch, _) = match open(oflags::RDWR) {
            Err(ClientError::Remote(libc::EACCES | libc::EPERM | libc::EROFS)) if mode != oflags::RDWR => open(mode),
            r => r,
        }
        .map_err(|e| to_errno(&e))?;
        let mut owners = self.owners.lock();
        if let Some(o) = owners.get(&(a.node, a.owner)) {
            // Another thread of the owner opened one meanwhile: keep that one.
            let kept = (o.handle, o.epoch);
            drop(owners);
            let _ = a.remote.session.submit_in_epoch(epoch, Op::CLOSE, &HandleReq { handle: h });
            return Ok(Some(kept));
        }
        owners.insert((a.node, a.owner), Owned { handle: h, epoch, fhs: vec![a.fh] });
        Ok(Some((h, epoch)))
    }

    /// GETLK.
    pub fn getlk(&self, a: &LockArgs<'_>, start: u64, end: u64, typ: i32, reply: ReplyLock) {
        let ltype = match wire_type(typ) {
            Ok(t) if t != consts::LOCK_UN => t,
            Ok(_) | Err(_) => return reply.error(Errno::EINVAL),
        };
        if Self::is_dms(a, start, end) {
            return self.dms_getlk(a, ltype, reply);
        }
        let (start, len) = range(start, end);
        let get = |handle: u64, epoch: u64| a.remote.conn_in(epoch).lock_get(handle, start, len, ltype);
        // Through the owner's own description (its own locks never conflict), or, when
        // it holds none, through the file's (which holds no locks).
        let r = match self.owner_handle(a, false) {
            Err(e) => return reply.error(e),
            Ok(Some((h, epoch))) => get(h, epoch),
            Ok(None) => a.remote.handle_op(&a.wait, &a.file, Retry::Idempotent, &a.path_of, get),
        };
        match r {
            Ok(l) if l.ltype == consts::LOCK_UN => reply.locked(0, 0, libc::F_UNLCK, 0),
            Ok(l) => {
                let typ = if l.ltype == consts::LOCK_RD { libc::F_RDLCK } else { libc::F_WRLCK };
                let end = if l.len == 0 { OFFSET_MAX } else { l.start.saturating_add(l.len - 1) };
                reply.locked(l.start, end, typ, l.pid.max(0) as u32)
            }
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    /// SETLK / SETLKW.
    pub fn setlk(&self, a: &LockArgs<'_>, start: u64, end: u64, typ: i32, sleep: bool, reply: ReplyEmpty) {
        let ltype = match wire_type(typ) {
            Ok(t) => t,
            Err(e) => return reply.error(e),
        };
        if Self::is_dms(a, start, end) {
            return self.dms_setlk(a, ltype, sleep, reply);
        }
        let (start, len) = range(start, end);
        let (handle, epoch) = match self.owner_handle(a, ltype != consts::LOCK_UN) {
            Ok(Some(x)) => x,
            // Unlocking what was never locked.
            Ok(None) => return reply.ok(),
            Err(e) => return reply.error(e),
        };
        let r = a.remote.conn_in(epoch).try_lock(handle, start, len, ltype);
        match r {
            Ok(()) => {
                if ltype != consts::LOCK_UN {
                    self.granted(a);
                }
                reply.ok()
            }
            Err(ClientError::Remote(libc::EAGAIN)) if sleep => {
                self.wait_for(a, LockReq { handle, start, len, ltype, flags: consts::LOCK_F_WAIT }, epoch, reply)
            }
            Err(ClientError::Remote(libc::ESTALE)) => reply.error(Errno::from_i32(libc::ENOLCK)),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    /// flock(2) (SETLK/SETLKW with `FUSE_LK_FLOCK`): a whole-file flock lock on the
    /// owner's (the open file's) HOST description; a wait as [`Locks::setlk`]'s.
    pub fn flock(&self, a: &LockArgs<'_>, typ: i32, sleep: bool, reply: ReplyEmpty) {
        let ltype = match wire_type(typ) {
            Ok(t) => t,
            Err(e) => return reply.error(e),
        };
        let (handle, epoch) = match self.owner_handle(a, ltype != consts::LOCK_UN) {
            Ok(Some(x)) => x,
            Ok(None) => return reply.ok(),
            Err(e) => return reply.error(e),
        };
        let r = a.remote.conn_in(epoch).try_flock(handle, ltype);
        match r {
            Ok(_) => {
                if ltype != consts::LOCK_UN {
                    self.granted(a);
                }
                reply.ok()
            }
            Err(ClientError::Remote(libc::EAGAIN)) if sleep => {
                let flags = consts::LOCK_F_FLOCK | consts::LOCK_F_WAIT;
                self.wait_for(a, LockReq { handle, start: 0, len: 0, ltype, flags }, epoch, reply)
            }
            Err(ClientError::Remote(libc::ESTALE)) => reply.error(Errno::from_i32(libc::ENOLCK)),
            Err(e) => reply.error(to_errno(&e)),
        }
    }

    /// A SETLKW that found the lock taken: the engine waits for it (LOCK_F_WAIT) while a
    /// thread of ours waits for the answer, watching the caller's signals.
    fn wait_for(&self, a: &LockArgs<'_>, req: LockReq, epoch: u64, reply: ReplyEmpty) {
        if self.waits.fetch_add(1, Ordering::AcqRel) >= MAX_WAITS {
            self.waits.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("{MAX_WAITS} lock waits in progress; refusing another with ENOLCK");
            return reply.error(Errno::from_i32(libc::ENOLCK));
        }
        let session = a.remote.session.clone();
        let pending = session.submit_in_epoch(epoch, Op::LOCK_SET, &req);
        let waits = self.waits.clone();
        let pid = a.pid;
        let notifier = a.notifier.cloned();
        let fences = self.fences.clone();
        let node = a.node;
        let spawned = std::thread::Builder::new().name("qtfs-lockwait".into()).spawn(move || {
            let mut p = match pending {
                Ok(p) => p,
                Err(e) => {
                    waits.fetch_sub(1, Ordering::AcqRel);
                    return reply.error(to_errno(&e));
                }
            };
            let mut cancelled = false;
            let r = loop {
                if let Some(r) = p.wait_at_most(STEP) {
                    break r;
                }
                if !cancelled && caller_signalled(pid) {
                    cancelled = true;
                    let _ = session.cancel(&p);
                }
            };
            waits.fetch_sub(1, Ordering::AcqRel);
            match r {
                Ok(_) => {
                    if let Some(n) = notifier {
                        fences.lock_taken(&n, node);
                    }
                    reply.ok()
                }
                Err(ClientError::Remote(libc::ESTALE)) => reply.error(Errno::from_i32(libc::ENOLCK)),
                Err(e) => reply.error(to_errno(&e)),
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a lock-wait thread: {e}");
            // The reply moved into the closure that never ran; the kernel gets EIO
            // when an unanswered reply is dropped.
        }
    }

    /// FLUSH by `owner` (a close(2)): POSIX drops all its locks on the file.
    pub fn flush(&self, remote: &Remote, node: u64, owner: u64) {
        let o = self.owners.lock().remove(&(node, owner));
        if let Some(o) = o {
            close(remote, &o);
        }
        let guard = {
            let mut all = self.dms.lock();
            let held = all.get_mut(&node).is_some_and(|d| d.holders.remove(&owner).is_some());
            if held { unused_guard(&mut all, node) } else { None }
        };
        close_guard(remote, guard);
    }

    /// RELEASE of file handle `fh`: the owners that locked through it (flock, OFD)
    /// lose their locks.
    pub fn release(&self, remote: &Remote, fh: u64) {
        let gone: Vec<Owned> = {
            let mut owners = self.owners.lock();
            let keys: Vec<(u64, u64)> = owners.iter().filter(|(_, o)| o.fhs.contains(&fh)).map(|(k, _)| *k).collect();
            keys.iter().filter_map(|k| owners.remove(k)).collect()
        };
        for o in &gone {
            close(remote, o);
        }
        self.nocache.lock().remove(&fh);
        let guards: Vec<(u64, u64)> = {
            let mut all = self.dms.lock();
            let mut nodes = Vec::new();
            for (node, d) in all.iter_mut() {
                let before = d.holders.len();
                d.holders.retain(|_, h| !h.fhs.contains(&fh));
                if d.holders.len() != before {
                    nodes.push(*node);
                }
            }
            nodes.into_iter().filter_map(|n| unused_guard(&mut all, n)).collect()
        };
        for g in guards {
            close_guard(remote, Some(g));
        }
    }
}

/// Opens the guard of the `-shm` file of `a` (read-write, with the caller's credentials)
/// and takes the write lock on its DMS byte: (handle, epoch), or EAGAIN when another
/// client or a HOST process holds the byte.
fn take_guard(a: &LockArgs<'_>) -> std::result::Result<(u64, u64), Errno> {
    let path = a.path.clone().ok_or(Errno::ENOENT)?;
    let (h, epoch, _) = a
        .remote
        .path_op(&a.wait, Retry::Idempotent, |export| a.remote.open(export, &path, oflags::RDWR, &a.cred))
        .map_err(|e| to_errno(&e))?;
    match a.remote.conn_in(epoch).try_lock(h, SHM_DMS, 1, consts::LOCK_WR) {
        Ok(()) => Ok((h, epoch)),
        Err(e) => {
            close_guard(a.remote, Some((h, epoch)));
            Err(match e {
                ClientError::Remote(libc::EAGAIN) => Errno::EAGAIN,
                e => to_errno(&e),
            })
        }
    }
}

/// Forgets a guard whose session the engine lost (its lock went with it).
fn drop_lost_guard(d: &mut Dms, remote: &Remote) {
    if d.guard.is_some_and(|(_, e)| e != remote.session.epoch()) {
        tracing::warn!("the engine lost the session: a sqlite index's guard lock is gone");
        d.guard = None;
    }
}

/// When `node` has no holder left here: forgets it and returns its guard to close.
fn unused_guard(all: &mut HashMap<u64, Dms>, node: u64) -> Option<(u64, u64)> {
    if all.get(&node).is_some_and(|d| d.holders.is_empty()) {
        return all.remove(&node).and_then(|d| d.guard);
    }
    None
}

/// Closes a guard handle (its lock goes with it) and waits for the engine.
fn close_guard(remote: &Remote, guard: Option<(u64, u64)>) {
    if let Some((handle, epoch)) = guard {
        close(remote, &Owned { handle, epoch, fhs: Vec::new() });
    }
}

/// Closes a lock handle and waits for the engine, so the locks are released before the
/// close(2) that asked for it returns.
fn close(remote: &Remote, o: &Owned) {
    if o.epoch != remote.session.epoch() {
        return;
    }
    if let Err(e) = remote.conn_in(o.epoch).close_handle(o.handle) {
        tracing::debug!("closing a lock handle: {e}");
    }
}
