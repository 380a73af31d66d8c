//! SYSMOUNT and SYSUMOUNT: mount(2) and umount2(2) on the HOST on behalf of a client.
//!
//! The client chooses its uid (root squash is off by default), so "uid 0" proves
//! nothing; a mount is the most privileged thing the engine does, and what it can do
//! is bounded here, not by the caller's identity:
//!
//! - Refused (EPERM) unless the operator started the engine with `--allow-sysmount`;
//!   then only for uid 0, and every path involved must be in `[Mount]`.
//! - The target is resolved beneath the request's export (`openat2` with
//!   `RESOLVE_BENEATH`, like every path) and the new mount is attached exactly on that
//!   directory (`move_mount` from a mount descriptor, never by path).
//! - A new mount is one of [`SPECIAL`] (proc, sysfs, cgroup2, tmpfs, devpts, mqueue,
//!   hugetlbfs), never a device or a path: the literal source is ignored, and the mount
//!   always gets `nosuid`, `nodev` (not devpts, whose nodes are its point) and `noexec`.
//! - `MS_BIND` and `MS_MOVE` take their source as a path beneath the same export (a
//!   literal HOST path is refused), and the tree placed at the target may not gain any
//!   whitelist right it does not have at the source
//!   ([`crate::whitelist::Whitelist::gained_tree`]): a bind of a read-only area onto a
//!   writable one would otherwise launder it, as a hard link would. A bind keeps the
//!   source mount's `nosuid`/`nodev`/`noexec`/`ro`, and a later remount cannot drop them.
//! - Everything that changes an existing mount (`MS_MOVE`'s source, `MS_REMOUNT`,
//!   propagation types, SYSUMOUNT) applies only to a mount this engine made
//!   ([`SysMounts`]: mount ids, never reused on Linux ≥ 6.8), named by its root: a HOST
//!   mount inside an export is refused with EPERM. A remount of the superblock (without
//!   `MS_BIND`) is only for file systems whose every mount has its own superblock
//!   (tmpfs, devpts, hugetlbfs, proc): for sysfs, cgroup2, mqueue and bind mounts the
//!   superblock is the HOST's. Propagation changes are never recursive.
//!
//! Caveat documented in `--help`: the kernel applies a cgroup2 mount's options
//! (`nsdelegate`, `memory_recursiveprot`, …) to the one cgroup2 hierarchy, the HOST's.

// Reached by bytes from untrusted peers: a slip must fail a request, not panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use parking_lot::Mutex;
use qtfs_proto::consts::{self, ms};
use qtfs_proto::errno;

use crate::sys::{self, MountId};

/// Per-mount flags a client may ask for.
const PLAIN: u64 = ms::RDONLY
    | ms::NOSUID
    | ms::NODEV
    | ms::NOEXEC
    | ms::NOSYMFOLLOW
    | ms::NOATIME
    | ms::NODIRATIME
    | ms::RELATIME
    | ms::STRICTATIME
    | ms::SILENT;
const PROPAGATION: u64 = ms::SHARED | ms::PRIVATE | ms::SLAVE | ms::UNBINDABLE;
/// The per-mount flags a mount keeps through remounts.
const KEEP: u64 = ms::RDONLY | ms::NOSUID | ms::NODEV | ms::NOEXEC;

/// A file system type a client may mount (no device, no source path).
#[derive(Debug)]
pub(crate) struct Special {
    pub name: &'static CStr,
    /// `MS_*` flags every mount of it gets.
    pub forced: u64,
    /// Every mount has its own superblock, so a superblock remount touches nothing else.
    pub private_sb: bool,
}

