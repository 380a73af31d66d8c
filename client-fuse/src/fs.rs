//! The FUSE operations: each kernel request becomes one engine request (two for a few),
//! made with the caller's credentials on a FUSE worker thread that blocks until the
//! engine answers. Many workers (`-o threads`) give many requests in flight; the engine
//! session pipelines them over several connections.
//!
//! Owns the open-file and open-directory tables; names and node ids live in
//! [`crate::nodes`], the session and restart rules in [`crate::remote`], the page-cache
//! bypass for pseudo file systems in [`crate::pseudo`], and `-o proc`'s routing of
//! paths to the HOST or the local `/proc` in [`crate::procfs`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyLock, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use parking_lot::{Mutex, RwLock};
use qtfs_client::{ClientError, Cred, DirEntryOwned, Result, SetAttr, SetTime};
use qtfs_proto::consts::open as oflags;
use qtfs_proto::{Attr, MAX_IO};

use crate::creds::GroupsCache;
use crate::nodes::{Key, Nodes, ROOT};
use crate::procfs::{LOCAL_DEV_TAG, ProcConfig, ProcMode, Route, volatile_root_name};
use crate::pseudo::PseudoDevs;
use crate::relay::{self, Relay};
use crate::remote::{OpenFile, Remote, Retry, Wait};

/// The largest READ/WRITE the kernel sends us (the engine's limit, 1 MiB).
pub const MAX_RW: u32 = MAX_IO as u32;

/// Cache and behaviour settings of a mount.
#[derive(Debug, Clone)]
pub struct FsConfig {
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
    pub negative_ttl: Duration,
    pub writeback_cache: bool,
    pub read_only: bool,
    /// The kernel checks permissions (`default_permissions`): what reaches us passed them.
    pub default_permissions: bool,
    /// `-o proc`: process redirection (see [`crate::procfs`]).
    pub proc: Option<ProcConfig>,
    /// Process numbers written into HOST cgroups are translated (see [`crate::cgroups`]);
    /// None: written as they are (`-o cgroup_pids=verbatim`).
    pub cgroup_pids: Option<ProcConfig>,
    /// `-o relay`: HOST character devices and FIFOs relayed (see [`crate::relay`]).
    pub relay: bool,
}

/// An open directory: a snapshot of its entries taken at the first READDIR(offset 0).
/// Offsets handed to the kernel are positions in the snapshot (1 = after `.`, 2 = after
/// `..`, k + 3 = after entry k): engine cookies cannot be mixed with synthesised `.`/`..`.
struct DirHandle {
    node: u64,
    entries: Mutex<Option<Arc<Vec<DirEntryOwned>>>>,
}

/// The file system.
pub struct QtfsFs {
    remote: Arc<Remote>,
    nodes: Arc<Mutex<Nodes>>,
    files: RwLock<HashMap<u64, Arc<OpenFile>>>,
    /// Lock handles per (inode, lock owner): [`crate::locks`].
    locks: crate::locks::Locks,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next_fh: AtomicU64,
    groups: GroupsCache,
    cfg: FsConfig,
    /// HOST devices known to hold pseudo file systems (their files use direct I/O).
    pseudo: Arc<PseudoDevs>,
    proc: Option<ProcMode>,
    /// Pid writes into HOST cgroups ([`crate::cgroups`]).
    cgroup_pids: Option<Arc<crate::cgroups::PidWrites>>,
    /// Set once the FUSE session exists; used to tell the kernel about attribute changes
    /// it cannot know of.
    notifier: Arc<OnceLock<fuser::Notifier>>,
    /// Open relayed files (`-o relay`), by file handle.
    relays: Mutex<HashMap<u64, Arc<Relay>>>,
}

fn key_of(a: &Attr) -> Key {
    (libc::makedev(a.dev_major, a.dev_minor), a.ino)
}

fn time(sec: i64, nsec: u32) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

fn kind_of(mode: u32) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFSOCK => FileType::Socket,
        _ => FileType::RegularFile,
    }
}

/// Engine attributes as FUSE attributes of node `id`.
pub fn to_file_attr(id: u64, a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(id),
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime_sec, a.atime_nsec),
        mtime: time(a.mtime_sec, a.mtime_nsec),
        ctime: time(a.ctime_sec, a.ctime_nsec),
        crtime: time(a.btime_sec, a.btime_nsec),
        kind: kind_of(a.mode),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: libc::makedev(a.rdev_major, a.rdev_minor) as u32,
        blksize: if a.blksize == 0 { 4096 } else { a.blksize },
        flags: 0,
    }
}

fn errno(e: &ClientError) -> Errno {
    let n = e.errno();
    if n <= 0 { Errno::EIO } else { Errno::from_i32(n) }
}

fn stamp(a: &Attr) -> (i64, u32, u64) {
    (a.mtime_sec, a.mtime_nsec, a.size)
}

fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(st) => match st.duration_since(UNIX_EPOCH) {
            Ok(d) => SetTime::At(d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                // Before 1970. fuser 0.18 turns the kernel's (sec < 0, nsec) into
                // EPOCH - (|sec|, nsec) rather than EPOCH - |sec| + nsec, so the pair it
                // got is recovered as (-|sec|, nsec). The timestamp test pins this down.
                let d = e.duration();
                SetTime::At(-(d.as_secs() as i64), d.subsec_nanos())
            }
        },
    })
}

