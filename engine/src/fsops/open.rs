//! Opening: OPEN and CREATE, up to a new handle in the session.
//!
//! OPEN resolves the object (`O_PATH`, which never opens a device or waits for a FIFO),
//! takes one `statx` of it, checks `[Open]` and the groups its access mode needs
//! ([`open_gates`]) on its real path and the device policy, then reopens exactly that
//! inode through `/proc/self/fd/N` with the requested flags: inline for regular files and
//! directories, without blocking for FIFOs and devices (`fifo::open_special`), on the
//! ring otherwise. CREATE checks `[Create]` (and the open's groups) on the parent, then
//! always creates exclusively: a name that exists meanwhile is opened the OPEN way (so
//! what it is gets checked) unless the client asked for `O_EXCL`.
//!
//! This module owns these operations and their steps ([`OpenStep`]); the new handle's
//! I/O mode ([`IoMode`]) is decided here.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use qtfs_proto::consts::{self, WlType, errno};
use qtfs_proto::*;

use super::common::{
    Next, Req, agreed, fail, fd_code, finish, note_dir, proc_cstr, res_fd, resolve, stat_now, submit_open,
};
use super::fifo;
use super::gates::{allowed_fd, device_open_ok, wl_at};
use super::req::FsReq;
use super::state::Ctx;
use super::steps::{OpenArgs, OpenStep, SpecialOpen};
use crate::creds;
use crate::path::{self, SAFE};
use crate::session::{IoMode, OpenFile};
use crate::sys;

/// OPEN.
pub(super) fn open(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<OpenReq>(core) else { return };
    let Some(r) = rq.begin_at(core, &m.ctx, &m.groups, m.path.0) else { return };
    start(core, r, m.path.0, m.flags, m.mode, 0, false);
}

/// CREATE (`CREATE_NOOPEN`: attributes only, no handle).
pub(super) fn create(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<CreateReq>(core) else { return };
    let noopen = m.cflags & consts::CREATE_NOOPEN != 0;
    let flags = m.flags | consts::open::CREAT;
    let Some(r) = rq.begin_at(core, &m.ctx, &m.groups, m.path.0) else { return };
    start(core, r, m.path.0, flags, m.mode, m.umask, noopen);
}

/// Opens (or creates) `p` for the begun request `r`.
fn start(core: &mut Ctx, mut r: Box<FsReq>, p: &[u8], wflags: u32, mode: u32, umask: u32, noopen: bool) {
    let Some(flags) = consts::open::to_linux(wflags) else {
        return fail(core, r, errno::EINVAL);
    };
    let args = OpenArgs { flags, mode: mode & !umask & 0o7777, noopen };
    if flags & libc::O_CREAT != 0 {
        // Create path: the parent must allow [Create] before anything exists.
        let (parent, name) = match path::split(p) {
            Ok(x) => x,
            Err(e) => return fail(core, r, e),
        };
        r.push_str(parent);
        r.push_str(name);
        // 2: the whole path, should the name exist (OpenStep::Created).
        r.push_str(p);
        let step = OpenStep::CreateParent(args);
        if let Next::Now(r, s, res) = resolve(core, r, step, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE) {
            step_done(core, r, s, res);
        }
        return;
    }
    // Existing object: resolve it (O_PATH), check the whitelist on its real path, then
    // reopen it through /proc/self/fd with the requested flags.
    r.push_str(if p.is_empty() { b"." } else { p });
    let nofollow = flags & libc::O_NOFOLLOW;
    if let Next::Now(r, s, res) = resolve(core, r, OpenStep::Object(args), None, 0, libc::O_PATH | nofollow, 0, SAFE) {
        step_done(core, r, s, res);
    }
}

/// Whitelist groups an open with these flags needs, besides `[Open]`.
fn open_gates(flags: i32) -> impl Iterator<Item = WlType> {
    let acc = flags & libc::O_ACCMODE;
    [
        Some(WlType::Open),
        (acc == libc::O_RDONLY || acc == libc::O_RDWR).then_some(WlType::Read),
        (acc == libc::O_WRONLY || acc == libc::O_RDWR).then_some(WlType::Write),
        (flags & libc::O_TRUNC != 0).then_some(WlType::Setattr),
    ]
    .into_iter()
    .flatten()
}

