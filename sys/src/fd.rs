//! Descriptors and files: pipes, eventfds, file status flags, fstat, plain read and
//! write, the file position, opens (plain and through openat2), `flock`, `umask`, and
//! the path of an open descriptor.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;

use rustix::fs::{FlockOperation, Mode, OFlags, ResolveFlags};

use crate::{bfd, check, owned, rx};

/// `pipe2(O_CLOEXEC)`: (read end, write end), blocking.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    rx(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC))
}

/// `eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)`.
pub fn eventfd() -> io::Result<OwnedFd> {
    use rustix::event::EventfdFlags;
    rx(rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK))
}

/// Adds 1 to an eventfd (wakes whoever polls it); failure (counter overflow) is harmless.
pub fn eventfd_kick(fd: RawFd) {
    let _ = rustix::io::write(bfd(fd), &1u64.to_ne_bytes());
}

/// Resets a non-blocking eventfd.
pub fn eventfd_drain(fd: RawFd) {
    let mut v = [0u8; 8];
    let _ = rustix::io::read(bfd(fd), &mut v);
}

/// `fcntl(F_GETFL)`.
pub fn get_fl(fd: RawFd) -> io::Result<i32> {
    rx(rustix::fs::fcntl_getfl(bfd(fd))).map(|f| f.bits() as i32)
}

/// `fcntl(F_SETFL)`.
pub fn set_fl(fd: RawFd, fl: i32) -> io::Result<()> {
    rx(rustix::fs::fcntl_setfl(bfd(fd), OFlags::from_bits_retain(fl as u32)))
}

/// Sets or clears `O_NONBLOCK` on the open file description; returns the previous flags.
pub fn set_nonblock(fd: RawFd, on: bool) -> io::Result<i32> {
    let fl = get_fl(fd)?;
    let new = if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK };
    if new != fl {
        set_fl(fd, new)?;
    }
    Ok(fl)
}

/// `fstat(2)` (libc's `stat`, whose fields the callers read).
pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data, filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out pointer.
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

/// `read(2)` at the file position.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    rx(rustix::io::read(bfd(fd), buf))
}

/// `read(2)` into spare (uninitialised) capacity; returns the bytes now initialised.
pub fn read_into(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    rx(rustix::io::read(bfd(fd), buf)).map(|(init, _)| init.len())
}

/// `recv(2)` without waiting, appending at most `max` bytes to `buf`: `Ok(None)` when the
/// socket holds nothing now, `Ok(Some(0))` at end of stream.
pub fn recv_append(fd: RawFd, buf: &mut Vec<u8>, max: usize) -> io::Result<Option<usize>> {
    buf.reserve(max);
    let spare = &mut buf.spare_capacity_mut()[..max];
    let n = loop {
        match rustix::net::recv(bfd(fd), &mut *spare, rustix::net::RecvFlags::DONTWAIT) {
            Ok(((init, _), _)) => break init.len(),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    // SAFETY: recv initialised the first n bytes of the spare capacity (n <= max <= spare).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(Some(n))
}

/// `write(2)` at the file position.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    rx(rustix::io::write(bfd(fd), buf))
}

/// `lseek(fd, 0, SEEK_CUR)`.
pub fn tell(fd: RawFd) -> io::Result<u64> {
    rx(rustix::fs::tell(bfd(fd)))
}

/// `lseek(fd, off, SEEK_SET)`.
pub fn seek(fd: RawFd, off: u64) -> io::Result<()> {
    rx(rustix::fs::seek(bfd(fd), rustix::fs::SeekFrom::Start(off))).map(|_| ())
}

/// `open(2)` with `O_CLOEXEC` added.
pub fn open(path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated.
    Ok(owned(check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })?))
}

