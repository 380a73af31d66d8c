//! Directories: OPENDIR takes no snapshot yet, the first READDIR/READDIRPLUS at offset 0
//! does (the engine's listing, merged with `-o proc`'s local processes in the root), and
//! later pages are served from it. A listing is also kept for a reopen soon after
//! ([`crate::nodes::Meta`]'s listing, README "Coherence"). Owns the open-directory handles.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::Duration;

use crate::kernel::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyOpen, Request,
};
use parking_lot::Mutex;
use qtfs_client::{ClientError, Cred, DirEntryOwned, Result};
use qtfs_proto::Attr;

use super::attr::{kind_of, to_file_attr};
use super::{QtfsFs, errno, key_of};
use crate::nodes::ROOT;
use crate::procfs::Route;
use crate::remote::{Retry, Wait};

/// An open directory: a snapshot of its entries taken at the first READDIR(offset 0).
/// Offsets handed to the kernel are positions in the snapshot (1 = after `.`, 2 = after
/// `..`, k + 3 = after entry k): engine cookies cannot be mixed with synthesised `.`/`..`.
pub(super) struct DirHandle {
    node: u64,
    entries: Mutex<Option<Snapshot>>,
}

/// The entries an open directory lists.
#[derive(Clone)]
pub(super) struct Snapshot {
    entries: Arc<Vec<DirEntryOwned>>,
    /// Taken from a listing kept since an earlier open: READDIRPLUS gives names only (the
    /// attributes in it may predate changes made through this mount since, and would
    /// overwrite the kernel's newer ones).
    kept: bool,
}

impl QtfsFs {
    /// The directory's entries: a listing kept from an earlier open if `reuse` allows it
    /// and one is, else the engine's.
    fn load_dir(&self, w: &Wait, d: &DirHandle, plus: bool, reuse: bool, cred: &Cred) -> Result<Snapshot> {
        let path = self.nodes.lock().path(d.node).ok_or(ClientError::Remote(libc::ENOENT))?;
        let route = self.route(path);
        let ttl = match route {
            Route::Remote(_) => self.listing_ttl(w, d.node, cred),
            _ => Duration::ZERO,
        };
        if reuse && let Some(entries) = self.nodes.lock().listing(d.node, ttl) {
            let s = Snapshot { entries, kept: true };
            *d.entries.lock() = Some(s.clone());
            return Ok(s);
        }
        // The engine's listing may set the directory's atime on the HOST (no event says
        // so): attributes kept from a change in it are older than that.
        let ticket = {
            let mut nodes = self.nodes.lock();
            nodes.drop_dir(d.node);
            nodes.ticket(d.node)
        };
        let list = match route {
            Route::Remote(p) => {
                let host =
                    self.remote.path_op(w, Retry::Idempotent, |ex| self.remote.readdir_all(ex, &p, plus, cred))?;
                // The directory's attributes after the listing (`feat::LIST_ATTR`): they
                // answer the GETATTR the kernel sends next (it dropped the atime).
                self.learn_changed_dirs(&[(d.node, ticket)]);
                match &self.proc {
                    Some(pm) if d.node == ROOT => pm.merge_root(host, plus),
                    _ => host,
                }
            }
            Route::Local(lp) => self.local_io(|pm| pm.local_dir(&lp, plus))?,
            Route::SelfLink(_) => return Err(ClientError::Remote(libc::ENOTDIR)),
        };
        let entries = Arc::new(list);
        {
            let mut nodes = self.nodes.lock();
            nodes.listed(d.node, entries.iter().map(|e| &e.name[..]));
            nodes.keep_listing(d.node, ticket, ttl, entries.clone());
        }
        let s = Snapshot { entries, kept: false };
        *d.entries.lock() = Some(s.clone());
        Ok(s)
    }

    /// How long the listing of directory `dir` (on the HOST) may answer a later open: as
    /// long as a name found missing may be cached (a listing tells which names are
    /// missing), and only where the kernel checks the opener's right to read the
    /// directory (`default_permissions`: the listing was read with another caller's
    /// rights); never for the `-o proc` root, whose local processes come and go.
    fn listing_ttl(&self, w: &Wait, dir: u64, cred: &Cred) -> Duration {
        let ttl = self.cfg.negative_ttl.min(self.cfg.entry_ttl).min(self.cfg.attr_ttl);
        if ttl.is_zero()
            || !self.cfg.default_permissions
            || (dir == ROOT && self.proc.is_some())
            || (self.cfg.negative_only_watched && self.on_pseudo_fs(w, dir, cred))
        {
            Duration::ZERO
        } else {
            ttl
        }
    }

    pub(super) fn dir_entries(
        &self,
        fh: FileHandle,
        offset: u64,
        plus: bool,
        req: &Request,
    ) -> std::result::Result<(Arc<DirHandle>, Snapshot), Errno> {
        let d = self.dirs.lock().get(&fh.0).cloned().ok_or(Errno::EBADF)?;
        let cached = d.entries.lock().clone();
        let need_attrs =
            plus && cached.as_ref().is_some_and(|s| !s.kept && s.entries.first().is_some_and(|x| x.attr.is_none()));
        let snap = match cached {
            Some(s) if offset != 0 && !need_attrs => s,
            // Offset 0 (an open, or a rewind): a kept listing will do unless READDIRPLUS
            // continues a plain listing of this handle.
            _ => self.load_dir(&self.wait(req), &d, plus, offset == 0, &self.cred(req)).map_err(|e| errno(&e))?,
        };
        Ok((d, snap))
    }

