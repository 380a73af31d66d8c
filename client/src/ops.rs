//! Typed file operations on a [`Session`]: one method per QTP request, returning owned
//! results. Credentials travel with every path request.

use qtfs_proto::consts::{self, errno};
use qtfs_proto::*;

use crate::error::{ClientError, Result};
use crate::session::{Pending, Session};

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
        let mut r = SetattrReq { ctx, handle, groups, path: Path(path), ..Default::default() };
        if let Some(m) = self.mode {
            r.valid |= consts::setattr::MODE;
            r.mode = m;
        }
        if let Some(u) = self.uid {
            r.valid |= consts::setattr::UID;
            r.uid = u;
        }
        if let Some(g) = self.gid {
            r.valid |= consts::setattr::GID;
            r.gid = g;
        }
        if let Some(s) = self.size {
            r.valid |= consts::setattr::SIZE;
            r.size = s;
        }
        match self.atime {
            Some(SetTime::Now) => r.valid |= consts::setattr::ATIME_NOW,
            Some(SetTime::At(s, n)) => {
                r.valid |= consts::setattr::ATIME;
                r.atime_sec = s;
                r.atime_nsec = n;
            }
            None => {}
        }
        match self.mtime {
            Some(SetTime::Now) => r.valid |= consts::setattr::MTIME_NOW,
            Some(SetTime::At(s, n)) => {
                r.valid |= consts::setattr::MTIME;
                r.mtime_sec = s;
                r.mtime_nsec = n;
            }
            None => {}
        }
        r
    }
}

fn attr_of(p: Pending) -> Result<Attr> {
    let r = p.wait()?;
    Ok(r.decode::<AttrRsp>()?.attr)
}

fn unit(p: Pending) -> Result<()> {
    p.wait().map(|_| ())
}

impl Session {
    /// Round trip with an echo payload.
    pub fn ping(&self, data: &[u8]) -> Result<Vec<u8>> {
        Ok(self.call(Op::PING, &Data { data: Rest(data) })?.payload)
    }

    /// Exports a HOST directory; returns the export id and root attributes.
    pub fn mount(&self, host_path: &str, cred: &Cred) -> Result<(u32, Attr)> {
        let r = self.call(
            Op::MOUNT,
            &MountReq { ctx: cred.ctx(0), flags: 0, groups: cred.groups(), path: Path(host_path.as_bytes()) },
        )?;
        let m = r.decode::<MountRsp>()?;
        Ok((m.export, m.root))
    }

    pub fn umount(&self, export: u32) -> Result<()> {
        unit(self.submit(Op::UMOUNT, &UmountReq { export })?)
    }

