//! Extended attributes: SETXATTR, GETXATTR (with `-o relay`'s marker answered here),
//! LISTXATTR, REMOVEXATTR; local `/proc` files have none.
//!
//! Absence is remembered per node ([`crate::nodes::Meta`]): the kernel asks for
//! `security.capability` before the first write after every attribute refresh and on
//! every chown, and `cp -a` lists and asks for ACLs of every file, almost always of files
//! that have none. A name found absent (or every name, after an empty listing by root or
//! an OPEN/CREATE answer saying there is none, `feat::XATTR_NONE`; or after this mount
//! created the file exclusively: `security.capability` only) is answered
//! ENODATA here until an INVAL of the node, a change through this mount or the attribute
//! timeout, the same promise as for attributes.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::kernel::{Errno, INodeNo, ReplyEmpty, ReplyXattr, Request};
use qtfs_client::Ops;
use qtfs_proto::Attr;
use qtfs_proto::consts::ATTR_F_NO_XATTRS;

use super::{QtfsFs, errno};
use crate::nodes::Ticket;
use crate::procfs::Route;
use crate::relay;
use crate::remote::Retry;

pub(super) fn setxattr(
    fs: &QtfsFs,
    req: &Request,
    ino: INodeNo,
    name: &OsStr,
    value: &[u8],
    flags: i32,
    reply: ReplyEmpty,
) {
    let p = match fs.path(ino.0).and_then(|p| fs.remote_only(p)) {
        Ok(p) => p,
        Err(e) => return reply.error(e),
    };
    let cred = fs.cred(req);
    // XATTR_CREATE fails the second time: not idempotent.
    let retry = if flags & libc::XATTR_CREATE != 0 { Retry::Once } else { Retry::Idempotent };
    fs.nodes.lock().unlearn(ino.0);
    let r = fs.remote.path_op(&fs.wait(req), retry, |ex| {
        fs.remote.conn().xattr_set(ex, &p, name.as_bytes(), value, flags as u32, &cred)
    });
    // Again after: a GETXATTR answered before the change may have been learnt meanwhile.
    fs.nodes.lock().unlearn(ino.0);
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

/// Names whose cached absence may be told to `uid`: with `default_permissions` the kernel
/// checked the caller's rights before asking; root has them all; `security.` and
/// `system.` names need none (a `user.` name of an unreadable file is EACCES instead).
fn answerable(fs: &QtfsFs, uid: u32, name: &[u8]) -> bool {
    fs.cfg.default_permissions || uid == 0 || name.starts_with(b"security.") || name.starts_with(b"system.")
}

/// At most this many absent names are remembered per node.
const ABSENT_MAX: usize = 8;

impl QtfsFs {
    /// Is `name` known to be absent on node `id`, for `uid`?
    fn xattr_known_absent(&self, id: u64, uid: u32, name: &[u8]) -> bool {
        let nodes = self.nodes.lock();
        let Some(m) = nodes.meta(id, self.cfg.attr_ttl) else { return false };
        (m.no_xattrs || m.absent.iter().any(|a| **a == *name)) && answerable(self, uid, name)
    }

    /// Remembers that `uid` found `name` absent on node `id`. A `trusted.` name is absent
    /// for anyone but root whether or not it exists: only root's answer counts.
    fn learn_xattr_absent(&self, id: u64, t: Ticket, uid: u32, name: &[u8]) {
        if uid != 0 && name.starts_with(b"trusted.") {
            return;
        }
        self.nodes.lock().learn(id, t, self.cfg.attr_ttl, |m| {
            if m.absent.len() < ABSENT_MAX && !m.absent.iter().any(|a| **a == *name) {
                m.absent.push(name.into());
            }
        });
    }

    /// What an OPEN or CREATE answer told of the file: its mode, and that it has no
    /// extended attribute at all (`feat::XATTR_NONE`: listed by the engine with root's
    /// rights, which see every namespace). A file this mount just created exclusively
    /// (`created`) has no `security.capability` either way: nothing sets one at creation.
    pub(super) fn learn_opened(&self, id: u64, t: Ticket, a: &Attr, created: bool) {
        self.nodes.lock().learn(id, t, self.cfg.attr_ttl, |m| {
            m.mode = Some(a.mode);
            m.no_xattrs |= a.flags & ATTR_F_NO_XATTRS != 0;
            if created && !m.absent.iter().any(|a| **a == *b"security.capability") {
                m.absent.push(b"security.capability"[..].into());
            }
        });
    }
}

pub(super) fn getxattr(fs: &QtfsFs, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
    let p = match fs.path(ino.0).map(|p| fs.route(p)) {
        Ok(Route::Remote(p)) => p,
        // Local /proc files have no extended attributes to show (ls asks for ACLs).
        Ok(_) => return reply.error(Errno::ENODATA),
        Err(e) => return reply.error(e),
    };
    let cred = fs.cred(req);
    if fs.cfg.relay && name.as_bytes() == relay::XATTR.as_bytes() {
        // Answered here: the HOST type of a relayed file (see crate::relay).
        let w = fs.wait(req);
        return match fs.remote.path_op(&w, Retry::Idempotent, |ex| fs.remote.conn().getattr(ex, &p, false, &cred)) {
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
    let (id, uid) = (ino.0, req.uid());
    if fs.xattr_known_absent(id, uid, name.as_bytes()) {
        return reply.error(Errno::ENODATA);
    }
    let t = fs.nodes.lock().ticket(id);
    match fs.remote.path_op(&fs.wait(req), Retry::Idempotent, |ex| {
        fs.remote.conn().xattr_get(ex, &p, name.as_bytes(), size, &cred)
    }) {
        Ok((n, data)) if size == 0 => reply.size(n.max(data.len() as u32)),
        Ok((_, data)) if data.len() > size as usize => reply.error(Errno::ERANGE),
        Ok((_, data)) => reply.data(&data),
        Err(e) => {
            if e.errno() == libc::ENODATA {
                fs.learn_xattr_absent(id, t, uid, name.as_bytes());
            }
            reply.error(errno(&e))
        }
    }
}

pub(super) fn listxattr(fs: &QtfsFs, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
    let p = match fs.path(ino.0).map(|p| fs.route(p)) {
        Ok(Route::Remote(p)) => p,
        Ok(_) if size == 0 => return reply.size(0),
        Ok(_) => return reply.data(&[]),
        Err(e) => return reply.error(e),
    };
    let (id, uid, ttl) = (ino.0, req.uid(), fs.cfg.attr_ttl);
    if fs.nodes.lock().meta(id, ttl).is_some_and(|m| m.no_xattrs) {
        return if size == 0 { reply.size(0) } else { reply.data(&[]) };
    }
    let cred = fs.cred(req);
    let t = fs.nodes.lock().ticket(id);
    let r = fs.remote.path_op(&fs.wait(req), Retry::Idempotent, |ex| fs.remote.conn().xattr_list(ex, &p, size, &cred));
    // Root sees every namespace (trusted. included): its empty listing means none at all.
    if uid == 0 && matches!(&r, Ok((0, data)) if data.is_empty()) {
        fs.nodes.lock().learn(id, t, ttl, |m| m.no_xattrs = true);
    }
    match r {
        Ok((n, data)) if size == 0 => reply.size(n.max(data.len() as u32)),
        Ok((_, data)) if data.len() > size as usize => reply.error(Errno::ERANGE),
        Ok((_, data)) => reply.data(&data),
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn removexattr(fs: &QtfsFs, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
    let p = match fs.path(ino.0).and_then(|p| fs.remote_only(p)) {
        Ok(p) => p,
        Err(e) => return reply.error(e),
    };
    let cred = fs.cred(req);
    fs.nodes.lock().unlearn(ino.0);
    let r = fs
        .remote
        .path_op(&fs.wait(req), Retry::Once, |ex| fs.remote.conn().xattr_remove(ex, &p, name.as_bytes(), &cred));
    fs.nodes.lock().unlearn(ino.0);
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}
