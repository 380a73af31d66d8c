//! # qtfs-sys — the one syscall layer of the engine, udsproxyd and rexec
//!
//! Thin safe wrappers over the system calls that two or more of the daemons make, so
//! that each call has one implementation: `rustix` where it covers the call (sockets,
//! SCM_RIGHTS, pipes, eventfds, file flags, openat2, flock, pidfds), `libc` where it
//! does not or where a caller needs libc's own types (`sockaddr_un` for io_uring,
//! `stat`, per-thread identity, rlimits, arbitrary signal numbers). Functions return
//! `io::Result` with the raw errno preserved; [`Errno`] is that errno as a type, with
//! the one explicit conversion to and from the wire (`proto::errno`).
//!
//! Here: [`Errno`], [`errno_of`], [`errstr`] and the return-value checks ([`check`],
//! [`check_l`], [`check_s`]), which the daemons' own wrappers use too. By area: file
//! descriptors, pipes, eventfds and files (`fd`), unix sockets, their options and peer
//! credentials (`unix`), SCM_RIGHTS messages (`cmsg`), pidfds and descriptor limits
//! (`process`), and a thread's file system identity (`ident`). Each daemon's own `sys`
//! module re-exports what it uses from here and keeps only the calls that are its alone.

mod cmsg;
mod fd;
mod ident;
mod process;
mod unix;

pub use cmsg::*;
pub use fd::*;
pub use ident::*;
pub use process::*;
pub use unix::*;

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// An errno of this machine (the local numbering), as a type rather than a bare `i32`.
///
/// Errnos cross the wire in the asm-generic numbering (`qtfs_proto::errno`); the only
/// ways between the two are [`Errno::to_wire`] and [`Errno::from_wire`], so a local value
/// is never sent, nor a wire value returned to a local caller, by accident.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

impl Errno {
    pub const EIO: Errno = Errno(libc::EIO);

    /// A local errno value (as `errno` or `io::Error::raw_os_error` hold it).
    pub const fn from_raw(e: i32) -> Errno {
        Errno(e)
    }

    /// The local errno value.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The errno of an `io::Error` (EIO if it has none).
    pub fn of(e: &io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }

    /// The calling thread's errno now.
    pub fn last() -> Errno {
        Errno::of(&io::Error::last_os_error())
    }

    /// The value to put in a frame's `status` (or any errno field of the protocol).
    pub const fn to_wire(self) -> i32 {
        qtfs_proto::errno::from_local(self.0)
    }

    /// The local errno of a value read from the wire.
    pub const fn from_wire(wire: i32) -> Errno {
        Errno(qtfs_proto::errno::to_local(wire))
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({})", self.0)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&errstr(&io::Error::from_raw_os_error(self.0)))
    }
}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.0)
    }
}

impl From<&io::Error> for Errno {
    fn from(e: &io::Error) -> Errno {
        Errno::of(e)
    }
}

impl From<rustix::io::Errno> for Errno {
    fn from(e: rustix::io::Errno) -> Errno {
        Errno(e.raw_os_error())
    }
}

/// The errno of an `io::Error` (EIO if it has none), as a bare local value.
pub fn errno_of(e: &io::Error) -> i32 {
    Errno::of(e).raw()
}

/// An error as people read it: "No such file or directory", without "(os error 2)".
pub fn errstr(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// `Err(last_os_error)` if `r < 0` (for the daemons' own wrappers too).
pub fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// `check` for `syscall(2)`'s `long`.
pub fn check_l(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// `check` for byte counts.
pub fn check_s(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
}

/// Wraps a descriptor the kernel just returned.
pub(crate) fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: callers pass a fresh descriptor returned by a successful system call, which
    // nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A descriptor number as rustix takes it. The wrappers here take raw numbers, as the
/// callers hold them (io_uring, poll sets); the caller keeps the descriptor open for
/// the call, as with the libc calls these replace.
pub(crate) fn bfd(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the descriptor stays open for the duration of the call that uses it (the
    // contract of every wrapper here); a closed or invalid number only makes the
    // system call fail with EBADF.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// A rustix result as the `io::Result` the callers expect (same errno).
pub(crate) fn rx<T>(r: rustix::io::Result<T>) -> io::Result<T> {
    r.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_round_trips_through_the_wire_unchanged() {
        for e in [libc::ENOENT, libc::EACCES, libc::ENOTEMPTY, libc::ESTALE, libc::EOPNOTSUPP] {
            let x = Errno::from_raw(e);
            assert_eq!(Errno::from_wire(x.to_wire()), x);
            assert_eq!(x.to_wire(), e, "Linux targets use the asm-generic numbers");
        }
        assert_eq!(Errno::of(&io::Error::other("x")), Errno::EIO);
        assert_eq!(errno_of(&io::Error::from(Errno::from_raw(libc::EPERM))), libc::EPERM);
        assert_eq!(Errno::from(rustix::io::Errno::NOENT).raw(), libc::ENOENT);
        assert_eq!(Errno::from_raw(libc::ENOENT).to_string(), "No such file or directory");
    }
}
