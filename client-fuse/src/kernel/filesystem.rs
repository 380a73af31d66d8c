//! The [`Filesystem`] trait the file system implements, INIT's [`KernelConfig`], and
//! [`dispatch`]: one request to its method.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::abi::InHeader;
use super::abi::{self, InitIn, InitOut};
use super::notify::{Notifier, PollNotifier};
use super::reply::*;
use super::request::{self, Gate, LkIn, Op, Request, answered};
use super::types::*;

/// What INIT negotiates: the kernel's offer and what the file system asks for.
#[derive(Debug)]
pub struct KernelConfig {
    capable: InitFlags,
    requested: InitFlags,
    max_readahead: u32,
    max_max_readahead: u32,
    max_background: u16,
    congestion_threshold: Option<u16>,
    max_write: u32,
    max_max_write: u32,
    time_gran: Duration,
}

impl KernelConfig {
    /// The kernel's offer; `max_write`: the largest write the session's buffers take.
    pub fn new(init: &InitIn, max_write: u32) -> KernelConfig {
        let capable = InitFlags::from_bits_retain(init.flags);
        let mut requested = InitFlags::FUSE_ASYNC_READ | InitFlags::FUSE_BIG_WRITES;
        if capable.contains(InitFlags::FUSE_MAX_PAGES) {
            requested |= InitFlags::FUSE_MAX_PAGES;
        }
        KernelConfig {
            capable,
            requested,
            max_readahead: init.max_readahead,
            max_max_readahead: init.max_readahead,
            max_background: 16,
            congestion_threshold: None,
            max_write,
            max_max_write: max_write,
            time_gran: Duration::from_nanos(1),
        }
    }

    /// Asks for `f`; Err with the flags the kernel lacks.
    pub fn add_capabilities(&mut self, f: InitFlags) -> Result<(), InitFlags> {
        if !self.capable.contains(f) {
            return Err(f & !self.capable);
        }
        self.requested |= f;
        Ok(())
    }

    pub fn capabilities(&self) -> InitFlags {
        self.capable & !InitFlags::FUSE_INIT_EXT
    }

    /// Sets the largest write (Err: the limit when beyond it).
    pub fn set_max_write(&mut self, v: u32) -> Result<u32, u32> {
        if v == 0 || v > self.max_max_write {
            return Err(self.max_max_write);
        }
        Ok(std::mem::replace(&mut self.max_write, v))
    }

    /// Sets the readahead (Err: the kernel's limit when beyond it).
    pub fn set_max_readahead(&mut self, v: u32) -> Result<u32, u32> {
        if v == 0 || v > self.max_max_readahead {
            return Err(self.max_max_readahead);
        }
        Ok(std::mem::replace(&mut self.max_readahead, v))
    }

    pub fn set_max_background(&mut self, v: u16) -> Result<u16, u16> {
        if v == 0 {
            return Err(1);
        }
        Ok(std::mem::replace(&mut self.max_background, v))
    }

    pub fn set_congestion_threshold(&mut self, v: u16) -> Result<u16, u16> {
        if v == 0 {
            return Err(1);
        }
        let old = self.congestion();
        self.congestion_threshold = Some(v);
        Ok(old)
    }

    /// Sets the time granularity (a power of ten nanoseconds up to a second).
    pub fn set_time_granularity(&mut self, v: Duration) -> Result<Duration, Duration> {
        let n = v.as_nanos();
        if n == 0 || n > 1_000_000_000 {
            return Err(Duration::from_nanos(n.clamp(1, 1_000_000_000) as u64));
        }
        let mut p = 1u128;
        while p < n {
            p *= 10;
        }
        if p != n {
            return Err(Duration::from_nanos((p / 10) as u64));
        }
        Ok(std::mem::replace(&mut self.time_gran, v))
    }

    fn congestion(&self) -> u16 {
        match self.congestion_threshold {
            None => (u32::from(self.max_background) * 3 / 4) as u16,
            Some(v) => v.min(self.max_background),
        }
    }

