//! The typed QTP operations ([`Ops`]): one method per request, encoding it, decoding its
//! response with every check, returning owned results; written once, over any
//! [`Transport`] (the pipelined [`Session`], which also offers them as its own methods,
//! or a [`crate::BlockingConn`]). Credentials travel with every path request.
//!
//! Owns the request encodings, the response decodings and [`Cred`]; the lock waits only
//! a pipelined session can make (unbounded, cancellable) are at the end.

use qtfs_proto::consts::{self, errno};
use qtfs_proto::*;

use crate::error::{ClientError, Result};
use crate::session::{Pending, Session};
use crate::transport::Transport;

/// The caller's identity sent with every path request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Cred {
    pub fn root() -> Cred {
        Cred::default()
    }
    pub fn new(uid: u32, gid: u32, groups: Vec<u32>) -> Cred {
        Cred { uid, gid, groups }
    }
    /// The calling process's effective ids and (first 64) supplementary groups.
    pub fn current() -> Cred {
        // SAFETY: these getters cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let mut groups = vec![0 as libc::gid_t; MAX_GROUPS];
        // SAFETY: the buffer holds MAX_GROUPS entries.
        let n = unsafe { libc::getgroups(MAX_GROUPS as libc::c_int, groups.as_mut_ptr()) };
        groups.truncate(n.max(0) as usize);
        Cred { uid, gid, groups }
    }
    fn ctx(&self, export: u32) -> ReqCtx {
        ReqCtx { export, uid: self.uid, gid: self.gid }
    }
    fn groups(&self) -> Groups<'_> {
        Groups::Ids(&self.groups[..self.groups.len().min(MAX_GROUPS)])
    }
}

/// An owned directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryOwned {
    pub name: Vec<u8>,
    pub ino: u64,
    pub cookie: u64,
    pub dtype: u8,
    /// Present with READDIR_PLUS.
    pub attr: Option<Attr>,
}

/// One page of a directory listing.
#[derive(Debug, Clone, Default)]
pub struct DirPage {
    pub entries: Vec<DirEntryOwned>,
    pub eof: bool,
    /// The directory's attributes, read right after the listing reached its end
    /// (`feat::LIST_ATTR`).
    pub dir_attr: Option<Attr>,
}

/// What a SYSMOUNT mounts: a path inside the export (a bind or move source), or a
/// literal source string for a new file system (`tmpfs`, `devpts`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountSource<'a> {
    Path(&'a [u8]),
    Literal(&'a [u8]),
}

/// Times for SETATTR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Now,
    At(i64, u32),
}

/// What SETATTR changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

impl SetAttr {
    fn encode<'a>(&self, ctx: ReqCtx, handle: u64, groups: Groups<'a>, path: &'a [u8]) -> SetattrReq<'a> {
        use consts::setattr::*;
        let (atime_bit, atime_sec, atime_nsec) = time_field(self.atime, ATIME_NOW, ATIME);
        let (mtime_bit, mtime_sec, mtime_nsec) = time_field(self.mtime, MTIME_NOW, MTIME);
        let (mode_bit, mode) = field(self.mode, MODE);
        let (uid_bit, uid) = field(self.uid, UID);
        let (gid_bit, gid) = field(self.gid, GID);
        let (size_bit, size) = field(self.size, SIZE);
        SetattrReq {
            ctx,
            handle,
            valid: mode_bit | uid_bit | gid_bit | size_bit | atime_bit | mtime_bit,
            mode,
            uid,
            gid,
            size,
            atime_sec,
            mtime_sec,
            atime_nsec,
            mtime_nsec,
            groups,
            path: Path(path),
        }
    }
}

/// One SETATTR field: its `valid` bit `bit` and its value, both 0 when it is not changed.
fn field<T: Default>(v: Option<T>, bit: u32) -> (u32, T) {
    match v {
        Some(v) => (bit, v),
        None => (0, T::default()),
    }
}

/// One SETATTR time: its `valid` bit (`now` or `at`), seconds and nanoseconds.
fn time_field(t: Option<SetTime>, now: u32, at: u32) -> (u32, i64, u32) {
    match t {
        Some(SetTime::Now) => (now, 0, 0),
        Some(SetTime::At(s, n)) => (at, s, n),
        None => (0, 0, 0),
    }
}

fn attr(p: &[u8]) -> Result<Attr> {
    Ok(AttrRsp::decode(p)?.attr)
}

