//! Thin safe wrappers over the system calls the engine makes directly (everything that
//! is not an io_uring operation). Every `unsafe` of the engine outside the ring lives
//! here. Functions return `io::Result` with the raw errno preserved.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use qtfs_proto::consts::ATTR_F_BTIME;
use qtfs_proto::{Attr, Statfs};

/// `Err(last_os_error)` if `r < 0`.
fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn check_i(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// The errno of an `io::Error` (EIO if it has none).
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `openat2(2)`.
pub fn openat2(dirfd: RawFd, path: &CStr, flags: i32, mode: u32, resolve: u64) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain data; zeroed, then every field set.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = mode as u64;
    how.resolve = resolve;
    // SAFETY: path is NUL-terminated, how is a valid open_how of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    let fd = check(r)? as RawFd;
    // SAFETY: the kernel returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)` (for engine-internal files such as the admin socket directory).
pub fn openat(dirfd: RawFd, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated.
    let fd = check_i(unsafe { libc::openat(dirfd, path.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Converts `statx` output into the portable record.
pub fn attr_from_statx(s: &libc::statx) -> Attr {
    let btime = s.stx_mask & libc::STATX_BTIME != 0;
    Attr {
        ino: s.stx_ino,
        size: s.stx_size,
        blocks: s.stx_blocks,
        atime_sec: s.stx_atime.tv_sec,
        mtime_sec: s.stx_mtime.tv_sec,
        ctime_sec: s.stx_ctime.tv_sec,
        btime_sec: if btime { s.stx_btime.tv_sec } else { 0 },
        atime_nsec: s.stx_atime.tv_nsec,
        mtime_nsec: s.stx_mtime.tv_nsec,
        ctime_nsec: s.stx_ctime.tv_nsec,
        btime_nsec: if btime { s.stx_btime.tv_nsec } else { 0 },
        mode: s.stx_mode as u32,
        nlink: s.stx_nlink,
        uid: s.stx_uid,
        gid: s.stx_gid,
        rdev_major: s.stx_rdev_major,
        rdev_minor: s.stx_rdev_minor,
        dev_major: s.stx_dev_major,
        dev_minor: s.stx_dev_minor,
        blksize: s.stx_blksize,
        flags: if btime { ATTR_F_BTIME } else { 0 },
    }
}

/// The statx mask the engine asks for.
pub const STATX_MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// `statx(2)` into the portable record.
pub fn statx(dirfd: RawFd, path: &CStr, flags: i32) -> io::Result<Attr> {
    // SAFETY: statx is plain data; zeroed is valid.
    let mut s: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: path NUL-terminated, s valid for writes.
    check_i(unsafe { libc::statx(dirfd, path.as_ptr(), flags, STATX_MASK, &mut s) })?;
    Ok(attr_from_statx(&s))
}

/// `statx(2)` into a raw buffer.
pub fn statx_raw(dirfd: RawFd, path: &CStr, flags: i32, out: &mut libc::statx) -> io::Result<()> {
    // SAFETY: path NUL-terminated, out valid for writes.
    check_i(unsafe { libc::statx(dirfd, path.as_ptr(), flags, STATX_MASK, out) }).map(|_| ())
}

const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Whether `fd` lives on a memory file system (tmpfs, ramfs), where reads, writes and
/// name operations never wait for I/O.
pub fn is_memory_fs(fd: RawFd) -> bool {
    // SAFETY: statfs is plain data; fstatfs fills it.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: s valid for writes.
    if unsafe { libc::fstatfs(fd, &mut s) } != 0 {
        return false;
    }
    let t = s.f_type as i64;
    t == TMPFS_MAGIC || t == RAMFS_MAGIC
}

pub fn unlinkat(dirfd: RawFd, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: NUL-terminated name.
    check_i(unsafe { libc::unlinkat(dirfd, name.as_ptr(), flags) }).map(|_| ())
}

pub fn mkdirat(dirfd: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: NUL-terminated name.
    check_i(unsafe { libc::mkdirat(dirfd, name.as_ptr(), mode) }).map(|_| ())
}

pub fn symlinkat(target: &CStr, dirfd: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated strings.
    check_i(unsafe { libc::symlinkat(target.as_ptr(), dirfd, name.as_ptr()) }).map(|_| ())
}

pub fn linkat(olddir: RawFd, old: &CStr, newdir: RawFd, new: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: NUL-terminated strings.
    check_i(unsafe { libc::linkat(olddir, old.as_ptr(), newdir, new.as_ptr(), flags) }).map(|_| ())
}

pub fn renameat2(olddir: RawFd, old: &CStr, newdir: RawFd, new: &CStr, flags: u32) -> io::Result<()> {
    // SAFETY: NUL-terminated strings; raw syscall because glibc's wrapper may be missing.
    check(unsafe { libc::syscall(libc::SYS_renameat2, olddir, old.as_ptr(), newdir, new.as_ptr(), flags) }).map(|_| ())
}

/// `pread(2)` into `buf`.
pub fn pread(fd: RawFd, buf: &mut [u8], off: u64) -> io::Result<usize> {
    // SAFETY: buf valid for writes of its length.
    let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off as libc::off_t) };
    Ok(check(r as libc::c_long)? as usize)
}

/// `preadv2(…, RWF_NOWAIT)`: succeeds only if no I/O wait is needed (EAGAIN otherwise;
/// EOPNOTSUPP on file systems without non-blocking reads).
pub fn pread_nowait(fd: RawFd, buf: &mut [u8], off: u64) -> io::Result<usize> {
    let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: one iovec pointing at buf.
    let r = unsafe { libc::preadv2(fd, &iov, 1, off as libc::off_t, libc::RWF_NOWAIT) };
    Ok(check(r as libc::c_long)? as usize)
}

/// `pwrite(2)`; `off == u64::MAX` writes at the file position (O_APPEND handles).
pub fn pwrite(fd: RawFd, buf: &[u8], off: u64) -> io::Result<usize> {
    // SAFETY: buf valid for reads of its length.
    let r = unsafe {
        if off == u64::MAX {
            libc::write(fd, buf.as_ptr().cast(), buf.len())
        } else {
            libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off as libc::off_t)
        }
    };
    Ok(check(r as libc::c_long)? as usize)
}

/// `fstatfs(2)` into the portable record.
pub fn fstatfs(fd: RawFd) -> io::Result<Statfs> {
    // SAFETY: statfs is plain data.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: s valid for writes.
    check_i(unsafe { libc::fstatfs(fd, &mut s) })?;
    // SAFETY: fsid_t is two ints; read them as one u64 for the wire.
    let fsid: [i32; 2] = unsafe { std::mem::transmute(s.f_fsid) };
    // statfs does not expose the mount flags; statvfs does.
    // SAFETY: statvfs is plain data.
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: v valid for writes.
    check_i(unsafe { libc::fstatvfs(fd, &mut v) })?;
    Ok(Statfs {
        fs_type: s.f_type as u64,
        blocks: s.f_blocks,
        bfree: s.f_bfree,
        bavail: s.f_bavail,
        files: s.f_files,
        ffree: s.f_ffree,
        fsid: (fsid[0] as u32 as u64) | ((fsid[1] as u32 as u64) << 32),
        bsize: s.f_bsize as u32,
        frsize: s.f_frsize as u32,
        namelen: s.f_namelen as u32,
        flags: v.f_flag as u32,
    })
}

/// `readlinkat(2)`.
pub fn readlinkat(dirfd: RawFd, path: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: buf valid for buf.len() bytes.
    let n =
        check(unsafe { libc::readlinkat(dirfd, path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) } as libc::c_long)?;
    buf.truncate(n as usize);
    Ok(buf)
}

/// `/proc/self/fd/N` as a NUL-terminated path (the magic link to an open file; used to
/// act on exactly the inode an O_PATH descriptor names).
pub fn proc_fd_path(fd: RawFd) -> [u8; 32] {
    let mut b = [0u8; 32];
    let s = format!("/proc/self/fd/{fd}");
    b[..s.len()].copy_from_slice(s.as_bytes());
    b
}

/// The path of an open descriptor as the kernel sees it.
pub fn fd_real_path(fd: RawFd) -> io::Result<Vec<u8>> {
    let p = proc_fd_path(fd);
    let c = CStr::from_bytes_until_nul(&p).expect("nul-terminated");
    readlinkat(libc::AT_FDCWD, c)
}

/// One `getdents64(2)` call into `buf`; returns the bytes filled (0 = end).
pub fn getdents64(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf valid for buf.len() bytes.
    let r = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
    Ok(check(r)? as usize)
}

/// One entry of a getdents64 buffer.
pub struct RawDirent<'a> {
    pub ino: u64,
    pub off: i64,
    pub dtype: u8,
    pub name: &'a [u8],
}

/// Iterates the records of a getdents64 buffer.
pub fn dirents(buf: &[u8]) -> impl Iterator<Item = RawDirent<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos + 19 > buf.len() {
            return None;
        }
        let b = &buf[pos..];
        let ino = u64::from_ne_bytes(b[0..8].try_into().ok()?);
        let off = i64::from_ne_bytes(b[8..16].try_into().ok()?);
        let reclen = u16::from_ne_bytes(b[16..18].try_into().ok()?) as usize;
        let dtype = b[18];
        if reclen < 20 || pos + reclen > buf.len() {
            return None;
        }
        let raw = &b[19..reclen];
        let name = &raw[..raw.iter().position(|&c| c == 0).unwrap_or(raw.len())];
        pos += reclen;
        Some(RawDirent { ino, off, dtype, name })
    })
}

