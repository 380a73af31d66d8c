//! Opening and closing files: the open flags sent to the engine and answered to the
//! kernel (page cache kept, direct I/O for pseudo files and files locked elsewhere),
//! OPEN, CREATE, relayed files' non-blocking re-open, and RELEASE. Owns the open-file
//! table's entries from OPEN/CREATE to RELEASE.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use crate::kernel::{
    Errno, FileHandle, FopenFlags, Generation, INodeNo, OpenFlags, ReplyCreate, ReplyEmpty, ReplyOpen, Request,
};
use qtfs_client::{ClientError, Cred, Ops, Result};
use qtfs_proto::Attr;
use qtfs_proto::consts::open as oflags;

use super::attr::stamp;
use super::{QtfsFs, errno, key_of};
use crate::procfs::{LOCAL_DEV_TAG, Route};
use crate::relay::{self, Relay};
use crate::remote::{OpenFile, Retry, Wait};

impl QtfsFs {
    /// Should the file `path` with attributes `a` be opened with direct I/O? Yes for the
    /// regular files of pseudo file systems (see [`crate::pseudo`]): the type of the
    /// file system on the file's HOST device, asked once per device.
    pub(super) fn direct_io(&self, w: &Wait, path: &[u8], a: &Attr, cred: &Cred) -> bool {
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
        match self.remote.path_op(w, Retry::Idempotent, |ex| self.remote.conn().statfs(ex, path, cred)) {
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
    pub(super) fn open_relayed(
        &self,
        w: &Wait,
        path: &[u8],
        node: u64,
        first: (u64, u64),
        used: u32,
        cred: &Cred,
    ) -> Result<u64> {
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

    pub(super) fn relay_of(&self, fh: FileHandle) -> Option<Arc<Relay>> {
        if !self.cfg.relay {
            return None;
        }
        self.relays.lock().get(&fh.0).cloned()
    }

    /// Open flags for the engine from the kernel's, and whether a write-only open was
    /// upgraded to read-write.
    pub(super) fn wire_open_flags(&self, flags: i32) -> (u32, bool) {
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

    pub(super) fn open_flags_reply(&self, node: u64, a: &Attr, direct: bool) -> FopenFlags {
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

    /// Opens `path`; with a writeback cache a write-only open upgraded to read-write
    /// (see `wire_open_flags`) that the caller may not read falls back to write-only.
    /// Returns (handle, epoch, attributes, flags used).
    pub(super) fn do_open(
        &self,
        w: &Wait,
        path: &[u8],
        flags: u32,
        upgraded: bool,
        cred: &Cred,
    ) -> Result<(u64, u64, Attr, u32)> {
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
}

pub(super) fn open(fs: &QtfsFs, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
    let p = match fs.path(ino.0) {
        Ok(p) => p,
        Err(e) => return reply.error(e),
    };
    let p = match fs.route(p) {
        Route::Remote(p) => p,
        Route::Local(lp) => {
            let fh = fs.new_fh();
            let host_mountinfo = || {
                crate::cgroups::read_host(&fs.remote, &fs.wait(req), b"self/mountinfo")
                    .map_err(|e| tracing::debug!("reading the HOST's mount table: {e}"))
                    .ok()
            };
            return match fs.local_io(|pm| pm.open(fh, &lp, flags.0, &host_mountinfo)) {
                // Local /proc files are made on the fly as well: no page cache.
                Ok(_) => reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO),
                Err(e) => reply.error(errno(&e)),
            };
        }
        Route::SelfLink(_) => return reply.error(Errno::ELOOP),
    };
    let cred = fs.cred(req);
    let (wf, upgraded) = fs.wire_open_flags(flags.0);
    let w = fs.wait(req);
    let t = fs.nodes.lock().ticket(ino.0);
    match fs.do_open(&w, &p, wf, upgraded, &cred) {
        Ok((h, epoch, a, used)) if fs.cfg.relay && relay::is_relayed(a.mode) => {
            match fs.open_relayed(&w, &p, ino.0, (h, epoch), used, &cred) {
                Ok(fh) => reply.opened(
                    FileHandle(fh),
                    FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NONSEEKABLE | FopenFlags::FOPEN_NOFLUSH,
                ),
                Err(e) => reply.error(errno(&e)),
            }
        }
        Ok((h, epoch, a, used)) => {
            let mut direct = fs.direct_io(&w, &p, &a, &cred);
            // A file locked elsewhere gets no page cache and no shared mapping
            // (crate::locks::Locks::shared_elsewhere).
            if !direct && flags.0 & libc::O_ACCMODE == libc::O_RDWR && a.mode & libc::S_IFMT == libc::S_IFREG {
                direct = fs.locks.shared_elsewhere(&fs.remote, ino.0, h, epoch, &p);
            }
            let fl = fs.open_flags_reply(ino.0, &a, direct);
            fs.learn_opened(ino.0, t, &a, false);
            let fh = fs.add_file(OpenFile::new(ino.0, used, h, epoch));
            fs.locks.opened(fh, fl.contains(FopenFlags::FOPEN_DIRECT_IO));
            reply.opened(FileHandle(fh), fl)
        }
        Err(e) => reply.error(errno(&e)),
    }
}

/// CREATE of `parent/name` with permissions (mode, umask) and open flags `flags`.
pub(super) fn create(
    fs: &QtfsFs,
    req: &Request,
    parent: INodeNo,
    name: &OsStr,
    (mode, umask): (u32, u32),
    flags: i32,
    reply: ReplyCreate,
) {
    let p = match fs.name_path(parent, name) {
        Ok(p) => p,
        Err(e) => return reply.error(e),
    };
    let cred = fs.cred(req);
    // A new file is the caller's, so the read-write upgrade cannot be refused.
    let (mut wf, _) = fs.wire_open_flags(flags);
    if flags & libc::O_EXCL != 0 {
        wf |= oflags::EXCL;
    }
    // Creating is not idempotent (O_EXCL, or a file someone else wrote meanwhile).
    let dirs = fs.dir_tickets(&[(parent, name)]);
    let r = fs.remote.path_op(&fs.wait(req), Retry::Once, |ex| fs.remote.create(ex, &p, wf, mode, umask, &cred));
    match r {
        Ok((h, epoch, a)) => {
            // Before any other request of this thread (the lock check below).
            fs.learn_changed_dirs(&dirs);
            let (id, t) = {
                let mut nodes = fs.nodes.lock();
                let id = nodes.link(parent.0, name.as_bytes(), key_of(&a));
                (id, nodes.ticket(id))
            };
            // With O_EXCL new for certain (an existing name would have failed).
            fs.learn_opened(id, t, &a, flags & libc::O_EXCL != 0);
            // Without O_EXCL the file may be an existing one locked elsewhere (as in open).
            let direct = flags & (libc::O_ACCMODE | libc::O_EXCL) == libc::O_RDWR
                && fs.locks.shared_elsewhere(&fs.remote, id, h, epoch, &p);
            let fl = fs.open_flags_reply(id, &a, direct);
            let fh = fs.add_file(OpenFile::new(id, wf & !(oflags::EXCL | oflags::TRUNC), h, epoch));
            fs.locks.opened(fh, fl.contains(FopenFlags::FOPEN_DIRECT_IO));
            reply.created(&fs.cfg.entry_ttl, &fs.fattr(id, &a), Generation(0), FileHandle(fh), fl)
        }
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn release(fs: &QtfsFs, fh: FileHandle, reply: ReplyEmpty) {
    if fs.proc.as_ref().is_some_and(|pm| pm.release(fh.0)) {
        return reply.ok();
    }
    if let Some(rl) = fs.relays.lock().remove(&fh.0) {
        rl.close();
    }
    // Its own statement: the table is not kept locked while the CLOSE is sent.
    let f = fs.files.write().remove(&fh.0);
    if let Some(f) = f {
        fs.locks.release(&fs.remote, fh.0);
        fs.remote.close(&f);
    }
    reply.ok()
}