impl QtfsFs {
    pub fn new(remote: Arc<Remote>, root: &Attr, cfg: FsConfig) -> QtfsFs {
        let nodes = Arc::new(Mutex::new(Nodes::new(key_of(root))));
        let n2 = nodes.clone();
        let pseudo = Arc::new(PseudoDevs::default());
        let p2 = pseudo.clone();
        remote.set_on_remount(Box::new(move |root: &Attr| {
            n2.lock().rekey_root(key_of(root));
            p2.clear();
        }));
        let proc = cfg.proc.clone().map(ProcMode::new);
        let cgroup_pids = cfg.cgroup_pids.clone().map(|c| Arc::new(crate::cgroups::PidWrites::new(c)));
        QtfsFs {
            remote,
            nodes,
            files: RwLock::new(HashMap::new()),
            locks: crate::locks::Locks::default(),
            dirs: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            groups: GroupsCache::default(),
            cfg,
            pseudo,
            proc,
            cgroup_pids,
            notifier: Arc::new(OnceLock::new()),
            relays: Mutex::new(HashMap::new()),
        }
    }

    /// Where the daemon puts the session's notifier once it exists.
    pub fn notifier_slot(&self) -> Arc<OnceLock<fuser::Notifier>> {
        self.notifier.clone()
    }

    /// The node table, for [`crate::inval`] (which locks it only to look paths up).
    pub fn nodes_handle(&self) -> Arc<Mutex<Nodes>> {
        self.nodes.clone()
    }

    fn cred(&self, req: &Request) -> Cred {
        self.groups.cred(req.uid(), req.gid(), req.pid())
    }

    /// How long this request may wait for a restarted engine, and whose signals end
    /// the wait (see [`crate::remote`]).
    fn wait(&self, req: &Request) -> Wait {
        self.remote.wait_for(req.pid())
    }

    fn path(&self, id: u64) -> std::result::Result<Vec<u8>, Errno> {
        self.nodes.lock().path(id).ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: u64, name: &OsStr) -> std::result::Result<Vec<u8>, Errno> {
        let name = name.as_bytes();
        if name.len() > qtfs_proto::MAX_NAME {
            return Err(Errno::ENAMETOOLONG);
        }
        self.nodes.lock().child_path(parent, name).ok_or(Errno::ENOENT)
    }

