//! Attributes: LOOKUP, GETATTR, FGETATTR, STATFS and SETATTR.
//!
//! The object is resolved itself (`O_PATH`, a final symlink not followed unless GETATTR
//! asks, the export root always), then acted on inline through that descriptor: `statx`
//! with `AT_EMPTY_PATH`, `fstatfs`, and SETATTR's calls through `/proc/self/fd/N` as the
//! caller, after the `[Setattr]` whitelist check on the real path and, for a size change,
//! the device policy (`nodev`) and the free-space floor.
//!
//! This module owns these operations; the plumbing is `common`'s, the checks `gates`'.

use std::os::fd::{AsRawFd, RawFd};

use qtfs_proto::consts::{self, WlType, errno, setattr};
use qtfs_proto::*;

use super::common::{Next, Req, fail, finish, ident_of, proc_cstr, res_fd, resolve, stat_now, stat_reply};
use super::gates::{allowed_fd, device_open_ok, growth, space_ok, wl_handle};
use super::req::FsReq;
use super::state::Ctx;
use super::steps::{SetattrArgs, Step};
use crate::creds;
use crate::path::SAFE;
use crate::sys;

/// LOOKUP: the attributes of the object a path names (a final symlink not followed).
pub(super) fn lookup(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<PathReq>(core) else { return };
    object(core, rq, &m.ctx, &m.groups, m.path.0, false, Step::Object);
}

/// GETATTR: as LOOKUP, following a final symlink with `GETATTR_FOLLOW`.
pub(super) fn getattr(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<GetattrReq>(core) else { return };
    let follow = m.flags & consts::GETATTR_FOLLOW != 0;
    object(core, rq, &m.ctx, &m.groups, m.path.0, follow, Step::Object);
}

/// STATFS: the file system of the object a path names.
pub(super) fn statfs(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<PathReq>(core) else { return };
    object(core, rq, &m.ctx, &m.groups, m.path.0, false, Step::Statfs);
}

/// Resolves the object `p` names itself, then `step` ([`Step::Object`] or
/// [`Step::Statfs`]).
fn object(core: &mut Ctx, rq: &Req<'_>, ctx: &ReqCtx, groups: &Groups<'_>, p: &[u8], follow: bool, step: Step) {
    let Some(mut r) = rq.begin_at(core, ctx, groups, p) else { return };
    let i = r.push_str(if p.is_empty() { b"." } else { p });
    let nofollow = if follow || p.is_empty() { 0 } else { libc::O_NOFOLLOW };
    if let Next::Now(r, step, res) = resolve(core, r, step, None, i, libc::O_PATH | nofollow, 0, SAFE) {
        object_resolved(core, r, step, res);
    }
}

