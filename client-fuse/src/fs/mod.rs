//! The FUSE operations: each kernel request becomes one engine request (two for a few),
//! made with the caller's credentials on a FUSE worker thread that blocks until the
//! engine answers. Many workers (`-o threads`) give many requests in flight; the engine
//! session pipelines them over several connections.
//!
//! This module owns the file system's state (open-file and open-directory tables, caches
//! of the HOST's pseudo devices, the `-o proc` router) and the helpers every operation
//! uses (credentials, paths and their routes, timeouts); the [`Filesystem`] impl at the
//! end only hands each request, its arguments in the form that module takes, to the
//! module of its concern:
//!
//! - [`attr`]: attributes (GETATTR, SETATTR, STATFS);
//! - [`names`]: lookups and the requests that make, remove or move names;
//! - [`open`]: OPEN, CREATE, RELEASE and the open flags;
//! - [`io`]: READ, WRITE, FSYNC, FALLOCATE, LSEEK, POLL, IOCTL;
//! - [`dir`]: directory handles and listings;
//! - [`xattr`]: extended attributes;
//! - [`locking`]: what GETLK and SETLK (byte ranges and flock) hand to [`crate::locks`],
//!   and FLUSH.
//!
//! Names and node ids live in [`crate::nodes`], the session and restart rules in
//! [`crate::remote`], the page-cache bypass for pseudo file systems in [`crate::pseudo`],
//! and `-o proc`'s routing of paths to the HOST or the local `/proc` in [`crate::procfs`].

mod attr;
mod dir;
mod io;
mod locking;
mod names;
mod open;
mod xattr;

pub use attr::to_file_attr;
use dir::DirHandle;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::kernel::request::Op;
use crate::kernel::{
    self, Errno, FileAttr, FileHandle, Filesystem, INodeNo, InitFlags, KernelConfig, Lock, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyLock, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, WriteFlags,
};
use parking_lot::{Mutex, RwLock};
use qtfs_client::{ClientError, Cred, Result, SetAttr};
use qtfs_proto::{Attr, MAX_IO};

use crate::creds::GroupsCache;
use crate::nodes::{Key, Nodes};
use crate::procfs::{ProcConfig, ProcMode, Route, volatile_root_name};
use crate::pseudo::PseudoDevs;
use crate::relay::{self, Relay};
use crate::remote::{OpenFile, Remote, Wait};

/// The largest READ/WRITE the kernel sends us (the engine's limit, 1 MiB).
pub const MAX_RW: u32 = MAX_IO as u32;

/// Cache and behaviour settings of a mount.
#[derive(Debug, Clone)]
pub struct FsConfig {
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
    pub negative_ttl: Duration,
    /// `negative_ttl` is the default one, kept only where invalidations reach (names of
    /// the HOST outside pseudo file systems); an explicit `-o negative_timeout` holds
    /// everywhere.
    pub negative_only_watched: bool,
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
    notifier: Arc<OnceLock<crate::kernel::Notifier>>,
    /// Open relayed files (`-o relay`), by file handle.
    relays: Mutex<HashMap<u64, Arc<Relay>>>,
}

fn key_of(a: &Attr) -> Key {
    (libc::makedev(a.dev_major, a.dev_minor), a.ino)
}

fn errno(e: &ClientError) -> Errno {
    let n = e.errno();
    if n <= 0 { Errno::EIO } else { Errno::from_i32(n) }
}

