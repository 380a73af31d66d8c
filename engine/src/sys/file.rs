//! Files and directories: openat2/openat, statx and its portable [`Attr`], name
//! operations (unlink, mkdir, symlink, link, rename, mknod), positional I/O, statfs and
//! free space, readlink and `/proc/self/fd` paths, directory entries, seek, truncate,
//! mode/owner/times, and extended attributes.

use std::ffi::CStr;
use std::io;
use std::os::fd::{OwnedFd, RawFd};

use qtfs_proto::consts::ATTR_F_BTIME;
use qtfs_proto::{Attr, Statfs};
use rustix::fs::{AtFlags, Mode, OFlags, SeekFrom, StatxFlags};

use super::{bfd, check, check_i, rx};

pub use qtfs_sys::openat2;

/// `openat(2)` (for engine-internal files such as the admin socket directory).
pub fn openat(dirfd: RawFd, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let flags = OFlags::from_bits_retain((flags | libc::O_CLOEXEC) as u32);
    rx(rustix::fs::openat(bfd(dirfd), path, flags, Mode::from_bits_retain(mode)))
}

/// The portable record of a `struct statx`: libc's (filled by [`statx_raw`]) and
/// rustix's (returned by [`statx`]) have the same field names and types.
macro_rules! attr_of_statx {
    ($s:expr) => {{
        let s = $s;
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
    }};
}

/// Converts `statx` output into the portable record.
pub fn attr_from_statx(s: &libc::statx) -> Attr {
    attr_of_statx!(s)
}

/// The statx mask the engine asks for.
pub const STATX_MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// `statx(2)` into the portable record.
pub fn statx(dirfd: RawFd, path: &CStr, flags: i32) -> io::Result<Attr> {
    let flags = AtFlags::from_bits_retain(flags as u32);
    let s = rx(rustix::fs::statx(bfd(dirfd), path, flags, StatxFlags::from_bits_retain(STATX_MASK)))?;
    Ok(attr_of_statx!(&s))
}

/// `statx(2)` into a raw buffer.
// libc: fills the caller's `libc::statx` in place; rustix returns its own `Statx` by value.
pub fn statx_raw(dirfd: RawFd, path: &CStr, flags: i32, out: &mut libc::statx) -> io::Result<()> {
    // SAFETY: path NUL-terminated, out valid for writes.
    check_i(unsafe { libc::statx(dirfd, path.as_ptr(), flags, STATX_MASK, out) }).map(|_| ())
}

const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// Whether `fd` lives on a memory file system (tmpfs, ramfs), where reads, writes and
/// name operations never wait for I/O.
pub fn is_memory_fs(fd: RawFd) -> bool {
    match rustix::fs::fstatfs(bfd(fd)) {
        Ok(s) => s.f_type == TMPFS_MAGIC || s.f_type == RAMFS_MAGIC,
        Err(_) => false,
    }
}

pub fn unlinkat(dirfd: RawFd, name: &CStr, flags: i32) -> io::Result<()> {
    rx(rustix::fs::unlinkat(bfd(dirfd), name, AtFlags::from_bits_retain(flags as u32)))
}

pub fn mkdirat(dirfd: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
    rx(rustix::fs::mkdirat(bfd(dirfd), name, Mode::from_bits_retain(mode)))
}

pub fn symlinkat(target: &CStr, dirfd: RawFd, name: &CStr) -> io::Result<()> {
    rx(rustix::fs::symlinkat(target, bfd(dirfd), name))
}

pub fn linkat(olddir: RawFd, old: &CStr, newdir: RawFd, new: &CStr, flags: i32) -> io::Result<()> {
    rx(rustix::fs::linkat(bfd(olddir), old, bfd(newdir), new, AtFlags::from_bits_retain(flags as u32)))
}

pub fn renameat2(olddir: RawFd, old: &CStr, newdir: RawFd, new: &CStr, flags: u32) -> io::Result<()> {
    let flags = rustix::fs::RenameFlags::from_bits_retain(flags);
    rx(rustix::fs::renameat_with(bfd(olddir), old, bfd(newdir), new, flags))
}

/// `pread(2)` of at most `len` bytes appended to `buf`, into its spare capacity (which
/// must hold them: `InvalidInput` otherwise): the bytes the read fills are not zeroed
/// first, and only those it filled become part of `buf`. With `nowait`,
/// `preadv2(…, RWF_NOWAIT)`: succeeds only if no I/O wait is needed (EAGAIN otherwise;
/// EOPNOTSUPP on file systems without non-blocking reads).
pub fn pread_append(fd: RawFd, buf: &mut Vec<u8>, len: usize, off: u64, nowait: bool) -> io::Result<usize> {
    let start = buf.len();
    let Some(spare) = buf.spare_capacity_mut().get_mut(..len) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let n = if nowait {
        let iov = libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: spare.len() };
        // SAFETY: one iovec over `len` bytes of the vector's own allocation, which the
        // kernel only writes; RWF_NOWAIT changes nothing about the buffer.
        let r = unsafe { libc::preadv2(fd, &iov, 1, off as libc::off_t, libc::RWF_NOWAIT) };
        check(r as libc::c_long)? as usize
    } else {
        rx(rustix::io::pread(bfd(fd), spare, off))?.0.len()
    }
    .min(len);
    // SAFETY: the read initialised the first `n` (≤ `len`) bytes after `start`, all
    // within the capacity.
    unsafe { buf.set_len(start + n) };
    Ok(n)
}

