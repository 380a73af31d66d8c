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

/// A descriptor number as rustix takes it. The wrappers take raw numbers, as the callers
/// hold them (io_uring, the handle table); the caller keeps the descriptor open for the
/// call, as with the libc calls these replace. A negative number other than AT_FDCWD
/// becomes rustix's `ABS` (-EBADF), which the kernel treats as it treats any bad number
/// (EBADF, or ignored before an absolute path) and rustix's debug checks accept.
fn bfd(fd: std::os::fd::RawFd) -> std::os::fd::BorrowedFd<'static> {
    if fd < 0 && fd != libc::AT_FDCWD {
        return rustix::fs::ABS;
    }
    // SAFETY: the descriptor stays open for the call that uses it (the contract of every
    // wrapper here); a closed number only makes the system call fail (EBADF).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// A rustix result as the `io::Result` the callers expect (same errno).
fn rx<T>(r: rustix::io::Result<T>) -> std::io::Result<T> {
    r.map_err(std::io::Error::from)
}
