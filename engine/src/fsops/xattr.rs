//! Extended attributes: XATTR_LIST, XATTR_GET, XATTR_SET and XATTR_REMOVE.
//!
//! The object is resolved itself (`O_PATH`, a final symlink not followed, the export
//! root always), the setters check `[Setxattr]` on its real path, and the calls act on
//! exactly that inode through `/proc/self/fd/N` as the caller.
//!
//! This module owns these operations ([`XattrAct`]).

use std::os::fd::AsRawFd;

use qtfs_proto::consts::WlType;
use qtfs_proto::*;

use super::common::{Next, Req, fail, finish, finish_empty, proc_cstr, res_fd, resolve};
use super::gates::wl_at;
use super::req::FsReq;
use super::state::Ctx;
use super::steps::XattrAct;
use crate::creds;
use crate::path::SAFE;
use crate::sys;

/// XATTR_LIST.
pub(super) fn list(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<XattrListReq>(core) else { return };
    let Some(r) = rq.begin_at(core, &m.ctx, &m.groups, m.path.0) else { return };
    start(core, r, m.path.0, &[], &[], XattrAct::List { size: m.size });
}

/// XATTR_GET.
pub(super) fn get(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<XattrGetReq>(core) else { return };
    let Some(r) = rq.begin_at(core, &m.ctx, &m.groups, m.path.0) else { return };
    start(core, r, m.path.0, m.name.0, &[], XattrAct::Get { size: m.size });
}

/// XATTR_SET.
pub(super) fn set(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<XattrSetReq>(core) else { return };
    let Some(r) = rq.begin_at(core, &m.ctx, &m.groups, m.path.0) else { return };
    start(core, r, m.path.0, m.name.0, m.value.0, XattrAct::Set { flags: m.flags });
}

/// XATTR_REMOVE.
pub(super) fn remove(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<XattrRemoveReq>(core) else { return };
    let Some(r) = rq.begin_at(core, &m.ctx, &m.groups, m.path.0) else { return };
    start(core, r, m.path.0, m.name.0, &[], XattrAct::Remove);
}

/// Resolves the object `p` of the begun request `r` (string 0; the attribute's name is
/// string 1, a value to set the request's buffer), then acts ([`resolved`]).
fn start(core: &mut Ctx, mut r: Box<FsReq>, p: &[u8], name: &[u8], value: &[u8], act: XattrAct) {
    r.push_str(if p.is_empty() { b"." } else { p });
    r.push_str(name);
    r.buf = core.r.bufs.get(value.len());
    r.buf.extend_from_slice(value);
    let flags = if p.is_empty() { libc::O_PATH } else { libc::O_PATH | libc::O_NOFOLLOW };
    if let Next::Now(r, act, res) = resolve(core, r, act, None, 0, flags, 0, SAFE) {
        resolved(core, r, act, res);
    }
}

/// The object resolved: check (setters) and act as the caller.
pub(super) fn resolved(core: &mut Ctx, r: Box<FsReq>, act: XattrAct, res: i32) {
    let fd = match res_fd(res) {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    let raw = fd.as_raw_fd();
    if matches!(act, XattrAct::Set { .. } | XattrAct::Remove)
        && let Err(e) = wl_at(core, r.export(), WlType::Setxattr, raw, b"")
    {
        return fail(core, r, e);
    }
    let proc = sys::proc_fd_path(raw);
    let proc = proc_cstr(&proc).to_owned();
    let name = r.cstr(1).to_owned();
    let ident = r.ident.clone();
    let err = |e: std::io::Error| sys::errno_of(&e);
    match act {
        XattrAct::List { size } | XattrAct::Get { size } => {
            let size = size as usize;
            let mut out = core.r.bufs.get(size.min(MAX_PAYLOAD - 64));
            out.resize(size.min(MAX_PAYLOAD - 64), 0);
            let res = creds::with_ident(&ident, || {
                if matches!(act, XattrAct::List { .. }) {
                    sys::listxattr(&proc, &mut out)
                } else {
                    sys::getxattr(&proc, &name, &mut out)
                }
            });
            match res.map_err(err).and_then(|x| x.map_err(err)) {
                Ok(n) => {
                    // n ≤ out.len() (the kernel filled at most the buffer).
                    let data = if size == 0 { &[][..] } else { out.get(..n).unwrap_or_default() };
                    finish(core, r, &XattrRsp { size: n as u32, data: Rest(data) });
                    core.r.bufs.put(out);
                }
                Err(e) => {
                    core.r.bufs.put(out);
                    fail(core, r, e);
                }
            }
        }
        XattrAct::Set { flags } => {
            let res = creds::with_ident(&ident, || sys::setxattr(&proc, &name, &r.buf, flags as i32));
            match res.map_err(err).and_then(|x| x.map_err(err)) {
                Ok(()) => finish_empty(core, r),
                Err(e) => fail(core, r, e),
            }
        }
        XattrAct::Remove => {
            let res = creds::with_ident(&ident, || sys::removexattr(&proc, &name));
            match res.map_err(err).and_then(|x| x.map_err(err)) {
                Ok(()) => finish_empty(core, r),
                Err(e) => fail(core, r, e),
            }
        }
    }
    // The descriptor the /proc path names lives until the calls are done.
    drop(fd);
}
