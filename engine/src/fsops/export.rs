//! Exports: MOUNT and UMOUNT (a session attaching a HOST directory as an export, and
//! letting it go).
//!
//! MOUNT opens the directory as the caller under the identity policy of its path, once
//! more under the policy of its real path should that differ, checks `[Mount]` on the
//! real path and refuses a directory that holds an `--export-policy` directory with
//! another policy. A client that handles INVAL is told of changes beneath it from then on.
//!
//! This module owns the export operations; mounts on the HOST are `sysmount`'s.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use qtfs_proto::consts::{self, WlType, errno};
use qtfs_proto::*;

use super::common::Req;
use super::state::Ctx;
use crate::creds::{self, IdPolicy};
use crate::session::Session;
use crate::sys;

/// MOUNT.
pub(super) fn mount(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<MountReq>(core) else { return };
    let session = &rq.session;
    let r = do_mount(core, session, &m);
    // A client that handles INVAL hears about changes in the export from now on.
    let features = core.r.conns.get(rq.key).map_or(0, |c| c.shared.features.load(std::sync::atomic::Ordering::Relaxed));
    if let (Ok(rsp), Some(n)) = (&r, &core.r.shared.notify)
        && features & consts::feat::INVAL != 0
    {
        n.watch(session, rsp.export, features & consts::feat::NO_ECHO != 0);
    }
    rq.reply(core, r);
}

/// UMOUNT.
pub(super) fn umount(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<UmountReq>(core) else { return };
    let r = if rq.session.remove_export(m.export) { Ok(Empty {}) } else { Err(errno::ESTALE) };
    rq.reply(core, r);
}

fn do_mount(core: &mut Ctx, session: &Arc<Session>, m: &MountReq<'_>) -> Result<MountRsp, i32> {
    let p = m.path.0;
    if p.first() != Some(&b'/') {
        return Err(errno::EINVAL);
    }
    let c = std::ffi::CString::new(p).map_err(|_| errno::EINVAL)?;
    let shared = core.r.shared.clone();
    let (list, default) = (&shared.cfg.export_ids, &shared.cfg.ids);
    // The export's policy follows its real path, known once it is open: open it with the
    // identity the policy of the path as written gives, and should the real path fall
    // under another policy, once more with that one's (the caller must reach it as itself).
    let written = creds::export_policy(list, p);
    let (mut fd, real) = mount_open(written.map_or(default, |e| &e.ids), m, &c)?;
    let own = creds::export_policy(list, &real);
    if own.map(|e| &e.path) != written.map(|e| &e.path) {
        let (fd2, real2) = mount_open(own.map_or(default, |e| &e.ids), m, &real_cstr(&real)?)?;
        if real2 != real {
            // Renamed in between: let the client retry rather than guess.
            return Err(errno::EAGAIN);
        }
        fd = fd2;
    }
    if !core.r.wl.allows(WlType::Mount, &real) {
        tracing::warn!(path = %String::from_utf8_lossy(&real), "MOUNT denied by the [Mount] whitelist");
        return Err(errno::EACCES);
    }
    if let Some(n) = creds::nested_conflict(list, &real, own, default) {
        tracing::warn!(
            path = %String::from_utf8_lossy(&real),
            nested = %String::from_utf8_lossy(&n.path),
            "MOUNT refused: it holds an --export-policy directory with another policy (mount that one itself)"
        );
        return Err(errno::EACCES);
    }
    let root = sys::statx(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH).map_err(|e| sys::errno_of(&e))?;
    let id = session.add_export(fd, real.clone(), own.map(|e| e.ids.clone()))?;
    tracing::info!(session = format_args!("{:x}", session.id), export = id, path = %String::from_utf8_lossy(&real), "mounted");
    Ok(MountRsp { export: id, root })
}

/// Opens a MOUNT's directory as the caller under `ids`; returns it and its real path.
fn mount_open(ids: &IdPolicy, m: &MountReq<'_>, path: &CStr) -> Result<(OwnedFd, Vec<u8>), i32> {
    let ident = ids.ident(m.ctx.uid, m.ctx.gid, m.groups.iter())?;
    let fd = creds::with_ident(&ident, || sys::openat2(libc::AT_FDCWD, path, libc::O_PATH | libc::O_DIRECTORY, 0, 0))
        .map_err(|e| sys::errno_of(&e))?
        .map_err(|e| sys::errno_of(&e))?;
    let real = sys::fd_real_path(fd.as_raw_fd()).map_err(|e| sys::errno_of(&e))?;
    Ok((fd, real))
}

fn real_cstr(real: &[u8]) -> Result<std::ffi::CString, i32> {
    std::ffi::CString::new(real).map_err(|_| errno::EINVAL)
}