    /// The flags agreed on (asked for and offered).
    pub fn agreed(&self) -> InitFlags {
        (self.requested | InitFlags::FUSE_INIT_EXT) & self.capable
    }

    /// The INIT reply.
    pub fn reply(&self) -> InitOut {
        let page = 4096;
        let max_pages = (self.max_write.max(self.max_readahead).max(1) - 1) / page + 1;
        InitOut {
            major: abi::KERNEL_VERSION,
            minor: abi::KERNEL_MINOR_VERSION,
            max_readahead: self.max_readahead,
            flags: self.agreed().bits(),
            max_background: self.max_background,
            congestion_threshold: self.congestion(),
            max_write: self.max_write,
            time_gran: self.time_gran.as_nanos() as u32,
            max_pages: max_pages.min(u32::from(u16::MAX)) as u16,
        }
    }
}

/// What a SETATTR changes (`None`: unchanged). Linux sends no BSD flags or creation,
/// change or backup times, so there are none here.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setattr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
    pub ctime: Option<SystemTime>,
    /// The open file the change comes through (ftruncate, futimens …).
    pub fh: Option<FileHandle>,
}

/// A lock request (GETLK, SETLK, SETLKW): the byte range `start..=end` (inclusive; a
/// flock(2) covers the whole file) of type `typ` (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`) for
/// `owner`, through the open file `fh`.
#[derive(Debug, Clone, Copy)]
pub struct Lock {
    pub fh: FileHandle,
    pub owner: LockOwner,
    pub start: u64,
    pub end: u64,
    pub typ: i32,
    /// The caller's pid (as the kernel's pid namespace of the mount sees it).
    pub pid: u32,
    /// A flock(2) (`FUSE_LK_FLOCK`), not a byte-range lock.
    pub flock: bool,
}

impl From<&LkIn> for Lock {
    fn from(l: &LkIn) -> Lock {
        Lock {
            fh: FileHandle(l.fh),
            owner: LockOwner(l.owner),
            start: l.start,
            end: l.end,
            typ: l.typ as i32,
            pid: l.pid,
            flock: l.lk_flags & abi::LK_FLOCK != 0,
        }
    }
}

/// A file system served over FUSE: one method per operation, each answering through
/// its reply (now or later, from any thread).
#[allow(clippy::too_many_arguments)]
pub trait Filesystem: Send + Sync + 'static {
    fn init(&mut self, _req: &Request, _config: &mut KernelConfig) -> std::io::Result<()> {
        Ok(())
    }
    fn destroy(&mut self) {}
    /// Whether serving `op` may wait for anything other than engine round trips made
    /// through a transport that suspends a ring task ([`super::uring::tasks`]): a lock
    /// held elsewhere, a relay's peer, another thread. Such a request goes to the worker
    /// pool; the others are served on their ring's own thread. The default keeps every
    /// request off the ring thread.
    fn may_wait(&self, _op: &Op<'_>) -> bool {
        true
    }
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry);
    fn forget(&self, req: &Request, ino: INodeNo, nlookup: u64);
    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr);
    /// SETATTR: what `set` names (chmod, chown, truncate, utimens), through `set.fh` when
    /// the kernel has an open file for it.
    fn setattr(&self, req: &Request, ino: INodeNo, set: Setattr, reply: ReplyAttr);
    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData);
    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry);
    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry);
    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty);
    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty);
    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry);
    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    );
    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry);
    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen);
    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyData,
    );
    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    );
    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, lock_owner: LockOwner, reply: ReplyEmpty);
    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        flush: bool,
        reply: ReplyEmpty,
    );
    fn fsync(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty);
    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen);
    fn readdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory);
    fn readdirplus(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus);
    fn releasedir(&self, req: &Request, ino: INodeNo, fh: FileHandle, flags: OpenFlags, reply: ReplyEmpty);
    fn fsyncdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty);
    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs);
    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    );
    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr);
    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr);
    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty);
    /// GETLK: the first lock conflicting with `lk`.
    fn getlk(&self, req: &Request, ino: INodeNo, lk: Lock, reply: ReplyLock);
    /// SETLK/SETLKW (`sleep`): take or release `lk` (a flock(2) when `lk.flock`).
    fn setlk(&self, req: &Request, ino: INodeNo, lk: Lock, sleep: bool, reply: ReplyEmpty);
    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    );
    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    );
    fn poll(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        ph: PollNotifier,
        events: PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    );
    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        out_size: u32,
        reply: ReplyIoctl,
    );
    fn lseek(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek);
}