/// The steps of OPEN and CREATE.
pub(super) fn step_done(core: &mut Ctx, mut r: Box<FsReq>, step: OpenStep, res: i32) {
    match step {
        OpenStep::Object(args) => object_resolved(core, r, args, res),
        // CREATE of a name that exists (and no O_EXCL asked): open it as OPEN does
        // (resolved beneath the export root), so that what it is gets checked first.
        OpenStep::Created(args) if res == -libc::EEXIST && args.flags & libc::O_EXCL == 0 => {
            r.dirfd = None;
            let flags = libc::O_PATH | (args.flags & libc::O_NOFOLLOW);
            if let Next::Now(r, s, res) = resolve(core, r, OpenStep::Object(args), None, 2, flags, 0, SAFE) {
                step_done(core, r, s, res);
            }
        }
        OpenStep::Created(args) => match res_fd(res) {
            // A new file (its parent in `dirfd`): its attributes are taken now.
            Ok(fd) => {
                let dir = r.dir_raw();
                note_dir(core, &mut r, Some(dir));
                opened(core, r, args, fd, false)
            }
            Err(e) => fail(core, r, e),
        },
        OpenStep::Reopened(args) => match res_fd(res) {
            // Unless O_TRUNC changed them, the statx before the reopen holds.
            Ok(fd) => opened(core, r, args, fd, args.flags & libc::O_TRUNC == 0),
            Err(e) => fail(core, r, e),
        },
        OpenStep::CreateParent(args) => create_parent_resolved(core, r, args, res),
        OpenStep::SpecialWait(sp) => {
            if let Some((r, fd)) = fifo::open_wait_done(core, r, sp, res) {
                opened(core, r, sp.args, fd, sp.args.flags & libc::O_TRUNC == 0);
            }
        }
    }
}

