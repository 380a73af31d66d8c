//! Names: LOOKUP (negative entries included), FORGET, READLINK, and the requests that
//! create, remove or move a name (MKNOD, MKDIR, SYMLINK, LINK, UNLINK, RMDIR, RENAME),
//! keeping the node table ([`crate::nodes`]) in step with what the engine did.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use crate::kernel::{Errno, Generation, INodeNo, RenameFlags, ReplyData, ReplyEmpty, ReplyEntry, Request};
use qtfs_client::{ClientError, Cred, Ops};
use qtfs_proto::Attr;

use super::attr::to_file_attr;
use super::{QtfsFs, errno, key_of};
use crate::direct::ThreadConn;
use crate::nodes::{ROOT, Ticket};
use crate::procfs::{ProcMode, Route};
use crate::remote::{Retry, Wait};

impl QtfsFs {
    /// The engine path of `parent/name` for a request that makes, removes or moves it.
    pub(super) fn name_path(&self, parent: INodeNo, name: &OsStr) -> Result<Vec<u8>, Errno> {
        self.child(parent.0, name).and_then(|p| self.remote_only(p))
    }

    /// Replies with a new entry for `parent/name` and counts the lookup; with `new_dir`,
    /// the entry is a directory this mount just made, known empty unless an invalidation
    /// came since the ticket was taken ([`crate::nodes::Nodes::learn_new_dir`]).
    pub(super) fn entry(&self, parent: u64, name: &[u8], a: &Attr, new_dir: Option<Ticket>, reply: ReplyEntry) {
        let (attr_ttl, entry_ttl) =
            if parent == ROOT { self.ttls(name) } else { (self.cfg.attr_ttl, self.cfg.entry_ttl) };
        let id = {
            let mut nodes = self.nodes.lock();
            let id = nodes.link(parent, name, key_of(a));
            if let Some(t) = new_dir {
                nodes.learn_new_dir(id, t, self.cfg.negative_ttl);
            }
            id
        };
        reply.entry_with_ttls(&attr_ttl, &entry_ttl, &self.fattr(id, a), Generation(0));
    }
}

impl QtfsFs {
    /// How long the kernel may remember that `parent/name` does not exist: the negative
    /// timeout, where the default one holds only where the HOST's invalidations reach —
    /// not for a name the kernel must not cache at all, nor on a pseudo file system.
    fn absence_ttl(&self, w: &Wait, req: &Request, parent: u64, name: &[u8]) -> Duration {
        let ttl = self.cfg.negative_ttl;
        let unwatched =
            || (parent == ROOT && self.ttls(name).1.is_zero()) || self.on_pseudo_fs(w, parent, &self.cred(req));
        if ttl.is_zero() || (self.cfg.negative_only_watched && unwatched()) { Duration::ZERO } else { ttl }
    }

    /// Is directory `dir` on a HOST pseudo file system (procfs, sysfs, cgroupfs …)? Their
    /// names come and go without the events the engine's invalidations are made of.
    /// Asked once per HOST device ([`crate::pseudo`]); "yes" when it cannot be told.
    pub(super) fn on_pseudo_fs(&self, w: &Wait, dir: u64, cred: &Cred) -> bool {
        let Some((dev, _)) = self.nodes.lock().key(dir) else { return true };
        if let Some(p) = self.pseudo.known(dev) {
            return p;
        }
        let Some(Route::Remote(path)) = self.nodes.lock().path(dir).map(|p| self.route(p)) else { return true };
        match self.remote.path_op(w, Retry::Idempotent, |ex| self.remote.conn().statfs(ex, &path, cred)) {
            Ok(st) => self.pseudo.record(dev, st.fs_type),
            Err(_) => true,
        }
    }
}

