//! Unix sockets, pipes and FIFOs for the channel service (udsmux). The calls udsproxyd
//! and rexec make too (addresses, sockets, bind/listen/shutdown, socket type and peer
//! credentials, pipes, descriptor flags, fstat, plain read/write) come from `qtfs-sys`
//! and are re-exported here; the engine's own: liveness of a path, lstat, rename/unlink,
//! clearing O_NONBLOCK, and FIFO readiness.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::check_i;

pub use qtfs_sys::{
    autobind_unix, bind_unix, fstat, get_fl, listen, peer_cred, pipe, read, set_fl, shutdown, sock_domain,
    sock_listening, sock_type, sockaddr_un, unix_local_name, unix_socket, write,
};

/// A non-blocking connect to a unix path: whether something is listening there now.
pub fn unix_path_is_live(path: &[u8], ty: i32) -> bool {
    let Ok(fd) = unix_socket(ty | libc::SOCK_NONBLOCK) else { return false };
    match qtfs_sys::connect_unix(fd.as_raw_fd(), path) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EAGAIN),
    }
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

/// Clears `O_NONBLOCK` on an open file description.
pub fn clear_nonblock(fd: RawFd) -> io::Result<()> {
    qtfs_sys::set_nonblock(fd, false).map(|_| ())
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
