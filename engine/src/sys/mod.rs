//! Thin safe wrappers over the system calls the engine makes directly (everything that
//! is not an io_uring operation). Every `unsafe` of the engine outside the ring lives
//! here. Functions return `io::Result` with the raw errno preserved.
//!
//! Here: the return-value checks and [`errno_of`]; every wrapper is re-exported from here
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

use std::io;

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
