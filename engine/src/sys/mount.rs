//! Mounts: mount(2)/umount2(2), mount ids, and the mount API (fsopen, fsconfig, fsmount,
//! open_tree, move_mount) that lets the engine attach exactly the mount it made on the
//! directory it resolved.

use std::ffi::CStr;
use std::io;
use std::os::fd::{OwnedFd, RawFd};

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};

use super::{bfd, check_i, rx};

/// `mount(2)`; `None` arguments are passed as NULL.
// libc: rustix's mount() always passes a source and a type; its NULL-source forms
// (mount_remount, mount_change…) add their own flags.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |o: Option<&CStr>| o.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every non-null pointer is a NUL-terminated string.
    check_i(unsafe { libc::mount(p(source), target.as_ptr(), p(fstype), flags as libc::c_ulong, p(data).cast()) })
        .map(|_| ())
}

pub fn umount2(target: &CStr, flags: i32) -> io::Result<()> {
    rx(rustix::mount::unmount(target, UnmountFlags::from_bits_retain(flags as u32)))
}

/// Which mount an open descriptor is on, as statx reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MountId {
    /// The mount's id: the never-reused 64-bit one (`STATX_MNT_ID_UNIQUE`, Linux ≥ 6.8)
    /// when the kernel has it, else the classic (reusable) one.
    pub id: u64,
    pub unique: bool,
}

/// The mount `fd` is on, and whether `fd` is that mount's root (`STATX_ATTR_MOUNT_ROOT`).
// libc: rustix's statx masks off the flags it does not know, STATX_MNT_ID_UNIQUE among them.
pub fn mount_id(fd: RawFd) -> io::Result<(MountId, bool)> {
    // SAFETY: statx is plain data; zeroed is valid.
    let mut s: libc::statx = unsafe { std::mem::zeroed() };
    let mask = libc::STATX_MNT_ID | libc::STATX_MNT_ID_UNIQUE;
    // SAFETY: empty NUL-terminated path with AT_EMPTY_PATH, s valid for writes.
    check_i(unsafe { libc::statx(fd, c"".as_ptr(), libc::AT_EMPTY_PATH, mask, &mut s) })?;
    if s.stx_mask & (libc::STATX_MNT_ID | libc::STATX_MNT_ID_UNIQUE) == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let root_known = s.stx_attributes_mask & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
    let is_root = root_known && s.stx_attributes & libc::STATX_ATTR_MOUNT_ROOT as u64 != 0;
    Ok((MountId { id: s.stx_mnt_id, unique: s.stx_mask & libc::STATX_MNT_ID_UNIQUE != 0 }, is_root))
}

// The mount API (fsopen/fsconfig/fsmount/open_tree/move_mount, Linux ≥ 5.2): a mount
// made this way is a descriptor until it is attached, so the engine attaches exactly
// the mount it made, exactly on the directory it resolved, and learns its id.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x20_0000;

/// `fsopen(fstype, FSOPEN_CLOEXEC)`: a file system context.
pub fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    rx(rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC))
}

/// `fsconfig(fd, FSCONFIG_SET_FLAG or _SET_STRING, key, value)`.
pub fn fsconfig_set(fd: RawFd, key: &CStr, value: Option<&CStr>) -> io::Result<()> {
    match value {
        Some(v) => rx(rustix::mount::fsconfig_set_string(bfd(fd), key, v)),
        None => rx(rustix::mount::fsconfig_set_flag(bfd(fd), key)),
    }
}

/// `fsconfig(fd, FSCONFIG_CMD_CREATE)` then `fsmount(fd, FSMOUNT_CLOEXEC, attrs)`: a
/// detached mount.
pub fn fsmount(fd: RawFd, attrs: u64) -> io::Result<OwnedFd> {
    rx(rustix::mount::fsconfig_create(bfd(fd)))?;
    // The kernel's attr_flags is an unsigned int: the MOUNT_ATTR_* bits all fit.
    let attrs = MountAttrFlags::from_bits_retain(attrs as u32);
    rx(rustix::mount::fsmount(bfd(fd), FsMountFlags::FSMOUNT_CLOEXEC, attrs))
}

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH [| AT_RECURSIVE])`: a detached
/// copy (bind mount) of what `fd` names.
pub fn open_tree_clone(fd: RawFd, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    rx(rustix::mount::open_tree(bfd(fd), c"", flags))
}

/// `move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attaches (or moves) the
/// mount `from` names onto the directory `to` names.
pub fn move_mount(from: RawFd, to: RawFd) -> io::Result<()> {
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    rx(rustix::mount::move_mount(bfd(from), c"", bfd(to), c"", flags))
}

/// `fstatvfs(3)`'s `f_flag` (`ST_NOSUID`, `ST_NODEV`, `ST_NOEXEC`, `ST_RDONLY` …: the
/// same bits as the `MS_*` flags): the per-mount flags of the mount `fd` is on.
pub fn mount_flags(fd: RawFd) -> io::Result<u64> {
    Ok(super::file::fstatvfs(fd)?.f_flag.bits())
}