fn time_or_now(valid: u32, set: u32, now: u32, t: (i64, u32)) -> Option<TimeOrNow> {
    if valid & now != 0 {
        Some(TimeOrNow::Now)
    } else if valid & set != 0 {
        Some(TimeOrNow::SpecificTime(from_wire_time(t.0, t.1)))
    } else {
        None
    }
}

/// A `/dev/fuse` request's header and operation bytes; a malformed one is logged,
/// answered EIO (when the kernel waits for an answer) and None.
pub fn split_dev_request<'b>(
    bytes: &'b [u8],
    setxattr_ext: bool,
    sender: &Arc<dyn Sender>,
) -> Option<(InHeader, &'b [u8], &'b [u8])> {
    match request::split(bytes, setxattr_ext) {
        Ok(x) => Some(x),
        Err(h) => {
            tracing::warn!("malformed FUSE request ({} bytes)", bytes.len());
            if let Some(h) = h.filter(answered) {
                ReplyRaw::new(h.unique, sender.clone()).error(Errno::EIO);
            }
            None
        }
    }
}

/// Whether a request is served where it was read (as a task of a ring thread): unless
/// the file system says it may wait for something other than the engine. One that does
/// not parse is answered there at once.
pub fn served_in_place<F: Filesystem>(fs: &F, (h, fixed, rest): (InHeader, &[u8], &[u8])) -> bool {
    Op::parse(h.opcode, fixed, rest).map_or(true, |op| !fs.may_wait(&op))
}

/// One request of either transport, its header split off: DESTROY answered (`true`: the
/// session is over), another user's request refused unless `gate` lets it in, the
/// operation parsed and [`dispatch`]ed; a malformed one answered with its errno when the
/// kernel waits for an answer.
pub fn serve_request<F: Filesystem>(
    fs: &F,
    gate: &Gate,
    (h, fixed, rest): (InHeader, &[u8], &[u8]),
    sender: &Arc<dyn Sender>,
    notifier: &Notifier,
) -> bool {
    if h.opcode == abi::op::DESTROY {
        ReplyEmpty::new(h.unique, sender.clone()).ok();
        return true;
    }
    if !gate.permitted(&h) {
        ReplyRaw::new(h.unique, sender.clone()).error(Errno::EACCES);
        return false;
    }
    match Op::parse(h.opcode, fixed, rest) {
        Ok(o) => {
            tracing::trace!("request {} node {} pid {}: {:?}", h.unique, h.nodeid, h.pid, request::Brief(&o));
            dispatch(fs, &Request::new(h), o, sender, notifier)
        }
        Err(e) if answered(&h) => ReplyRaw::new(h.unique, sender.clone()).error(e),
        Err(_) => {}
    }
    false
}

