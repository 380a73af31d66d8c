//! The `fstat()`/`fstat64()` interposers for HOST consoles through qtfs-fuse: a size-0
//! regular file on a FUSE file system whose descriptor carries the `user.qtfs.relay`
//! attribute is reported as the character device (or FIFO) it stands for (see the crate
//! comment). Every other `fstat` is the real one, unchanged.

use std::sync::atomic::{AtomicUsize, Ordering};

use libc::c_int;

use crate::rt::{DISABLED, FstatFn, REAL_FSTAT, REAL_FSTAT64, real};
use crate::sys::{self, errno, set_errno};

/// `FUSE_SUPER_MAGIC`.
const FUSE_MAGIC: i64 = 0x6573_5546;

/// The type a relayed qtfs-fuse file stands for: (`S_IFCHR` or `S_IFIFO`, rdev), from
/// its `user.qtfs.relay` attribute ("c MAJOR:MINOR" or "p"). None for anything else.
fn relay_kind(fd: c_int) -> Option<(u32, u64)> {
    let mut v = [0u8; 32];
    if sys::fs_type(fd)? != FUSE_MAGIC {
        return None;
    }
    let n = sys::fgetxattr(fd, c"user.qtfs.relay", &mut v);
    let v = v.get(..usize::try_from(n).ok()?)?;
    parse_relay(v)
}

fn parse_relay(v: &[u8]) -> Option<(u32, u64)> {
    if v == b"p" {
        return Some((libc::S_IFIFO, 0));
    }
    let s = std::str::from_utf8(v.strip_prefix(b"c ")?).ok()?;
    let (ma, mi) = s.split_once(':')?;
    Some((libc::S_IFCHR, libc::makedev(ma.parse().ok()?, mi.parse().ok()?)))
}

/// Rewrites a successful `fstat` result of a relayed file; errno is left as it was.
fn relay_fixup(fd: c_int, mode: &mut u32, size: i64, rdev: &mut u64) {
    if *mode & libc::S_IFMT != libc::S_IFREG || size != 0 || DISABLED.load(Ordering::Relaxed) {
        return;
    }
    let saved = errno();
    if let Some((kind, dev)) = relay_kind(fd) {
        *mode = (*mode & !libc::S_IFMT) | kind;
        *rdev = dev;
    }
    set_errno(saved);
}

fn fstat_common(slot: &AtomicUsize, fd: c_int, buf: *mut libc::stat64) -> c_int {
    let r = match real::<FstatFn>(slot) {
        // SAFETY: forwarded unchanged to the real function.
        Some(f) => unsafe { f(fd, buf) },
        // glibc before 2.33 exports no fstat (programs call __fxstat): the system call,
        // whose result has glibc's 64-bit layout on the 64-bit targets we build for.
        // SAFETY: the caller passes a writable struct stat.
        None => unsafe { libc::syscall(libc::SYS_newfstatat, fd, c"".as_ptr(), buf, libc::AT_EMPTY_PATH) as c_int },
    };
    if r == 0 && !buf.is_null() {
        // SAFETY: the call succeeded, so `buf` holds a struct stat we may change.
        let st = unsafe { &mut *buf };
        relay_fixup(fd, &mut st.st_mode, st.st_size, &mut st.st_rdev);
    }
    r
}

/// # Safety
/// Same contract as `fstat(2)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstat64(fd: c_int, buf: *mut libc::stat64) -> c_int {
    fstat_common(&REAL_FSTAT64, fd, buf)
}

/// # Safety
/// Same contract as `fstat(2)` (on 64-bit glibc `struct stat` is `struct stat64`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut libc::stat) -> c_int {
    fstat_common(&REAL_FSTAT, fd, buf.cast())
}

#[cfg(test)]
mod relay_tests {
    use super::*;

    #[test]
    fn relay_markers() {
        assert_eq!(parse_relay(b"p"), Some((libc::S_IFIFO, 0)));
        assert_eq!(parse_relay(b"c 136:4"), Some((libc::S_IFCHR, libc::makedev(136, 4))));
        assert_eq!(parse_relay(b"c 136"), None);
        assert_eq!(parse_relay(b"x"), None);
        assert_eq!(parse_relay(b""), None);
    }
}
