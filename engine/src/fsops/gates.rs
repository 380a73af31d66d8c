//! The checks operations make before they act, on what the kernel resolved: the
//! whitelist on real paths ([`wl_at`], [`wl_handle`], [`allowed_fd`]), the device policy on an object
//! about to be opened ([`device_open_ok`]) and the free-space floor before growth
//! ([`space_ok`], [`growth`]).
//!
//! This module owns these policy decisions (the rules themselves live in `whitelist`,
//! `devices` and the configuration); it imports no operation module.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use qtfs_proto::consts::{WlType, errno};

use super::common::res_fd;
use super::req::FsReq;
use super::state::Ctx;
use crate::session::{Export, OpenFile, Session};
use crate::sys;
use crate::{devices, path};

/// `--min-free`: ENOSPC when growing a file on `fd`'s file system by `grow` bytes would
/// leave less available space than the floor (a client with [Write] must not fill the
/// HOST's disk). Nothing to check without a floor or growth.
pub(super) fn space_ok(core: &Ctx, fd: RawFd, grow: u64) -> Result<(), i32> {
    let min = core.r.shared.cfg.min_free;
    if grow == 0 || min == crate::config::MinFree::None {
        return Ok(());
    }
    let (avail, total) = sys::fs_space(fd).map_err(|e| sys::errno_of(&e))?;
    if avail < min.floor(total).saturating_add(grow) {
        crate::log_limited!(
            tracing::Level::WARN,
            avail,
            grow,
            "refused with ENOSPC: the export's file system is at --min-free"
        );
        return Err(errno::ENOSPC);
    }
    Ok(())
}

/// Bytes a write of `len` at `off` (u64::MAX: append) adds to the file `fd`; 0 when no
/// floor is configured (no statx needed then).
pub(super) fn growth(core: &Ctx, fd: RawFd, off: u64, len: u64) -> u64 {
    if core.r.shared.cfg.min_free == crate::config::MinFree::None {
        return 0;
    }
    let size = sys::statx(fd, c"", libc::AT_EMPTY_PATH).map_or(0, |a| a.size);
    if off == u64::MAX { len } else { off.saturating_add(len).saturating_sub(size) }
}

/// The descriptor a resolve step of `r` gave (`res`: it or an errno), once the whitelist
/// allows `t` on `name` beneath it (`b""`: on the object itself).
pub(super) fn allowed_fd(core: &Ctx, r: &FsReq, res: i32, t: WlType, name: &[u8]) -> Result<OwnedFd, i32> {
    let fd = res_fd(res)?;
    wl_at(core, r.export(), t, fd.as_raw_fd(), name)?;
    Ok(fd)
}

/// Whitelist check of `dirfd`'s real path joined with `name`.
pub(super) fn wl_at(core: &Ctx, export: Option<&Export>, t: WlType, dirfd: RawFd, name: &[u8]) -> Result<(), i32> {
    // Everything resolved beneath the export root has a real path under the root's own
    // path, so an entry covering the whole export answers without reading the real path.
    if let Some(e) = export
        && core.r.wl.allows(t, &e.host_path)
    {
        return Ok(());
    }
    let real = sys::fd_real_path(dirfd).map_err(|e| sys::errno_of(&e))?;
    let full = path::join(&real, name);
    if core.r.wl.allows(t, &full) {
        Ok(())
    } else {
        tracing::info!(group = t.section(), path = %String::from_utf8_lossy(&full), "denied by whitelist");
        Err(errno::EACCES)
    }
}

/// Whitelist check of an operation on an open handle: the group its path form needs
/// (READ: Read, WRITE and FALLOCATE: Write, SETATTR and the chattr ioctls: Setattr), on
/// the real path of the open file now, not the name it was opened by. So a handle keeps
/// no right the whitelist has withdrawn since, and gains none its open did not check
/// (SETATTR on a handle opened read-only). The export's own entry answers without a
/// readlink: a handle's file stays beneath its export (client renames and links do).
pub(super) fn wl_handle(core: &Ctx, session: &Session, f: &OpenFile, t: WlType) -> Result<(), i32> {
    wl_at(core, session.export(f.export).as_deref(), t, f.raw(), b"")
}

/// `nodev`: whether the object `fd` names (an `O_PATH` descriptor, `mode`/`rdev` from
/// its statx) may be opened. Devices only when an `--allow-devices` rule names them.
pub(super) fn device_open_ok(core: &Ctx, fd: RawFd, stx: &libc::statx) -> Result<(), i32> {
    let mode = stx.stx_mode as u32;
    if !devices::is_device(mode) {
        return Ok(());
    }
    let real = sys::fd_real_path(fd).map_err(|e| sys::errno_of(&e))?;
    if devices::open_allowed(&core.r.shared.cfg.allow_devices, mode, &real, stx.stx_rdev_major, stx.stx_rdev_minor) {
        return Ok(());
    }
    tracing::info!(
        path = %String::from_utf8_lossy(&real),
        dev = format_args!("{}:{}", stx.stx_rdev_major, stx.stx_rdev_minor),
        "open of a device node refused (see --allow-devices)"
    );
    Err(errno::EACCES)
}