pub fn lseek(fd: RawFd, off: i64, whence: i32) -> io::Result<u64> {
    // SAFETY: plain syscall.
    Ok(check(unsafe { libc::lseek(fd, off, whence) })? as u64)
}

pub fn ftruncate(fd: RawFd, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_i(unsafe { libc::ftruncate(fd, len as libc::off_t) }).map(|_| ())
}

pub fn chmod(path: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: NUL-terminated path.
    check_i(unsafe { libc::chmod(path.as_ptr(), mode) }).map(|_| ())
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: works on O_PATH descriptors, symlinks
/// included; `u32::MAX` leaves an id unchanged.
pub fn fchown_empty(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: empty NUL-terminated path.
    check_i(unsafe { libc::fchownat(fd, c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) })
        .map(|_| ())
}

/// `utimensat(dirfd, path, times, flags)`.
pub fn utimensat(dirfd: RawFd, path: &CStr, times: &[libc::timespec; 2], flags: i32) -> io::Result<()> {
    // SAFETY: path NUL-terminated, times points at two timespecs.
    check_i(unsafe { libc::utimensat(dirfd, path.as_ptr(), times.as_ptr(), flags) }).map(|_| ())
}

pub fn mknodat(dirfd: RawFd, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: NUL-terminated name.
    check_i(unsafe { libc::mknodat(dirfd, name.as_ptr(), mode, dev) }).map(|_| ())
}

pub fn getxattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: strings NUL-terminated, buf valid (size 0 = query).
    let r = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    Ok(check(r as libc::c_long)? as usize)
}