/// LOOKUP, GETATTR ([`Step::Object`]) or STATFS ([`Step::Statfs`]): the object
/// resolved; answer its attributes or its file system's.
pub(super) fn object_resolved(core: &mut Ctx, mut r: Box<FsReq>, step: Step, res: i32) {
    let fd = match res_fd(res) {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    let raw = fd.as_raw_fd();
    r.fd = Some(fd);
    if matches!(step, Step::Statfs) {
        return match sys::fstatfs(raw) {
            Ok(statfs) => finish(core, r, &StatfsRsp { statfs }),
            Err(e) => fail(core, r, sys::errno_of(&e)),
        };
    }
    stat_reply(core, r, raw, None, libc::AT_EMPTY_PATH);
}

/// FGETATTR: the attributes of an open handle.
pub(super) fn fgetattr(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<HandleReq>(core) else { return };
    let Some(f) = rq.session.file(m.handle) else { return rq.reply_err(core, errno::EBADF) };
    let mut r = rq.begin(core);
    let fd = f.raw();
    r.file = Some(f);
    stat_reply(core, r, fd, None, libc::AT_EMPTY_PATH);
}

// ------------------------------------------------------------------ SETATTR

/// SETATTR on a handle (inline) or on a path (resolved first).
pub(super) fn setattr(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<SetattrReq>(core) else { return };
    let session = &rq.session;
    let mut r = rq.begin(core);
    // The policy of the export the handle was opened in, or of the export named.
    let file = if m.handle != 0 { session.file(m.handle) } else { None };
    let ids = match &file {
        Some(f) => f.ids.clone(),
        None => session.export(m.ctx.export).and_then(|e| e.ids.clone()),
    };
    r.ident = match ident_of(core, ids.as_ref(), &m.ctx, &m.groups) {
        Ok(id) => id,
        Err(e) => return fail(core, r, e),
    };
    r.personality = core.r.personality(&r.ident);
    if m.valid & !setattr::ALL != 0 {
        return fail(core, r, errno::EINVAL);
    }
    let a = SetattrArgs {
        valid: m.valid,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        size: m.size,
        atime: (m.atime_sec, m.atime_nsec),
        mtime: (m.mtime_sec, m.mtime_nsec),
    };
    if m.handle != 0 {
        let Some(f) = file else { return fail(core, r, errno::EBADF) };
        // The same group as the path form, on the real path of the open file: a handle
        // opened for reading in a read-only area gives no chmod, chown or utimes.
        if let Err(e) = wl_handle(core, session, &f, WlType::Setattr) {
            return fail(core, r, e);
        }
        let res = setattr_space_ok(core, &a, f.raw()).and_then(|_| setattr_apply(&r, &a, f.raw(), true));
        let res = res.and_then(|_| sys::statx(f.raw(), c"", libc::AT_EMPTY_PATH).map_err(|e| sys::errno_of(&e)));
        return match res {
            Ok(attr) => finish(core, r, &AttrRsp { attr }),
            Err(e) => fail(core, r, e),
        };
    }
    match session.export(m.ctx.export) {
        Some(e) => r.export = Some(e),
        None => return fail(core, r, errno::ESTALE),
    }
    if let Err(e) = crate::path::check(m.path.0) {
        return fail(core, r, e);
    }
    r.push_str(if m.path.is_empty() { b"." } else { m.path.0 });
    let nofollow = if m.path.is_empty() { 0 } else { libc::O_NOFOLLOW };
    if let Next::Now(r, a, res) = resolve(core, r, a, None, 0, libc::O_PATH | nofollow, 0, SAFE) {
        setattr_resolved(core, r, a, res);
    }
}

/// SETATTR by path: the object resolved; check, apply, answer the new attributes.
pub(super) fn setattr_resolved(core: &mut Ctx, mut r: Box<FsReq>, a: SetattrArgs, res: i32) {
    let fd = match allowed_fd(core, &r, res, WlType::Setattr, b"") {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    let raw = fd.as_raw_fd();
    r.fd = Some(fd);
    if let Err(e) = stat_now(&mut r, raw, None, libc::AT_EMPTY_PATH) {
        return fail(core, r, e);
    }
    // A size change reopens the object for writing: not a device (nodev).
    if a.valid & setattr::SIZE != 0
        && let Err(e) = device_open_ok(core, raw, &r.stx)
    {
        return fail(core, r, e);
    }
    if let Err(e) = setattr_space_ok(core, &a, raw).and_then(|_| setattr_apply(&r, &a, raw, false)) {
        return fail(core, r, e);
    }
    stat_reply(core, r, raw, None, libc::AT_EMPTY_PATH);
}

/// `--min-free` for a SETATTR that makes a file larger.
fn setattr_space_ok(core: &Ctx, a: &SetattrArgs, fd: RawFd) -> Result<(), i32> {
    if a.valid & setattr::SIZE == 0 {
        return Ok(());
    }
    space_ok(core, fd, growth(core, fd, a.size, 0))
}

/// Applies SETATTR to `fd` (an open handle, or an O_PATH descriptor of the object) with
/// the caller's identity.
fn setattr_apply(r: &FsReq, a: &SetattrArgs, fd: RawFd, is_handle: bool) -> Result<(), i32> {
    let valid = a.valid;
    let is_link = !is_handle && (r.stx.stx_mode as u32 & libc::S_IFMT) == libc::S_IFLNK;
    let proc = sys::proc_fd_path(fd);
    let proc = proc_cstr(&proc);
    let run = || -> Result<(), i32> {
        let err = |e: std::io::Error| sys::errno_of(&e);
        if valid & setattr::SIZE != 0 {
            if is_handle {
                sys::ftruncate(fd, a.size).map_err(err)?;
            } else {
                // Reopen for writing: the kernel checks write permission as the caller.
                // (A device node never gets here: setattr_resolved checked.)
                let w = sys::openat(libc::AT_FDCWD, proc, libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOCTTY, 0)
                    .map_err(err)?;
                sys::ftruncate(w.as_raw_fd(), a.size).map_err(err)?;
            }
        }
        if valid & (setattr::UID | setattr::GID) != 0 {
            let uid = if valid & setattr::UID != 0 { a.uid } else { u32::MAX };
            let gid = if valid & setattr::GID != 0 { a.gid } else { u32::MAX };
            sys::fchown_empty(fd, uid, gid).map_err(err)?;
        }
        if valid & setattr::MODE != 0 {
            if is_link {
                return Err(errno::EOPNOTSUPP);
            }
            sys::chmod(proc, a.mode & 0o7777).map_err(err)?;
        }
        let times = valid & (setattr::ATIME | setattr::MTIME | setattr::ATIME_NOW | setattr::MTIME_NOW);
        if times != 0 {
            let ts = |set: u32, now: u32, (sec, nsec): (i64, u32)| {
                if valid & now != 0 {
                    libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW }
                } else if valid & set != 0 {
                    libc::timespec { tv_sec: sec, tv_nsec: nsec as i64 }
                } else {
                    libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }
                }
            };
            let t = [ts(setattr::ATIME, setattr::ATIME_NOW, a.atime), ts(setattr::MTIME, setattr::MTIME_NOW, a.mtime)];
            if is_link {
                sys::utimensat(fd, c"", &t, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW).map_err(err)?;
            } else {
                sys::utimensat(libc::AT_FDCWD, proc, &t, 0).map_err(err)?;
            }
        }
        Ok(())
    };
    creds::with_ident(&r.ident, run).map_err(|e| sys::errno_of(&e))?
}
