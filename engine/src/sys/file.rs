//! Files and directories: openat2/openat, statx and its portable [`Attr`], name
//! operations (unlink, mkdir, symlink, link, rename, mknod), positional I/O, statfs and
//! free space, readlink and `/proc/self/fd` paths, directory entries, seek, truncate,
//! mode/owner/times, and extended attributes.

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use qtfs_proto::consts::ATTR_F_BTIME;
use qtfs_proto::{Attr, Statfs};

use super::{check, check_i};

pub use qtfs_sys::openat2;

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

/// Bytes available to unprivileged users and the total size of `fd`'s file system.
pub fn fs_space(fd: RawFd) -> io::Result<(u64, u64)> {
    // SAFETY: statvfs is plain data; fstatvfs fills it.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: s valid for writes.
    check_i(unsafe { libc::fstatvfs(fd, &mut s) })?;
    let frsize = s.f_frsize.max(1);
    Ok((s.f_bavail.saturating_mul(frsize), s.f_blocks.saturating_mul(frsize)))
}
