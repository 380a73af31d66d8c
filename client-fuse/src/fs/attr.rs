//! Attributes: the engine's [`Attr`] as FUSE attributes, GETATTR (by handle, by path,
//! and through an open handle when the name went away), SETATTR (by handle or path, with
//! the writeback-cache time fallback), clearing set-id bits after a write, and STATFS.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::kernel::{FileAttr, FileHandle, FileType, INodeNo, ReplyAttr, ReplyStatfs, Request, TimeOrNow};
use qtfs_client::{ClientError, Cred, Ops, SetAttr, SetTime};
use qtfs_proto::Attr;

use super::{QtfsFs, errno, key_of};
use crate::nodes::Ticket;
use crate::procfs::{ProcMode, Route};
use crate::remote::{OpenFile, Retry, Wait};

fn time(sec: i64, nsec: u32) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

pub(super) fn kind_of(mode: u32) -> FileType {
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

pub(super) fn stamp(a: &Attr) -> (i64, u32, u64) {
    (a.mtime_sec, a.mtime_nsec, a.size)
}

pub(super) fn set_time(t: Option<TimeOrNow>) -> Option<SetTime> {
    t.map(|t| match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(st) => {
            let (sec, nsec) = crate::kernel::types::to_wire_time(st);
            SetTime::At(sec, nsec)
        }
    })
}

/// The set-id bits a write by a caller without CAP_FSETID clears from `mode`: set-user-ID,
/// and set-group-ID when group execute is set (without it, it marks mandatory locking).
fn setid_to_kill(mode: u32) -> u32 {
    let mut kill = libc::S_ISUID;
    if mode & libc::S_IXGRP != 0 {
        kill |= libc::S_ISGID;
    }
    mode & kill
}

impl QtfsFs {
    /// Remembers node `id`'s mode from a reply (see [`crate::nodes::Meta`]).
    pub(super) fn learn_mode(&self, id: u64, t: Ticket, mode: u32) {
        self.nodes.lock().learn(id, t, self.cfg.attr_ttl, |m| m.mode = Some(mode));
    }

    /// Clears set-user-ID (and set-group-ID with group execute) after a write by a
    /// caller without CAP_FSETID, as a local file system does. The kernel tells us when
    /// (FUSE_WRITE_KILL_SUIDGID); the change is made with root's authority, like the
    /// kernel's own, since the writer need not own the file.
    pub(super) fn kill_suid(&self, w: &Wait, f: &OpenFile) {
        // The kernel asks after every write by such a caller; a mode learnt from a reply
        // (open, getattr, setattr: dropped on any INVAL of the node) without the bits
        // spares the round trip and the kernel's attribute refresh.
        let t = {
            let nodes = self.nodes.lock();
            if nodes.meta(f.node, self.cfg.attr_ttl).and_then(|m| m.mode).is_some_and(|m| setid_to_kill(m) == 0) {
                return;
            }
            nodes.ticket(f.node)
        };
        let r = self.remote.handle_op(w, f, Retry::Idempotent, self.path_fn(), |h, ep| {
            let a = self.remote.conn_in(ep).fgetattr(h)?;
            let kill = setid_to_kill(a.mode);
            // Usually the HOST already cleared them: the engine writes as the opener.
            if kill != 0 {
                let set = SetAttr { mode: Some(a.mode & 0o7777 & !kill), ..Default::default() };
                return Ok(self.remote.conn_in(ep).fsetattr(h, &set, &Cred::root())?.mode);
            }
            Ok(a.mode)
        });
        match r {
            Ok(mode) => self.learn_mode(f.node, t, mode),
            Err(e) => tracing::warn!(node = f.node, "clearing set-id bits after a write failed: {e}"),
        }
        // The kernel asked because it caches set-id bits, cleared now either way: drop its
        // attributes (offset -1: not the pages, which the write in progress holds locked).
        if let Some(n) = self.notifier.get() {
            let _ = n.inval_inode(INodeNo(f.node), -1, 0);
        }
    }
}