impl QtfsFs {
    pub fn new(remote: Arc<Remote>, root: &Attr, cfg: FsConfig) -> QtfsFs {
        let nodes = Arc::new(Mutex::new(Nodes::new(key_of(root))));
        let n2 = nodes.clone();
        let pseudo = Arc::new(PseudoDevs::default());
        let p2 = pseudo.clone();
        remote.set_on_remount(Box::new(move |root: &Attr| {
            let mut n = n2.lock();
            n.rekey_root(key_of(root));
            // Whatever changed while the engine was away was never announced.
            n.unlearn_all();
            drop(n);
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
    pub fn notifier_slot(&self) -> Arc<OnceLock<crate::kernel::Notifier>> {
        self.notifier.clone()
    }

    /// The fences of this mount's locks, for [`crate::inval`].
    pub fn fences_handle(&self) -> Arc<crate::fences::Fences> {
        self.locks.fences()
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

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    fn add_file(&self, f: OpenFile) -> u64 {
        let fh = self.new_fh();
        self.files.write().insert(fh, Arc::new(f));
        fh
    }

    /// INIT: the limits and capabilities asked of the kernel (a writeback cache the
    /// kernel lacks is turned off).
    fn negotiate(&mut self, config: &mut KernelConfig) {
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
    }
}

impl Filesystem for QtfsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        self.negotiate(config);
        Ok(())
    }

    fn may_wait(&self, op: &Op<'_>) -> bool {
        let relayed = |fh: u64| self.relay_of(FileHandle(fh)).is_some();
        match *op {
            // Engine round trips only (through `crate::direct`), and local bookkeeping
            // under short locks: names, attributes, extended attributes, directories.
            Op::Lookup { .. } | Op::Getattr { .. } | Op::Setattr(_) | Op::Readlink | Op::Statfs => false,
            Op::Symlink { .. } | Op::Mknod { .. } | Op::Mkdir { .. } | Op::Link { .. } => false,
            Op::Unlink { .. } | Op::Rmdir { .. } | Op::Rename { .. } => false,
            Op::Setxattr { .. } | Op::Getxattr { .. } | Op::Listxattr { .. } | Op::Removexattr { .. } => false,
            Op::Opendir { .. } | Op::Readdir(_) | Op::Readdirplus(_) | Op::Releasedir(_) => false,
            // A handle's close is sent without waiting; FLUSH drops the owner's locks
            // with a round trip of its own.
            Op::Fsyncdir { .. } | Op::Flush { .. } | Op::Release(_) => false,
            // Local bookkeeping, or ENOSYS at once.
            Op::Forget { .. } | Op::BatchForget { .. } | Op::Other(_) => false,
            // `-o proc` opens some files from the shared session (crate::cgroups).
            Op::Open { .. } | Op::Create { .. } => self.proc.is_some(),
            // A relayed file waits for its peer; a write into a cgroup's pid file may be
            // held back under a lock (crate::cgroups): told by the file's name alone.
            Op::Read(ref r) => relayed(r.fh),
            Op::Write { fh, .. } => {
                relayed(fh) || self.file(FileHandle(fh)).is_ok_and(|f| self.is_cgroup_pid_file(f.node))
            }
            Op::Fsync { fh, .. } | Op::Fallocate { fh, .. } | Op::Lseek { fh, .. } => relayed(fh),
            // Answered at once, relayed or not; every `isatty` on a file asks (a Python
            // text-mode open does): no hand-off to the pool for it.
            Op::Ioctl { .. } => false,
            // A file that is not relayed is always ready, answered at once.
            Op::Poll { fh, .. } => relayed(fh),
            // Answered by the kernel layer itself, at once (`kernel::dispatch`).
            Op::Interrupt { .. } | Op::Init(_) | Op::Destroy => false,
            // Locks wait for their holders.
            Op::Getlk(_) | Op::Setlk { .. } => true,
            // No catch-all: a new operation must be placed here by hand (FORGET and
            // IOCTL both went to the pool through one).
        }
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        names::lookup(self, req, parent, name, reply)
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        names::forget(self, ino, nlookup)
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        attr::getattr(self, req, ino, fh, reply)
    }

    fn setattr(&self, req: &Request, ino: INodeNo, s: kernel::Setattr, reply: ReplyAttr) {
        let (atime, mtime) = (attr::set_time(s.atime), attr::set_time(s.mtime));
        let set = SetAttr { mode: s.mode.map(|m| m & 0o7777), uid: s.uid, gid: s.gid, size: s.size, atime, mtime };
        attr::setattr(self, req, ino, set, s.fh, reply)
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        names::readlink(self, req, ino, reply)
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        names::make(self, req, parent, name, names::Make::Node { mode, umask, rdev }, reply)
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        names::make(self, req, parent, name, names::Make::Dir { mode, umask }, reply)
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        names::unlink(self, req, parent, name, reply)
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        names::rmdir(self, req, parent, name, reply)
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        names::make(self, req, parent, link_name, names::Make::Symlink(target), reply)
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
        names::rename(self, req, (parent, name), (newparent, newname), flags, reply)
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        names::link(self, req, ino, newparent, newname, reply)
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        open::open(self, req, ino, flags, reply)
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
        io::read(self, req, fh, offset, size, flags, reply)
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
        let kill_suid = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        io::write(self, req, ino, fh, offset, data, kill_suid, flags, reply)
    }

    fn flush(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, lock_owner: LockOwner, reply: ReplyEmpty) {
        locking::flush(self, ino, lock_owner, reply)
    }

    fn getlk(&self, req: &Request, ino: INodeNo, lk: Lock, reply: ReplyLock) {
        match self.lock_args(req, ino, lk.fh, lk.owner) {
            Ok(a) => self.locks.getlk(&a, lk.start, lk.end, lk.typ, reply),
            Err(e) => reply.error(e),
        }
    }

    fn setlk(&self, req: &Request, ino: INodeNo, lk: Lock, sleep: bool, reply: ReplyEmpty) {
        match self.lock_args(req, ino, lk.fh, lk.owner) {
            Ok(a) if lk.flock => self.locks.flock(&a, lk.typ, sleep, reply),
            Ok(a) => self.locks.setlk(&a, lk.start, lk.end, lk.typ, sleep, reply),
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
        open::release(self, fh, reply)
    }

    fn fsync(&self, req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        io::fsync(self, req, fh, datasync, reply)
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        dir::opendir(self, ino, reply)
    }

    fn readdir(&self, req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        dir::readdir(self, req, fh, offset, reply)
    }

    fn readdirplus(&self, req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus) {
        dir::readdirplus(self, req, fh, offset, reply)
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        dir::releasedir(self, fh, reply)
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        dir::fsyncdir(reply)
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        attr::statfs(self, req, reply)
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
        xattr::setxattr(self, req, ino, name, value, flags, reply)
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        xattr::getxattr(self, req, ino, name, size, reply)
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        xattr::listxattr(self, req, ino, size, reply)
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        xattr::removexattr(self, req, ino, name, reply)
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
        open::create(self, req, parent, name, (mode, umask), flags, reply)
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
        io::fallocate(self, req, fh, offset, length, mode, reply)
    }

    fn poll(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        ph: crate::kernel::PollNotifier,
        events: crate::kernel::PollEvents,
        flags: crate::kernel::PollFlags,
        reply: crate::kernel::ReplyPoll,
    ) {
        io::poll(self, req, fh, ph, events, flags, reply)
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: crate::kernel::IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: crate::kernel::ReplyIoctl,
    ) {
        io::ioctl(self, fh, cmd, reply)
    }

    fn lseek(&self, req: &Request, _ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        io::lseek(self, req, fh, offset, whence, reply)
    }
}
