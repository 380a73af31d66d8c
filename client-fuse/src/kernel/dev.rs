//! One `/dev/fuse` descriptor: reads requests (blocking, or without waiting on a
//! non-blocking clone), writes answers, and makes clones (`FUSE_DEV_IOC_CLONE`), each
//! with its own processing list in the kernel: a request is answered on the descriptor
//! it was read from.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::abi;
use super::reply::Sender;

/// One `/dev/fuse` descriptor.
pub(super) struct Dev(pub(super) OwnedFd);

/// What a read without waiting found.
pub(super) enum Received {
    /// A request of this many bytes.
    Request(usize),
    /// Nothing now (EAGAIN, on a non-blocking descriptor).
    Nothing,
    /// The file system is gone (ENODEV: unmounted or aborted).
    Gone,
}

impl Sender for Dev {
    fn send(&self, parts: &[IoSlice<'_>]) -> io::Result<()> {
        loop {
            // SAFETY: IoSlice is ABI-compatible with iovec; the slices outlive the call.
            let r = unsafe { libc::writev(self.0.as_raw_fd(), parts.as_ptr().cast(), parts.len() as libc::c_int) };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Dev {
    /// One request into `buf`, waiting for it: Ok(None) when the file system is gone.
    pub(super) fn receive(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.receive_now(buf)? {
                Received::Request(n) => return Ok(Some(n)),
                Received::Gone => return Ok(None),
                Received::Nothing => continue,
            }
        }
    }

    /// One request into `buf` if there is one (see [`Received`]).
    pub(super) fn receive_now(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            // SAFETY: buf is writable for its whole length.
            let r = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r >= 0 {
                return Ok(Received::Request(r as usize));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENODEV) => return Ok(Received::Gone),
                Some(libc::EAGAIN) => return Ok(Received::Nothing),
                // ENOENT: the request was interrupted before we read it.
                Some(libc::ENOENT | libc::EINTR) => continue,
                _ => return Err(e),
            }
        }
    }

    /// Another descriptor on the same connection (`FUSE_DEV_IOC_CLONE`).
    pub(super) fn clone_dev(&self) -> io::Result<Dev> {
        let fd = OwnedFd::from(std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse")?);
        let mut src = self.0.as_raw_fd() as u32;
        // SAFETY: the ioctl reads one u32 (the descriptor to clone) from a live local.
        if unsafe { libc::ioctl(fd.as_raw_fd(), abi::DEV_IOC_CLONE as _, &mut src) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Dev(fd))
    }

    /// A clone whose reads do not wait (`O_NONBLOCK` on its own open file).
    pub(super) fn clone_nonblocking(&self) -> io::Result<Dev> {
        let d = self.clone_dev()?;
        let fd = d.0.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return ints.
        let r = unsafe { libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(d)
    }

    pub(super) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
