//! The FUSE client's error type: everything that can stop `qtfs-fuse` from mounting or
//! serving. Errors of single file operations never use it; they travel to the kernel as
//! errno values.

use qtfs_client::ClientError;

/// Why `qtfs-fuse` could not mount or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum FuseError {
    /// The command line or a `-o` option is invalid.
    #[error("{0}")]
    Usage(String),
    /// The key file could not be read or is malformed.
    #[error("key file {path}: {reason}")]
    Key { path: String, reason: String },
    /// The engine could not be reached (nothing listening, wrong address, network).
    #[error("cannot reach the engine at {addr}: {source}")]
    Unreachable { addr: String, source: ClientError },
    /// The handshake failed: wrong key, or a server that refuses our security policy.
    #[error("handshake with {addr} failed (wrong key, or a server without authentication?): {source}")]
    Handshake { addr: String, source: ClientError },
    /// The engine refused to export the directory.
    #[error("the engine refused to export {path}: {reason}")]
    MountRefused { path: String, reason: String },
    /// Mounting on the local mount point failed.
    #[error("cannot mount on {mountpoint}: {source}")]
    LocalMount { mountpoint: String, source: std::io::Error },
    /// A system call of the daemon itself failed.
    #[error("{context}: {source}")]
    Sys { context: &'static str, source: std::io::Error },
}