/// A name operation's answer: `R`, then (`feat::DIR_ATTR`) the attributes of at most two
/// changed directories.
fn with_dirs<R: for<'a> Wire<'a>>(p: &[u8]) -> Result<(R, Vec<Attr>)> {
    let (r, mut used) = R::decode_prefix(p)?;
    let mut dirs = Vec::new();
    while let Some(rest) = p.get(used..).filter(|r| !r.is_empty()) {
        if dirs.len() == 2 {
            return Err(ProtoError::TrailingBytes { what: R::DESC.name, extra: rest.len() }.into());
        }
        let (a, n) = AttrRsp::decode_prefix(rest)?;
        dirs.push(a.attr);
        used += n;
    }
    Ok((r, dirs))
}

fn unit(_: &mut Vec<u8>) -> Result<()> {
    Ok(())
}

/// The whole payload, kept without a copy.
fn payload(p: &mut Vec<u8>) -> Result<Vec<u8>> {
    Ok(std::mem::take(p))
}

fn xattr(p: &[u8]) -> Result<(u32, Vec<u8>)> {
    let x = XattrRsp::decode(p)?;
    Ok((x.size, x.data.0.to_vec()))
}

fn open_rsp(p: &[u8]) -> Result<(u64, Attr)> {
    let o = OpenRsp::decode(p)?;
    Ok((o.handle, o.attr))
}

/// A READDIR answer as owned entries, checked against the count it announces.
fn dir_page(p: &[u8], plus: bool) -> Result<DirPage> {
    let rsp = ReaddirRsp::decode(p)?;
    // The directory's attributes (feat::LIST_ATTR) after the records.
    let (records, dir_attr) = if rsp.flags & consts::READDIR_ATTR != 0 {
        let at = rsp
            .entries
            .0
            .len()
            .checked_sub(AttrRsp::FIXED_SIZE)
            .ok_or(ProtoError::BadValue { what: "ReaddirRsp.flags", value: rsp.flags as u64 })?;
        let (records, tail) = rsp.entries.0.split_at(at);
        (records, Some(AttrRsp::decode(tail)?.attr))
    } else {
        (rsp.entries.0, None)
    };
    let mut entries = Vec::with_capacity(rsp.count as usize);
    if plus {
        for e in RecordIter::<DirEntryPlus>::new(records) {
            let e = e?;
            entries.push(DirEntryOwned {
                name: e.name.0.to_vec(),
                ino: e.attr.ino,
                cookie: e.cookie,
                dtype: ((e.attr.mode >> 12) & 0xf) as u8,
                attr: Some(e.attr),
            });
        }
    } else {
        for e in RecordIter::<DirEntry>::new(records) {
            let e = e?;
            entries.push(DirEntryOwned {
                name: e.name.0.to_vec(),
                ino: e.ino,
                cookie: e.cookie,
                dtype: e.dtype,
                attr: None,
            });
        }
    }
    if entries.len() != rsp.count as usize {
        return Err(ProtoError::BadValue { what: "ReaddirRsp.count", value: rsp.count as u64 }.into());
    }
    Ok(DirPage { entries, eof: rsp.flags & consts::READDIR_EOF != 0, dir_attr })
}

/// The typed QTP operations, one method per request, over any [`Transport`]: each
/// request is encoded and its response decoded and checked here and nowhere else.
/// [`Session`] offers them as its own methods; a [`crate::BlockingConn`] (and qtfs-fuse's
/// per-thread connection) through this trait.
pub trait Ops: Transport {
    /// Sends name operation `op` (one that changes a directory) and decodes its answer
    /// `R`; the changed directories' attributes that follow it go to the transport
    /// ([`Transport::changed_dirs`]).
    fn name_op<'m, M: Wire<'m>, R: for<'a> Wire<'a>>(&mut self, op: Op, msg: &M) -> Result<R> {
        let (r, dirs) = self.exchange(op, msg, &[], |p| with_dirs::<R>(p))?;
        if !dirs.is_empty() {
            self.changed_dirs(&dirs);
        }
        Ok(r)
    }

    /// Round trip with an echo payload.
    fn ping(&mut self, data: &[u8]) -> Result<Vec<u8>> {
        self.exchange(Op::PING, &Data { data: Rest(data) }, &[], payload)
    }

    /// Exports a HOST directory; returns the export id and root attributes.
    fn mount(&mut self, host_path: &str, cred: &Cred) -> Result<(u32, Attr)> {
        let m = MountReq { ctx: cred.ctx(0), flags: 0, groups: cred.groups(), path: Path(host_path.as_bytes()) };
        self.exchange(Op::MOUNT, &m, &[], |p| {
            let m = MountRsp::decode(p)?;
            Ok((m.export, m.root))
        })
    }