    /// d_ino of `..`: the directory's parent if known (the root is its own parent).
    pub(super) fn parent_of(&self, node: u64) -> u64 {
        self.nodes.lock().parent(node).unwrap_or(ROOT)
    }
}

pub(super) fn opendir(fs: &QtfsFs, ino: INodeNo, reply: ReplyOpen) {
    let fh = fs.new_fh();
    fs.dirs.lock().insert(fh, Arc::new(DirHandle { node: ino.0, entries: Mutex::new(None) }));
    reply.opened(FileHandle(fh), FopenFlags::empty())
}

/// Adds `.` (offset 1) and `..` (offset 2) from position `pos` with `add(ino, offset, name)`
/// (true: the reply is full). Returns the position in the snapshot to go on from, or None
/// when the reply is full.
fn dots(fs: &QtfsFs, d: &DirHandle, mut pos: u64, mut add: impl FnMut(u64, u64, &str) -> bool) -> Option<u64> {
    if pos == 0 {
        if add(d.node, 1, ".") {
            return None;
        }
        pos = 1;
    }
    if pos == 1 {
        if add(fs.parent_of(d.node), 2, "..") {
            return None;
        }
        pos = 2;
    }
    Some(pos)
}

pub(super) fn readdir(fs: &QtfsFs, req: &Request, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
    let (d, snap) = match fs.dir_entries(fh, offset, false, req) {
        Ok(x) => x,
        Err(e) => return reply.error(e),
    };
    let Some(pos) = dots(fs, &d, offset, |ino, off, name| reply.add(INodeNo(ino), off, FileType::Directory, name))
    else {
        return reply.ok();
    };
    names(fs, &d, &snap, pos, |ino, off, kind, name| reply.add(ino, off, kind, name));
    reply.ok()
}

/// Adds the snapshot's entries from position `pos` by name only with `add(d_ino, offset,
/// type, name)` (true: the reply is full).
fn names(
    fs: &QtfsFs,
    d: &DirHandle,
    snap: &Snapshot,
    pos: u64,
    mut add: impl FnMut(INodeNo, u64, FileType, &OsStr) -> bool,
) {
    let known = fs.nodes.lock();
    for (i, e) in snap.entries.iter().enumerate().skip((pos - 2) as usize) {
        // d_ino: the node id where the kernel knows the name (st_ino is the node id),
        // else the HOST inode number.
        let ino = known.lookup_name(d.node, &e.name).unwrap_or(e.ino);
        let kind = kind_of((e.dtype as u32) << 12);
        if add(INodeNo(ino.max(1)), i as u64 + 3, kind, OsStr::from_bytes(&e.name)) {
            break;
        }
    }
}

pub(super) fn readdirplus(fs: &QtfsFs, req: &Request, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
    let (d, snap) = match fs.dir_entries(fh, offset, true, req) {
        Ok(x) => x,
        Err(e) => return reply.error(e),
    };
    // `.` and `..` carry no attributes the kernel uses (it does not count lookups
    // for them); their node id only fills d_ino.
    let dot = to_file_attr(d.node, &Attr { mode: libc::S_IFDIR | 0o755, ..Default::default() });
    let Some(pos) = dots(fs, &d, offset, |ino, off, name| {
        let a = FileAttr { ino: INodeNo(ino), ..dot };
        reply.add(a.ino, off, name, &Duration::ZERO, &a, Generation(0))
    }) else {
        return reply.ok();
    };
    if snap.kept {
        names(fs, &d, &snap, pos, |ino, off, kind, name| reply.add_name(ino, off, kind, name));
        return reply.ok();
    }
    for (i, e) in snap.entries.iter().enumerate().skip((pos - 2) as usize) {
        let Some(a) = e.attr.as_ref() else { continue };
        let id = fs.nodes.lock().link(d.node, &e.name, key_of(a));
        let fa = fs.fattr(id, a);
        // In -o proc's root, numbers and `self` change meaning at any time.
        let ttl = if d.node == ROOT { fs.ttls(&e.name).0 } else { fs.cfg.attr_ttl };
        if reply.add(INodeNo(id), i as u64 + 3, OsStr::from_bytes(&e.name), &ttl, &fa, Generation(0)) {
            // Not sent: the kernel will not count this lookup.
            fs.nodes.lock().forget(id, 1);
            break;
        }
    }
    reply.ok()
}

pub(super) fn releasedir(fs: &QtfsFs, fh: FileHandle, reply: ReplyEmpty) {
    fs.dirs.lock().remove(&fh.0);
    reply.ok()
}

pub(super) fn fsyncdir(reply: ReplyEmpty) {
    // Directory changes are made by the engine's syscalls as they come; there is no
    // directory handle on the engine to sync.
    reply.ok()
}