    /// What a lock request needs (see [`crate::locks`]).
    fn lock_args<'a>(
        &'a self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        owner: LockOwner,
    ) -> std::result::Result<crate::locks::LockArgs<'a>, Errno> {
        let file = self.file(fh)?;
        let path = self.nodes.lock().path(ino.0).and_then(|p| match self.route(p) {
            Route::Remote(p) => Some(p),
            Route::Local(_) | Route::SelfLink(_) => None,
        });
        Ok(crate::locks::LockArgs {
            remote: &self.remote,
            wait: self.wait(req),
            cred: self.cred(req),
            pid: req.pid(),
            node: ino.0,
            fh: fh.0,
            file,
            path,
            path_of: Box::new(self.path_fn()),
            owner: owner.0,
            notifier: self.notifier.get(),
        })
    }

    fn file(&self, fh: FileHandle) -> std::result::Result<Arc<OpenFile>, Errno> {
        self.files.read().get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    /// The engine path of node `id` (for re-opening a file after an engine restart).
    fn path_fn(&self) -> impl Fn(u64) -> Option<Vec<u8>> + '_ {
        |id| {
            let p = self.nodes.lock().path(id)?;
            match self.route(p) {
                Route::Remote(p) => Some(p),
                Route::Local(_) | Route::SelfLink(_) => None,
            }
        }
    }

    /// Where `path` goes: always the engine unless `-o proc` says otherwise.
    fn route(&self, path: Vec<u8>) -> Route {
        match &self.proc {
            Some(p) => p.route(&path),
            None => Route::Remote(path),
        }
    }

    /// The engine path for an operation only the HOST side has (creating, removing,
    /// renaming, extended attributes): the DPU's own processes are not changed that way.
    fn remote_only(&self, path: Vec<u8>) -> std::result::Result<Vec<u8>, Errno> {
        match self.route(path) {
            Route::Remote(p) => Ok(p),
            Route::Local(_) | Route::SelfLink(_) => Err(Errno::EACCES),
        }
    }

    /// `-o proc`'s local side, or ENOENT without it (not reached: routes are only
    /// local with it).
    fn local_io<T>(&self, f: impl FnOnce(&ProcMode) -> std::io::Result<T>) -> Result<T> {
        let pm = self.proc.as_ref().ok_or(ClientError::Remote(libc::ENOENT))?;
        f(pm).map_err(|e| ClientError::Remote(e.raw_os_error().unwrap_or(libc::EIO)))
    }

    /// Is `path` a name in the root that the kernel must not cache (`-o proc`)?
    fn volatile(&self, path: &[u8]) -> bool {
        self.proc.is_some() && !path.contains(&b'/') && volatile_root_name(path)
    }

    /// (attribute, entry) timeouts for `path`.
    fn ttls(&self, path: &[u8]) -> (Duration, Duration) {
        if self.volatile(path) { (Duration::ZERO, Duration::ZERO) } else { (self.cfg.attr_ttl, self.cfg.entry_ttl) }
    }

    /// FUSE attributes of node `id`: [`to_file_attr`], with `-o relay`'s presentation.
    fn fattr(&self, id: u64, a: &Attr) -> FileAttr {
        let mut fa = to_file_attr(id, a);
        if self.cfg.relay && relay::is_relayed(a.mode) {
            relay::present(&mut fa);
        }
        fa
    }

    /// Replies with a new entry for `parent/name` and counts the lookup.
    fn entry(&self, parent: u64, name: &[u8], a: &Attr, reply: ReplyEntry) {
        let (attr_ttl, entry_ttl) =
            if parent == ROOT { self.ttls(name) } else { (self.cfg.attr_ttl, self.cfg.entry_ttl) };
        let id = self.nodes.lock().link(parent, name, key_of(a));
        reply.entry_with_ttls(&attr_ttl, &entry_ttl, &self.fattr(id, a), Generation(0));
    }

    /// Should the file `path` with attributes `a` be opened with direct I/O? Yes for the
    /// regular files of pseudo file systems (see [`crate::pseudo`]): the type of the
    /// file system on the file's HOST device, asked once per device.
    fn direct_io(&self, w: &Wait, path: &[u8], a: &Attr, cred: &Cred) -> bool {
        if a.mode & libc::S_IFMT != libc::S_IFREG {
            return false;
        }
        if a.dev_major & LOCAL_DEV_TAG != 0 {
            return true;
        }
        let dev = libc::makedev(a.dev_major, a.dev_minor);
        if let Some(v) = self.pseudo.known(dev) {
            return v;
        }
        match self.remote.path_op(w, Retry::Idempotent, |ex| self.remote.statfs_at(ex, path, cred)) {
            Ok(st) => self.pseudo.record(dev, st.fs_type),
            Err(e) => {
                // Not remembered: the next open asks again.
                tracing::debug!(dev, "STATFS for the page-cache decision failed: {e}");
                false
            }
        }
    }

    /// A relayed file was opened as `first` with flags `used`: its handle must be
    /// non-blocking (every wait happens in [`crate::relay`]), so unless it is, the object is
    /// opened again with O_NONBLOCK (the first open did whatever waiting the caller's
    /// flags asked for: a FIFO's other end) and the first handle closed.
    fn open_relayed(&self, w: &Wait, path: &[u8], node: u64, first: (u64, u64), used: u32, cred: &Cred) -> Result<u64> {
        let f0 = OpenFile::new(node, used, first.0, first.1);
        let file = if used & oflags::NONBLOCK != 0 {
            f0
        } else {
            let nb = used | oflags::NONBLOCK;
            let r = self.remote.path_op(w, Retry::Idempotent, |ex| self.remote.open(ex, path, nb, cred));
            self.remote.close(&f0);
            let (h, epoch, _) = r?;
            OpenFile::new(node, nb, h, epoch)
        };
        let fh = self.add_file(file);
        self.relays.lock().insert(fh, Arc::new(Relay::default()));
        Ok(fh)
    }

    fn relay_of(&self, fh: FileHandle) -> Option<Arc<Relay>> {
        if !self.cfg.relay {
            return None;
        }
        self.relays.lock().get(&fh.0).cloned()
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// Open flags for the engine from the kernel's, and whether a write-only open was
    /// upgraded to read-write.
    fn wire_open_flags(&self, flags: i32) -> (u32, bool) {
        let mut f = oflags::from_linux(flags);
        // O_DIRECT is the kernel's business here (FUSE direct I/O); the HOST file system
        // (tmpfs, for one) may not support it.
        f &= !(oflags::DIRECT | oflags::CREAT | oflags::EXCL | oflags::NOCTTY);
        if self.cfg.writeback_cache {
            // With a writeback cache the kernel reads pages around partial writes and
            // does appends itself.
            f &= !oflags::APPEND;
            if f & oflags::ACCMODE == oflags::WRONLY {
                return ((f & !oflags::ACCMODE) | oflags::RDWR, true);
            }
        }
        (f, false)
    }

    fn open_flags_reply(&self, node: u64, a: &Attr, direct: bool) -> FopenFlags {
        let mut fl = FopenFlags::empty();
        if direct {
            fl |= FopenFlags::FOPEN_DIRECT_IO;
        } else if self.nodes.lock().keep_cache(node, stamp(a)) {
            fl |= FopenFlags::FOPEN_KEEP_CACHE;
        }
        if !self.cfg.writeback_cache {
            // Nothing is buffered here: a close needs no FLUSH round trip.
            fl |= FopenFlags::FOPEN_NOFLUSH;
        }
        fl
    }

    fn add_file(&self, f: OpenFile) -> u64 {
        let fh = self.new_fh();
        self.files.write().insert(fh, Arc::new(f));
        fh
    }

    /// Opens `path`; with a writeback cache a write-only open upgraded to read-write
    /// (see `wire_open_flags`) that the caller may not read falls back to write-only.
    /// Returns (handle, epoch, attributes, flags used).
    fn do_open(&self, w: &Wait, path: &[u8], flags: u32, upgraded: bool, cred: &Cred) -> Result<(u64, u64, Attr, u32)> {
        let r = self.remote.path_op(w, Retry::Idempotent, |ex| self.remote.open(ex, path, flags, cred));
        match r {
            Ok((h, epoch, a)) => Ok((h, epoch, a, flags)),
            Err(ClientError::Remote(libc::EACCES)) if upgraded => {
                let wo = (flags & !oflags::ACCMODE) | oflags::WRONLY;
                let (h, epoch, a) =
                    self.remote.path_op(w, Retry::Idempotent, |ex| self.remote.open(ex, path, wo, cred))?;
                Ok((h, epoch, a, wo))
            }
            Err(e) => Err(e),
        }
    }

    fn load_dir(&self, w: &Wait, d: &DirHandle, plus: bool, cred: &Cred) -> Result<Arc<Vec<DirEntryOwned>>> {
        let path = self.nodes.lock().path(d.node).ok_or(ClientError::Remote(libc::ENOENT))?;
        let list = match self.route(path) {
            Route::Remote(p) => {
                let host =
                    self.remote.path_op(w, Retry::Idempotent, |ex| self.remote.readdir_all(ex, &p, plus, cred))?;
                match &self.proc {
                    Some(pm) if d.node == ROOT => pm.merge_root(host, plus),
                    _ => host,
                }
            }
            Route::Local(lp) => self.local_io(|pm| pm.local_dir(&lp, plus))?,
            Route::SelfLink(_) => return Err(ClientError::Remote(libc::ENOTDIR)),
        };
        let all = Arc::new(list);
        *d.entries.lock() = Some(all.clone());
        Ok(all)
    }

    fn dir_entries(
        &self,
        fh: FileHandle,
        offset: u64,
        plus: bool,
        req: &Request,
    ) -> std::result::Result<(Arc<DirHandle>, Arc<Vec<DirEntryOwned>>), Errno> {
        let d = self.dirs.lock().get(&fh.0).cloned().ok_or(Errno::EBADF)?;
        let cached = d.entries.lock().clone();
        let need_attrs = plus && cached.as_ref().is_some_and(|e| e.first().is_some_and(|x| x.attr.is_none()));
        let entries = match cached {
            Some(e) if offset != 0 && !need_attrs => e,
            _ => self.load_dir(&self.wait(req), &d, plus, &self.cred(req)).map_err(|e| errno(&e))?,
        };
        Ok((d, entries))
    }

    /// Clears set-user-ID (and set-group-ID with group execute) after a write by a
    /// caller without CAP_FSETID, as a local file system does. The kernel tells us when
    /// (FUSE_WRITE_KILL_SUIDGID); the change is made with root's authority, like the
    /// kernel's own, since the writer need not own the file.
    fn kill_suid(&self, w: &Wait, f: &OpenFile) {
        let r = self.remote.handle_op(w, f, Retry::Idempotent, self.path_fn(), |h, ep| {
            let a = self.remote.fgetattr(ep, h)?;
            let mut kill = libc::S_ISUID;
            if a.mode & libc::S_IXGRP != 0 {
                kill |= libc::S_ISGID;
            }
            if a.mode & kill == 0 {
                return Ok(());
            }
            let set = SetAttr { mode: Some(a.mode & 0o7777 & !kill), ..Default::default() };
            self.remote.fsetattr(ep, h, &set, &Cred::root())?;
            // The kernel still caches the old mode: drop its attributes (offset -1: not
            // the pages, which the write in progress holds locked).
            if let Some(n) = self.notifier.get() {
                let _ = n.inval_inode(INodeNo(f.node), -1, 0);
            }
            Ok(())
        });
        if let Err(e) = r {
            tracing::warn!(node = f.node, "clearing set-id bits after a write failed: {e}");
        }
    }

    /// A write into a HOST cgroup's pid file (see [`crate::cgroups`]); None for others.
    fn cgroup_write(&self, w: &Wait, node: u64, writer: u32, data: &[u8]) -> Option<crate::cgroups::Intercept> {
        let pw = self.cgroup_pids.as_ref()?;
        let path = self.nodes.lock().path(node)?;
        let path = match self.route(path) {
            Route::Remote(p) => p,
            Route::Local(_) | Route::SelfLink(_) => return None,
        };
        crate::cgroups::is_pid_file(&path).then(|| pw.intercept(&self.remote, w, &path, writer, data))
    }

    /// d_ino of `..`: the directory's parent if known (the root is its own parent).
    fn parent_of(&self, node: u64) -> u64 {
        self.nodes.lock().parent(node).unwrap_or(ROOT)
    }
}