    fn umount(&mut self, export: u32) -> Result<()> {
        self.exchange(Op::UMOUNT, &UmountReq { export }, &[], unit)
    }

    /// Attributes of a name without following a final symlink. ENOENT is an error here;
    /// callers that cache negative entries check `errno() == ENOENT`.
    fn lookup(&mut self, export: u32, path: &[u8], cred: &Cred) -> Result<Attr> {
        let m = PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) };
        self.exchange(Op::LOOKUP, &m, &[], |p| attr(p))
    }

    fn getattr(&mut self, export: u32, path: &[u8], follow: bool, cred: &Cred) -> Result<Attr> {
        let flags = if follow { consts::GETATTR_FOLLOW } else { 0 };
        let m = GetattrReq { ctx: cred.ctx(export), flags, groups: cred.groups(), path: Path(path) };
        self.exchange(Op::GETATTR, &m, &[], |p| attr(p))
    }

    fn fgetattr(&mut self, handle: u64) -> Result<Attr> {
        self.exchange(Op::FGETATTR, &HandleReq { handle }, &[], |p| attr(p))
    }

    fn setattr(&mut self, export: u32, path: &[u8], set: &SetAttr, cred: &Cred) -> Result<Attr> {
        self.exchange(Op::SETATTR, &set.encode(cred.ctx(export), 0, cred.groups(), path), &[], |p| attr(p))
    }

    fn fsetattr(&mut self, handle: u64, set: &SetAttr, cred: &Cred) -> Result<Attr> {
        self.exchange(Op::SETATTR, &set.encode(cred.ctx(0), handle, cred.groups(), b""), &[], |p| attr(p))
    }

    /// Opens with portable `flags` ([`consts::open`]); returns handle and attributes.
    fn open(&mut self, export: u32, path: &[u8], flags: u32, mode: u32, cred: &Cred) -> Result<(u64, Attr)> {
        let m = OpenReq { ctx: cred.ctx(export), flags, mode, groups: cred.groups(), path: Path(path) };
        self.exchange(Op::OPEN, &m, &[], |p| open_rsp(p))
    }

    /// Creates a regular file; `open` = false creates only (handle 0).
    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        export: u32,
        path: &[u8],
        flags: u32,
        mode: u32,
        umask: u32,
        open: bool,
        cred: &Cred,
    ) -> Result<(u64, Attr)> {
        let cflags = if open { 0 } else { consts::CREATE_NOOPEN };
        let m =
            CreateReq { ctx: cred.ctx(export), flags, mode, umask, cflags, groups: cred.groups(), path: Path(path) };
        self.name_op::<_, OpenRsp>(Op::CREATE, &m).map(|o| (o.handle, o.attr))
    }

    fn close_handle(&mut self, handle: u64) -> Result<()> {
        self.exchange(Op::CLOSE, &HandleReq { handle }, &[], unit)
    }

    /// Reads up to `len` bytes at `offset` (short read = end of file).
    fn read(&mut self, handle: u64, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.exchange(Op::READ, &ReadReq { handle, offset, len }, &[], payload)
    }

    /// [`Ops::read`], handing the data to `f` where the transport received it (no copy).
    fn read_with<R>(&mut self, handle: u64, offset: u64, len: u32, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        self.exchange(Op::READ, &ReadReq { handle, offset, len }, &[], |p| f(p))
    }

    /// Writes `data` at `offset`; returns bytes written.
    fn write(&mut self, handle: u64, offset: u64, data: &[u8]) -> Result<u32> {
        if data.len() > MAX_IO {
            return Err(ClientError::Remote(errno::EINVAL));
        }
        // The data goes out as the payload's tail (a `rest` field has no length of its
        // own), straight from the caller's buffer.
        let m = WriteReq { handle, offset, flags: 0, data: Rest(&[]) };
        self.exchange(Op::WRITE, &m, data, |p| Ok(WriteRsp::decode(p)?.written))
    }

    fn fsync(&mut self, handle: u64, datasync: bool) -> Result<()> {
        let flags = if datasync { consts::FSYNC_DATASYNC } else { 0 };
        self.exchange(Op::FSYNC, &FsyncReq { handle, flags }, &[], unit)
    }

    fn fallocate(&mut self, handle: u64, mode: u32, offset: u64, len: u64) -> Result<()> {
        self.exchange(Op::FALLOCATE, &FallocateReq { handle, mode, offset, len }, &[], unit)
    }

    fn llseek(&mut self, handle: u64, offset: i64, whence: u32) -> Result<u64> {
        self.exchange(Op::LLSEEK, &LlseekReq { handle, offset, whence }, &[], |p| Ok(LlseekRsp::decode(p)?.offset))
    }

    /// One page of directory entries after `cookie`.
    fn readdir(
        &mut self,
        export: u32,
        path: &[u8],
        cookie: u64,
        max_bytes: u32,
        plus: bool,
        cred: &Cred,
    ) -> Result<DirPage> {
        let flags = if plus { consts::READDIR_PLUS } else { 0 };
        let m = ReaddirReq { ctx: cred.ctx(export), cookie, max_bytes, flags, groups: cred.groups(), path: Path(path) };
        self.exchange(Op::READDIR, &m, &[], |p| dir_page(p, plus))
    }

    /// The whole directory, in pages of 64 KiB.
    fn readdir_all(&mut self, export: u32, path: &[u8], plus: bool, cred: &Cred) -> Result<Vec<DirEntryOwned>> {
        self.readdir_paged(export, path, plus, 64 * 1024, cred)
    }

    /// The whole directory, in pages of `page_bytes`; the directory's attributes read
    /// after it (`feat::LIST_ATTR`) go to the transport ([`Transport::changed_dirs`]).
    fn readdir_paged(
        &mut self,
        export: u32,
        path: &[u8],
        plus: bool,
        page_bytes: u32,
        cred: &Cred,
    ) -> Result<Vec<DirEntryOwned>> {
        let mut all = Vec::new();
        let mut cookie = 0;
        loop {
            let page = self.readdir(export, path, cookie, page_bytes, plus, cred)?;
            if let Some(last) = page.entries.last() {
                cookie = last.cookie;
            }
            let empty = page.entries.is_empty();
            all.extend(page.entries);
            if page.eof || empty {
                // The transport keeps them as a change's (Transport::changed_dirs).
                if let Some(a) = page.dir_attr {
                    self.changed_dirs(&[a]);
                }
                return Ok(all);
            }
        }
    }

    fn mkdir(&mut self, export: u32, path: &[u8], mode: u32, umask: u32, cred: &Cred) -> Result<Attr> {
        let m = MkdirReq { ctx: cred.ctx(export), mode, umask, groups: cred.groups(), path: Path(path) };
        self.name_op::<_, AttrRsp>(Op::MKDIR, &m).map(|r| r.attr)
    }

    fn rmdir(&mut self, export: u32, path: &[u8], cred: &Cred) -> Result<()> {
        let m = PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) };
        self.name_op::<_, Empty>(Op::RMDIR, &m).map(|_| ())
    }

    fn unlink(&mut self, export: u32, path: &[u8], cred: &Cred) -> Result<()> {
        let m = PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) };
        self.name_op::<_, Empty>(Op::UNLINK, &m).map(|_| ())
    }

    #[allow(clippy::too_many_arguments)]
    fn mknod(
        &mut self,
        export: u32,
        path: &[u8],
        mode: u32,
        umask: u32,
        major: u32,
        minor: u32,
        cred: &Cred,
    ) -> Result<Attr> {
        let m = MknodReq {
            ctx: cred.ctx(export),
            mode,
            umask,
            rdev_major: major,
            rdev_minor: minor,
            groups: cred.groups(),
            path: Path(path),
        };
        self.name_op::<_, AttrRsp>(Op::MKNOD, &m).map(|r| r.attr)
    }

    fn symlink(&mut self, export: u32, path: &[u8], target: &[u8], cred: &Cred) -> Result<Attr> {
        let m = SymlinkReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path), target: Path(target) };
        self.name_op::<_, AttrRsp>(Op::SYMLINK, &m).map(|r| r.attr)
    }

    fn link(&mut self, export: u32, old: &[u8], new: &[u8], cred: &Cred) -> Result<Attr> {
        let m = LinkReq { ctx: cred.ctx(export), groups: cred.groups(), old_path: Path(old), new_path: Path(new) };
        self.name_op::<_, AttrRsp>(Op::LINK, &m).map(|r| r.attr)
    }

    fn readlink(&mut self, export: u32, path: &[u8], cred: &Cred) -> Result<Vec<u8>> {
        let m = PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) };
        self.exchange(Op::READLINK, &m, &[], payload)
    }

    fn rename(&mut self, export: u32, old: &[u8], new: &[u8], flags: u32, cred: &Cred) -> Result<()> {
        let m =
            RenameReq { ctx: cred.ctx(export), flags, groups: cred.groups(), old_path: Path(old), new_path: Path(new) };
        self.name_op::<_, Empty>(Op::RENAME, &m).map(|_| ())
    }

    /// STATFS of the file system holding `path` (an export may span several mounts:
    /// `/sys` holds `/sys/fs/cgroup`); `b""` for the export's root.
    fn statfs(&mut self, export: u32, path: &[u8], cred: &Cred) -> Result<Statfs> {
        let m = PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) };
        self.exchange(Op::STATFS, &m, &[], |p| Ok(StatfsRsp::decode(p)?.statfs))
    }

    /// Lists xattr names (`size` 0 = size query: returns the needed size and no data).
    fn xattr_list(&mut self, export: u32, path: &[u8], size: u32, cred: &Cred) -> Result<(u32, Vec<u8>)> {
        let m = XattrListReq { ctx: cred.ctx(export), size, groups: cred.groups(), path: Path(path) };
        self.exchange(Op::XATTR_LIST, &m, &[], |p| xattr(p))
    }

    fn xattr_get(&mut self, export: u32, path: &[u8], name: &[u8], size: u32, cred: &Cred) -> Result<(u32, Vec<u8>)> {
        let m = XattrGetReq { ctx: cred.ctx(export), size, groups: cred.groups(), path: Path(path), name: Name(name) };
        self.exchange(Op::XATTR_GET, &m, &[], |p| xattr(p))
    }

    fn xattr_set(
        &mut self,
        export: u32,
        path: &[u8],
        name: &[u8],
        value: &[u8],
        flags: u32,
        cred: &Cred,
    ) -> Result<()> {
        let m = XattrSetReq {
            ctx: cred.ctx(export),
            flags,
            groups: cred.groups(),
            path: Path(path),
            name: Name(name),
            value: Bytes32(value),
        };
        self.exchange(Op::XATTR_SET, &m, &[], unit)
    }

    fn xattr_remove(&mut self, export: u32, path: &[u8], name: &[u8], cred: &Cred) -> Result<()> {
        let m = XattrRemoveReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path), name: Name(name) };
        self.exchange(Op::XATTR_REMOVE, &m, &[], unit)
    }

    /// LOCK_GET: the first lock conflicting with a `ltype` (`LOCK_RD`/`LOCK_WR`) lock of
    /// `len` bytes (0 = to the end of the file) at `start`; `ltype` = `LOCK_UN` when none.
    fn lock_get(&mut self, handle: u64, start: u64, len: u64, ltype: u32) -> Result<LockRsp> {
        self.exchange(Op::LOCK_GET, &LockReq { handle, start, len, ltype, flags: 0 }, &[], |p| Ok(LockRsp::decode(p)?))
    }

    /// LOCK_SET on a byte range without waiting (OFD semantics: the lock belongs to the
    /// handle): a conflict fails at once with EAGAIN.
    fn try_lock(&mut self, handle: u64, start: u64, len: u64, ltype: u32) -> Result<()> {
        self.exchange(Op::LOCK_SET, &LockReq { handle, start, len, ltype, flags: 0 }, &[], unit)
    }

    /// LOCK_SET of a whole-file flock(2) lock (`ltype` `LOCK_RD` = LOCK_SH, `LOCK_WR` =
    /// LOCK_EX, `LOCK_UN`) without waiting: a conflict fails at once with EAGAIN.
    fn try_flock(&mut self, handle: u64, ltype: u32) -> Result<()> {
        let m = LockReq { handle, start: 0, len: 0, ltype, flags: consts::LOCK_F_FLOCK };
        self.exchange(Op::LOCK_SET, &m, &[], unit)
    }

    /// Waits up to `timeout_ms` for `events` on a handle.
    fn poll(&mut self, handle: u64, events: u32, timeout_ms: u32) -> Result<u32> {
        self.exchange(Op::FIFO_POLL, &PollReq { handle, events, timeout_ms }, &[], |p| Ok(PollRsp::decode(p)?.revents))
    }

    /// A portable ioctl; returns the output record bytes.
    fn ioctl(&mut self, handle: u64, cmd: u32, arg: &[u8]) -> Result<Vec<u8>> {
        self.exchange(Op::IOCTL, &IoctlReq { handle, cmd, arg: Bytes16(arg) }, &[], payload)
    }

    fn epoll_ctl(&mut self, handle: u64, op: u32, events: u32, cookie: u64) -> Result<()> {
        self.exchange(Op::EPOLL_CTL, &EpollCtlReq { handle, op, events, cookie }, &[], unit)
    }

    fn kill(&mut self, pid: i32, signal: i32) -> Result<()> {
        self.exchange(Op::KILL, &KillReq { pid, signal }, &[], unit)
    }

    fn sched_getaffinity(&mut self, pid: i32) -> Result<Vec<u8>> {
        self.exchange(Op::SCHED_GETAFFINITY, &AffinityGetReq { pid }, &[], payload)
    }

    fn sched_setaffinity(&mut self, pid: i32, mask: &[u8]) -> Result<()> {
        self.exchange(Op::SCHED_SETAFFINITY, &AffinitySetReq { pid, mask: Bytes16(mask) }, &[], unit)
    }

    /// SYSMOUNT: mount(2) at `target` (relative to the export) on the HOST.
    #[allow(clippy::too_many_arguments)]
    fn sysmount(
        &mut self,
        export: u32,
        target: &[u8],
        source: MountSource,
        fstype: &[u8],
        flags: u64,
        data: &[u8],
        cred: &Cred,
    ) -> Result<()> {
        let (source_kind, source) = match source {
            MountSource::Path(p) => (consts::SYSMOUNT_SRC_PATH, p),
            MountSource::Literal(l) => (consts::SYSMOUNT_SRC_LITERAL, l),
        };
        let m = SysmountReq {
            ctx: cred.ctx(export),
            flags,
            source_kind,
            groups: cred.groups(),
            target: Path(target),
            source: Path(source),
            fstype: Name(fstype),
            data: Bytes16(data),
        };
        self.exchange(Op::SYSMOUNT, &m, &[], unit)
    }

    fn sysumount(&mut self, export: u32, target: &[u8], flags: u32, cred: &Cred) -> Result<()> {
        let m = SysumountReq { ctx: cred.ctx(export), flags, groups: cred.groups(), target: Path(target) };
        self.exchange(Op::SYSUMOUNT, &m, &[], unit)
    }
}