/// The existing object resolved as O_PATH: check, then reopen with the real flags.
fn object_resolved(core: &mut Ctx, mut r: Box<FsReq>, args: OpenArgs, res: i32) {
    let flags = args.flags;
    let p = match res_fd(res) {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    // One statx of the O_PATH descriptor (which never opens a device) serves three
    // times: the file type decides whether the object may be opened at all (devices)
    // and how, and (unless O_TRUNC changes them) the attributes answer.
    let mut stx = r.stx;
    if let Err(e) = sys::statx_raw(p.as_raw_fd(), c"", libc::AT_EMPTY_PATH, &mut stx) {
        return fail(core, r, sys::errno_of(&e));
    }
    r.stx = stx;
    let kind = stx.stx_mode as u32 & libc::S_IFMT;
    if args.noopen && flags & libc::O_TRUNC == 0 {
        // CREATE without open of a name that exists: its attributes, nothing opened.
        r.fd = Some(p);
        return respond(core, r, args);
    }
    for t in open_gates(flags) {
        if let Err(e) = wl_at(core, r.export(), t, p.as_raw_fd(), b"") {
            return fail(core, r, e);
        }
    }
    if let Err(e) = device_open_ok(core, p.as_raw_fd(), &stx) {
        return fail(core, r, e);
    }
    let proc = sys::proc_fd_path(p.as_raw_fd());
    r.dirfd = Some(p);
    let i = r.push_str(proc_cstr(&proc).to_bytes());
    // Exactly the inode checked above, through its magic link; never as the engine's
    // controlling terminal.
    let f = (flags & !(libc::O_NOFOLLOW | libc::O_CREAT | libc::O_EXCL)) | libc::O_NOCTTY;
    if matches!(kind, libc::S_IFIFO | libc::S_IFCHR | libc::S_IFBLK) {
        // May wait for the other end (FIFOs) or a driver: never in a worker.
        let sp = SpecialOpen { args, kind, path: i, flags: f, rounds: 0 };
        if let Some((r, fd)) = fifo::open_special(core, r, sp) {
            opened(core, r, args, fd, flags & libc::O_TRUNC == 0);
        }
        return;
    }
    if kind == libc::S_IFREG || kind == libc::S_IFDIR {
        // Reopening a regular file or directory does not wait (FIFOs and devices may,
        // so they take the ring).
        let code = fd_code(creds::with_ident(&r.ident, || sys::openat2(libc::AT_FDCWD, r.cstr(i), f, 0, 0)));
        return step_done(core, r, OpenStep::Reopened(args), code);
    }
    submit_open(core, r, OpenStep::Reopened(args).into(), Some(libc::AT_FDCWD), i, f, 0, 0);
}

/// CREATE: the parent resolved; check, then create the name exclusively.
fn create_parent_resolved(core: &mut Ctx, mut r: Box<FsReq>, args: OpenArgs, res: i32) {
    let flags = args.flags;
    let dir = match allowed_fd(core, &r, res, WlType::Create, r.str_bytes(1)) {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    let raw = dir.as_raw_fd();
    let name = r.str_bytes(1).to_vec();
    if !args.noopen {
        for t in open_gates(flags & !libc::O_TRUNC) {
            if let Err(e) = wl_at(core, r.export(), t, raw, &name) {
                return fail(core, r, e);
            }
        }
        if flags & libc::O_TRUNC != 0
            && let Err(e) = wl_at(core, r.export(), WlType::Setattr, raw, &name)
        {
            return fail(core, r, e);
        }
    }
    r.dirfd = Some(dir);
    // Always exclusive: O_CREAT on an existing name would open whatever is there (a
    // device node, a FIFO) unchecked. EEXIST without the client's O_EXCL goes the OPEN
    // way (OpenStep::Created).
    let cflags = flags | libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY;
    if sys::is_memory_fs(raw) {
        let code = fd_code(creds::with_ident(&r.ident, || sys::openat2(raw, r.cstr(1), cflags, args.mode, SAFE)));
        return step_done(core, r, OpenStep::Created(args), code);
    }
    submit_open(core, r, OpenStep::Created(args).into(), Some(raw), 1, cflags, args.mode, SAFE);
}

/// The file is open (or, for CREATE without open, created): fetch its attributes,
/// unless the statx made before the reopen still holds them (`fresh`), and answer.
pub(super) fn opened(core: &mut Ctx, mut r: Box<FsReq>, args: OpenArgs, fd: OwnedFd, fresh: bool) {
    r.dirfd = None;
    let raw = fd.as_raw_fd();
    r.fd = Some(fd);
    if !fresh && let Err(e) = stat_now(&mut r, raw, None, libc::AT_EMPTY_PATH) {
        return fail(core, r, e);
    }
    respond(core, r, args);
}

/// Answers the attributes in `r.stx` and, unless CREATE_NOOPEN, the new handle of `r.fd`.
fn respond(core: &mut Ctx, mut r: Box<FsReq>, args: OpenArgs) {
    let mut attr = sys::attr_from_statx(&r.stx);
    // feat::XATTR_NONE, for root callers only: root's listing sees every namespace, so
    // "none" means none at all (another caller's hides the names it may not see).
    if let Some(fd) = &r.fd
        && r.ident.is_root()
        && agreed(core, &r, consts::feat::XATTR_NONE)
        && creds::with_ident(&r.ident, || sys::flistxattr_len(fd.as_raw_fd())).is_ok_and(|n| n.is_ok_and(|n| n == 0))
    {
        attr.flags |= consts::ATTR_F_NO_XATTRS;
    }
    if args.noopen {
        r.fd = None;
        return finish(core, r, &OpenRsp { handle: 0, attr });
    }
    // Only called once the open gave a descriptor.
    let Some(fd) = r.fd.take() else {
        return fail(core, r, errno::EIO);
    };
    let export = r.export.as_ref().map_or(0, |e| e.id);
    let io = if fifo::pollable(attr.mode & libc::S_IFMT, fd.as_raw_fd()) {
        IoMode::Fifo
    } else if attr.mode & libc::S_IFMT != libc::S_IFREG || args.flags & libc::O_DIRECT != 0 {
        IoMode::Ring
    } else if sys::is_memory_fs(fd.as_raw_fd()) {
        IoMode::Memory
    } else {
        IoMode::NowaitRead
    };
    let ids = r.export.as_ref().and_then(|e| e.ids.clone());
    let file = Arc::new(OpenFile { fd, flags: args.flags, export, io, ident: r.ident.clone(), ids });
    let Some(session) = r.session.clone() else {
        return fail(core, r, errno::EIO);
    };
    let res = session.handles.write().insert(file, session.max_handles);
    match res {
        Ok(handle) => finish(core, r, &OpenRsp { handle, attr }),
        Err(e) => fail(core, r, e),
    }
}