/// `pwrite(2)`; `off == u64::MAX` writes at the file position (O_APPEND handles).
pub fn pwrite(fd: RawFd, buf: &[u8], off: u64) -> io::Result<usize> {
    if off == u64::MAX { rx(rustix::io::write(bfd(fd), buf)) } else { rx(rustix::io::pwrite(bfd(fd), buf, off)) }
}

/// `ST_VALID`: statfs(2) sets it in `f_flags` on kernels that report mount flags there;
/// glibc's `statvfs` clears it from `f_flag`, and so do we.
const ST_VALID: u64 = 0x20;

/// `fstatvfs(3)` as glibc reports it: rustix's is one fstatfs(2) with the same fields,
/// except that it leaves `ST_VALID` in `f_flag`.
pub(super) fn fstatvfs(fd: RawFd) -> io::Result<rustix::fs::StatVfs> {
    let mut v = rx(rustix::fs::fstatvfs(bfd(fd)))?;
    v.f_flag = rustix::fs::StatVfsMountFlags::from_bits_retain(v.f_flag.bits() & !ST_VALID);
    Ok(v)
}

/// `fstatfs(2)` into the portable record.
pub fn fstatfs(fd: RawFd) -> io::Result<Statfs> {
    let s = rx(rustix::fs::fstatfs(bfd(fd)))?;
    // statfs does not expose the mount flags, and rustix's StatFs hides f_fsid; statvfs
    // has both (packed as the wire packs it).
    let v = fstatvfs(fd)?;
    Ok(Statfs {
        fs_type: s.f_type as u64,
        blocks: s.f_blocks,
        bfree: s.f_bfree,
        bavail: s.f_bavail,
        files: s.f_files,
        ffree: s.f_ffree,
        fsid: v.f_fsid,
        bsize: s.f_bsize as u32,
        frsize: s.f_frsize as u32,
        namelen: s.f_namelen as u32,
        flags: v.f_flag.bits() as u32,
    })
}

/// `readlinkat(2)`.
pub fn readlinkat(dirfd: RawFd, path: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = rx(rustix::fs::readlinkat_raw(bfd(dirfd), path, &mut buf[..]))?;
    buf.truncate(n);
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
// libc: rustix exposes getdents only through `RawDir`'s iterator, not one call's byte count.
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
    // rustix passes the offset bits unchanged (a negative SEEK_SET/DATA/HOLE offset still
    // gets the kernel's EINVAL); an unknown whence gets EINVAL, as from the kernel.
    let pos = match whence {
        libc::SEEK_SET => SeekFrom::Start(off as u64),
        libc::SEEK_CUR => SeekFrom::Current(off),
        libc::SEEK_END => SeekFrom::End(off),
        libc::SEEK_DATA => SeekFrom::Data(off as u64),
        libc::SEEK_HOLE => SeekFrom::Hole(off as u64),
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    rx(rustix::fs::seek(bfd(fd), pos))
}

pub fn ftruncate(fd: RawFd, len: u64) -> io::Result<()> {
    rx(rustix::fs::ftruncate(bfd(fd), len))
}

pub fn chmod(path: &CStr, mode: u32) -> io::Result<()> {
    rx(rustix::fs::chmod(path, Mode::from_bits_retain(mode)))
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: works on O_PATH descriptors, symlinks
/// included; `u32::MAX` leaves an id unchanged.
pub fn fchown_empty(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    let id = |v: u32| (v != u32::MAX).then_some(v);
    let (uid, gid) = (id(uid).map(rustix::fs::Uid::from_raw), id(gid).map(rustix::fs::Gid::from_raw));
    rx(rustix::fs::chownat(bfd(fd), c"", uid, gid, AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW))
}

/// `utimensat(dirfd, path, times, flags)`.
pub fn utimensat(dirfd: RawFd, path: &CStr, times: &[libc::timespec; 2], flags: i32) -> io::Result<()> {
    // UTIME_NOW/UTIME_OMIT travel in tv_nsec unchanged.
    let ts = |t: &libc::timespec| rustix::fs::Timespec { tv_sec: t.tv_sec, tv_nsec: t.tv_nsec };
    let times = rustix::fs::Timestamps { last_access: ts(&times[0]), last_modification: ts(&times[1]) };
    rx(rustix::fs::utimensat(bfd(dirfd), path, &times, AtFlags::from_bits_retain(flags as u32)))
}

// libc: rustix splits the mode into FileType + Mode, and maps a type of 0 (a regular
// file to mknod) to S_IFMT, which the kernel would refuse.
pub fn mknodat(dirfd: RawFd, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: NUL-terminated name.
    check_i(unsafe { libc::mknodat(dirfd, name.as_ptr(), mode, dev) }).map(|_| ())
}

/// `getxattr(2)`; an empty `buf` asks for the value's size (rustix's `getxattr` answers
/// 0 for an empty buffer, so that case goes through `getxattr_query`).
pub fn getxattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() { rx(rustix::fs::getxattr_query(path, name)) } else { rx(rustix::fs::getxattr(path, name, buf)) }
}

/// `listxattr(2)`; an empty `buf` asks for the list's size.
pub fn listxattr(path: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() { rx(rustix::fs::listxattr_query(path)) } else { rx(rustix::fs::listxattr(path, buf)) }
}

/// The size of the list of `fd`'s extended attribute names (0: it has none).
pub fn flistxattr_len(fd: RawFd) -> io::Result<usize> {
    rx(rustix::fs::flistxattr_query(bfd(fd)))
}

pub fn setxattr(path: &CStr, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    rx(rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::from_bits_retain(flags as u32)))
}