impl<T: Transport + ?Sized> Ops for T {}

/// [`Session`]'s typed operations: those of [`Ops`] over `&Session`, as methods of its
/// own so that callers need not import the trait.
macro_rules! session_ops {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        impl Session {
            $(
                #[doc = concat!("[`Ops::", stringify!($name), "`] on this session.")]
                #[allow(clippy::too_many_arguments)]
                pub fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    Ops::$name(&mut &*self, $($arg),*)
                }
            )*
        }
    };
}

session_ops! {
    fn ping(data: &[u8]) -> Vec<u8>;
    fn mount(host_path: &str, cred: &Cred) -> (u32, Attr);
    fn umount(export: u32) -> ();
    fn lookup(export: u32, path: &[u8], cred: &Cred) -> Attr;
    fn getattr(export: u32, path: &[u8], follow: bool, cred: &Cred) -> Attr;
    fn fgetattr(handle: u64) -> Attr;
    fn setattr(export: u32, path: &[u8], set: &SetAttr, cred: &Cred) -> Attr;
    fn fsetattr(handle: u64, set: &SetAttr, cred: &Cred) -> Attr;
    fn open(export: u32, path: &[u8], flags: u32, mode: u32, cred: &Cred) -> (u64, Attr);
    fn create(export: u32, path: &[u8], flags: u32, mode: u32, umask: u32, open: bool, cred: &Cred) -> (u64, Attr);
    fn close_handle(handle: u64) -> ();
    fn read(handle: u64, offset: u64, len: u32) -> Vec<u8>;
    fn write(handle: u64, offset: u64, data: &[u8]) -> u32;
    fn fsync(handle: u64, datasync: bool) -> ();
    fn fallocate(handle: u64, mode: u32, offset: u64, len: u64) -> ();
    fn llseek(handle: u64, offset: i64, whence: u32) -> u64;
    fn readdir(export: u32, path: &[u8], cookie: u64, max_bytes: u32, plus: bool, cred: &Cred) -> DirPage;
    fn readdir_all(export: u32, path: &[u8], plus: bool, cred: &Cred) -> Vec<DirEntryOwned>;
    fn mkdir(export: u32, path: &[u8], mode: u32, umask: u32, cred: &Cred) -> Attr;
    fn rmdir(export: u32, path: &[u8], cred: &Cred) -> ();
    fn unlink(export: u32, path: &[u8], cred: &Cred) -> ();
    fn mknod(export: u32, path: &[u8], mode: u32, umask: u32, major: u32, minor: u32, cred: &Cred) -> Attr;
    fn symlink(export: u32, path: &[u8], target: &[u8], cred: &Cred) -> Attr;
    fn link(export: u32, old: &[u8], new: &[u8], cred: &Cred) -> Attr;
    fn readlink(export: u32, path: &[u8], cred: &Cred) -> Vec<u8>;
    fn rename(export: u32, old: &[u8], new: &[u8], flags: u32, cred: &Cred) -> ();
    fn statfs(export: u32, path: &[u8], cred: &Cred) -> Statfs;
    fn xattr_list(export: u32, path: &[u8], size: u32, cred: &Cred) -> (u32, Vec<u8>);
    fn xattr_get(export: u32, path: &[u8], name: &[u8], size: u32, cred: &Cred) -> (u32, Vec<u8>);
    fn xattr_set(export: u32, path: &[u8], name: &[u8], value: &[u8], flags: u32, cred: &Cred) -> ();
    fn xattr_remove(export: u32, path: &[u8], name: &[u8], cred: &Cred) -> ();
    fn lock_get(handle: u64, start: u64, len: u64, ltype: u32) -> LockRsp;
    fn try_lock(handle: u64, start: u64, len: u64, ltype: u32) -> ();
    fn try_flock(handle: u64, ltype: u32) -> ();
    fn poll(handle: u64, events: u32, timeout_ms: u32) -> u32;
    fn ioctl(handle: u64, cmd: u32, arg: &[u8]) -> Vec<u8>;
    fn epoll_ctl(handle: u64, op: u32, events: u32, cookie: u64) -> ();
    fn kill(pid: i32, signal: i32) -> ();
    fn sched_getaffinity(pid: i32) -> Vec<u8>;
    fn sched_setaffinity(pid: i32, mask: &[u8]) -> ();
    fn sysmount(export: u32, target: &[u8], source: MountSource, fstype: &[u8], flags: u64, data: &[u8], cred: &Cred) -> ();
    fn sysumount(export: u32, target: &[u8], flags: u32, cred: &Cred) -> ();
}