/// `openat2(2)` with `O_CLOEXEC` added; `resolve` is the `RESOLVE_*` bits.
pub fn openat2(dirfd: RawFd, path: &CStr, flags: i32, mode: u32, resolve: u64) -> io::Result<OwnedFd> {
    rx(rustix::fs::openat2(
        bfd(dirfd),
        path,
        OFlags::from_bits_retain((flags | libc::O_CLOEXEC) as u32),
        Mode::from_bits_retain(mode),
        ResolveFlags::from_bits_retain(resolve),
    ))
}

/// `flock(2)`; `op` is `LOCK_SH`/`LOCK_EX`/`LOCK_UN`, with `LOCK_NB` or not.
pub fn flock(fd: RawFd, op: i32) -> io::Result<()> {
    let nb = op & libc::LOCK_NB != 0;
    let how = match (op & !libc::LOCK_NB, nb) {
        (libc::LOCK_SH, false) => FlockOperation::LockShared,
        (libc::LOCK_SH, true) => FlockOperation::NonBlockingLockShared,
        (libc::LOCK_EX, false) => FlockOperation::LockExclusive,
        (libc::LOCK_EX, true) => FlockOperation::NonBlockingLockExclusive,
        (libc::LOCK_UN, false) => FlockOperation::Unlock,
        (libc::LOCK_UN, true) => FlockOperation::NonBlockingUnlock,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    rx(rustix::fs::flock(bfd(fd), how))
}

/// `umask(2)`: sets the process's mask, returns the previous one.
pub fn umask(mask: u32) -> u32 {
    rustix::process::umask(Mode::from_bits_retain(mask)).bits()
}

/// The target of `/proc/self/fd/N`: the path an open descriptor was opened by (as the
/// kernel sees it now).
pub fn fd_path(fd: RawFd) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn pipe_flags_and_io() {
        let (r, w) = pipe().unwrap();
        assert_eq!(set_nonblock(r.as_raw_fd(), true).unwrap() & libc::O_NONBLOCK, 0);
        assert_ne!(get_fl(r.as_raw_fd()).unwrap() & libc::O_NONBLOCK, 0);
        let mut b = [0u8; 4];
        assert_eq!(read(r.as_raw_fd(), &mut b).unwrap_err().raw_os_error(), Some(libc::EAGAIN));
        assert_eq!(write(w.as_raw_fd(), b"abc").unwrap(), 3);
        let mut u = [MaybeUninit::uninit(); 8];
        assert_eq!(read_into(r.as_raw_fd(), &mut u).unwrap(), 3);
        assert_eq!(fstat(r.as_raw_fd()).unwrap().st_mode & libc::S_IFMT, libc::S_IFIFO);
    }

    #[test]
    fn eventfd_kicks_and_drains() {
        let e = eventfd().unwrap();
        eventfd_kick(e.as_raw_fd());
        let mut b = [0u8; 8];
        assert_eq!(read(e.as_raw_fd(), &mut b).unwrap(), 8);
        assert_eq!(u64::from_ne_bytes(b), 1);
        eventfd_drain(e.as_raw_fd());
    }

    #[test]
    fn open_seek_lock() {
        let d = std::env::temp_dir().join(format!("qtfs-sys-{}", std::process::id()));
        std::fs::write(&d, b"hello").unwrap();
        let p = std::ffi::CString::new(d.as_os_str().as_encoded_bytes()).unwrap();
        let f = openat2(libc::AT_FDCWD, &p, libc::O_RDONLY, 0, libc::RESOLVE_NO_SYMLINKS).unwrap();
        seek(f.as_raw_fd(), 2).unwrap();
        assert_eq!(tell(f.as_raw_fd()).unwrap(), 2);
        flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB).unwrap();
        assert_eq!(fd_path(f.as_raw_fd()).unwrap(), d);
        let g = open(&p, libc::O_RDONLY, 0).unwrap();
        assert_ne!(get_fl(g.as_raw_fd()).unwrap() & libc::O_ACCMODE, libc::O_WRONLY);
        std::fs::remove_file(&d).unwrap();
    }
}
