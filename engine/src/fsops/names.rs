//! Names: MKDIR, MKNOD, SYMLINK, LINK, RENAME, UNLINK, RMDIR and READLINK.
//!
//! A name operation resolves the parent directory beneath the export (`O_PATH |
//! O_DIRECTORY`), checks the whitelist group of the operation on the parent's real path
//! joined with the name, then acts on that one component relative to the parent's
//! descriptor: inline on a memory file system, on the ring otherwise (`common::mutate`).
//! LINK links exactly the resolved inode (through `/proc/self/fd/N`) and may give the new
//! name nothing its existing one is not allowed ([`link_gains_nothing`]). MKNOD of a
//! device node needs `--allow-mknod-devices`. READLINK resolves the link itself.
//!
//! This module owns these operations and their steps ([`MakeStep`], [`LinkStep`],
//! [`RenameStep`], [`RemoveStep`]).

use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, types};
use qtfs_proto::consts::{WlType, errno};
use qtfs_proto::*;

use super::common::{Next, Req, fail, finish, finish_empty, mutate, note_dir, proc_cstr, res_fd, resolve, stat_reply};
use super::gates::allowed_fd;
use super::req::FsReq;
use super::state::Ctx;
use super::steps::{LinkStep, Make, MakeStep, RemoveStep, RenameStep, Step};
use crate::creds;
use crate::devices;
use crate::path::{self, SAFE};
use crate::sys;

// ------------------------------------------------------------------ MKDIR, MKNOD, SYMLINK

/// MKDIR.
pub(super) fn mkdir(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<MkdirReq>(core) else { return };
    let mode = m.mode & !m.umask & 0o7777;
    make(core, rq, &m.ctx, &m.groups, m.path.0, None, Make::Dir { mode });
}

/// MKNOD (device nodes only with `--allow-mknod-devices`).
pub(super) fn mknod(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<MknodReq>(core) else { return };
    if let Err(e) = devices::mknod_allowed(m.mode, core.r.shared.cfg.allow_mknod_devices) {
        tracing::info!(mode = format_args!("{:o}", m.mode), "MKNOD refused: device nodes need --allow-mknod-devices");
        return rq.reply_err(core, e);
    }
    let mode = (m.mode & libc::S_IFMT) | (m.mode & !m.umask & 0o7777);
    let dev = libc::makedev(m.rdev_major, m.rdev_minor);
    make(core, rq, &m.ctx, &m.groups, m.path.0, None, Make::Node { mode, dev });
}

/// SYMLINK.
pub(super) fn symlink(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<SymlinkReq>(core) else { return };
    if m.target.is_empty() {
        return rq.reply_err(core, errno::ENOENT);
    }
    make(core, rq, &m.ctx, &m.groups, m.path.0, Some(m.target.0), Make::Symlink);
}

/// Resolves the parent of `p` (strings: parent 0, name 1, `extra` 2), then
/// [`MakeStep::Parent`].
fn make(core: &mut Ctx, rq: &Req<'_>, ctx: &ReqCtx, groups: &Groups<'_>, p: &[u8], extra: Option<&[u8]>, k: Make) {
    let Some(mut r) = rq.begin_in(core, ctx, groups) else { return };
    let (parent, name) = match path::split(p) {
        Ok(x) => x,
        Err(e) => return fail(core, r, e),
    };
    r.push_str(parent);
    r.push_str(name);
    if let Some(x) = extra {
        r.push_str(x);
    }
    let step = MakeStep::Parent(k);
    if let Next::Now(r, s, res) = resolve(core, r, step, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE) {
        make_step(core, r, s, res);
    }
}