/// Lock requests that only a pipelined session can make: a wait that has no time bound
/// and can be cancelled from another thread.
impl Session {
    /// LOCK_SET on a byte range (OFD semantics: the lock belongs to the handle). Without
    /// `wait` a conflict fails at once with EAGAIN ([`Ops::try_lock`]); with it this
    /// waits (use [`Session::submit_lock`] for a wait that can be cancelled).
    pub fn lock_set(&self, handle: u64, start: u64, len: u64, ltype: u32, wait: bool) -> Result<()> {
        if !wait {
            return self.try_lock(handle, start, len, ltype);
        }
        self.submit_lock(handle, start, len, ltype, consts::LOCK_F_WAIT)?.wait().map(drop)
    }

    /// flock(2) on a handle: `ltype` `LOCK_RD` (LOCK_SH), `LOCK_WR` (LOCK_EX) or
    /// `LOCK_UN`; `wait` = without LOCK_NB.
    pub fn flock(&self, handle: u64, ltype: u32, wait: bool) -> Result<()> {
        if !wait {
            return self.try_flock(handle, ltype);
        }
        self.submit_lock(handle, 0, 0, ltype, consts::LOCK_F_FLOCK | consts::LOCK_F_WAIT)?.wait().map(drop)
    }

    /// Sends a LOCK_SET (`flags`: `LOCK_F_*`) without waiting for its answer; a waiting
    /// one can be ended with [`Session::cancel`].
    pub fn submit_lock(&self, handle: u64, start: u64, len: u64, ltype: u32, flags: u32) -> Result<Pending> {
        let mut p = self.submit(Op::LOCK_SET, &LockReq { handle, start, len, ltype, flags })?;
        if flags & consts::LOCK_F_WAIT != 0 {
            // A lock wait has no time bound of its own.
            p.no_timeout();
        }
        Ok(p)
    }

