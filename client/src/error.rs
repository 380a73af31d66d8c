//! The client library's error type.

use qtfs_proto::ProtoError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or the transport failed.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The peer sent something that is not valid QTP, or the handshake failed.
    #[error("protocol: {0}")]
    Proto(#[from] ProtoError),
    /// The server answered with an errno.
    #[error("{}", errno_text(*.0))]
    Remote(i32),
    /// The connection dropped while the request was outstanding; it may or may not have
    /// been executed.
    #[error("connection lost with the request in flight")]
    Disconnected,
    /// No response within the configured timeout.
    #[error("request timed out")]
    Timeout,
    /// The session has been closed.
    #[error("session closed")]
    Closed,
}

impl ClientError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io { context: context.into(), source }
    }

    /// The errno a caller should report (EIO for transport trouble).
    pub fn errno(&self) -> i32 {
        match self {
            ClientError::Remote(e) => *e,
            ClientError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            ClientError::Timeout => libc::ETIMEDOUT,
            ClientError::Disconnected | ClientError::Closed => libc::EIO,
            ClientError::Proto(_) => libc::EPROTO,
        }
    }
}

/// `strerror` for an errno.
pub fn errno_text(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