    /// Attributes of a name without following a final symlink. ENOENT is an error here;
    /// callers that cache negative entries check `errno() == ENOENT`.
    pub fn lookup(&self, export: u32, path: &[u8], cred: &Cred) -> Result<Attr> {
        attr_of(self.submit(Op::LOOKUP, &PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) })?)
    }

    pub fn getattr(&self, export: u32, path: &[u8], follow: bool, cred: &Cred) -> Result<Attr> {
        let flags = if follow { consts::GETATTR_FOLLOW } else { 0 };
        attr_of(self.submit(
            Op::GETATTR,
            &GetattrReq { ctx: cred.ctx(export), flags, groups: cred.groups(), path: Path(path) },
        )?)
    }

    pub fn fgetattr(&self, handle: u64) -> Result<Attr> {
        attr_of(self.submit(Op::FGETATTR, &HandleReq { handle })?)
    }

    pub fn setattr(&self, export: u32, path: &[u8], set: &SetAttr, cred: &Cred) -> Result<Attr> {
        attr_of(self.submit(Op::SETATTR, &set.encode(cred.ctx(export), 0, cred.groups(), path))?)
    }

    pub fn fsetattr(&self, handle: u64, set: &SetAttr, cred: &Cred) -> Result<Attr> {
        attr_of(self.submit(Op::SETATTR, &set.encode(cred.ctx(0), handle, cred.groups(), b""))?)
    }

    /// Opens with portable `flags` ([`consts::open`]); returns handle and attributes.
    pub fn open(&self, export: u32, path: &[u8], flags: u32, mode: u32, cred: &Cred) -> Result<(u64, Attr)> {
        let r = self
            .submit(Op::OPEN, &OpenReq { ctx: cred.ctx(export), flags, mode, groups: cred.groups(), path: Path(path) })?
            .wait()?;
        let o = r.decode::<OpenRsp>()?;
        Ok((o.handle, o.attr))
    }

    /// Creates a regular file; `open` = false creates only (handle 0).
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        export: u32,
        path: &[u8],
        flags: u32,
        mode: u32,
        umask: u32,
        open: bool,
        cred: &Cred,
    ) -> Result<(u64, Attr)> {
        let cflags = if open { 0 } else { consts::CREATE_NOOPEN };
        let r = self
            .submit(
                Op::CREATE,
                &CreateReq {
                    ctx: cred.ctx(export),
                    flags,
                    mode,
                    umask,
                    cflags,
                    groups: cred.groups(),
                    path: Path(path),
                },
            )?
            .wait()?;
        let o = r.decode::<OpenRsp>()?;
        Ok((o.handle, o.attr))
    }

    pub fn close_handle(&self, handle: u64) -> Result<()> {
        unit(self.submit(Op::CLOSE, &HandleReq { handle })?)
    }

    /// Reads up to `len` bytes at `offset` (short read = end of file).
    pub fn read(&self, handle: u64, offset: u64, len: u32) -> Result<Vec<u8>> {
        Ok(self.submit(Op::READ, &ReadReq { handle, offset, len })?.wait()?.payload)
    }

    /// Writes `data` at `offset`; returns bytes written.
    pub fn write(&self, handle: u64, offset: u64, data: &[u8]) -> Result<u32> {
        if data.len() > MAX_IO {
            return Err(ClientError::Remote(errno::EINVAL));
        }
        let r = self.submit(Op::WRITE, &WriteReq { handle, offset, flags: 0, data: Rest(data) })?.wait()?;
        Ok(r.decode::<WriteRsp>()?.written)
    }

    pub fn fsync(&self, handle: u64, datasync: bool) -> Result<()> {
        let flags = if datasync { consts::FSYNC_DATASYNC } else { 0 };
        unit(self.submit(Op::FSYNC, &FsyncReq { handle, flags })?)
    }

    pub fn fallocate(&self, handle: u64, mode: u32, offset: u64, len: u64) -> Result<()> {
        unit(self.submit(Op::FALLOCATE, &FallocateReq { handle, mode, offset, len })?)
    }

    pub fn llseek(&self, handle: u64, offset: i64, whence: u32) -> Result<u64> {
        let r = self.submit(Op::LLSEEK, &LlseekReq { handle, offset, whence })?.wait()?;
        Ok(r.decode::<LlseekRsp>()?.offset)
    }

    /// One page of directory entries after `cookie`.
    pub fn readdir(
        &self,
        export: u32,
        path: &[u8],
        cookie: u64,
        max_bytes: u32,
        plus: bool,
        cred: &Cred,
    ) -> Result<DirPage> {
        let flags = if plus { consts::READDIR_PLUS } else { 0 };
        let r = self
            .submit(
                Op::READDIR,
                &ReaddirReq {
                    ctx: cred.ctx(export),
                    cookie,
                    max_bytes,
                    flags,
                    groups: cred.groups(),
                    path: Path(path),
                },
            )?
            .wait()?;
        let rsp = r.decode::<ReaddirRsp>()?;
        let mut entries = Vec::with_capacity(rsp.count as usize);
        if plus {
            for e in RecordIter::<DirEntryPlus>::new(rsp.entries.0) {
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
            for e in RecordIter::<DirEntry>::new(rsp.entries.0) {
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
        Ok(DirPage { entries, eof: rsp.flags & consts::READDIR_EOF != 0 })
    }

    /// The whole directory.
    pub fn readdir_all(&self, export: u32, path: &[u8], plus: bool, cred: &Cred) -> Result<Vec<DirEntryOwned>> {
        let mut all = Vec::new();
        let mut cookie = 0;
        loop {
            let page = self.readdir(export, path, cookie, 64 * 1024, plus, cred)?;
            if let Some(last) = page.entries.last() {
                cookie = last.cookie;
            }
            let empty = page.entries.is_empty();
            all.extend(page.entries);
            if page.eof || empty {
                return Ok(all);
            }
        }
    }

    pub fn mkdir(&self, export: u32, path: &[u8], mode: u32, umask: u32, cred: &Cred) -> Result<Attr> {
        attr_of(self.submit(
            Op::MKDIR,
            &MkdirReq { ctx: cred.ctx(export), mode, umask, groups: cred.groups(), path: Path(path) },
        )?)
    }

    pub fn rmdir(&self, export: u32, path: &[u8], cred: &Cred) -> Result<()> {
        unit(self.submit(Op::RMDIR, &PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) })?)
    }

    pub fn unlink(&self, export: u32, path: &[u8], cred: &Cred) -> Result<()> {
        unit(self.submit(Op::UNLINK, &PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) })?)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn mknod(
        &self,
        export: u32,
        path: &[u8],
        mode: u32,
        umask: u32,
        major: u32,
        minor: u32,
        cred: &Cred,
    ) -> Result<Attr> {
        attr_of(self.submit(
            Op::MKNOD,
            &MknodReq {
                ctx: cred.ctx(export),
                mode,
                umask,
                rdev_major: major,
                rdev_minor: minor,
                groups: cred.groups(),
                path: Path(path),
            },
        )?)
    }

    pub fn symlink(&self, export: u32, path: &[u8], target: &[u8], cred: &Cred) -> Result<Attr> {
        attr_of(self.submit(
            Op::SYMLINK,
            &SymlinkReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path), target: Path(target) },
        )?)
    }

    pub fn link(&self, export: u32, old: &[u8], new: &[u8], cred: &Cred) -> Result<Attr> {
        attr_of(self.submit(
            Op::LINK,
            &LinkReq { ctx: cred.ctx(export), groups: cred.groups(), old_path: Path(old), new_path: Path(new) },
        )?)
    }

    pub fn readlink(&self, export: u32, path: &[u8], cred: &Cred) -> Result<Vec<u8>> {
        Ok(self
            .submit(Op::READLINK, &PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) })?
            .wait()?
            .payload)
    }

    pub fn rename(&self, export: u32, old: &[u8], new: &[u8], flags: u32, cred: &Cred) -> Result<()> {
        unit(self.submit(
            Op::RENAME,
            &RenameReq {
                ctx: cred.ctx(export),
                flags,
                groups: cred.groups(),
                old_path: Path(old),
                new_path: Path(new),
            },
        )?)
    }

    pub fn statfs(&self, export: u32, path: &[u8], cred: &Cred) -> Result<Statfs> {
        let r = self
            .submit(Op::STATFS, &PathReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path) })?
            .wait()?;
        Ok(r.decode::<StatfsRsp>()?.statfs)
    }

    /// Lists xattr names (`size` 0 = size query: returns the needed size and no data).
    pub fn xattr_list(&self, export: u32, path: &[u8], size: u32, cred: &Cred) -> Result<(u32, Vec<u8>)> {
        let r = self
            .submit(
                Op::XATTR_LIST,
                &XattrListReq { ctx: cred.ctx(export), size, groups: cred.groups(), path: Path(path) },
            )?
            .wait()?;
        let x = r.decode::<XattrRsp>()?;
        Ok((x.size, x.data.0.to_vec()))
    }

    pub fn xattr_get(&self, export: u32, path: &[u8], name: &[u8], size: u32, cred: &Cred) -> Result<(u32, Vec<u8>)> {
        let r = self
            .submit(
                Op::XATTR_GET,
                &XattrGetReq { ctx: cred.ctx(export), size, groups: cred.groups(), path: Path(path), name: Name(name) },
            )?
            .wait()?;
        let x = r.decode::<XattrRsp>()?;
        Ok((x.size, x.data.0.to_vec()))
    }

    pub fn xattr_set(
        &self,
        export: u32,
        path: &[u8],
        name: &[u8],
        value: &[u8],
        flags: u32,
        cred: &Cred,
    ) -> Result<()> {
        unit(self.submit(
            Op::XATTR_SET,
            &XattrSetReq {
                ctx: cred.ctx(export),
                flags,
                groups: cred.groups(),
                path: Path(path),
                name: Name(name),
                value: Bytes32(value),
            },
        )?)
    }

    pub fn xattr_remove(&self, export: u32, path: &[u8], name: &[u8], cred: &Cred) -> Result<()> {
        unit(self.submit(
            Op::XATTR_REMOVE,
            &XattrRemoveReq { ctx: cred.ctx(export), groups: cred.groups(), path: Path(path), name: Name(name) },
        )?)
    }

    /// LOCK_GET: the first lock conflicting with a `ltype` (`LOCK_RD`/`LOCK_WR`) lock of
    /// `len` bytes (0 = to the end of the file) at `start`; `ltype` = `LOCK_UN` when none.
    pub fn lock_get(&self, handle: u64, start: u64, len: u64, ltype: u32) -> Result<LockRsp> {
        let r = self.submit(Op::LOCK_GET, &LockReq { handle, start, len, ltype, flags: 0 })?.wait()?;
        r.decode::<LockRsp>()
    }

    /// LOCK_SET on a byte range (OFD semantics: the lock belongs to the handle). Without
    /// `LOCK_F_WAIT` a conflict fails at once with EAGAIN; with it this waits (use
    /// [`Session::submit_lock`] for a wait that can be cancelled).
    pub fn lock_set(&self, handle: u64, start: u64, len: u64, ltype: u32, wait: bool) -> Result<()> {
        let flags = if wait { consts::LOCK_F_WAIT } else { 0 };
        unit(self.submit_lock(handle, start, len, ltype, flags)?)
    }

    /// flock(2) on a handle: `ltype` `LOCK_RD` (LOCK_SH), `LOCK_WR` (LOCK_EX) or
    /// `LOCK_UN`; `wait` = without LOCK_NB.
    pub fn flock(&self, handle: u64, ltype: u32, wait: bool) -> Result<()> {
        let flags = consts::LOCK_F_FLOCK | if wait { consts::LOCK_F_WAIT } else { 0 };
        unit(self.submit_lock(handle, 0, 0, ltype, flags)?)
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

    /// Waits up to `timeout_ms` for `events` on a handle.
    pub fn poll(&self, handle: u64, events: u32, timeout_ms: u32) -> Result<u32> {
        let r = self.submit(Op::FIFO_POLL, &PollReq { handle, events, timeout_ms })?.wait()?;
        Ok(r.decode::<PollRsp>()?.revents)
    }

    /// A portable ioctl; returns the output record bytes.
    pub fn ioctl(&self, handle: u64, cmd: u32, arg: &[u8]) -> Result<Vec<u8>> {
        Ok(self.submit(Op::IOCTL, &IoctlReq { handle, cmd, arg: Bytes16(arg) })?.wait()?.payload)
    }

    pub fn epoll_ctl(&self, handle: u64, op: u32, events: u32, cookie: u64) -> Result<()> {
        unit(self.submit(Op::EPOLL_CTL, &EpollCtlReq { handle, op, events, cookie })?)
    }

    pub fn kill(&self, pid: i32, signal: i32) -> Result<()> {
        unit(self.submit(Op::KILL, &KillReq { pid, signal })?)
    }

    pub fn sched_getaffinity(&self, pid: i32) -> Result<Vec<u8>> {
        Ok(self.submit(Op::SCHED_GETAFFINITY, &AffinityGetReq { pid })?.wait()?.payload)
    }

    pub fn sched_setaffinity(&self, pid: i32, mask: &[u8]) -> Result<()> {
        unit(self.submit(Op::SCHED_SETAFFINITY, &AffinitySetReq { pid, mask: Bytes16(mask) })?)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sysmount(
        &self,
        export: u32,
        target: &[u8],
        source: &[u8],
        source_is_path: bool,
        fstype: &[u8],
        flags: u64,
        data: &[u8],
        cred: &Cred,
    ) -> Result<()> {
        let source_kind = if source_is_path { consts::SYSMOUNT_SRC_PATH } else { consts::SYSMOUNT_SRC_LITERAL };
        unit(self.submit(
            Op::SYSMOUNT,
            &SysmountReq {
                ctx: cred.ctx(export),
                flags,
                source_kind,
                groups: cred.groups(),
                target: Path(target),
                source: Path(source),
                fstype: Name(fstype),
                data: Bytes16(data),
            },
        )?)
    }

    pub fn sysumount(&self, export: u32, target: &[u8], flags: u32, cred: &Cred) -> Result<()> {
        unit(self.submit(
            Op::SYSUMOUNT,
            &SysumountReq { ctx: cred.ctx(export), flags, groups: cred.groups(), target: Path(target) },
        )?)
    }
}
