//! Thin safe wrappers over the system calls rexec and rexec_server make directly. Every
//! `unsafe` of the crate lives here, except the async-signal-safe child code of
//! `server::spawn`, which may only use the functions of the `raw` submodule.
//! Functions return `io::Result` with the raw errno preserved. The calls rexec shares
//! with the engine and udsproxyd (pipes, eventfds, file flags, opens, sockets, peer
//! credentials, `FsIdentity`, pidfds, limits, error text) come from `qtfs-sys` and are
//! re-exported here, so the crate calls `sys::…` for all of them.
//!
//! Here: the return-value checks of the wrappers that are rexec's alone. Apart: descriptors,
//! pipes and files (`fd`), sockets, I/O and poll (`sock`), peer and thread identity
//! (`ident`), signals, processes and limits (`process`), and `raw`.

use std::os::fd::{FromRawFd, OwnedFd};

mod fd;
mod ident;
mod process;
pub mod raw;
mod sock;

pub use fd::*;
pub use ident::*;
pub use process::*;
pub use sock::*;

pub use qtfs_sys::{
    Errno, FsIdentity, accept, errno_of, errstr, euid_egid, eventfd, eventfd_drain, eventfd_kick, fd_path, flock,
    fstat, get_fl, getgroups, nofile_limit, open, peer_cred, peer_groups, pidfd_open, pidfd_send_signal, pipe, read,
    recv_nb, seek, send_nb, set_fl, set_nofile_soft, set_nonblock, shutdown, sockopt_int, tell, umask, write,
};

use qtfs_sys::{check, check_l, check_s};

/// Wraps a descriptor the kernel just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass a fresh descriptor returned by a successful system call, which
    // nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
