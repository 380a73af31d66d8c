//! Thin safe wrappers over the system calls the engine makes directly (everything that
//! is not an io_uring operation). Every `unsafe` of the engine outside the ring lives
//! here. Functions return `io::Result` with the raw errno preserved. The calls the
//! engine shares with udsproxyd and rexec come from `qtfs-sys` (one implementation,
//! rustix where it covers the call) and are re-exported by the module of their area;
//! what is here is the engine's alone.
//!
//! Here: the return-value checks, and [`Errno`]/[`errno_of`] from `qtfs-sys`; every wrapper is re-exported from here
//! as `crate::sys::…`. By area: files, directories, attributes and xattrs (`file`),
//! mounts and the mount API (`mount`), tty and file-flag ioctls (`ioctl`), processes,
//! CPU affinity and limits (`process`), eventfds and TCP/vsock listeners (`net`), and
//! unix sockets, pipes and FIFOs for udsmux (`unix`).

mod file;
mod ioctl;
mod mount;
mod net;
mod process;
mod unix;

pub use file::*;
pub use ioctl::*;
pub use mount::*;
pub use net::*;
pub use process::*;
pub use unix::*;

/// `Err(last_os_error)` if `r < 0`: `check` for `syscall(2)`'s long, `check_i` for int.
use qtfs_sys::{check as check_i, check_l as check};

pub use qtfs_sys::{Errno, errno_of};
