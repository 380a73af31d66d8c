//! Thin safe wrappers over the system calls rexec and rexec_server make directly. Every
//! `unsafe` of the crate lives here, except the async-signal-safe child code of
//! `server::spawn`, which may only use the functions of the `raw` submodule.
//! Functions return `io::Result` with the raw errno preserved.
//!
//! Here: the return-value checks every wrapper uses and error text. Apart: descriptors,
//! pipes and files (`fd`), sockets, I/O and poll (`sock`), peer and thread identity
//! (`ident`), signals, processes and limits (`process`), and `raw`.

use std::io;
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

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn check_l(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn check_s(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
}

/// Wraps a descriptor the kernel just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass a fresh descriptor returned by a successful system call, which
    // nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The errno of an error (EIO when it has none).
pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// An error as people read it: "No such file or directory", without "(os error 2)".
pub fn errstr(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
