//! Connected stream sockets for every transport, behind one type.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use qtfs_proto::Addr;

use crate::error::{ClientError, Result};

/// A connected TCP, vsock or unix stream socket.
#[derive(Debug)]
pub struct Stream {
    fd: OwnedFd,
}

impl Stream {
    /// Connects to `addr` (TCP_NODELAY set on TCP).
    pub fn connect(addr: &Addr, timeout: Duration) -> Result<Stream> {
        let ctx = || format!("connect {addr}");
        match addr {
            Addr::Tcp(sa) => {
                let s = std::net::TcpStream::connect_timeout(sa, timeout).map_err(|e| ClientError::io(ctx(), e))?;
                s.set_nodelay(true).map_err(|e| ClientError::io(ctx(), e))?;
                Ok(Stream { fd: OwnedFd::from(s) })
            }
            Addr::Unix(p) => {
                let s = std::os::unix::net::UnixStream::connect(p).map_err(|e| ClientError::io(ctx(), e))?;
                Ok(Stream { fd: OwnedFd::from(s) })
            }
            Addr::Vsock { cid, port } => vsock_connect(*cid, *port).map_err(|e| ClientError::io(ctx(), e)),
        }
    }

    pub fn from_fd(fd: OwnedFd) -> Stream {
        Stream { fd }
    }

    /// The socket descriptor, for callers that drive it themselves.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// A second handle on the same socket (for a reader thread).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(Stream { fd: self.fd.try_clone()? })
    }

    /// Shuts both directions down, waking a blocked reader.
    pub fn shutdown(&self) {
        // SAFETY: shutdown(2) on a socket we own; errors (e.g. ENOTCONN) are irrelevant.
        unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_RDWR) };
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        let tv = match t {
            Some(d) => {
                libc::timeval { tv_sec: d.as_secs() as libc::time_t, tv_usec: d.subsec_micros() as libc::suseconds_t }
            }
            None => libc::timeval { tv_sec: 0, tv_usec: 0 },
        };
        // SAFETY: tv is a valid timeval for the duration of the call.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Writes several buffers with one `writev` where possible.
    pub fn write_all_vectored(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        let mut idx = 0;
        let mut off = 0;
        while idx < bufs.len() {
            let mut iov: [libc::iovec; 8] = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 8];
            let mut n = 0;
            for (i, b) in bufs[idx..].iter().enumerate().take(8) {
                let start = if i == 0 { off } else { 0 };
                iov[n] = libc::iovec { iov_base: b[start..].as_ptr() as *mut _, iov_len: b.len() - start };
                n += 1;
            }
            // SAFETY: every iovec points into a live slice of `bufs`.
            let w = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), n as libc::c_int) };
            if w < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut w = w as usize;
            if w == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while idx < bufs.len() && w >= bufs[idx].len() - off {
                w -= bufs[idx].len() - off;
                idx += 1;
                off = 0;
            }
            off += w;
        }
        Ok(())
    }
}

fn vsock_connect(cid: u32, port: u32) -> io::Result<Stream> {
    // SAFETY: plain socket(2) call; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_vm is plain data; zeroed is a valid initial value.
    let mut sa: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    sa.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    sa.svm_cid = cid;
    sa.svm_port = port;
    // SAFETY: sa is a valid sockaddr_vm and its size is passed.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_vm).cast(),
            std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Stream { fd })
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buf is valid for writes of buf.len() bytes.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buf is valid for reads of buf.len() bytes; MSG_NOSIGNAL avoids SIGPIPE.
            let r = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOTSOCK) {
                // SAFETY: same buffer, plain write(2) for non-socket fds (pipes in tests).
                let r = unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
                return if r >= 0 { Ok(r as usize) } else { Err(io::Error::last_os_error()) };
            }
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
