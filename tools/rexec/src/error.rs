//! The crate's one error type.

use std::io;

/// What can go wrong in rexec or rexec_server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `what` names the operation.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The peer sent bytes that are not a valid frame or message, or broke a rule of the
    /// session (more than a window in flight, an unknown stream…).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer answered a request with an error frame.
    #[error("{what}: {}", io::Error::from_raw_os_error(*.errno))]
    Remote { what: String, errno: i32 },
    /// A descriptor that rexec cannot pass to the remote process: what it is (`kind`) and
    /// its path or description (`detail`, may be empty).
    #[error(
        "fd {fd} is {kind}{}; rexec passes regular files the HOST can open, pipes/FIFOs, listening unix stream \
         sockets and /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom",
        paren(detail)
    )]
    UnsupportedFd { fd: i32, kind: String, detail: String },
    /// Bad command line or configuration.
    #[error("{0}")]
    Usage(String),
}

fn paren(s: &str) -> String {
    if s.is_empty() { String::new() } else { format!(" ({s})") }
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
    pub fn proto(what: impl std::fmt::Display) -> Error {
        Error::Protocol(what.to_string())
    }
}

impl From<qtfs_proto::ProtoError> for Error {
    fn from(e: qtfs_proto::ProtoError) -> Error {
        Error::Protocol(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Adds the name of the failed operation to an `io::Result`.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}