/// The steps of MKDIR, MKNOD, SYMLINK.
pub(super) fn make_step(core: &mut Ctx, mut r: Box<FsReq>, step: MakeStep, res: i32) {
    let k = match step {
        MakeStep::Parent(k) => k,
        MakeStep::Made => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let raw = r.dir_raw();
            note_dir(core, &mut r, Some(raw));
            return stat_reply(core, r, raw, Some(1), libc::AT_SYMLINK_NOFOLLOW);
        }
    };
    let t = if matches!(k, Make::Dir { .. }) { WlType::Mkdir } else { WlType::Create };
    let dir = match allowed_fd(core, &r, res, t, r.str_bytes(1)) {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    let raw = dir.as_raw_fd();
    r.dirfd = Some(dir);
    let next = match k {
        Make::Dir { mode } => {
            let mode = mode as libc::mode_t;
            let e = opcode::MkDirAt::new(types::Fd(raw), r.cptr(1)).mode(mode).build();
            mutate(core, r, MakeStep::Made, raw, e, |r| sys::mkdirat(raw, r.cstr(1), mode))
        }
        Make::Symlink => {
            let e = opcode::SymlinkAt::new(types::Fd(raw), r.cptr(2), r.cptr(1)).build();
            mutate(core, r, MakeStep::Made, raw, e, |r| sys::symlinkat(r.cstr(2), raw, r.cstr(1)))
        }
        Make::Node { mode, dev } => {
            // MKNOD has no ring opcode.
            let res = creds::with_ident(&r.ident, || sys::mknodat(raw, r.cstr(1), mode, dev));
            return match res {
                Ok(Ok(())) => {
                    note_dir(core, &mut r, Some(raw));
                    stat_reply(core, r, raw, Some(1), libc::AT_SYMLINK_NOFOLLOW)
                }
                Ok(Err(e)) | Err(e) => fail(core, r, sys::errno_of(&e)),
            };
        }
    };
    if let Next::Now(r, s, res) = next {
        make_step(core, r, s, res);
    }
}

// ------------------------------------------------------------------ UNLINK, RMDIR

/// UNLINK.
pub(super) fn unlink(core: &mut Ctx, rq: &Req<'_>) {
    remove(core, rq, false);
}

/// RMDIR.
pub(super) fn rmdir(core: &mut Ctx, rq: &Req<'_>) {
    remove(core, rq, true);
}

/// Resolves the parent (string 0; the name is string 1), then [`RemoveStep::Parent`].
fn remove(core: &mut Ctx, rq: &Req<'_>, rmdir: bool) {
    let Some(m) = rq.decode::<PathReq>(core) else { return };
    let Some(mut r) = rq.begin_at(core, &m.ctx, &m.groups, m.path.0) else { return };
    let (parent, name) = match path::split(m.path.0) {
        Ok(x) => x,
        Err(e) => return fail(core, r, e),
    };
    r.push_str(parent);
    r.push_str(name);
    let step = RemoveStep::Parent { rmdir };
    if let Next::Now(r, s, res) = resolve(core, r, step, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE) {
        remove_step(core, r, s, res);
    }
}

/// The steps of UNLINK and RMDIR.
pub(super) fn remove_step(core: &mut Ctx, mut r: Box<FsReq>, step: RemoveStep, res: i32) {
    let rmdir = match step {
        RemoveStep::Parent { rmdir } => rmdir,
        RemoveStep::Removed => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let dir = r.dir_raw();
            note_dir(core, &mut r, Some(dir));
            return finish_empty(core, r);
        }
    };
    let (t, flags) = if rmdir { (WlType::Rmdir, libc::AT_REMOVEDIR) } else { (WlType::Unlink, 0) };
    let dir = match allowed_fd(core, &r, res, t, r.str_bytes(1)) {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    let raw = dir.as_raw_fd();
    r.dirfd = Some(dir);
    let e = opcode::UnlinkAt::new(types::Fd(raw), r.cptr(1)).flags(flags).build();
    if let Next::Now(r, s, res) = mutate(core, r, RemoveStep::Removed, raw, e, |r| sys::unlinkat(raw, r.cstr(1), flags))
    {
        remove_step(core, r, s, res);
    }
}