pub(super) fn lookup(fs: &QtfsFs, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
    let path = match fs.child(parent.0, name) {
        Ok(p) => p,
        Err(e) => return reply.error(e),
    };
    let w = fs.wait(req);
    let mut local = false;
    let r = match fs.route(path) {
        // A directory this mount made, which it knows every name of: no engine needed.
        Route::Remote(_) if fs.nodes.lock().known_absent(parent.0, name.as_bytes(), fs.cfg.negative_ttl) => {
            Err(ClientError::Remote(libc::ENOENT))
        }
        Route::Remote(path) => {
            let cred = fs.cred(req);
            fs.remote.path_op(&w, Retry::Idempotent, |ex| fs.remote.conn().lookup(ex, &path, &cred))
        }
        Route::Local(lp) => {
            local = true;
            fs.local_io(|pm| pm.local_attr(&lp))
        }
        Route::SelfLink(thread) => Ok(ProcMode::self_attr(thread)),
    };
    match r {
        Ok(a) => fs.entry(parent.0, name.as_bytes(), &a, None, reply),
        Err(ClientError::Remote(libc::ENOENT)) => {
            fs.nodes.lock().unlink(parent.0, name.as_bytes());
            // The DPU's own /proc (-o proc) sends no invalidations.
            let ttl = if local && fs.cfg.negative_only_watched {
                Duration::ZERO
            } else {
                fs.absence_ttl(&w, req, parent.0, name.as_bytes())
            };
            if ttl.is_zero() {
                reply.error(Errno::ENOENT)
            } else {
                // Node id 0 with a timeout: the kernel caches the absence.
                let a = to_file_attr(0, &Attr::default());
                reply.entry_with_ttls(&Duration::ZERO, &ttl, &a, Generation(0));
            }
        }
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn forget(fs: &QtfsFs, ino: INodeNo, nlookup: u64) {
    fs.nodes.lock().forget(ino.0, nlookup);
}

pub(super) fn readlink(fs: &QtfsFs, req: &Request, ino: INodeNo, reply: ReplyData) {
    let p = match fs.path(ino.0) {
        Ok(p) => p,
        Err(e) => return reply.error(e),
    };
    let r = match fs.route(p) {
        Route::Remote(p) => {
            let cred = fs.cred(req);
            fs.remote.path_op(&fs.wait(req), Retry::Idempotent, |ex| fs.remote.conn().readlink(ex, &p, &cred))
        }
        Route::Local(lp) => fs.local_io(|pm| pm.local_readlink(&lp, req.pid())),
        Route::SelfLink(thread) => fs.local_io(|pm| pm.self_target(req.pid(), thread)),
    };
    match r {
        Ok(t) => reply.data(&t),
        Err(e) => reply.error(errno(&e)),
    }
}

/// What MKNOD, MKDIR and SYMLINK make.
#[derive(Clone, Copy)]
pub(super) enum Make<'a> {
    Node { mode: u32, umask: u32, rdev: u32 },
    Dir { mode: u32, umask: u32 },
    Symlink(&'a Path),
}

/// Runs `op` (given the request id, the path and the caller's identity) on the engine path
/// of `parent/name` once: making, removing or moving a name is not idempotent.
fn name_op<T>(
    fs: &QtfsFs,
    req: &Request,
    parent: INodeNo,
    name: &OsStr,
    mut op: impl FnMut(&mut ThreadConn, u32, &[u8], &Cred) -> qtfs_client::Result<T>,
) -> Result<T, Errno> {
    let p = fs.name_path(parent, name)?;
    let cred = fs.cred(req);
    let dirs = fs.dir_tickets(&[(parent, name)]);
    let r = fs.remote.path_op(&fs.wait(req), Retry::Once, |ex| op(&mut fs.remote.conn(), ex, &p, &cred));
    if r.is_ok() {
        fs.learn_changed_dirs(&dirs);
    }
    r.map_err(|e| errno(&e))
}

impl QtfsFs {
    /// The directories a name operation will change (with the name it touches in each),
    /// each with its ticket ([`crate::nodes::Nodes::ticket`]), taken before the request is
    /// sent. The attributes kept for them are dropped first: they are about to change,
    /// and an answer to an earlier request (sent before this change) must not be kept
    /// after it. The name may exist from now on ([`crate::nodes::Meta::names`]).
    pub(super) fn dir_tickets(&self, names: &[(INodeNo, &OsStr)]) -> Vec<(u64, Ticket)> {
        let mut nodes = self.nodes.lock();
        names
            .iter()
            .map(|&(d, name)| {
                nodes.drop_dir(d.0);
                nodes.may_hold(d.0, name.as_bytes(), self.cfg.negative_ttl);
                (d.0, nodes.ticket(d.0))
            })
            .collect()
    }

    /// Keeps the attributes the engine sent for the directories the name operation this
    /// thread just made changed (`feat::DIR_ATTR`, [`crate::nodes::Meta::dir`]), or for
    /// the directory it just listed (`feat::LIST_ATTR`), each on the node of `dirs` it is
    /// the attributes of; not for a directory invalidated since its ticket. Called before
    /// the kernel gets the reply, whose processing drops its copy of them.
    pub(super) fn learn_changed_dirs(&self, dirs: &[(u64, Ticket)]) {
        let attrs = crate::direct::take_changed_dirs();
        if attrs.is_empty() {
            return;
        }
        let mut nodes = self.nodes.lock();
        for &(id, t) in dirs {
            let Some(key) = nodes.key(id) else { continue };
            if let Some(a) = attrs.iter().rev().find(|a| key_of(a) == key) {
                let a = *a;
                nodes.learn(id, t, self.cfg.attr_ttl, |m| m.keep_dir(a));
            }
        }
    }
}

/// MKNOD, MKDIR, SYMLINK: makes `parent/name` on the HOST and replies with its entry.
pub(super) fn make(fs: &QtfsFs, req: &Request, parent: INodeNo, name: &OsStr, what: Make, reply: ReplyEntry) {
    // A new directory holds no name: where a name found missing may be cached, the
    // LOOKUPs before creates in it need no engine.
    let new_dir = (matches!(what, Make::Dir { .. })
        && !fs.absence_ttl(&fs.wait(req), req, parent.0, name.as_bytes()).is_zero())
    .then(|| fs.nodes.lock().new_dir_ticket());
    let r = name_op(fs, req, parent, name, |c, ex, p, cred| match what {
        Make::Node { mode, umask, rdev } => {
            let (maj, min) = (libc::major(rdev as u64), libc::minor(rdev as u64));
            c.mknod(ex, p, mode, umask, maj, min, cred)
        }
        Make::Dir { mode, umask } => c.mkdir(ex, p, mode, umask, cred),
        Make::Symlink(target) => c.symlink(ex, p, target.as_os_str().as_bytes(), cred),
    });
    match r {
        Ok(a) => fs.entry(parent.0, name.as_bytes(), &a, new_dir, reply),
        Err(e) => reply.error(e),
    }
}

pub(super) fn unlink(fs: &QtfsFs, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
    remove(fs, req, parent, name, false, reply)
}

pub(super) fn rmdir(fs: &QtfsFs, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
    remove(fs, req, parent, name, true, reply)
}

/// UNLINK or RMDIR of `parent/name`; the name leaves the node table once the HOST agreed.
fn remove(fs: &QtfsFs, req: &Request, parent: INodeNo, name: &OsStr, dir: bool, reply: ReplyEmpty) {
    match name_op(
        fs,
        req,
        parent,
        name,
        |c, ex, p, cred| if dir { c.rmdir(ex, p, cred) } else { c.unlink(ex, p, cred) },
    ) {
        Ok(()) => {
            fs.nodes.lock().unlink(parent.0, name.as_bytes());
            reply.ok()
        }
        Err(e) => reply.error(e),
    }
}

/// RENAME of `parent/name` to `newparent/newname`.
pub(super) fn rename(
    fs: &QtfsFs,
    req: &Request,
    (parent, name): (INodeNo, &OsStr),
    (newparent, newname): (INodeNo, &OsStr),
    flags: RenameFlags,
    reply: ReplyEmpty,
) {
    let (p1, p2) = match (fs.name_path(parent, name), fs.name_path(newparent, newname)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return reply.error(e),
    };
    let cred = fs.cred(req);
    let fl = flags.bits();
    let dirs = fs.dir_tickets(&[(parent, name), (newparent, newname)]);
    {
        // A moved directory changes too (ctime, `..`), and a replaced one.
        let mut nodes = fs.nodes.lock();
        for (d, n) in [(parent, name), (newparent, newname)] {
            if let Some(id) = nodes.lookup_name(d.0, n.as_bytes()) {
                nodes.drop_dir(id);
            }
        }
    }
    match fs.remote.path_op(&fs.wait(req), Retry::Once, |ex| fs.remote.conn().rename(ex, &p1, &p2, fl, &cred)) {
        Ok(()) => {
            fs.learn_changed_dirs(&dirs);
            fs.nodes.lock().rename(parent.0, name.as_bytes(), newparent.0, newname.as_bytes(), fl);
            reply.ok()
        }
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn link(fs: &QtfsFs, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
    let (old, new) = match (fs.path(ino.0).and_then(|p| fs.remote_only(p)), fs.name_path(newparent, newname)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return reply.error(e),
    };
    let cred = fs.cred(req);
    let dirs = fs.dir_tickets(&[(newparent, newname)]);
    match fs.remote.path_op(&fs.wait(req), Retry::Once, |ex| fs.remote.conn().link(ex, &old, &new, &cred)) {
        Ok(a) => {
            fs.learn_changed_dirs(&dirs);
            fs.entry(newparent.0, newname.as_bytes(), &a, None, reply)
        }
        Err(e) => reply.error(errno(&e)),
    }
}