pub(crate) const SPECIAL: &[Special] = &[
    Special { name: c"proc", forced: ms::NOSUID | ms::NODEV | ms::NOEXEC, private_sb: true },
    Special { name: c"sysfs", forced: ms::NOSUID | ms::NODEV | ms::NOEXEC, private_sb: false },
    Special { name: c"cgroup2", forced: ms::NOSUID | ms::NODEV | ms::NOEXEC, private_sb: false },
    Special { name: c"tmpfs", forced: ms::NOSUID | ms::NODEV | ms::NOEXEC, private_sb: true },
    // Its nodes are pty devices: nodev would make it useless (opening them through
    // qtfs still needs --allow-devices).
    Special { name: c"devpts", forced: ms::NOSUID | ms::NOEXEC, private_sb: true },
    Special { name: c"mqueue", forced: ms::NOSUID | ms::NODEV | ms::NOEXEC, private_sb: false },
    Special { name: c"hugetlbfs", forced: ms::NOSUID | ms::NODEV | ms::NOEXEC, private_sb: true },
];

/// What a SYSMOUNT request asks for, decided from its flags before anything is resolved.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A new instance of a [`SPECIAL`] type with these `MS_*` flags (forced ones added).
    New { fs: &'static Special, flags: u64 },
    /// A bind mount of a path beneath the export.
    Bind { recursive: bool },
    /// Moves a mount this engine made.
    Move,
    /// Remounts a mount this engine made (`MS_REMOUNT` with these flags).
    Remount { flags: u64 },
    /// Changes the propagation type of a mount this engine made (one of `MS_SHARED`…).
    Propagation { flags: u64 },
}

impl Plan {
    /// Whether the request's source is a path to resolve beneath the export.
    pub fn needs_source(&self) -> bool {
        matches!(self, Plan::Bind { .. } | Plan::Move)
    }
}

/// Classifies a request. EINVAL: flags this engine does not pass on; EPERM: something
/// it never does for a client (another file system type, a literal source for a bind).
pub(crate) fn plan(flags: u64, source_kind: u32, fstype: &[u8]) -> Result<Plan, i32> {
    let mut flags = flags;
    if flags & ms::MGC_MSK == ms::MGC_VAL {
        flags &= !ms::MGC_MSK;
    }
    if flags > u32::MAX as u64 {
        return Err(errno::EINVAL);
    }
    let path_source = source_kind == consts::SYSMOUNT_SRC_PATH;
    if flags & PROPAGATION != 0 {
        if flags & !(PROPAGATION | ms::REC | ms::SILENT) != 0 || (flags & PROPAGATION).count_ones() != 1 {
            return Err(errno::EINVAL);
        }
        if flags & ms::REC != 0 {
            // Would reach every mount beneath, HOST ones included.
            return Err(errno::EPERM);
        }
        return Ok(Plan::Propagation { flags });
    }
    if flags & ms::REMOUNT != 0 {
        if flags & !(ms::REMOUNT | ms::BIND | PLAIN) != 0 {
            return Err(errno::EINVAL);
        }
        return Ok(Plan::Remount { flags });
    }
    if flags & ms::MOVE != 0 {
        if flags & !(ms::MOVE | ms::SILENT) != 0 {
            return Err(errno::EINVAL);
        }
        return if path_source { Ok(Plan::Move) } else { Err(errno::EPERM) };
    }
    if flags & ms::BIND != 0 {
        // Like the kernel, a bind ignores the per-mount flags (a remount sets them).
        if flags & !(ms::BIND | ms::REC | PLAIN) != 0 {
            return Err(errno::EINVAL);
        }
        return if path_source { Ok(Plan::Bind { recursive: flags & ms::REC != 0 }) } else { Err(errno::EPERM) };
    }
    if flags & !PLAIN != 0 {
        return Err(errno::EINVAL);
    }
    let fs = SPECIAL.iter().find(|s| s.name.to_bytes() == fstype).ok_or(errno::EPERM)?;
    if path_source {
        // A special file system has no source; a path here means a misunderstanding.
        return Err(errno::EINVAL);
    }
    Ok(Plan::New { fs, flags: flags | fs.forced })
}

