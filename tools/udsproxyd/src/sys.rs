//! The system calls udsproxyd makes. The ones it shares with the engine and rexec
//! (unix sockets, SCM_RIGHTS, pipes, eventfds, file flags, opens, identity, limits) come
//! from `qtfs-sys` and are re-exported here, so the crate calls `sys::…` for all of them;
//! what is written here is udsproxyd's alone: its epoll loop, waiting for a readable
//! socket, the no-symlink open of a passed path, and the lock file. Every `unsafe` of
//! the crate lives here; errors keep their raw errno.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use qtfs_sys::check;

pub use qtfs_sys::{
    Errno, Received, accept, as_user, autobind_unix, bind_unix, connect_unix, errno_of, eventfd, eventfd_drain,
    eventfd_kick, flock, fstat, get_fl, listen, open, openat2, peer_cred, peer_groups, pipe, raise_nofile, read_into,
    recv_nb, recv_with_fds, seek, send_nb, send_with_fds, set_nonblock, shutdown, sock_domain, sock_listening,
    sock_type, sockaddr_un, socketpair, tell, umask, unix_local_name, unix_socket, write,
};

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass a descriptor the kernel just created for us.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    Ok(own(check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?))
}

pub fn epoll_add(ep: RawFd, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: ev is a valid epoll_event for the call.
    check(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(|_| ())
}

pub fn epoll_del(ep: RawFd, fd: RawFd) {
    // SAFETY: plain syscall; a descriptor already gone is fine.
    unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
}

/// Waits for events; returns how many entries of `evs` were filled (0 on EINTR).
pub fn epoll_wait(ep: RawFd, evs: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
    // SAFETY: evs is writable for evs.len() entries.
    let n = unsafe { libc::epoll_wait(ep, evs.as_mut_ptr(), evs.len() as i32, timeout_ms) };
    n.max(0) as usize
}

/// Waits up to `timeout` for `fd` to become readable; false on timeout.
pub fn wait_readable(fd: RawFd, timeout: std::time::Duration) -> io::Result<bool> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one live pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `openat2(2)` of an absolute path that must not traverse a symlink or magic link.
pub fn open_nofollow(path: &CStr, flags: i32) -> io::Result<OwnedFd> {
    openat2(libc::AT_FDCWD, path, flags, 0, libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS)
}

/// The path of an open descriptor (`/proc/self/fd/N`), as bytes.
pub fn fd_path(fd: RawFd) -> io::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    qtfs_sys::fd_path(fd).map(|p| p.into_os_string().into_vec())
}

/// Exclusive `flock` on a lock file; the file stays locked while it is open.
pub fn lock_file(path: &std::path::Path) -> io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB)?;
    Ok(f)
}
