//! Extended attributes: SETXATTR, GETXATTR (with `-o relay`'s marker answered here),
//! LISTXATTR, REMOVEXATTR; local `/proc` files have none.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{Errno, INodeNo, ReplyEmpty, ReplyXattr, Request};
use qtfs_client::Ops;

use super::{QtfsFs, errno};
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
    match fs.remote.path_op(&fs.wait(req), retry, |ex| {
        fs.remote.conn().xattr_set(ex, &p, name.as_bytes(), value, flags as u32, &cred)
    }) {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
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
    match fs.remote.path_op(&fs.wait(req), Retry::Idempotent, |ex| {
        fs.remote.conn().xattr_get(ex, &p, name.as_bytes(), size, &cred)
    }) {
        Ok((n, data)) if size == 0 => reply.size(n.max(data.len() as u32)),
        Ok((_, data)) if data.len() > size as usize => reply.error(Errno::ERANGE),
        Ok((_, data)) => reply.data(&data),
        Err(e) => reply.error(errno(&e)),
    }
}

pub(super) fn listxattr(fs: &QtfsFs, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
    let p = match fs.path(ino.0).map(|p| fs.route(p)) {
        Ok(Route::Remote(p)) => p,
        Ok(_) if size == 0 => return reply.size(0),
        Ok(_) => return reply.data(&[]),
        Err(e) => return reply.error(e),
    };
    let cred = fs.cred(req);
    match fs.remote.path_op(&fs.wait(req), Retry::Idempotent, |ex| fs.remote.conn().xattr_list(ex, &p, size, &cred)) {
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
    match fs
        .remote
        .path_op(&fs.wait(req), Retry::Once, |ex| fs.remote.conn().xattr_remove(ex, &p, name.as_bytes(), &cred))
    {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}