/// Hands request `req`, operation `op`, to its method of `fs`; the answer goes through
/// `sender`, poll wakeups through `notifier`. INIT and DESTROY are the session's.
pub fn dispatch<F: Filesystem>(fs: &F, req: &Request, op: Op<'_>, sender: &Arc<dyn Sender>, notifier: &Notifier) {
    let (u, s) = (req.unique(), sender.clone());
    let ino = INodeNo(req.nodeid());
    match op {
        Op::Lookup { name } => fs.lookup(req, ino, name, ReplyEntry::new(u, s)),
        Op::Forget { nlookup } => fs.forget(req, ino, nlookup),
        Op::BatchForget { nodes } => {
            for n in nodes.chunks_exact(16) {
                let mut r = abi::Rd(n);
                if let (Some(id), Some(nlookup)) = (r.u64(), r.u64()) {
                    fs.forget(req, INodeNo(id), nlookup);
                }
            }
        }
        Op::Getattr { fh } => fs.getattr(req, ino, fh.map(FileHandle), ReplyAttr::new(u, s)),
        Op::Setattr(a) => {
            let v = a.valid;
            let has = |f: u32| v & f != 0;
            let set = Setattr {
                mode: has(abi::FATTR_MODE).then_some(a.mode),
                uid: has(abi::FATTR_UID).then_some(a.uid),
                gid: has(abi::FATTR_GID).then_some(a.gid),
                size: has(abi::FATTR_SIZE).then_some(a.size),
                atime: time_or_now(v, abi::FATTR_ATIME, abi::FATTR_ATIME_NOW, a.atime),
                mtime: time_or_now(v, abi::FATTR_MTIME, abi::FATTR_MTIME_NOW, a.mtime),
                ctime: has(abi::FATTR_CTIME).then(|| from_wire_time(a.ctime.0, a.ctime.1)),
                fh: has(abi::FATTR_FH).then_some(FileHandle(a.fh)),
            };
            fs.setattr(req, ino, set, ReplyAttr::new(u, s))
        }
        Op::Readlink => fs.readlink(req, ino, ReplyData::new(u, s)),
        Op::Symlink { name, target } => fs.symlink(req, ino, name, Path::new(target), ReplyEntry::new(u, s)),
        Op::Mknod { mode, rdev, umask, name } => fs.mknod(req, ino, name, mode, umask, rdev, ReplyEntry::new(u, s)),
        Op::Mkdir { mode, umask, name } => fs.mkdir(req, ino, name, mode, umask, ReplyEntry::new(u, s)),
        Op::Unlink { name } => fs.unlink(req, ino, name, ReplyEmpty::new(u, s)),
        Op::Rmdir { name } => fs.rmdir(req, ino, name, ReplyEmpty::new(u, s)),
        Op::Rename { newdir, flags, name, newname } => {
            let flags = RenameFlags::from_bits_retain(flags);
            fs.rename(req, ino, name, INodeNo(newdir), newname, flags, ReplyEmpty::new(u, s))
        }
        Op::Link { oldnode, newname } => fs.link(req, INodeNo(oldnode), ino, newname, ReplyEntry::new(u, s)),
        Op::Open { flags } => fs.open(req, ino, OpenFlags(flags as i32), ReplyOpen::new(u, s)),
        Op::Read(r) => {
            let owner = (r.read_flags & abi::READ_LOCKOWNER != 0).then_some(LockOwner(r.lock_owner));
            let flags = OpenFlags(r.flags as i32);
            fs.read(req, ino, FileHandle(r.fh), r.offset, r.size, flags, owner, ReplyData::new(u, s))
        }
        Op::Write { fh, offset, write_flags, lock_owner, flags, data } => {
            let owner = (write_flags & abi::WRITE_LOCKOWNER != 0).then_some(LockOwner(lock_owner));
            let wf = WriteFlags::from_bits_retain(write_flags);
            let flags = OpenFlags(flags as i32);
            fs.write(req, ino, FileHandle(fh), offset, data, wf, flags, owner, ReplyWrite::new(u, s))
        }
        Op::Statfs => fs.statfs(req, ino, ReplyStatfs::new(u, s)),
        Op::Release(r) => {
            let owner = (r.release_flags & abi::RELEASE_FLOCK_UNLOCK != 0).then_some(LockOwner(r.lock_owner));
            let flush = r.release_flags & abi::RELEASE_FLUSH != 0;
            let flags = OpenFlags(r.flags as i32);
            fs.release(req, ino, FileHandle(r.fh), flags, owner, flush, ReplyEmpty::new(u, s))
        }
        Op::Fsync { fh, datasync } => fs.fsync(req, ino, FileHandle(fh), datasync, ReplyEmpty::new(u, s)),
        Op::Setxattr { flags, name, value } => {
            fs.setxattr(req, ino, name, value, flags as i32, 0, ReplyEmpty::new(u, s))
        }
        Op::Getxattr { size, name } => fs.getxattr(req, ino, name, size, ReplyXattr::new(u, s)),
        Op::Listxattr { size } => fs.listxattr(req, ino, size, ReplyXattr::new(u, s)),
        Op::Removexattr { name } => fs.removexattr(req, ino, name, ReplyEmpty::new(u, s)),
        Op::Flush { fh, lock_owner } => {
            fs.flush(req, ino, FileHandle(fh), LockOwner(lock_owner), ReplyEmpty::new(u, s))
        }
        Op::Opendir { flags } => fs.opendir(req, ino, OpenFlags(flags as i32), ReplyOpen::new(u, s)),
        Op::Readdir(r) => fs.readdir(req, ino, FileHandle(r.fh), r.offset, ReplyDirectory::new(u, s, r.size as usize)),
        Op::Readdirplus(r) => {
            let reply = ReplyDirectoryPlus::new(u, s, r.size as usize);
            fs.readdirplus(req, ino, FileHandle(r.fh), r.offset, reply)
        }
        Op::Releasedir(r) => {
            fs.releasedir(req, ino, FileHandle(r.fh), OpenFlags(r.flags as i32), ReplyEmpty::new(u, s))
        }
        Op::Fsyncdir { fh, datasync } => fs.fsyncdir(req, ino, FileHandle(fh), datasync, ReplyEmpty::new(u, s)),
        Op::Getlk(l) => fs.getlk(req, ino, Lock::from(&l), ReplyLock::new(u, s)),
        Op::Setlk { lk: l, sleep } => fs.setlk(req, ino, Lock::from(&l), sleep, ReplyEmpty::new(u, s)),
        Op::Create { flags, mode, umask, name } => {
            fs.create(req, ino, name, mode, umask, flags as i32, ReplyCreate::new(u, s))
        }
        Op::Fallocate { fh, offset, length, mode } => {
            fs.fallocate(req, ino, FileHandle(fh), offset, length, mode as i32, ReplyEmpty::new(u, s))
        }
        Op::Poll { fh, kh, flags, events } => {
            let ph = PollNotifier::new(notifier.clone(), kh);
            let (ev, fl) = (PollEvents::from_bits_retain(events), PollFlags::from_bits_retain(flags));
            fs.poll(req, ino, FileHandle(fh), ph, ev, fl, ReplyPoll::new(u, s))
        }
        Op::Ioctl { fh, flags, cmd, in_data, out_size } => {
            let fl = IoctlFlags::from_bits_retain(flags);
            fs.ioctl(req, ino, FileHandle(fh), fl, cmd, in_data, out_size, ReplyIoctl::new(u, s))
        }
        Op::Lseek { fh, offset, whence } => {
            fs.lseek(req, ino, FileHandle(fh), offset, whence as i32, ReplyLseek::new(u, s))
        }
        // The waits of this file system watch the caller's signals themselves (see
        // crate::remote): ENOSYS tells the kernel not to send INTERRUPT again.
        Op::Interrupt { .. } => ReplyEmpty::new(u, s).error(Errno::ENOSYS),
        // After the handshake; DESTROY ends the session before dispatch.
        Op::Init(_) | Op::Destroy => ReplyEmpty::new(u, s).error(Errno::EIO),
        Op::Other(_) => ReplyEmpty::new(u, s).error(Errno::ENOSYS),
    }
}