pub fn listxattr(path: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: NUL-terminated path, buf valid.
    let r = unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    Ok(check(r as libc::c_long)? as usize)
}

pub fn setxattr(path: &CStr, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    // SAFETY: strings NUL-terminated, value valid for its length.
    check_i(unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), flags) })
        .map(|_| ())
}

pub fn removexattr(path: &CStr, name: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated strings.
    check_i(unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) }).map(|_| ())
}

/// `mount(2)`; `None` arguments are passed as NULL.
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
    // SAFETY: NUL-terminated path.
    check_i(unsafe { libc::umount2(target.as_ptr(), flags) }).map(|_| ())
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
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x20_0000;

fn owned_fd(r: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(r)? as RawFd;
    // SAFETY: the kernel returned a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fsopen(fstype, FSOPEN_CLOEXEC)`: a file system context.
pub fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: NUL-terminated name.
    owned_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })
}

/// `fsconfig(fd, FSCONFIG_SET_FLAG or _SET_STRING, key, value)`.
pub fn fsconfig_set(fd: RawFd, key: &CStr, value: Option<&CStr>) -> io::Result<()> {
    let (cmd, v) = match value {
        Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: NUL-terminated key and value (or NULL for a flag).
    check(unsafe { libc::syscall(libc::SYS_fsconfig, fd, cmd, key.as_ptr(), v, 0) }).map(|_| ())
}

/// `fsconfig(fd, FSCONFIG_CMD_CREATE)` then `fsmount(fd, FSMOUNT_CLOEXEC, attrs)`: a
/// detached mount.
pub fn fsmount(fd: RawFd, attrs: u64) -> io::Result<OwnedFd> {
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: plain syscall, NULL key and value as CMD_CREATE requires.
    check(unsafe { libc::syscall(libc::SYS_fsconfig, fd, FSCONFIG_CMD_CREATE, null, null, 0) })?;
    // SAFETY: plain syscall.
    owned_fd(unsafe { libc::syscall(libc::SYS_fsmount, fd, FSMOUNT_CLOEXEC, attrs) })
}

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH [| AT_RECURSIVE])`: a detached
/// copy (bind mount) of what `fd` names.
pub fn open_tree_clone(fd: RawFd, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: empty NUL-terminated path with AT_EMPTY_PATH.
    owned_fd(unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) })
}

/// `move_mount(from, "", to, "", F_EMPTY_PATH | T_EMPTY_PATH)`: attaches (or moves) the
/// mount `from` names onto the directory `to` names.
pub fn move_mount(from: RawFd, to: RawFd) -> io::Result<()> {
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: empty NUL-terminated paths with the EMPTY_PATH flags.
    check(unsafe { libc::syscall(libc::SYS_move_mount, from, c"".as_ptr(), to, c"".as_ptr(), flags) }).map(|_| ())
}

/// `fstatvfs(3)`'s `f_flag` (`ST_NOSUID`, `ST_NODEV`, `ST_NOEXEC`, `ST_RDONLY` …: the
/// same bits as the `MS_*` flags): the per-mount flags of the mount `fd` is on.
pub fn mount_flags(fd: RawFd) -> io::Result<u64> {
    // SAFETY: statvfs is plain data; fstatvfs fills it.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: s valid for writes.
    check_i(unsafe { libc::fstatvfs(fd, &mut s) })?;
    Ok(s.f_flag as u64)
}

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })? as RawFd;
    // SAFETY: new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a pidfd we hold.
    check(unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, std::ptr::null::<libc::siginfo_t>(), 0)
    })
    .map(|_| ())
}

pub fn sched_getaffinity(pid: i32) -> io::Result<Vec<u8>> {
    let mut mask = vec![0u8; 128];
    // SAFETY: mask valid for its length.
    let n = check(unsafe { libc::syscall(libc::SYS_sched_getaffinity, pid, mask.len(), mask.as_mut_ptr()) })?;
    mask.truncate(n as usize);
    Ok(mask)
}

pub fn sched_setaffinity(pid: i32, mask: &[u8]) -> io::Result<()> {
    // SAFETY: mask valid for its length.
    check(unsafe { libc::syscall(libc::SYS_sched_setaffinity, pid, mask.len(), mask.as_ptr()) }).map(|_| ())
}

/// `ioctl(2)` with a pointer to `T`; private so that every caller below pairs a command
/// with the type it expects.
fn ioctl_with<T>(fd: RawFd, cmd: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: arg is a live, exclusively borrowed T; each public wrapper passes the T its
    // command is defined for.
    check_i(unsafe { libc::ioctl(fd, cmd as _, (arg as *mut T).cast::<libc::c_void>()) }).map(|_| ())
}

/// `TCGETS2`: the terminal settings (kernel `termios2`).
pub fn tcgets(fd: RawFd) -> io::Result<libc::termios2> {
    // SAFETY: termios2 is plain data.
    let mut t: libc::termios2 = unsafe { std::mem::zeroed() };
    ioctl_with(fd, libc::TCGETS2 as _, &mut t)?;
    Ok(t)
}

/// When new terminal settings apply.
#[derive(Debug, Clone, Copy)]
pub enum TcsetWhen {
    Now,
    Drain,
    Flush,
}

/// `TCSETS2`/`TCSETSW2`/`TCSETSF2`.
pub fn tcsets(fd: RawFd, when: TcsetWhen, t: &libc::termios2) -> io::Result<()> {
    let cmd = match when {
        TcsetWhen::Now => libc::TCSETS2,
        TcsetWhen::Drain => libc::TCSETSW2,
        TcsetWhen::Flush => libc::TCSETSF2,
    };
    let mut t = *t;
    ioctl_with(fd, cmd as _, &mut t)
}

pub fn get_winsize(fd: RawFd) -> io::Result<libc::winsize> {
    // SAFETY: winsize is plain data.
    let mut w: libc::winsize = unsafe { std::mem::zeroed() };
    ioctl_with(fd, libc::TIOCGWINSZ as _, &mut w)?;
    Ok(w)
}

pub fn set_winsize(fd: RawFd, w: &libc::winsize) -> io::Result<()> {
    let mut w = *w;
    ioctl_with(fd, libc::TIOCSWINSZ as _, &mut w)
}

// _IOR('f', 1, long), _IOW('f', 2, long) (the kernel reads an int), and
// _IOR/_IOW('X', 31/32, struct fsxattr) (28 bytes).
const FS_IOC_GETFLAGS: libc::c_ulong = 0x8008_6601;
const FS_IOC_SETFLAGS: libc::c_ulong = 0x4008_6602;
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;

pub fn fs_getflags(fd: RawFd) -> io::Result<u32> {
    let mut v: libc::c_int = 0;
    ioctl_with(fd, FS_IOC_GETFLAGS, &mut v)?;
    Ok(v as u32)
}

pub fn fs_setflags(fd: RawFd, flags: u32) -> io::Result<()> {
    let mut v = flags as libc::c_int;
    ioctl_with(fd, FS_IOC_SETFLAGS, &mut v)
}

/// `struct fsxattr` as seven u32 (xflags, extsize, nextents, projid, cowextsize, pad).
pub fn fs_getxattr(fd: RawFd) -> io::Result<[u32; 7]> {
    let mut x = [0u32; 7];
    ioctl_with(fd, FS_IOC_FSGETXATTR, &mut x)?;
    Ok(x)
}

pub fn fs_setxattr(fd: RawFd, x: [u32; 7]) -> io::Result<()> {
    let mut x = x;
    ioctl_with(fd, FS_IOC_FSSETXATTR, &mut x)
}

/// Raises the soft limit on open descriptors to the hard limit: every open handle and
/// every channel holds one.
pub fn raise_nofile() {
    // SAFETY: rlimit is plain data; get/setrlimit on our own process.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        check_i(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)).map(|_| ())
    }
}

/// CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; CPU_ISSET reads within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// A non-blocking eventfd.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = check_i(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd (wakes a ring waiting on it).
pub fn eventfd_kick(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64; failure (counter overflow) is harmless.
    unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Sets an int socket option.
pub fn setsockopt_int(fd: RawFd, level: i32, name: i32, val: i32) -> io::Result<()> {
    // SAFETY: val is a live int of the size passed.
    check_i(unsafe {
        libc::setsockopt(fd, level, name, (&val as *const i32).cast(), std::mem::size_of::<i32>() as libc::socklen_t)
    })
    .map(|_| ())
}

/// A listening TCP socket with SO_REUSEADDR and SO_REUSEPORT (one per core).
pub fn tcp_listener(addr: &std::net::SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let fam = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain syscall.
    let fd = check_i(unsafe { libc::socket(fam, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: new descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    let (sa, len) = sockaddr_of(addr);
    // SAFETY: sa holds a valid sockaddr of length len.
    check_i(unsafe { libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_storage).cast(), len) })?;
    // SAFETY: plain syscall.
    check_i(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

fn sockaddr_of(addr: &std::net::SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            (ss, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            (ss, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

/// A listening vsock socket.
pub fn vsock_listener(cid: u32, port: u32, backlog: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = check_i(unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: new descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_vm is plain data.
    let mut sa: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    sa.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    sa.svm_cid = cid;
    sa.svm_port = port;
    // SAFETY: sa is a valid sockaddr_vm.
    check_i(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    })?;
    // SAFETY: plain syscall.
    check_i(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(fd)
}

/// The local address of a bound TCP socket.
pub fn local_addr(fd: RawFd) -> io::Result<std::net::SocketAddr> {
    // SAFETY: storage is plain data and len matches it.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        check_i(libc::getsockname(fd, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len))?;
        match ss.ss_family as i32 {
            libc::AF_INET => {
                let sin = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Ok(std::net::SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
            }
            libc::AF_INET6 => {
                let sin6 = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Ok(std::net::SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
            }
            _ => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
        }
    }
}

/// The peer address of a connected socket, as text for logs.
pub fn peer_name(fd: RawFd) -> String {
    // SAFETY: storage is plain data, len matches.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(fd, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) != 0 {
            return "?".into();
        }
        match ss.ss_family as i32 {
            libc::AF_INET => {
                let sin = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                format!("{ip}:{}", u16::from_be(sin.sin_port))
            }
            libc::AF_INET6 => {
                let sin6 = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                format!("[{ip}]:{}", u16::from_be(sin6.sin6_port))
            }
            libc::AF_VSOCK => {
                let vm = &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_vm>();
                format!("vsock:{}:{}", vm.svm_cid, vm.svm_port)
            }
            libc::AF_UNIX => "unix".into(),
            f => format!("family {f}"),
        }
    }
}

// ---------------------------------------------------------------- unix sockets, pipes (udsmux)

/// A `sockaddr_un` for a path or abstract name (leading NUL) and its length; ENAMETOOLONG
/// if it does not fit `sun_path`.
pub fn sockaddr_un(path: &[u8]) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let abstract_name = path.first() == Some(&0);
    // A path needs room for its NUL; an abstract name is exactly its bytes.
    if path.is_empty() || path.len() + usize::from(!abstract_name) > sa.sun_path.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in sa.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let len = base + path.len() + usize::from(!abstract_name);
    Ok((sa, len as libc::socklen_t))
}

/// A unix socket of `ty` (`SOCK_STREAM`, `SOCK_SEQPACKET`, `SOCK_DGRAM`), blocking (the
/// ring polls it), close-on-exec.
pub fn unix_socket(ty: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = check_i(unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a unix socket to a path, or to an abstract name (leading NUL).
pub fn bind_unix(fd: RawFd, path: &[u8]) -> io::Result<()> {
    let (sa, len) = sockaddr_un(path)?;
    // SAFETY: sa is a valid sockaddr_un of length len.
    check_i(unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) }).map(|_| ())
}

/// Binds a unix socket to a kernel-chosen abstract name (autobind), so that datagram
/// peers can answer it.
pub fn autobind_unix(fd: RawFd) -> io::Result<()> {
    // SAFETY: sockaddr_un is plain data.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
    // SAFETY: a family-only address of the length passed requests autobind.
    check_i(unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) }).map(|_| ())
}

/// The bound address of a unix socket (abstract names keep their leading NUL).
pub fn unix_local_name(fd: RawFd) -> io::Result<Vec<u8>> {
    // SAFETY: sockaddr_un is plain data and len matches it.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: sa/len describe a writable sockaddr_un.
    check_i(unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_un).cast(), &mut len) })?;
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let n = (len as usize).saturating_sub(base).min(sa.sun_path.len());
    let mut out: Vec<u8> = sa.sun_path[..n].iter().map(|&c| c as u8).collect();
    if out.first() != Some(&0)
        && let Some(z) = out.iter().position(|&c| c == 0)
    {
        out.truncate(z);
    }
    Ok(out)
}

pub fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_i(unsafe { libc::listen(fd, backlog) }).map(|_| ())
}

/// `shutdown(2)`; `how` is `SHUT_WR` or `SHUT_RDWR`.
pub fn shutdown(fd: RawFd, how: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_i(unsafe { libc::shutdown(fd, how) }).map(|_| ())
}

/// A non-blocking connect to a unix path: whether something is listening there now.
pub fn unix_path_is_live(path: &[u8], ty: i32) -> bool {
    let Ok(fd) = unix_socket(ty | libc::SOCK_NONBLOCK) else { return false };
    let Ok((sa, len)) = sockaddr_un(path) else { return false };
    // SAFETY: sa is a valid sockaddr_un of length len.
    let r = unsafe { libc::connect(fd.as_raw_fd(), (&sa as *const libc::sockaddr_un).cast(), len) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

/// A pipe (read end, write end), blocking, close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for two descriptors.
    check_i(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: two new descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `fcntl(F_GETFL)`.
pub fn get_fl(fd: RawFd) -> io::Result<i32> {
    // SAFETY: plain syscall.
    check_i(unsafe { libc::fcntl(fd, libc::F_GETFL) })
}

/// `fstat(2)`.
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is writable.
    check_i(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// `lstat(2)`; None when the path does not exist.
pub fn lstat(path: &CStr) -> io::Result<Option<libc::stat>> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path, writable stat.
    match check_i(unsafe { libc::lstat(path.as_ptr(), &mut st) }) {
        Ok(_) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn getsockopt_int(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: v/len describe a writable int.
    check_i(unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) })?;
    Ok(v)
}

/// `SO_TYPE` of a socket.
pub fn sock_type(fd: RawFd) -> io::Result<i32> {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)
}

/// `SO_DOMAIN` of a socket.
pub fn sock_domain(fd: RawFd) -> io::Result<i32> {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)
}

/// Whether a socket is listening (`SO_ACCEPTCONN`).
pub fn sock_listening(fd: RawFd) -> bool {
    getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).is_ok_and(|v| v != 0)
}

/// `SO_PEERCRED`: (pid, uid, gid) of a connected unix socket's peer.
pub fn peer_cred(fd: RawFd) -> io::Result<(i32, u32, u32)> {
    // SAFETY: ucred is plain data.
    let mut c: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c/len describe a writable ucred.
    check_i(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERCRED, (&mut c as *mut libc::ucred).cast(), &mut len)
    })?;
    Ok((c.pid, c.uid, c.gid))
}

/// `rename(2)`.
pub fn rename(old: &CStr, new: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated paths.
    check_i(unsafe { libc::rename(old.as_ptr(), new.as_ptr()) }).map(|_| ())
}

/// `unlink(2)`.
pub fn unlink(path: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated path.
    check_i(unsafe { libc::unlink(path.as_ptr()) }).map(|_| ())
}

/// `fcntl(F_SETFL)`.
pub fn set_fl(fd: RawFd, fl: i32) -> io::Result<()> {
    // SAFETY: plain syscall.
    check_i(unsafe { libc::fcntl(fd, libc::F_SETFL, fl) }).map(|_| ())
}

/// `read(2)` at the file position (pipes, FIFOs: no offset).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf valid for writes of its length.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    Ok(check(r as libc::c_long)? as usize)
}

/// `write(2)` at the file position (pipes, FIFOs: no offset).
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf valid for reads of its length.
    let r = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    Ok(check(r as libc::c_long)? as usize)
}

/// Clears `O_NONBLOCK` on an open file description.
pub fn clear_nonblock(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_GETFL/F_SETFL on a descriptor the caller owns.
    unsafe {
        let fl = check_i(libc::fcntl(fd, libc::F_GETFL))?;
        check_i(libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK)).map(|_| ())
    }
}

/// Whether a blocking `open(O_RDONLY)` of the FIFO `fd` (a read end opened with
/// `O_NONBLOCK`) would have returned by now: a writer is connected, data is waiting, or a
/// writer came and went (POLLHUP). Never consumes data: `tee(2)` copies at most one byte
/// into a scratch pipe (then closed) and, with SPLICE_F_NONBLOCK, answers EAGAIN for an
/// empty pipe with writers and 0 for one without.
pub fn fifo_reader_ready(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, no wait.
    if unsafe { libc::poll(&mut pfd, 1, 0) } > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP) != 0 {
        return true;
    }
    // A scratch pipe per check (closed at once: no descriptor stays with the engine).
    let mut p = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into p.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return true; // cannot tell: let the open complete rather than wait
    }
    // SAFETY: both descriptors are new and owned by nobody else.
    let (_r, w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    // SAFETY: tee between two pipe descriptors; no memory is passed.
    let n = unsafe { libc::tee(fd, w.as_raw_fd(), 1, libc::SPLICE_F_NONBLOCK) };
    n > 0 || (n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN))
}

/// The soft `RLIMIT_NOFILE` of the process.
pub fn nofile_limit() -> u64 {
    // SAFETY: rlimit is plain data; getrlimit fills it.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 { r.rlim_cur } else { 1024 }
    }
}

/// Bytes available to unprivileged users and the total size of `fd`'s file system.
pub fn fs_space(fd: RawFd) -> io::Result<(u64, u64)> {
    // SAFETY: statvfs is plain data; fstatvfs fills it.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: s valid for writes.
    check_i(unsafe { libc::fstatvfs(fd, &mut s) })?;
    let frsize = s.f_frsize.max(1);
    Ok((s.f_bavail.saturating_mul(frsize), s.f_blocks.saturating_mul(frsize)))
}