pub fn removexattr(path: &CStr, name: &CStr) -> io::Result<()> {
    rx(rustix::fs::removexattr(path, name))
}

/// Bytes available to unprivileged users and the total size of `fd`'s file system.
pub fn fs_space(fd: RawFd) -> io::Result<(u64, u64)> {
    let s = fstatvfs(fd)?;
    let frsize = s.f_frsize.max(1);
    Ok((s.f_bavail.saturating_mul(frsize), s.f_blocks.saturating_mul(frsize)))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    fn errno(r: io::Result<impl Sized>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    #[test]
    fn a_read_appends_only_what_it_read_and_never_beyond_len() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789").unwrap();
        for nowait in [false, true] {
            let mut b = Vec::with_capacity(64);
            b.extend_from_slice(b"HDR");
            // Capacity beyond `len` is not read into.
            assert_eq!(pread_append(f.as_raw_fd(), &mut b, 4, 2, nowait).unwrap(), 4);
            assert_eq!(b, b"HDR2345");
            // A short read at the end keeps only the bytes read.
            assert_eq!(pread_append(f.as_raw_fd(), &mut b, 8, 8, nowait).unwrap(), 2);
            assert_eq!(b, b"HDR234589");
            assert_eq!(pread_append(f.as_raw_fd(), &mut b, 8, 10, nowait).unwrap(), 0);
            assert_eq!(b.len(), 9);
            // More than the spare capacity: refused, nothing read.
            let room = b.capacity() - b.len();
            let e = pread_append(f.as_raw_fd(), &mut b, room + 1, 0, nowait).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert_eq!(b.len(), 9);
        }
    }

    #[test]
    fn bad_descriptors_fail_as_the_kernel_fails_them() {
        let mut b = Vec::with_capacity(4);
        assert_eq!(errno(pread_append(-1, &mut b, 4, 0, false)), Some(libc::EBADF));
        assert_eq!(errno(pread_append(-1, &mut b, 4, 0, true)), Some(libc::EBADF));
        assert!(b.is_empty());
        assert_eq!(errno(statx(-1, c"relative", 0)), Some(libc::EBADF));
        // The kernel ignores the descriptor before an absolute path.
        assert!(statx(-1, c"/", 0).is_ok());
        assert_eq!(errno(lseek(-1, 0, libc::SEEK_SET)), Some(libc::EBADF));
    }

    #[test]
    fn seek_whence_and_xattr_size_queries() {
        let dir = tempfile::tempdir().unwrap();
        let p = std::ffi::CString::new(dir.path().join("f").into_os_string().into_encoded_bytes()).unwrap();
        let f = openat(libc::AT_FDCWD, &p, libc::O_RDWR | libc::O_CREAT, 0o600).unwrap();
        assert_eq!(pwrite(f.as_raw_fd(), b"hello", 0).unwrap(), 5);
        assert_eq!(lseek(f.as_raw_fd(), 0, libc::SEEK_END).unwrap(), 5);
        assert_eq!(lseek(f.as_raw_fd(), -2, libc::SEEK_CUR).unwrap(), 3);
        assert_eq!(errno(lseek(f.as_raw_fd(), 0, 77)), Some(libc::EINVAL));
        assert_eq!(errno(lseek(f.as_raw_fd(), -1, libc::SEEK_SET)), Some(libc::EINVAL));
        assert_eq!(statx(f.as_raw_fd(), c"", libc::AT_EMPTY_PATH).unwrap().size, 5);
        if setxattr(&p, c"user.qtfs", b"abc", 0).is_ok() {
            assert_eq!(getxattr(&p, c"user.qtfs", &mut []).unwrap(), 3);
            let mut v = [0u8; 8];
            assert_eq!(getxattr(&p, c"user.qtfs", &mut v).unwrap(), 3);
            assert!(listxattr(&p, &mut []).unwrap() >= b"user.qtfs\0".len());
            removexattr(&p, c"user.qtfs").unwrap();
            assert_eq!(errno(getxattr(&p, c"user.qtfs", &mut [])), Some(libc::ENODATA));
        }
        // statvfs's f_flag never carries statfs's ST_VALID.
        assert_eq!(fstatfs(f.as_raw_fd()).unwrap().flags as u64 & ST_VALID, 0);
    }
}
