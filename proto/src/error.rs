//! The one error type of the protocol crate.

/// Why bytes could not be turned into a frame or message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// Fewer bytes than the structure needs.
    #[error("{what}: truncated (need {need} bytes, have {have})")]
    Truncated { what: &'static str, need: usize, have: usize },
    /// Bytes left over after a complete message.
    #[error("{what}: {extra} trailing bytes")]
    TrailingBytes { what: &'static str, extra: usize },
    /// A length above its limit.
    #[error("{what}: length {len} exceeds limit {max}")]
    TooLong { what: &'static str, len: usize, max: usize },
    /// A string holds a NUL byte.
    #[error("{0}: string contains NUL")]
    BadString(&'static str),
    /// The frame does not start with the QTP magic.
    #[error("bad magic {0:#06x}")]
    BadMagic(u16),
    /// A protocol version this build does not speak.
    #[error("unsupported protocol version {0}")]
    BadVersion(u8),
    /// Reserved header bits are set.
    #[error("reserved header field is not zero")]
    Reserved,
    /// Unknown or unsupported flag bits.
    #[error("bad frame flags {0:#04x}")]
    BadFlags(u8),
    /// An operation number this build does not know.
    #[error("unknown operation {0:#06x}")]
    UnknownOp(u16),
    /// A field holds a value outside its domain.
    #[error("{what}: invalid value {value}")]
    BadValue { what: &'static str, value: u64 },
    /// A pre-shared key file is malformed or unsafe.
    #[error("key file: {0}")]
    Key(String),
    /// An address string cannot be parsed.
    #[error("bad address {0:?}: expected tcp:IP:PORT, vsock:CID:PORT or unix:PATH")]
    BadAddr(String),
    /// The peer failed authentication or broke the handshake.
    #[error("handshake: {0}")]
    Handshake(&'static str),
}
