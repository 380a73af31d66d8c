//! The requester side of udsproxyd's local protocol ([`crate::wire`]): a tool asks the
//! local udsproxyd for a socket connected to a HOST socket path and receives it over
//! SCM_RIGHTS. `libudsproxy.so` speaks the same exchange without allocating; this is the
//! safe, blocking version for tools (rexec) and tests.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{sys, wire};

/// Default request socket of udsproxyd.
pub const DEFAULT_SOCKET: &str = "/var/run/qtfs/remote_uds.sock";

/// The request socket: `$UDSPROXY_SOCKET`, else the default.
pub fn request_socket() -> PathBuf {
    std::env::var_os("UDSPROXY_SOCKET").map(PathBuf::from).unwrap_or_else(|| DEFAULT_SOCKET.into())
}

/// What udsproxyd answered.
#[derive(Debug)]
pub enum Outcome {
    /// A socket of the requested kind, connected to the HOST socket.
    Connected(OwnedFd),
    /// udsproxyd does not proxy this path (not whitelisted, or no engine connection).
    NotProxied,
    /// The HOST refused: the errno a local connect would have given.
    Refused(i32),
}

/// Asks udsproxyd at `socket` to connect a socket of `kind` (`wire::KIND_*`) to the HOST
/// `path`; waits at most `timeout` for the answer.
pub fn connect(socket: &Path, kind: u16, path: &Path, timeout: Duration) -> io::Result<Outcome> {
    let fd = sys::unix_socket(libc::SOCK_SEQPACKET)?;
    sys::connect_unix(fd.as_raw_fd(), socket.as_os_str().as_encoded_bytes())?;
    let mut req = [0u8; wire::REQ_MAX];
    let n = wire::encode_request(&mut req, wire::OP_CONNECT, kind, path.as_os_str().as_encoded_bytes())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENAMETOOLONG))?;
    sys::send_with_fds(fd.as_raw_fd(), &req[..n], &[])?;
    if !sys::wait_readable(fd.as_raw_fd(), timeout)? {
        return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
    }
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); wire::RSP_LEN + 8];
    let r = sys::recv_with_fds(fd.as_raw_fd(), &mut buf, false)?;
    // SAFETY: recv_with_fds initialised the first r.len bytes (at most the buffer).
    let got: Vec<u8> = buf[..r.len.min(buf.len())].iter().map(|b| unsafe { b.assume_init() }).collect();
    match wire::decode_answer(&got) {
        Some(0) => {
            r.fds.into_iter().next().map(Outcome::Connected).ok_or_else(|| io::Error::from_raw_os_error(libc::EPROTO))
        }
        Some(wire::PASS) => Ok(Outcome::NotProxied),
        Some(e) if e > 0 => Ok(Outcome::Refused(e)),
        _ => Err(io::Error::from_raw_os_error(libc::EPROTO)),
    }
}

/// Connects a stream to `path`: directly when the socket is local, else through the local
/// udsproxyd. The error of the direct attempt is kept when the proxy does not apply.
pub fn connect_stream(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    match UnixStream::connect(path) {
        Ok(s) => Ok(s),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ECONNREFUSED)) => {
            match connect(&request_socket(), wire::KIND_STREAM, path, timeout) {
                Ok(Outcome::Connected(fd)) => Ok(UnixStream::from(fd)),
                Ok(Outcome::Refused(errno)) => Err(io::Error::from_raw_os_error(errno)),
                Ok(Outcome::NotProxied) | Err(_) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}