pub(super) fn getattr(fs: &QtfsFs, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
    let id = ino.0;
    let w = fs.wait(req);
    let by_handle = |f: &OpenFile| {
        fs.remote.handle_op(&w, f, Retry::Idempotent, fs.path_fn(), |h, ep| fs.remote.conn_in(ep).fgetattr(h))
    };
    let mut ttl = fs.cfg.attr_ttl;
    let t = fs.nodes.lock().ticket(id);
    let r = match fh.and_then(|fh| fs.file(fh).ok()) {
        Some(f) => by_handle(&f),
        None => {
            // Its own statement: a lock guard in a `match` scrutinee lives until the
            // end of the match, and the node table must not stay locked while the
            // request waits for a re-mount (which re-keys the root in it).
            let path = fs.nodes.lock().path(id);
            // fstat(2) reaches here without a handle (the kernel's getattr has no
            // file), so a file unlinked or renamed away on the HOST or by another
            // client must be asked about through any handle this mount has open on
            // it, as a local fstat would answer.
            let open_handle = || fs.files.read().values().find(|f| f.node == id).cloned();
            let by_path = match path {
                Some(p) => {
                    ttl = fs.ttls(&p).0;
                    match fs.route(p) {
                        // A directory this mount just changed: the engine sent its
                        // attributes with the change (fs::names, `Meta::dir`).
                        Route::Remote(_) if let Some((a, age)) = fs.nodes.lock().take_dir(id, ttl) => {
                            ttl -= age;
                            Ok(a)
                        }
                        Route::Remote(p) => {
                            let cred = fs.cred(req);
                            fs.remote
                                .path_op(&w, Retry::Idempotent, |ex| fs.remote.conn().getattr(ex, &p, false, &cred))
                        }
                        Route::Local(lp) => fs.local_io(|pm| pm.local_attr(&lp)),
                        Route::SelfLink(thread) => Ok(ProcMode::self_attr(thread)),
                    }
                }
                None => Err(ClientError::Remote(libc::ENOENT)),
            };
            let known = fs.nodes.lock().key(id);
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
        Ok(a) => {
            fs.learn_mode(id, t, a.mode);
            reply.attr(&ttl, &fs.fattr(id, &a))
        }
        Err(e) => reply.error(errno(&e)),
    }
}

/// SETATTR of the changes in `set`, through the open file `fh` if the kernel gives one.
pub(super) fn setattr(
    fs: &QtfsFs,
    req: &Request,
    ino: INodeNo,
    set: SetAttr,
    fh: Option<FileHandle>,
    reply: ReplyAttr,
) {
    let cred = fs.cred(req);
    let id = ino.0;
    // A size change through an open descriptor must not need write permission on
    // the file now (ftruncate semantics): use the handle when the kernel gives one.
    let file = fh.and_then(|fh| fs.file(fh).ok());
    let send = |set: &SetAttr| match &file {
        Some(f) => fs.remote.handle_op(&fs.wait(req), f, Retry::Idempotent, fs.path_fn(), |h, ep| {
            fs.remote.conn_in(ep).fsetattr(h, set, &cred)
        }),
        None => match fs.path(id).map(|p| fs.route(p)) {
            Ok(Route::Remote(p)) => {
                fs.remote.path_op(&fs.wait(req), Retry::Idempotent, |ex| fs.remote.conn().setattr(ex, &p, set, &cred))
            }
            // A local /proc file opened with O_TRUNC by a kernel without atomic
            // O_TRUNC: procfs ignores the truncation, so do we. Nothing else changes.
            Ok(Route::Local(lp)) if set.size.is_some() && set.mode.is_none() && set.uid.is_none() => {
                fs.local_io(|pm| pm.local_attr(&lp))
            }
            Ok(_) => Err(ClientError::Remote(libc::EACCES)),
            Err(e) => Err(ClientError::Remote(e.into())),
        },
    };
    // A directory's attributes kept from a change in it are stale once this is sent.
    let t = {
        let mut nodes = fs.nodes.lock();
        nodes.drop_dir(id);
        nodes.ticket(id)
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
        && fs.cfg.writeback_cache
        && fs.cfg.default_permissions
        && times_only
        && (explicit(&set.atime) || explicit(&set.mtime))
    {
        let now = |t: Option<SetTime>| t.map(|_| SetTime::Now);
        r = send(&SetAttr { atime: now(set.atime), mtime: now(set.mtime), ..set });
    }
    match r {
        Ok(a) => {
            if set.size.is_some() {
                fs.nodes.lock().set_cache_stamp(id, None);
            }
            fs.learn_mode(id, t, a.mode);
            reply.attr(&fs.cfg.attr_ttl, &fs.fattr(id, &a))
        }
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn statfs(fs: &QtfsFs, req: &Request, reply: ReplyStatfs) {
    let cred = fs.cred(req);
    match fs.remote.path_op(&fs.wait(req), Retry::Idempotent, |ex| fs.remote.conn().statfs(ex, b"", &cred)) {
        Ok(s) => reply.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize),
        Err(e) => reply.error(errno(&e)),
    }
}
