//! Mounts on the HOST: SYSMOUNT and SYSUMOUNT.
//!
//! Only with `--allow-sysmount`, only for a caller that is root after the identity
//! policy, only what [`mounts::plan`] allows, on a target (and a path source) resolved
//! beneath the export and allowed by `[Mount]`; SYSUMOUNT only of a mount this engine
//! made ([`mounts::unmount`]). The mount itself runs with the engine's own privileges.
//!
//! This module owns these operations ([`SysmountStep`]); what may be mounted where is
//! `mounts`'.

use std::os::fd::OwnedFd;

use qtfs_proto::consts::{self, WlType, errno};
use qtfs_proto::*;

use super::common::{Next, Req, fail, finish_empty, ident_of, resolve};
use super::gates::allowed_fd;
use super::mounts;
use super::req::FsReq;
use super::state::Ctx;
use super::steps::{Step, SysmountArgs, SysmountStep};
use crate::creds::{self, Ident};
use crate::path::{self, SAFE};

/// SYSMOUNT: target string 0, source 1, fstype 2, data 3.
pub(super) fn sysmount(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<SysmountReq>(core) else { return };
    let mut r = rq.begin(core);
    // What may be mounted where: mounts.rs.
    if !core.r.shared.cfg.allow_sysmount {
        tracing::info!("SYSMOUNT refused: the engine runs without --allow-sysmount");
        return fail(core, r, errno::EPERM);
    }
    if let Err(e) =
        super::common::with_ctx(core, &mut r, &m.ctx, &m.groups).and_then(|_| path::check(m.target.0).map(|_| ()))
    {
        return fail(core, r, e);
    }
    if !r.ident.is_root() {
        return fail(core, r, errno::EPERM);
    }
    if let Err(e) = mounts::plan(m.flags, m.source_kind, m.fstype.0) {
        let fstype = String::from_utf8_lossy(m.fstype.0);
        tracing::info!(flags = format_args!("{:#x}", m.flags), fstype = %fstype, "SYSMOUNT refused");
        return fail(core, r, e);
    }
    let path_source = m.source_kind == consts::SYSMOUNT_SRC_PATH;
    if path_source && path::check(m.source.0).is_err() {
        return fail(core, r, errno::EINVAL);
    }
    if m.data.0.contains(&0) {
        return fail(core, r, errno::EINVAL);
    }
    r.push_str(if m.target.is_empty() { b"." } else { m.target.0 });
    r.push_str(if path_source && m.source.is_empty() { b"." } else { m.source.0 });
    r.push_str(m.fstype.0);
    r.push_str(m.data.0);
    let step = SysmountStep::Target(SysmountArgs { flags: m.flags, source_kind: m.source_kind });
    if let Next::Now(r, s, res) = resolve(core, r, step, None, 0, libc::O_PATH | libc::O_DIRECTORY, 0, SAFE) {
        sysmount_step(core, r, s, res);
    }
}

/// The steps of SYSMOUNT.
pub(super) fn sysmount_step(core: &mut Ctx, mut r: Box<FsReq>, step: SysmountStep, res: i32) {
    match step {
        SysmountStep::Target(a) => {
            let fd = match allowed_fd(core, &r, res, WlType::Mount, b"") {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            r.fd = Some(fd);
            if mounts::plan(a.flags, a.source_kind, r.str_bytes(2)).is_ok_and(|p| p.needs_source()) {
                // Beneath the same export, like the target (a literal HOST path never
                // gets here: mounts::plan refuses it).
                if let Next::Now(r, s, res) = resolve(core, r, SysmountStep::Source(a), None, 1, libc::O_PATH, 0, SAFE)
                {
                    sysmount_step(core, r, s, res);
                }
                return;
            }
            sysmount_now(core, r, a, None);
        }
        SysmountStep::Source(a) => {
            let src = match allowed_fd(core, &r, res, WlType::Mount, b"") {
                Ok(d) => d,
                Err(e) => return fail(core, r, e),
            };
            sysmount_now(core, r, a, Some(src));
        }
    }
}

fn sysmount_now(core: &mut Ctx, r: Box<FsReq>, a: SysmountArgs, src: Option<OwnedFd>) {
    // Mounting needs the engine's own privileges (the caller is uid 0, checked above).
    creds::reset();
    let res = match (mounts::plan(a.flags, a.source_kind, r.str_bytes(2)), r.fd.as_ref()) {
        (Ok(plan), Some(target)) => {
            mounts::perform(&core.r.shared.sysmounts, &core.r.wl, &plan, target, src.as_ref(), r.str_bytes(3))
        }
        (Err(e), _) => Err(e),
        (_, None) => Err(errno::EIO),
    };
    match res {
        Ok(()) => finish_empty(core, r),
        Err(e) => fail(core, r, e),
    }
}

/// SYSUMOUNT: resolves the mount point (following a final symlink), then unmounts it.
pub(super) fn sysumount(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<SysumountReq>(core) else { return };
    if !core.r.shared.cfg.allow_sysmount {
        tracing::info!("SYSUMOUNT refused: the engine runs without --allow-sysmount");
        return rq.reply_err(core, errno::EPERM);
    }
    let ids = rq.session.export(m.ctx.export).and_then(|e| e.ids.clone());
    let ident = ident_of(core, ids.as_ref(), &m.ctx, &m.groups);
    if !ident.as_ref().is_ok_and(Ident::is_root) {
        return rq.reply_err(core, errno::EPERM);
    }
    let p = m.target.0;
    let Some(mut r) = rq.begin_at(core, &m.ctx, &m.groups, p) else { return };
    r.push_str(if p.is_empty() { b"." } else { p });
    let step = Step::Sysumount { flags: m.flags };
    if let Next::Now(r, _, res) = resolve(core, r, step, None, 0, libc::O_PATH, 0, SAFE) {
        sysumount_resolved(core, r, m.flags, res);
    }
}

/// SYSUMOUNT: the mount point resolved; check and unmount.
pub(super) fn sysumount_resolved(core: &mut Ctx, r: Box<FsReq>, flags: u32, res: i32) {
    let fd = match allowed_fd(core, &r, res, WlType::Mount, b"") {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    // Only a mount this engine made, named by its root (mounts::unmount).
    creds::reset();
    match mounts::unmount(&core.r.shared.sysmounts, fd, flags as i32) {
        Ok(()) => finish_empty(core, r),
        Err(e) => fail(core, r, e),
    }
}