impl Filesystem for QtfsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_RW);
        let _ = config.set_max_readahead(MAX_RW);
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        let _ = config.set_time_granularity(Duration::from_nanos(1));
        let mut want = InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_AUTO_INVAL_DATA
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_ASYNC_DIO
            // We clear set-user/group-id bits on writes ourselves (the kernel says when),
            // so the kernel need not ask for security.capability before every write.
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2
            // Locks are taken on the HOST through the engine (crate::locks).
            | InitFlags::FUSE_POSIX_LOCKS
            | InitFlags::FUSE_FLOCK_LOCKS;
        if self.cfg.writeback_cache {
            want |= InitFlags::FUSE_WRITEBACK_CACHE;
        }
        if self.proc.is_none() {
            // With -o proc, `self` is another symlink for every reader: never cached.
            want |= InitFlags::FUSE_CACHE_SYMLINKS;
        }
        for f in want.iter() {
            if config.add_capabilities(f).is_err() {
                tracing::debug!("kernel lacks FUSE capability {f:?}");
                if f == InitFlags::FUSE_WRITEBACK_CACHE {
                    self.cfg.writeback_cache = false;
                }
            }
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let path = match self.child(parent.0, name) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let r = match self.route(path) {
            Route::Remote(path) => {
                let cred = self.cred(req);
                self.remote.path_op(&self.wait(req), Retry::Idempotent, |ex| self.remote.lookup(ex, &path, &cred))
            }
            Route::Local(lp) => self.local_io(|pm| pm.local_attr(&lp)),
            Route::SelfLink(thread) => Ok(ProcMode::self_attr(thread)),
        };
        match r {
            Ok(a) => self.entry(parent.0, name.as_bytes(), &a, reply),
            Err(ClientError::Remote(libc::ENOENT)) => {
                self.nodes.lock().unlink(parent.0, name.as_bytes());
                if self.cfg.negative_ttl.is_zero() {
                    reply.error(Errno::ENOENT)
                } else {
                    // Node id 0 with a timeout: the kernel caches the absence.
                    let a = to_file_attr(0, &Attr::default());
                    reply.entry_with_ttls(&Duration::ZERO, &self.cfg.negative_ttl, &a, Generation(0));
                }
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.nodes.lock().forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let id = ino.0;
        let w = self.wait(req);
        let by_handle = |f: &OpenFile| {
            self.remote.handle_op(&w, f, Retry::Idempotent, self.path_fn(), |h, ep| self.remote.fgetattr(ep, h))
        };
        let mut ttl = self.cfg.attr_ttl;
        let r = match fh.and_then(|fh| self.file(fh).ok()) {
            Some(f) => by_handle(&f),
            None => {
                // Its own statement: a lock guard in a `match` scrutinee lives until the
                // end of the match, and the node table must not stay locked while the
                // request waits for a re-mount (which re-keys the root in it).
                let path = self.nodes.lock().path(id);
                // fstat(2) reaches here without a handle (the kernel's getattr has no
                // file), so a file unlinked or renamed away on the HOST or by another
                // client must be asked about through any handle this mount has open on
                // it, as a local fstat would answer.
                let open_handle = || self.files.read().values().find(|f| f.node == id).cloned();
                let by_path = match path {
                    Some(p) => {
                        ttl = self.ttls(&p).0;
                        match self.route(p) {
                            Route::Remote(p) => {
                                let cred = self.cred(req);
                                self.remote.path_op(&w, Retry::Idempotent, |ex| self.remote.getattr(ex, &p, &cred))
                            }
                            Route::Local(lp) => self.local_io(|pm| pm.local_attr(&lp)),
                            Route::SelfLink(thread) => Ok(ProcMode::self_attr(thread)),
                        }
                    }
                    None => Err(ClientError::Remote(libc::ENOENT)),
                };
                let known = self.nodes.lock().key(id);
                match by_path {
                    Ok(a) if known.is_none_or(|k| k == key_of(&a)) => Ok(a),
                    // The name is gone, or names another inode now.
                    Ok(_) | Err(ClientError::Remote(libc::ENOENT)) => match open_handle() {
                        Some(f) => by_handle(&f),
                        None => Err(ClientError::Remote(libc::ENOENT)),
                    },
                    Err(e) => Err(e),
                }
            }
        };
        match r {
            Ok(a) => reply.attr(&ttl, &self.fattr(id, &a)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set =
            SetAttr { mode: mode.map(|m| m & 0o7777), uid, gid, size, atime: set_time(atime), mtime: set_time(mtime) };
        let cred = self.cred(req);
        let id = ino.0;
        // A size change through an open descriptor must not need write permission on
        // the file now (ftruncate semantics): use the handle when the kernel gives one.
        let file = fh.and_then(|fh| self.file(fh).ok());
        let send = |set: &SetAttr| match &file {
            Some(f) => self.remote.handle_op(&self.wait(req), f, Retry::Idempotent, self.path_fn(), |h, ep| {
                self.remote.fsetattr(ep, h, set, &cred)
            }),
            None => match self.path(id).map(|p| self.route(p)) {
                Ok(Route::Remote(p)) => self
                    .remote
                    .path_op(&self.wait(req), Retry::Idempotent, |ex| self.remote.setattr(ex, &p, set, &cred)),
                // A local /proc file opened with O_TRUNC by a kernel without atomic
                // O_TRUNC: procfs ignores the truncation, so do we. Nothing else changes.
                Ok(Route::Local(lp)) if set.size.is_some() && set.mode.is_none() && set.uid.is_none() => {
                    self.local_io(|pm| pm.local_attr(&lp))
                }
                Ok(_) => Err(ClientError::Remote(libc::EACCES)),
                Err(e) => Err(ClientError::Remote(e.into())),
            },
        };
        let mut r = send(&set);
        // With writeback_cache the kernel keeps mtime/ctime itself and turns UTIME_NOW
        // (and its delayed time updates after writes) into explicit times, which the HOST
        // refuses from a non-owner. The kernel already refused explicit times from a
        // non-owner (default_permissions), so a time-only request refused here was a
        // "now" of a caller with write access: send it as that.
        let explicit = |t: &Option<SetTime>| matches!(t, Some(SetTime::At(..)));
        let times_only = set.mode.is_none() && set.uid.is_none() && set.gid.is_none() && set.size.is_none();
        if matches!(r, Err(ClientError::Remote(libc::EPERM)))
            && self.cfg.writeback_cache
            && self.cfg.default_permissions
            && times_only
            && (explicit(&set.atime) || explicit(&set.mtime))
        {
            let now = |t: Option<SetTime>| t.map(|_| SetTime::Now);
            r = send(&SetAttr { atime: now(set.atime), mtime: now(set.mtime), ..set });
        }
        match r {
            Ok(a) => {
                if size.is_some() {
                    self.nodes.lock().set_cache_stamp(id, None);
                }
                reply.attr(&self.cfg.attr_ttl, &self.fattr(id, &a))
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let p = match self.path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let r = match self.route(p) {
            Route::Remote(p) => {
                let cred = self.cred(req);
                self.remote.path_op(&self.wait(req), Retry::Idempotent, |ex| self.remote.readlink(ex, &p, &cred))
            }
            Route::Local(lp) => self.local_io(|pm| pm.local_readlink(&lp, req.pid())),
            Route::SelfLink(thread) => self.local_io(|pm| pm.self_target(req.pid(), thread)),
        };
        match r {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let p = match self.child(parent.0, name).and_then(|p| self.remote_only(p)) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        let (maj, min) = (libc::major(rdev as u64), libc::minor(rdev as u64));
        match self
            .remote
            .path_op(&self.wait(req), Retry::Once, |ex| self.remote.mknod(ex, &p, mode, umask, maj, min, &cred))
        {
            Ok(a) => self.entry(parent.0, name.as_bytes(), &a, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let p = match self.child(parent.0, name).and_then(|p| self.remote_only(p)) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        match self.remote.path_op(&self.wait(req), Retry::Once, |ex| self.remote.mkdir(ex, &p, mode, umask, &cred)) {
            Ok(a) => self.entry(parent.0, name.as_bytes(), &a, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let p = match self.child(parent.0, name).and_then(|p| self.remote_only(p)) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        match self.remote.path_op(&self.wait(req), Retry::Once, |ex| self.remote.remove(ex, &p, false, &cred)) {
            Ok(()) => {
                self.nodes.lock().unlink(parent.0, name.as_bytes());
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let p = match self.child(parent.0, name).and_then(|p| self.remote_only(p)) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        match self.remote.path_op(&self.wait(req), Retry::Once, |ex| self.remote.remove(ex, &p, true, &cred)) {
            Ok(()) => {
                self.nodes.lock().unlink(parent.0, name.as_bytes());
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let p = match self.child(parent.0, link_name).and_then(|p| self.remote_only(p)) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        let t = target.as_os_str().as_bytes();
        match self.remote.path_op(&self.wait(req), Retry::Once, |ex| self.remote.symlink(ex, &p, t, &cred)) {
            Ok(a) => self.entry(parent.0, link_name.as_bytes(), &a, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (p1, p2) = match (
            self.child(parent.0, name).and_then(|p| self.remote_only(p)),
            self.child(newparent.0, newname).and_then(|p| self.remote_only(p)),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let cred = self.cred(req);
        let fl = flags.bits();
        match self.remote.path_op(&self.wait(req), Retry::Once, |ex| self.remote.rename(ex, &p1, &p2, fl, &cred)) {
            Ok(()) => {
                let exchange = flags.contains(RenameFlags::RENAME_EXCHANGE);
                self.nodes.lock().rename(parent.0, name.as_bytes(), newparent.0, newname.as_bytes(), exchange);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let (old, new) = match (
            self.path(ino.0).and_then(|p| self.remote_only(p)),
            self.child(newparent.0, newname).and_then(|p| self.remote_only(p)),
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        let cred = self.cred(req);
        match self.remote.path_op(&self.wait(req), Retry::Once, |ex| self.remote.link(ex, &old, &new, &cred)) {
            Ok(a) => self.entry(newparent.0, newname.as_bytes(), &a, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let p = match self.path(ino.0) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let p = match self.route(p) {
            Route::Remote(p) => p,
            Route::Local(lp) => {
                let fh = self.new_fh();
                let host_mountinfo = || {
                    crate::cgroups::read_host(&self.remote, &self.wait(req), b"self/mountinfo")
                        .map_err(|e| tracing::debug!("reading the HOST's mount table: {e}"))
                        .ok()
                };
                return match self.local_io(|pm| pm.open(fh, &lp, flags.0, &host_mountinfo)) {
                    // Local /proc files are made on the fly as well: no page cache.
                    Ok(_) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
                    Err(e) => reply.error(errno(&e)),
                };
            }
            Route::SelfLink(_) => return reply.error(Errno::ELOOP),
        };
        let cred = self.cred(req);
        let (wf, upgraded) = self.wire_open_flags(flags.0);
        let w = self.wait(req);
        match self.do_open(&w, &p, wf, upgraded, &cred) {
            Ok((h, epoch, a, used)) if self.cfg.relay && relay::is_relayed(a.mode) => {
                match self.open_relayed(&w, &p, ino.0, (h, epoch), used, &cred) {
                    Ok(fh) => reply.opened(
                        FileHandle(fh),
                        FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NONSEEKABLE | FopenFlags::FOPEN_NOFLUSH,
                    ),
                    Err(e) => reply.error(errno(&e)),
                }
            }
            Ok((h, epoch, a, used)) => {
                let mut direct = self.direct_io(&w, &p, &a, &cred);
                // A file locked elsewhere gets no page cache and no shared mapping
                // (crate::locks::Locks::shared_elsewhere).
                if !direct && flags.0 & libc::O_ACCMODE == libc::O_RDWR && a.mode & libc::S_IFMT == libc::S_IFREG {
                    direct = self.locks.shared_elsewhere(&self.remote, ino.0, h, epoch, &p);
                }
                let fl = self.open_flags_reply(ino.0, &a, direct);
                let fh = self.add_file(OpenFile::new(ino.0, used, h, epoch));
                reply.opened(FileHandle(fh), fl)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if let Some(rl) = self.relay_of(fh) {
            return match self.file(fh) {
                Ok(f) => rl.read(&self.remote, &self.wait(req), &f, size.min(MAX_RW), flags.0, req.pid(), reply),
                Err(e) => reply.error(e),
            };
        }
        if let Some(lf) = self.proc.as_ref().and_then(|pm| pm.file(fh.0)) {
            return match ProcMode::read(&lf, offset, size.min(MAX_RW)) {
                Ok(d) => reply.data(&d),
                Err(e) => reply.error(Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))),
            };
        }
        let f = match self.file(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let len = size.min(MAX_RW);
        // The data goes to the kernel straight from the connection's receive buffer.
        let mut reply = Some(reply);
        let r = self.remote.handle_op(&self.wait(req), &f, Retry::Idempotent, self.path_fn(), |h, ep| {
            self.remote.read_with(ep, h, offset, len, |data| {
                if let Some(r) = reply.take() {
                    r.data(data);
                }
                Ok(())
            })
        });
        if let (Err(e), Some(reply)) = (r, reply) {
            reply.error(errno(&e))
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if let Some(rl) = self.relay_of(fh) {
            return match self.file(fh) {
                Ok(f) => rl.write(&self.remote, &self.wait(req), &f, data, flags.0, req.pid(), reply),
                Err(e) => reply.error(e),
            };
        }
        if let Some(lf) = self.proc.as_ref().and_then(|pm| pm.file(fh.0)) {
            use std::os::unix::fs::FileExt;
            return match lf.write_at(data, offset) {
                Ok(n) => reply.written(n as u32),
                Err(e) => reply.error(Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))),
            };
        }
        let f = match self.file(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        let w = self.wait(req);
        // A process number written into a HOST cgroup is translated, held back or refused
        // (crate::cgroups); the caller is told its own length was written.
        let (translated, asked) = (self.cgroup_write(&w, ino.0, req.pid(), data), data.len());
        let data = match &translated {
            Some(crate::cgroups::Intercept::Send(v)) => &v[..],
            Some(crate::cgroups::Intercept::Done) => return reply.written(asked as u32),
            Some(crate::cgroups::Intercept::Fail(e)) => return reply.error(Errno::from_i32(*e)),
            Some(crate::cgroups::Intercept::Pass) | None => data,
        };
        // A positional write does the same when repeated; an append does not, so an
        // append whose fate is unknown after a dropped connection fails with EIO.
        let retry = if f.is_append() { Retry::Once } else { Retry::Idempotent };
        let mut done = 0usize;
        while done < data.len() {
            let chunk = &data[done..(done + MAX_IO).min(data.len())];
            let off = offset + done as u64;
            match self.remote.handle_op(&w, &f, retry, self.path_fn(), |h, ep| self.remote.write(ep, h, off, chunk)) {
                Ok(0) => break,
                Ok(n) => done += n as usize,
                Err(e) if done == 0 => return reply.error(errno(&e)),
                Err(_) => break,
            }
        }
        self.nodes.lock().set_cache_stamp(ino.0, None);
        if translated.as_ref().is_some_and(|t| *t != crate::cgroups::Intercept::Pass) && done == data.len() {
            done = asked;
        }
        if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) && done > 0 {
            self.kill_suid(&w, &f);
        }
        reply.written(done as u32)
    }

    fn flush(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, lock_owner: LockOwner, reply: ReplyEmpty) {
        // Writes are sent as they come (with a writeback cache the kernel writes its
        // dirty pages before it sends FLUSH): nothing is buffered here. A close(2)
        // drops the owner's POSIX locks on the file.
        self.locks.flush(&self.remote, ino.0, lock_owner.0);
        reply.ok()
    }

    fn getlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        match self.lock_args(req, ino, fh, lock_owner) {
            Ok(a) => self.locks.getlk(&a, start, end, typ, reply),
            Err(e) => reply.error(e),
        }
    }

    fn setlk(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        match self.lock_args(req, ino, fh, lock_owner) {
            Ok(a) => self.locks.setlk(&a, start, end, typ, sleep, reply),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if self.proc.as_ref().is_some_and(|pm| pm.release(fh.0)) {
            return reply.ok();
        }
        if let Some(rl) = self.relays.lock().remove(&fh.0) {
            rl.close();
        }
        // Its own statement: the table is not kept locked while the CLOSE is sent.
        let f = self.files.write().remove(&fh.0);
        if let Some(f) = f {
            self.locks.release(&self.remote, fh.0);
            self.remote.close(&f);
        }
        reply.ok()
    }

    fn fsync(&self, req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        if self.proc.as_ref().is_some_and(|pm| pm.file(fh.0).is_some()) {
            // A local /proc file: nothing to make durable.
            return reply.ok();
        }
        let f = match self.file(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        match self.remote.handle_op(&self.wait(req), &f, Retry::Idempotent, self.path_fn(), |h, ep| {
            self.remote.fsync(ep, h, datasync)
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fh = self.new_fh();
        self.dirs.lock().insert(fh, Arc::new(DirHandle { node: ino.0, entries: Mutex::new(None) }));
        reply.opened(FileHandle(fh), FopenFlags::empty())
    }

    fn readdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let (d, entries) = match self.dir_entries(fh, offset, false, req) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let mut pos = offset;
        if pos == 0 {
            if reply.add(ino, 1, FileType::Directory, ".") {
                return reply.ok();
            }
            pos = 1;
        }
        if pos == 1 {
            if reply.add(INodeNo(self.parent_of(d.node)), 2, FileType::Directory, "..") {
                return reply.ok();
            }
            pos = 2;
        }
        let known = self.nodes.lock();
        for (i, e) in entries.iter().enumerate().skip((pos - 2) as usize) {
            // d_ino: the node id where the kernel knows the name (st_ino is the node id),
            // else the HOST inode number.
            let ino = known.lookup_name(d.node, &e.name).unwrap_or(e.ino);
            let kind = kind_of((e.dtype as u32) << 12);
            if reply.add(INodeNo(ino.max(1)), i as u64 + 3, kind, OsStr::from_bytes(&e.name)) {
                break;
            }
        }
        drop(known);
        reply.ok()
    }

    fn readdirplus(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let (d, entries) = match self.dir_entries(fh, offset, true, req) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let mut pos = offset;
        // `.` and `..` carry no attributes the kernel uses (it does not count lookups
        // for them); their node id only fills d_ino.
        let dot = to_file_attr(d.node, &Attr { mode: libc::S_IFDIR | 0o755, ..Default::default() });
        if pos == 0 {
            if reply.add(ino, 1, ".", &Duration::ZERO, &dot, Generation(0)) {
                return reply.ok();
            }
            pos = 1;
        }
        if pos == 1 {
            let dotdot = FileAttr { ino: INodeNo(self.parent_of(d.node)), ..dot };
            if reply.add(dotdot.ino, 2, "..", &Duration::ZERO, &dotdot, Generation(0)) {
                return reply.ok();
            }
            pos = 2;
        }
        for (i, e) in entries.iter().enumerate().skip((pos - 2) as usize) {
            let Some(a) = e.attr.as_ref() else { continue };
            let id = self.nodes.lock().link(d.node, &e.name, key_of(a));
            let fa = self.fattr(id, a);
            // In -o proc's root, numbers and `self` change meaning at any time.
            let ttl = if d.node == ROOT { self.ttls(&e.name).0 } else { self.cfg.attr_ttl };
            if reply.add(INodeNo(id), i as u64 + 3, OsStr::from_bytes(&e.name), &ttl, &fa, Generation(0)) {
                // Not sent: the kernel will not count this lookup.
                self.nodes.lock().forget(id, 1);
                break;
            }
        }
        reply.ok()
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.dirs.lock().remove(&fh.0);
        reply.ok()
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Directory changes are made by the engine's syscalls as they come; there is no
        // directory handle on the engine to sync.
        reply.ok()
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let cred = self.cred(req);
        match self.remote.path_op(&self.wait(req), Retry::Idempotent, |ex| self.remote.statfs(ex, &cred)) {
            Ok(s) => reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let p = match self.path(ino.0).and_then(|p| self.remote_only(p)) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        // XATTR_CREATE fails the second time: not idempotent.
        let retry = if flags & libc::XATTR_CREATE != 0 { Retry::Once } else { Retry::Idempotent };
        match self.remote.path_op(&self.wait(req), retry, |ex| {
            self.remote.xattr_set(ex, &p, name.as_bytes(), value, flags as u32, &cred)
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let p = match self.path(ino.0).map(|p| self.route(p)) {
            Ok(Route::Remote(p)) => p,
            // Local /proc files have no extended attributes to show (ls asks for ACLs).
            Ok(_) => return reply.error(Errno::ENODATA),
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        if self.cfg.relay && name.as_bytes() == relay::XATTR.as_bytes() {
            // Answered here: the HOST type of a relayed file (see crate::relay).
            let w = self.wait(req);
            return match self.remote.path_op(&w, Retry::Idempotent, |ex| self.remote.getattr(ex, &p, &cred)) {
                Ok(a) if relay::is_relayed(a.mode) => {
                    let m = relay::marker(&a);
                    if size == 0 {
                        reply.size(m.len() as u32)
                    } else if m.len() > size as usize {
                        reply.error(Errno::ERANGE)
                    } else {
                        reply.data(&m)
                    }
                }
                Ok(_) => reply.error(Errno::ENODATA),
                Err(e) => reply.error(errno(&e)),
            };
        }
        match self.remote.path_op(&self.wait(req), Retry::Idempotent, |ex| {
            self.remote.xattr_get(ex, &p, name.as_bytes(), size, &cred)
        }) {
            Ok((n, data)) if size == 0 => reply.size(n.max(data.len() as u32)),
            Ok((_, data)) if data.len() > size as usize => reply.error(Errno::ERANGE),
            Ok((_, data)) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let p = match self.path(ino.0).map(|p| self.route(p)) {
            Ok(Route::Remote(p)) => p,
            Ok(_) if size == 0 => return reply.size(0),
            Ok(_) => return reply.data(&[]),
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        match self.remote.path_op(&self.wait(req), Retry::Idempotent, |ex| self.remote.xattr_list(ex, &p, size, &cred))
        {
            Ok((n, data)) if size == 0 => reply.size(n.max(data.len() as u32)),
            Ok((_, data)) if data.len() > size as usize => reply.error(Errno::ERANGE),
            Ok((_, data)) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let p = match self.path(ino.0).and_then(|p| self.remote_only(p)) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        match self
            .remote
            .path_op(&self.wait(req), Retry::Once, |ex| self.remote.xattr_remove(ex, &p, name.as_bytes(), &cred))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let p = match self.child(parent.0, name).and_then(|p| self.remote_only(p)) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let cred = self.cred(req);
        // A new file is the caller's, so the read-write upgrade cannot be refused.
        let (mut wf, _) = self.wire_open_flags(flags);
        if flags & libc::O_EXCL != 0 {
            wf |= oflags::EXCL;
        }
        // Creating is not idempotent (O_EXCL, or a file someone else wrote meanwhile).
        let r =
            self.remote.path_op(&self.wait(req), Retry::Once, |ex| self.remote.create(ex, &p, wf, mode, umask, &cred));
        match r {
            Ok((h, epoch, a)) => {
                let id = self.nodes.lock().link(parent.0, name.as_bytes(), key_of(&a));
                // Without O_EXCL the file may be an existing one locked elsewhere (as in open).
                let direct = flags & (libc::O_ACCMODE | libc::O_EXCL) == libc::O_RDWR
                    && self.locks.shared_elsewhere(&self.remote, id, h, epoch, &p);
                let fl = self.open_flags_reply(id, &a, direct);
                let fh = self.add_file(OpenFile::new(id, wf & !(oflags::EXCL | oflags::TRUNC), h, epoch));
                reply.created(&self.cfg.entry_ttl, &self.fattr(id, &a), Generation(0), FileHandle(fh), fl)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let f = match self.file(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        // Allocating, punching or zeroing a range twice is the same; shifting ranges
        // (collapse/insert) is not.
        let shifting = mode & (libc::FALLOC_FL_COLLAPSE_RANGE | libc::FALLOC_FL_INSERT_RANGE) != 0;
        let retry = if shifting { Retry::Once } else { Retry::Idempotent };
        match self.remote.handle_op(&self.wait(req), &f, retry, self.path_fn(), |h, ep| {
            self.remote.fallocate(ep, h, mode as u32, offset, length)
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn poll(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        ph: fuser::PollNotifier,
        events: fuser::PollEvents,
        flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        if !self.cfg.relay {
            // The kernel stops asking (and reports files always ready).
            return reply.error(Errno::ENOSYS);
        }
        let Some(rl) = self.relay_of(fh) else {
            // Files and directories are always ready, as without a poll method.
            let ready = libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM;
            return reply.poll(fuser::PollEvents::from_bits_truncate(ready as u32));
        };
        let f = match self.files.read().get(&fh.0).cloned() {
            Some(f) => f,
            None => return reply.error(Errno::EBADF),
        };
        let schedule = flags.contains(fuser::PollFlags::FUSE_POLL_SCHEDULE_NOTIFY);
        rl.poll(&self.remote, &self.wait(req), &f, ph, events, schedule, reply)
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: fuser::IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        match self.relay_of(fh) {
            // Terminal attributes cannot travel (see crate::relay): accepted, no effect.
            Some(_) if relay::ignored_ioctl(cmd) => reply.ioctl(0, &[]),
            Some(_) => reply.error(Errno::ENOTTY),
            None => reply.error(Errno::ENOSYS),
        }
    }

    fn lseek(&self, req: &Request, _ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        let f = match self.file(fh) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        match self.remote.handle_op(&self.wait(req), &f, Retry::Idempotent, self.path_fn(), |h, ep| {
            self.remote.llseek(ep, h, offset, whence as u32)
        }) {
            Ok(o) => reply.offset(o as i64),
            Err(e) => reply.error(errno(&e)),
        }
    }
}