// ------------------------------------------------------------------ LINK, RENAME

/// LINK: the existing object (string 0, not following a final symlink), then the new
/// parent (1) and name (2).
pub(super) fn link(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<LinkReq>(core) else { return };
    let Some(mut r) = rq.begin_in(core, &m.ctx, &m.groups) else { return };
    if let Err(e) = path::split(m.old_path.0) {
        return fail(core, r, e);
    }
    let (np, nn) = match path::split(m.new_path.0) {
        Ok(x) => x,
        Err(e) => return fail(core, r, e),
    };
    r.push_str(m.old_path.0); // 0: the existing object
    r.push_str(np); // 1: new parent
    r.push_str(nn); // 2: new name
    if let Next::Now(r, s, res) = resolve(core, r, LinkStep::Object, None, 0, libc::O_PATH | libc::O_NOFOLLOW, 0, SAFE)
    {
        link_step(core, r, s, res);
    }
}

/// The steps of LINK.
pub(super) fn link_step(core: &mut Ctx, mut r: Box<FsReq>, step: LinkStep, res: i32) {
    match step {
        LinkStep::Object => {
            let fd = match allowed_fd(core, &r, res, WlType::Open, b"") {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            r.dirfd = Some(fd);
            let next = resolve(core, r, LinkStep::NewParent, None, 1, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE);
            if let Next::Now(r, s, res) = next {
                link_step(core, r, s, res);
            }
        }
        LinkStep::NewParent => {
            let dir = match allowed_fd(core, &r, res, WlType::Create, r.str_bytes(2)) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            let raw = dir.as_raw_fd();
            let old = r.dir_raw();
            if let Err(e) = link_gains_nothing(core, old, raw, r.str_bytes(2)) {
                return fail(core, r, e);
            }
            r.dirfd2 = Some(dir);
            // Link exactly the resolved inode through its /proc/self/fd magic link.
            let p = sys::proc_fd_path(old);
            r.push_str(proc_cstr(&p).to_bytes());
            let e = opcode::LinkAt::new(types::Fd(libc::AT_FDCWD), r.cptr(3), types::Fd(raw), r.cptr(2))
                .flags(libc::AT_SYMLINK_FOLLOW)
                .build();
            let next = mutate(core, r, LinkStep::Linked, raw, e, |r| {
                sys::linkat(libc::AT_FDCWD, r.cstr(3), raw, r.cstr(2), libc::AT_SYMLINK_FOLLOW)
            });
            if let Next::Now(r, s, res) = next {
                link_step(core, r, s, res);
            }
        }
        LinkStep::Linked => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let raw = r.dirfd2.as_ref().map_or(-1, |d| d.as_raw_fd());
            note_dir(core, &mut r, Some(raw));
            stat_reply(core, r, raw, Some(2), libc::AT_SYMLINK_NOFOLLOW);
        }
    }
}

/// LINK's rule: the new name (`dir`/`name`) may be allowed nothing that the existing
/// object (`old`, by the name it was resolved through) is not
/// ([`crate::whitelist::Whitelist::gained`]); later requests on the new name are checked
/// against the new name's path.
fn link_gains_nothing(core: &Ctx, old: RawFd, dir: RawFd, name: &[u8]) -> Result<(), i32> {
    let err = |e: std::io::Error| sys::errno_of(&e);
    let from = sys::fd_real_path(old).map_err(err)?;
    let to = path::join(&sys::fd_real_path(dir).map_err(err)?, name);
    match core.r.wl.gained(&from, &to) {
        None => Ok(()),
        Some(g) => {
            tracing::info!(
                group = g.section(),
                from = %String::from_utf8_lossy(&from),
                to = %String::from_utf8_lossy(&to),
                "LINK denied by whitelist: the new name would be allowed what the existing one is not"
            );
            Err(errno::EACCES)
        }
    }
}

