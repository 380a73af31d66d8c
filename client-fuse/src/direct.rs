//! Each FUSE worker thread's own engine connection, and the typed requests made on it.
//!
//! A worker blocks in one request at a time, so it needs no response demultiplexer: it
//! writes the request on its own connection (attached to the shared session, so handles
//! and export ids are valid on it) and reads the answer itself. Compared with the shared
//! [`qtfs_client::Session`], whose reader thread receives the response and then wakes the
//! waiting thread, this saves one thread wake-up per request — on a 2-vCPU machine a
//! cross-CPU wake-up costs about as much as the engine's work for a small request.
//!
//! A connection is bound to the session (and so the epoch) it attached to; it is never
//! used for another. When the engine lost the session, the re-mount thread of
//! [`crate::remote`] has the shared session open the new one (bumping the epoch) and the
//! thread attaches to that; handle requests name the epoch of their handle and are
//! refused without sending on a connection of another epoch, so an old handle can never
//! reach a new session. Attaching ([`Remote::attach`]) is a step of its own, before a
//! request is sent, so a failure to connect is known to have sent nothing.
//!
//! Owns the per-thread connections; the restart rules live in [`crate::remote`].

use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, Instant};

use qtfs_client::{
    ClientError, Connection, Cred, DirEntryOwned, DirPage, Result, SetAttr, SetTime, Stream, read_frame,
};
use qtfs_proto::consts::{self, setattr as sa};
use qtfs_proto::*;

use crate::remote::Remote;

struct Direct {
    owner: u64,
    stream: Stream,
    epoch: u64,
    next_id: u64,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

thread_local! {
    static DIRECT: RefCell<Option<Direct>> = const { RefCell::new(None) };
}

fn lost(e: ClientError) -> ClientError {
    match e {
        ClientError::Io { .. } | ClientError::Timeout => ClientError::Disconnected,
        o => o,
    }
}

impl Direct {
    /// Sends the frame in `tx` (its id field is set here) plus `extra` payload bytes, and
    /// reads frames until the response to it arrives (one-way frames are skipped).
    fn exchange(&mut self, extra: &[u8]) -> Result<FrameHeader> {
        let id = self.next_id;
        self.next_id += 1;
        self.tx[16..24].copy_from_slice(&id.to_le_bytes());
        let r = if extra.is_empty() {
            self.stream.write_all(&self.tx)
        } else {
            self.stream.write_all_vectored(&[&self.tx, extra])
        };
        r.map_err(|e| lost(ClientError::io("send", e)))?;
        loop {
            let h = read_frame(&mut self.stream, &mut self.rx, MAX_PAYLOAD).map_err(lost)?;
            let h = h.ok_or(ClientError::Disconnected)?;
            if h.is_response() && h.id == id {
                return Ok(h);
            }
        }
    }
}

/// Credentials as the wire wants them.
fn ctx(cred: &Cred, export: u32) -> ReqCtx {
    ReqCtx { export, uid: cred.uid, gid: cred.gid }
}

fn groups(cred: &Cred) -> Groups<'_> {
    Groups::Ids(&cred.groups[..cred.groups.len().min(MAX_GROUPS)])
}

fn attr(p: &[u8]) -> Result<Attr> {
    Ok(AttrRsp::decode(p)?.attr)
}

fn unit(_: &[u8]) -> Result<()> {
    Ok(())
}

/// A [`SetAttr`] as a SETATTR request (by path, or by handle when `handle` != 0).
pub fn setattr_req<'a>(set: &SetAttr, cred: &'a Cred, export: u32, handle: u64, path: &'a [u8]) -> SetattrReq<'a> {
    let mut r =
        SetattrReq { ctx: ctx(cred, export), handle, groups: groups(cred), path: Path(path), ..Default::default() };
    if let Some(m) = set.mode {
        r.valid |= sa::MODE;
        r.mode = m;
    }
    if let Some(u) = set.uid {
        r.valid |= sa::UID;
        r.uid = u;
    }
    if let Some(g) = set.gid {
        r.valid |= sa::GID;
        r.gid = g;
    }
    if let Some(s) = set.size {
        r.valid |= sa::SIZE;
        r.size = s;
    }
    match set.atime {
        Some(SetTime::Now) => r.valid |= sa::ATIME_NOW,
        Some(SetTime::At(s, n)) => {
            r.valid |= sa::ATIME;
            r.atime_sec = s;
            r.atime_nsec = n;
        }
        None => {}
    }
    match set.mtime {
        Some(SetTime::Now) => r.valid |= sa::MTIME_NOW,
        Some(SetTime::At(s, n)) => {
            r.valid |= sa::MTIME;
            r.mtime_sec = s;
            r.mtime_nsec = n;
        }
        None => {}
    }
    r
}