    /// CANCEL: the engine answers the waiting request of `p` with EINTR (if it is still
    /// waiting). Does not wait for either answer.
    pub fn cancel(&self, p: &Pending) -> Result<()> {
        self.submit_on(p.conn(), Op::CANCEL, &CancelReq { id: p.id() }).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Request;

    /// A transport that answers every request with one canned payload and remembers the
    /// request it was given.
    struct Canned {
        answer: Vec<u8>,
        sent: Option<(Op, Vec<u8>)>,
    }

    impl Transport for Canned {
        fn round_trip<R>(&mut self, req: Request<'_>, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
            let [frame, tail] = req.bytes();
            let payload = [&frame[HEADER_SIZE..], tail].concat();
            self.sent = Some((req.header().op().unwrap(), payload));
            f(&mut self.answer.clone())
        }
    }

    fn listing(count: u32, names: &[&[u8]]) -> Vec<u8> {
        let mut entries = Vec::new();
        for (i, n) in names.iter().enumerate() {
            DirEntry { ino: 10 + i as u64, cookie: 1 + i as u64, dtype: 8, name: Name(n) }.encode(&mut entries);
        }
        ReaddirRsp { count, flags: consts::READDIR_EOF, entries: Rest(&entries) }.to_vec()
    }

    /// [`Canned`], keeping the changed directories' attributes.
    struct CannedDirs(Canned, Vec<Attr>);

    impl Transport for CannedDirs {
        fn round_trip<R>(&mut self, req: Request<'_>, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R> {
            self.0.round_trip(req, f)
        }
        fn changed_dirs(&mut self, dirs: &[Attr]) {
            self.1.extend_from_slice(dirs);
        }
    }

    #[test]
    fn a_name_operation_hands_over_at_most_two_whole_directory_attributes() {
        let dir = |ino| Attr { ino, mode: libc::S_IFDIR | 0o755, nlink: 2, ..Default::default() };
        let answer = |n: u64, extra: &[u8]| {
            let mut v = Vec::new();
            for i in 0..n {
                AttrRsp { attr: dir(7 + i) }.encode(&mut v);
            }
            v.extend_from_slice(extra);
            v
        };
        let mut t = CannedDirs(Canned { answer: answer(2, b""), sent: None }, Vec::new());
        t.rename(1, b"a/x", b"b/x", 0, &Cred::root()).unwrap();
        assert_eq!(t.1, vec![dir(7), dir(8)]);
        let mut t = CannedDirs(Canned { answer: answer(0, b""), sent: None }, Vec::new());
        t.unlink(1, b"a/x", &Cred::root()).unwrap();
        assert!(t.1.is_empty(), "no trailer, nothing handed over");
        for bad in [answer(3, b""), answer(1, b"12345")] {
            let mut t = CannedDirs(Canned { answer: bad, sent: None }, Vec::new());
            let e = t.unlink(1, b"a/x", &Cred::root()).unwrap_err();
            assert!(matches!(e, ClientError::Proto(_)), "{e:?}");
            assert!(t.1.is_empty(), "a malformed answer handed attributes over");
        }
    }

    #[test]
    fn a_listing_must_hold_the_entries_it_counts_on_any_transport() {
        let mut t = Canned { answer: listing(2, &[b"a", b"b"]), sent: None };
        let page = t.readdir(1, b"d", 0, 4096, false, &Cred::root()).unwrap();
        assert_eq!(page.entries.iter().map(|e| e.name.as_slice()).collect::<Vec<_>>(), [b"a", b"b"]);
        assert!(page.eof);
        let mut t = Canned { answer: listing(3, &[b"a", b"b"]), sent: None };
        let e = t.readdir(1, b"d", 0, 4096, false, &Cred::root()).unwrap_err();
        assert!(matches!(e, ClientError::Proto(ProtoError::BadValue { what: "ReaddirRsp.count", .. })), "{e:?}");
    }

    #[test]
    fn setattr_sends_only_the_fields_it_changes() {
        let mut t = Canned { answer: AttrRsp::default().to_vec(), sent: None };
        let set = SetAttr { mode: Some(0o640), size: Some(0), atime: Some(SetTime::Now), ..Default::default() };
        t.fsetattr(3, &SetAttr { mtime: Some(SetTime::At(5, 6)), ..set }, &Cred::new(1, 2, vec![])).unwrap();
        let (op, payload) = t.sent.take().unwrap();
        let m = SetattrReq::decode(&payload).unwrap();
        use consts::setattr::*;
        assert_eq!((op, m.handle, m.valid), (Op::SETATTR, 3, MODE | SIZE | ATIME_NOW | MTIME));
        assert_eq!((m.mode, m.uid, m.gid, m.size), (0o640, 0, 0, 0));
        assert_eq!((m.atime_sec, m.atime_nsec, m.mtime_sec, m.mtime_nsec), (0, 0, 5, 6));
        assert_eq!((m.ctx.uid, m.ctx.gid), (1, 2));
    }

    #[test]
    fn a_write_sends_its_data_as_the_payloads_tail() {
        let mut t = Canned { answer: WriteRsp { written: 3 }.to_vec(), sent: None };
        assert_eq!(t.write(7, 4096, b"xyz").unwrap(), 3);
        let (op, payload) = t.sent.take().unwrap();
        let m = WriteReq::decode(&payload).unwrap();
        assert_eq!((op, m.handle, m.offset, m.data.0), (Op::WRITE, 7, 4096, &b"xyz"[..]));
        let big = vec![0u8; MAX_IO + 1];
        assert!(matches!(t.write(7, 0, &big), Err(ClientError::Remote(errno::EINVAL))));
    }
}