/// RENAME: old parent (string 0) and name (1), new parent (2) and name (3).
pub(super) fn rename(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<RenameReq>(core) else { return };
    let known = libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE | libc::RENAME_WHITEOUT;
    if m.flags & !known != 0 {
        return rq.reply_err(core, errno::EINVAL);
    }
    let Some(mut r) = rq.begin_in(core, &m.ctx, &m.groups) else { return };
    let (op_, on) = match path::split(m.old_path.0) {
        Ok(x) => x,
        Err(e) => return fail(core, r, e),
    };
    let (np, nn) = match path::split(m.new_path.0) {
        Ok(x) => x,
        Err(e) => return fail(core, r, e),
    };
    r.push_str(op_); // 0: old parent
    r.push_str(on); // 1: old name
    r.push_str(np); // 2: new parent
    r.push_str(nn); // 3: new name
    let step = RenameStep::OldParent { flags: m.flags };
    if let Next::Now(r, s, res) = resolve(core, r, step, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE) {
        rename_step(core, r, s, res);
    }
}

/// The steps of RENAME.
pub(super) fn rename_step(core: &mut Ctx, mut r: Box<FsReq>, step: RenameStep, res: i32) {
    match step {
        RenameStep::OldParent { flags } => {
            let fd = match allowed_fd(core, &r, res, WlType::Rename, r.str_bytes(1)) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            r.dirfd = Some(fd);
            let step = RenameStep::NewParent { flags };
            if let Next::Now(r, s, res) = resolve(core, r, step, None, 2, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE) {
                rename_step(core, r, s, res);
            }
        }
        RenameStep::NewParent { flags } => {
            let dir = match allowed_fd(core, &r, res, WlType::Rename, r.str_bytes(3)) {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            let raw = dir.as_raw_fd();
            r.dirfd2 = Some(dir);
            let old = r.dir_raw();
            let e = opcode::RenameAt::new(types::Fd(old), r.cptr(1), types::Fd(raw), r.cptr(3)).flags(flags).build();
            let next =
                mutate(core, r, RenameStep::Renamed, raw, e, |r| sys::renameat2(old, r.cstr(1), raw, r.cstr(3), flags));
            if let Next::Now(r, s, res) = next {
                rename_step(core, r, s, res);
            }
        }
        RenameStep::Renamed => {
            if res < 0 {
                return fail(core, r, -res);
            }
            let (old, new) = (r.dir_raw(), r.dirfd2.as_ref().map(|d| d.as_raw_fd()));
            note_dir(core, &mut r, Some(old));
            note_dir(core, &mut r, new);
            finish_empty(core, r);
        }
    }
}

// ------------------------------------------------------------------ READLINK

/// READLINK: resolves the link itself (`O_PATH | O_NOFOLLOW`), then reads it.
pub(super) fn readlink(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<PathReq>(core) else { return };
    let p = m.path.0;
    let Some(mut r) = rq.begin_at(core, &m.ctx, &m.groups, p) else { return };
    let i = r.push_str(if p.is_empty() { b"." } else { p });
    let nofollow = if p.is_empty() { 0 } else { libc::O_NOFOLLOW };
    if let Next::Now(r, _, res) = resolve(core, r, Step::Readlink, None, i, libc::O_PATH | nofollow, 0, SAFE) {
        readlink_resolved(core, r, res);
    }
}

/// READLINK: the link resolved; read it as the caller.
pub(super) fn readlink_resolved(core: &mut Ctx, mut r: Box<FsReq>, res: i32) {
    let fd = match res_fd(res) {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    let raw = fd.as_raw_fd();
    r.fd = Some(fd);
    // readlinkat(fd, "") reads the symlink an O_PATH|O_NOFOLLOW descriptor names.
    let res = creds::with_ident(&r.ident, || sys::readlinkat(raw, c""));
    match res {
        Ok(Ok(t)) => finish(core, r, &Data { data: Rest(&t) }),
        Ok(Err(e)) | Err(e) => fail(core, r, sys::errno_of(&e)),
    }
}