impl Remote {
    /// Sends one request on this thread's connection and gives the response payload to
    /// `f`. `in_epoch`: refuse (ESTALE, nothing sent) unless the connection belongs to
    /// that session epoch (handle requests). `extra` is appended to the encoded payload
    /// (a WRITE's data, sent without copying it into the frame).
    pub fn call_with<'m, M: Wire<'m>, R>(
        &self,
        in_epoch: Option<u64>,
        op: Op,
        msg: &M,
        extra: &[u8],
        f: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        self.call_in_epoch(in_epoch, op, msg, extra, f).map(|(r, _)| r)
    }

    /// `call_with`, also returning the session epoch the request was made in (the epoch
    /// a handle returned by OPEN or CREATE belongs to).
    fn call_in_epoch<'m, M: Wire<'m>, R>(
        &self,
        in_epoch: Option<u64>,
        op: Op,
        msg: &M,
        extra: &[u8],
        f: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<(R, u64)> {
        DIRECT.with(|cell| {
            let mut slot = cell.borrow_mut();
            let d = self.attached(&mut slot, None)?;
            if in_epoch.is_some_and(|e| e != d.epoch) {
                return Err(ClientError::Remote(libc::ESTALE));
            }
            d.tx.clear();
            push_frame(&mut d.tx, FrameHeader::request(op, 0, 0), msg);
            if !extra.is_empty() {
                let len = (d.tx.len() - HEADER_SIZE + extra.len()) as u32;
                d.tx[12..16].copy_from_slice(&len.to_le_bytes());
            }
            let h = match d.exchange(extra) {
                Ok(h) => h,
                Err(e) => {
                    *slot = None;
                    return Err(e);
                }
            };
            if h.is_error() {
                return Err(ClientError::Remote(if h.status > 0 { h.status } else { libc::EIO }));
            }
            let epoch = d.epoch;
            f(&d.rx).map(|r| (r, epoch))
        })
    }

    fn call<'m, M: Wire<'m>, R>(
        &self,
        in_epoch: Option<u64>,
        op: Op,
        msg: &M,
        f: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        self.call_with(in_epoch, op, msg, &[], f)
    }

    /// Makes sure this thread has a connection attached to the current session, and
    /// returns that session's epoch. Sends no request; connecting and the handshake end
    /// by `deadline` (within the configured connect timeout).
    pub(crate) fn attach(&self, deadline: Option<Instant>) -> Result<u64> {
        DIRECT.with(|cell| self.attached(&mut cell.borrow_mut(), deadline).map(|d| d.epoch))
    }

    /// This thread's connection for the current epoch, opened if needed.
    fn attached<'a>(&self, slot: &'a mut Option<Direct>, deadline: Option<Instant>) -> Result<&'a mut Direct> {
        let epoch = self.session.epoch();
        if slot.as_ref().is_some_and(|d| d.owner != self.id || d.epoch != epoch) {
            *slot = None;
        }
        match slot {
            Some(d) => Ok(d),
            None => Ok(slot.insert(self.open_direct(deadline)?)),
        }
    }

    /// Attaches a new connection to the shared session's current session.
    fn open_direct(&self, deadline: Option<Instant>) -> Result<Direct> {
        let epoch = self.session.epoch();
        let (sid, token) = self.session.resume_info();
        if self.session.epoch() != epoch {
            return Err(ClientError::Disconnected);
        }
        // INVAL frames go to the shared session's reader threads: this connection is read
        // only while one of its requests waits (see `crate::inval`).
        let mut cfg = self.session.config().clone();
        cfg.features &= !consts::feat::INVAL;
        let cfg = &cfg;
        let c = match deadline {
            Some(t) => {
                // A request's wait for the engine ends at its deadline, connecting included
                // (a floor keeps a connection that is nearly made from being cut off).
                let left = t.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
                let mut cfg = cfg.clone();
                cfg.connect_timeout = cfg.connect_timeout.min(left);
                Connection::open(&cfg, Some((sid, token)))
            }
            None => Connection::open(cfg, Some((sid, token))),
        };
        self.reachable(c.is_ok());
        let c = c.map_err(lost)?;
        if c.agreed.session_id != sid {
            // The engine lost the session (a restart). The re-mount thread has the shared
            // session open the new one (bumping the epoch) and mounts the export again;
            // this thread attaches to it once that is done.
            drop(c);
            self.renew();
            return Err(ClientError::Disconnected);
        }
        Ok(Direct { owner: self.id, stream: c.stream, epoch, next_id: 1, rx: Vec::new(), tx: Vec::new() })
    }

    pub fn lookup(&self, export: u32, path: &[u8], cred: &Cred) -> Result<Attr> {
        self.call(None, Op::LOOKUP, &PathReq { ctx: ctx(cred, export), groups: groups(cred), path: Path(path) }, attr)
    }

    pub fn getattr(&self, export: u32, path: &[u8], cred: &Cred) -> Result<Attr> {
        let m = GetattrReq { ctx: ctx(cred, export), flags: 0, groups: groups(cred), path: Path(path) };
        self.call(None, Op::GETATTR, &m, attr)
    }

    pub fn setattr(&self, export: u32, path: &[u8], set: &SetAttr, cred: &Cred) -> Result<Attr> {
        self.call(None, Op::SETATTR, &setattr_req(set, cred, export, 0, path), attr)
    }

    /// Opens; returns the handle, the epoch it belongs to, and the attributes.
    pub fn open(&self, export: u32, path: &[u8], flags: u32, cred: &Cred) -> Result<(u64, u64, Attr)> {
        let m = OpenReq { ctx: ctx(cred, export), flags, mode: 0, groups: groups(cred), path: Path(path) };
        let ((h, a), epoch) = self.call_in_epoch(None, Op::OPEN, &m, &[], |p| {
            let o = OpenRsp::decode(p)?;
            Ok((o.handle, o.attr))
        })?;
        Ok((h, epoch, a))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &self,
        export: u32,
        path: &[u8],
        flags: u32,
        mode: u32,
        umask: u32,
        cred: &Cred,
    ) -> Result<(u64, u64, Attr)> {
        let m =
            CreateReq { ctx: ctx(cred, export), flags, mode, umask, cflags: 0, groups: groups(cred), path: Path(path) };
        let ((h, a), epoch) = self.call_in_epoch(None, Op::CREATE, &m, &[], |p| {
            let o = OpenRsp::decode(p)?;
            Ok((o.handle, o.attr))
        })?;
        Ok((h, epoch, a))
    }

    pub fn readdir(&self, export: u32, path: &[u8], cookie: u64, plus: bool, cred: &Cred) -> Result<DirPage> {
        let flags = if plus { consts::READDIR_PLUS } else { 0 };
        let m = ReaddirReq {
            ctx: ctx(cred, export),
            cookie,
            max_bytes: 256 * 1024,
            flags,
            groups: groups(cred),
            path: Path(path),
        };
        self.call(None, Op::READDIR, &m, |p| {
            let rsp = ReaddirRsp::decode(p)?;
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
            Ok(DirPage { entries, eof: rsp.flags & consts::READDIR_EOF != 0 })
        })
    }

    /// The whole directory, page by page.
    pub fn readdir_all(&self, export: u32, path: &[u8], plus: bool, cred: &Cred) -> Result<Vec<DirEntryOwned>> {
        let mut all = Vec::new();
        let mut cookie = 0;
        loop {
            let page = self.readdir(export, path, cookie, plus, cred)?;
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
        let m = MkdirReq { ctx: ctx(cred, export), mode, umask, groups: groups(cred), path: Path(path) };
        self.call(None, Op::MKDIR, &m, attr)
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
        let m = MknodReq {
            ctx: ctx(cred, export),
            mode,
            umask,
            rdev_major: major,
            rdev_minor: minor,
            groups: groups(cred),
            path: Path(path),
        };
        self.call(None, Op::MKNOD, &m, attr)
    }

    pub fn remove(&self, export: u32, path: &[u8], dir: bool, cred: &Cred) -> Result<()> {
        let op = if dir { Op::RMDIR } else { Op::UNLINK };
        self.call(None, op, &PathReq { ctx: ctx(cred, export), groups: groups(cred), path: Path(path) }, unit)
    }

    pub fn symlink(&self, export: u32, path: &[u8], target: &[u8], cred: &Cred) -> Result<Attr> {
        let m = SymlinkReq { ctx: ctx(cred, export), groups: groups(cred), path: Path(path), target: Path(target) };
        self.call(None, Op::SYMLINK, &m, attr)
    }

    pub fn link(&self, export: u32, old: &[u8], new: &[u8], cred: &Cred) -> Result<Attr> {
        let m = LinkReq { ctx: ctx(cred, export), groups: groups(cred), old_path: Path(old), new_path: Path(new) };
        self.call(None, Op::LINK, &m, attr)
    }

    pub fn readlink(&self, export: u32, path: &[u8], cred: &Cred) -> Result<Vec<u8>> {
        let m = PathReq { ctx: ctx(cred, export), groups: groups(cred), path: Path(path) };
        self.call(None, Op::READLINK, &m, |p| Ok(p.to_vec()))
    }

    pub fn rename(&self, export: u32, old: &[u8], new: &[u8], flags: u32, cred: &Cred) -> Result<()> {
        let m =
            RenameReq { ctx: ctx(cred, export), flags, groups: groups(cred), old_path: Path(old), new_path: Path(new) };
        self.call(None, Op::RENAME, &m, unit)
    }

    pub fn statfs(&self, export: u32, cred: &Cred) -> Result<Statfs> {
        self.statfs_at(export, b"", cred)
    }

    /// STATFS of the file system holding `path` (an export may span several mounts:
    /// `/sys` holds `/sys/fs/cgroup`).
    pub fn statfs_at(&self, export: u32, path: &[u8], cred: &Cred) -> Result<Statfs> {
        let m = PathReq { ctx: ctx(cred, export), groups: groups(cred), path: Path(path) };
        self.call(None, Op::STATFS, &m, |p| Ok(StatfsRsp::decode(p)?.statfs))
    }

    pub fn xattr_list(&self, export: u32, path: &[u8], size: u32, cred: &Cred) -> Result<(u32, Vec<u8>)> {
        let m = XattrListReq { ctx: ctx(cred, export), size, groups: groups(cred), path: Path(path) };
        self.call(None, Op::XATTR_LIST, &m, |p| {
            let x = XattrRsp::decode(p)?;
            Ok((x.size, x.data.0.to_vec()))
        })
    }

    pub fn xattr_get(&self, export: u32, path: &[u8], name: &[u8], size: u32, cred: &Cred) -> Result<(u32, Vec<u8>)> {
        let m = XattrGetReq { ctx: ctx(cred, export), size, groups: groups(cred), path: Path(path), name: Name(name) };
        self.call(None, Op::XATTR_GET, &m, |p| {
            let x = XattrRsp::decode(p)?;
            Ok((x.size, x.data.0.to_vec()))
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn xattr_set(
        &self,
        export: u32,
        path: &[u8],
        name: &[u8],
        value: &[u8],
        flags: u32,
        cred: &Cred,
    ) -> Result<()> {
        let m = XattrSetReq {
            ctx: ctx(cred, export),
            flags,
            groups: groups(cred),
            path: Path(path),
            name: Name(name),
            value: Bytes32(value),
        };
        self.call(None, Op::XATTR_SET, &m, unit)
    }

    pub fn xattr_remove(&self, export: u32, path: &[u8], name: &[u8], cred: &Cred) -> Result<()> {
        let m = XattrRemoveReq { ctx: ctx(cred, export), groups: groups(cred), path: Path(path), name: Name(name) };
        self.call(None, Op::XATTR_REMOVE, &m, unit)
    }

    // Handle requests: `epoch` is the epoch the handle belongs to.

    /// Reads and hands the data to `f` straight from the receive buffer.
    pub fn read_with<R>(
        &self,
        epoch: u64,
        handle: u64,
        offset: u64,
        len: u32,
        f: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        self.call(Some(epoch), Op::READ, &ReadReq { handle, offset, len }, f)
    }

    pub fn write(&self, epoch: u64, handle: u64, offset: u64, data: &[u8]) -> Result<u32> {
        // The data goes out as the payload's tail (a `rest` field has no length of its
        // own), straight from the kernel's buffer.
        let m = WriteReq { handle, offset, flags: 0, data: Rest(&[]) };
        self.call_with(Some(epoch), Op::WRITE, &m, data, |p| Ok(WriteRsp::decode(p)?.written))
    }

    pub fn fsync(&self, epoch: u64, handle: u64, datasync: bool) -> Result<()> {
        let flags = if datasync { consts::FSYNC_DATASYNC } else { 0 };
        self.call(Some(epoch), Op::FSYNC, &FsyncReq { handle, flags }, unit)
    }

    /// FIFO_POLL: the `events` (poll bits) ready on a handle, waiting up to `timeout_ms`.
    pub fn poll(&self, epoch: u64, handle: u64, events: u32, timeout_ms: u32) -> Result<u32> {
        self.call(Some(epoch), Op::FIFO_POLL, &PollReq { handle, events, timeout_ms }, |p| {
            Ok(PollRsp::decode(p)?.revents)
        })
    }

    pub fn fgetattr(&self, epoch: u64, handle: u64) -> Result<Attr> {
        self.call(Some(epoch), Op::FGETATTR, &HandleReq { handle }, attr)
    }

    pub fn fsetattr(&self, epoch: u64, handle: u64, set: &SetAttr, cred: &Cred) -> Result<Attr> {
        self.call(Some(epoch), Op::SETATTR, &setattr_req(set, cred, 0, handle, b""), attr)
    }

    pub fn fallocate(&self, epoch: u64, handle: u64, mode: u32, offset: u64, len: u64) -> Result<()> {
        self.call(Some(epoch), Op::FALLOCATE, &FallocateReq { handle, mode, offset, len }, unit)
    }

    pub fn llseek(&self, epoch: u64, handle: u64, offset: i64, whence: u32) -> Result<u64> {
        self.call(Some(epoch), Op::LLSEEK, &LlseekReq { handle, offset, whence }, |p| Ok(LlseekRsp::decode(p)?.offset))
    }
}