/// `MS_*` per-mount flags as `MOUNT_ATTR_*` (for `fsmount`).
fn mount_attrs(flags: u64) -> u64 {
    let map = [
        (ms::RDONLY, sys::MOUNT_ATTR_RDONLY),
        (ms::NOSUID, sys::MOUNT_ATTR_NOSUID),
        (ms::NODEV, sys::MOUNT_ATTR_NODEV),
        (ms::NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        (ms::NOATIME, sys::MOUNT_ATTR_NOATIME),
        (ms::STRICTATIME, sys::MOUNT_ATTR_STRICTATIME),
        (ms::NODIRATIME, sys::MOUNT_ATTR_NODIRATIME),
        (ms::NOSYMFOLLOW, sys::MOUNT_ATTR_NOSYMFOLLOW),
    ];
    map.iter().filter(|(ms, _)| flags & ms != 0).fold(0, |a, (_, attr)| a | attr)
}

/// A mount this engine made.
#[derive(Debug, Clone)]
struct Made {
    /// Real path when made (or last moved): for logs.
    path: Vec<u8>,
    /// `MS_*` flags every remount keeps.
    keep: u64,
    private_sb: bool,
}

/// The mounts this engine made through SYSMOUNT, by mount id. Only these may be moved,
/// remounted, re-typed or unmounted by a client.
#[derive(Debug, Default)]
pub struct SysMounts {
    made: Mutex<HashMap<MountId, Made>>,
}

impl SysMounts {
    /// How many mounts the engine made that it has not seen unmounted.
    pub fn len(&self) -> usize {
        self.made.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, id: &MountId) -> Option<Made> {
        self.made.lock().get(id).cloned()
    }
}

/// The mount whose root `fd` is, if this engine made it.
fn ours(mounts: &SysMounts, fd: RawFd) -> Result<(MountId, Made), i32> {
    let (id, is_root) = sys::mount_id(fd).map_err(|e| sys::errno_of(&e))?;
    match mounts.get(&id) {
        Some(m) if is_root => Ok((id, m)),
        _ => {
            let p = sys::fd_real_path(fd).unwrap_or_default();
            tracing::warn!(path = %String::from_utf8_lossy(&p), "SYSMOUNT/SYSUMOUNT refused: not the root of a mount made through qtfs");
            Err(errno::EPERM)
        }
    }
}

fn proc_path(fd: RawFd) -> CString {
    let p = sys::proc_fd_path(fd);
    // proc_fd_path always ends in NUL; an empty name would fail the mount call, not us.
    CStr::from_bytes_until_nul(&p).map(CStr::to_owned).unwrap_or_default()
}

fn cstr(b: &[u8]) -> Result<CString, i32> {
    CString::new(b).map_err(|_| errno::EINVAL)
}

/// Performs a planned SYSMOUNT with the engine's own privileges. `target` and `source`
/// are `O_PATH` descriptors resolved beneath the export (and checked against `[Mount]`);
/// `data` the mount options; `wl` judges whether a bind or move gains rights.
pub(crate) fn perform(
    mounts: &SysMounts,
    wl: &crate::whitelist::Whitelist,
    plan: &Plan,
    target: &OwnedFd,
    source: Option<&OwnedFd>,
    data: &[u8],
) -> Result<(), i32> {
    let err = |e: std::io::Error| sys::errno_of(&e);
    let t = target.as_raw_fd();
    let target_real = sys::fd_real_path(t).map_err(err)?;
    let no_gain = |src: RawFd| -> Result<(), i32> {
        let from = sys::fd_real_path(src).map_err(err)?;
        if let Some(g) = wl.gained_tree(&from, &target_real) {
            tracing::info!(
                group = g.section(),
                source = %String::from_utf8_lossy(&from),
                target = %String::from_utf8_lossy(&target_real),
                "SYSMOUNT denied by whitelist: the target would allow what the source does not"
            );
            return Err(errno::EACCES);
        }
        Ok(())
    };
    match plan {
        Plan::New { fs, flags } => {
            let ctx = sys::fsopen(fs.name).map_err(err)?;
            sys::fsconfig_set(ctx.as_raw_fd(), c"source", Some(fs.name)).map_err(err)?;
            for opt in data.split(|&c| c == b',').filter(|o| !o.is_empty()) {
                let (k, v) = match opt.iter().position(|&c| c == b'=') {
                    Some(i) => (opt.get(..i).unwrap_or_default(), Some(cstr(opt.get(i + 1..).unwrap_or_default())?)),
                    None => (opt, None),
                };
                if k == b"source" {
                    // The source is the file system's name, nothing a client picks.
                    return Err(errno::EINVAL);
                }
                sys::fsconfig_set(ctx.as_raw_fd(), &cstr(k)?, v.as_deref()).map_err(err)?;
            }
            let m = sys::fsmount(ctx.as_raw_fd(), mount_attrs(*flags)).map_err(err)?;
            attach(mounts, &m, target, Made { path: target_real, keep: fs.forced, private_sb: fs.private_sb })
        }
        Plan::Bind { recursive } => {
            let src = source.ok_or(errno::EINVAL)?;
            no_gain(src.as_raw_fd())?;
            let keep = sys::mount_flags(src.as_raw_fd()).map_err(err)? & KEEP;
            let m = sys::open_tree_clone(src.as_raw_fd(), *recursive).map_err(err)?;
            attach(mounts, &m, target, Made { path: target_real, keep, private_sb: false })
        }
        Plan::Move => {
            let src = source.ok_or(errno::EINVAL)?;
            let (id, made) = ours(mounts, src.as_raw_fd())?;
            no_gain(src.as_raw_fd())?;
            sys::move_mount(src.as_raw_fd(), t).map_err(err)?;
            tracing::info!(from = %String::from_utf8_lossy(&made.path), to = %String::from_utf8_lossy(&target_real), "SYSMOUNT moved");
            mounts.made.lock().insert(id, Made { path: target_real, ..made });
            Ok(())
        }
        Plan::Remount { flags } => {
            let (_, made) = ours(mounts, t)?;
            if flags & ms::BIND == 0 && !made.private_sb {
                // The superblock is shared with HOST mounts (sysfs, cgroup2, mqueue, a
                // bind mount's file system): only per-mount flags may change.
                return Err(errno::EPERM);
            }
            let data = if data.is_empty() { None } else { Some(cstr(data)?) };
            sys::mount(None, &proc_path(t), None, flags | made.keep, data.as_deref()).map_err(err)
        }
        Plan::Propagation { flags } => {
            ours(mounts, t)?;
            sys::mount(None, &proc_path(t), None, *flags, None).map_err(err)
        }
    }
}

/// Attaches a detached mount exactly on `target` and records it.
fn attach(mounts: &SysMounts, m: &OwnedFd, target: &OwnedFd, made: Made) -> Result<(), i32> {
    let err = |e: std::io::Error| sys::errno_of(&e);
    sys::move_mount(m.as_raw_fd(), target.as_raw_fd()).map_err(err)?;
    match sys::mount_id(m.as_raw_fd()) {
        Ok((id, _)) => {
            tracing::info!(target = %String::from_utf8_lossy(&made.path), mnt_id = id.id, "SYSMOUNT done");
            mounts.made.lock().insert(id, made);
            Ok(())
        }
        Err(e) => {
            // Cannot happen on Linux ≥ 5.8. Undo: a mount the engine cannot name again
            // would be one a client can never unmount.
            let _ = sys::umount2(&proc_path(m.as_raw_fd()), libc::MNT_DETACH);
            Err(err(e))
        }
    }
}

/// SYSUMOUNT of `fd`, an `O_PATH` descriptor of the target resolved beneath the export
/// (checked against `[Mount]`). Consumes `fd`: a non-lazy unmount fails while anything,
/// this descriptor included, holds the mount.
pub(crate) fn unmount(mounts: &SysMounts, fd: OwnedFd, flags: i32) -> Result<(), i32> {
    let err = |e: std::io::Error| sys::errno_of(&e);
    let allowed = libc::MNT_FORCE | libc::MNT_DETACH | libc::MNT_EXPIRE | libc::UMOUNT_NOFOLLOW;
    if flags & !allowed != 0 {
        return Err(errno::EINVAL);
    }
    let (id, made) = ours(mounts, fd.as_raw_fd())?;
    // Unmount by "/proc/self/fd/PARENT/NAME", never by a path string from the root: a
    // client renaming a directory above the mount point and leaving a symlink in its
    // place cannot redirect it. PARENT is the directory the mount sits on (`..` of a
    // mount root leaves the mount); the name of a mount point cannot change (rename(2)
    // refuses mount points), so NAME found now is the one the kernel walks.
    let parent = sys::openat(fd.as_raw_fd(), c"..", libc::O_PATH | libc::O_DIRECTORY, 0).map_err(err)?;
    let real = sys::fd_real_path(fd.as_raw_fd()).map_err(err)?;
    let name = real.rsplit(|&c| c == b'/').next().unwrap_or_default().to_vec();
    if name.is_empty() {
        return Err(errno::EINVAL);
    }
    drop(fd);
    let name_c = cstr(&name)?;
    let p = sys::proc_fd_path(parent.as_raw_fd());
    let mut path = CStr::from_bytes_until_nul(&p).map(|c| c.to_bytes().to_vec()).unwrap_or_default();
    path.push(b'/');
    path.extend_from_slice(&name);
    let path = cstr(&path)?;
    // Still ours at that name (nothing stacked on it since)?
    let again = sys::openat(parent.as_raw_fd(), &name_c, libc::O_PATH | libc::O_NOFOLLOW, 0)
        .and_then(|f| sys::mount_id(f.as_raw_fd()))
        .map_err(err)?;
    if again != (id, true) {
        return Err(errno::EPERM);
    }
    sys::umount2(&path, flags | libc::UMOUNT_NOFOLLOW).map_err(err)?;
    mounts.made.lock().remove(&id);
    tracing::info!(target = %String::from_utf8_lossy(&made.path), "SYSUMOUNT done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIT: u32 = consts::SYSMOUNT_SRC_LITERAL;
    const PATH: u32 = consts::SYSMOUNT_SRC_PATH;

    #[test]
    fn plans() {
        assert!(
            matches!(plan(0, LIT, b"tmpfs"), Ok(Plan::New { flags, .. }) if flags & (ms::NOSUID | ms::NODEV | ms::NOEXEC) == ms::NOSUID | ms::NODEV | ms::NOEXEC)
        );
        assert!(matches!(plan(0, LIT, b"devpts"), Ok(Plan::New { flags, .. }) if flags & ms::NODEV == 0));
        assert!(matches!(plan(ms::MGC_VAL | ms::RDONLY, LIT, b"proc"), Ok(Plan::New { .. })));
        assert_eq!(plan(0, LIT, b"ext4").unwrap_err(), errno::EPERM);
        assert_eq!(plan(0, LIT, b"bpf").unwrap_err(), errno::EPERM);
        assert_eq!(plan(0, PATH, b"tmpfs").unwrap_err(), errno::EINVAL);
        assert_eq!(plan(ms::BIND, LIT, b"").unwrap_err(), errno::EPERM, "a literal HOST path is never bound");
        assert!(matches!(plan(ms::BIND | ms::REC, PATH, b""), Ok(Plan::Bind { recursive: true })));
        assert_eq!(plan(ms::MOVE, LIT, b"").unwrap_err(), errno::EPERM);
        assert!(matches!(plan(ms::MOVE, PATH, b""), Ok(Plan::Move)));
        assert!(matches!(plan(ms::REMOUNT | ms::BIND | ms::RDONLY, LIT, b""), Ok(Plan::Remount { .. })));
        assert!(matches!(plan(ms::SHARED, LIT, b""), Ok(Plan::Propagation { .. })));
        assert_eq!(plan(ms::SHARED | ms::REC, LIT, b"").unwrap_err(), errno::EPERM);
        assert_eq!(plan(ms::SHARED | ms::PRIVATE, LIT, b"").unwrap_err(), errno::EINVAL);
        assert_eq!(plan(1 << 40, LIT, b"tmpfs").unwrap_err(), errno::EINVAL);
        assert_eq!(plan(64 /* ms::MANDLOCK */, LIT, b"tmpfs").unwrap_err(), errno::EINVAL);
        assert_eq!(mount_attrs(ms::NOSUID | ms::RDONLY), sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_RDONLY);
    }
}
