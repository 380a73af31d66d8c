//! Wire primitives: fixed-size little-endian fields, variable-length tails, and the
//! `record!`/`message!` macros that declare every structure on the wire exactly once.
//!
//! A message is a *fixed part* (scalars and nested fixed records, at fixed offsets)
//! followed by *tails* (byte strings whose lengths sit at the end of the fixed part, in
//! tail order). The last tail may be `Rest`, which takes every remaining byte and has no
//! length field. The same declarations yield encode/decode, the C mirror (`qtp.h`), the
//! tables in `PROTOCOL.md` and the golden vectors, so none of them can drift.
//!
//! This module owns byte layout only; it must not know about operations or I/O.
//!
//! Here: the descriptors the generators read ([`MessageDesc`], [`RecordDesc`] and their
//! parts), the [`Wire`] trait every message implements and [`RecordIter`]. Apart:
//! fixed-size fields and arbitrary-input sampling (`fixed`), the variable-length tail
//! types and length fields (`tails`), and the `record!`/`message!` macros (`macros`).

use crate::error::ProtoError;

mod fixed;
mod macros;
mod tails;

pub use fixed::{Fixed, Unstructured};
pub use tails::{Bytes16, Bytes32, Groups, Name, Path, Rest, Tail, get_len, put_len};

/// Scalar kinds a fixed field can have; used by the generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    U8,
    U16,
    U32,
    U64,
    I32,
    I64,
}

impl Scalar {
    pub const fn size(self) -> usize {
        match self {
            Scalar::U8 => 1,
            Scalar::U16 => 2,
            Scalar::U32 | Scalar::I32 => 4,
            Scalar::U64 | Scalar::I64 => 8,
        }
    }
    pub const fn c_type(self) -> &'static str {
        match self {
            Scalar::U8 => "uint8_t",
            Scalar::U16 => "uint16_t",
            Scalar::U32 => "uint32_t",
            Scalar::U64 => "uint64_t",
            Scalar::I32 => "int32_t",
            Scalar::I64 => "int64_t",
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Scalar::U8 => "u8",
            Scalar::U16 => "u16",
            Scalar::U32 => "u32",
            Scalar::U64 => "u64",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
        }
    }
}

/// What a fixed field is, for the generators.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    Scalar(Scalar),
    /// A byte array of the given length (nonces, MACs, tokens).
    Bytes(usize),
    /// A nested fixed record.
    Record(&'static RecordDesc),
}

impl FieldType {
    pub const fn size(&self) -> usize {
        match self {
            FieldType::Scalar(s) => s.size(),
            FieldType::Bytes(n) => *n,
            FieldType::Record(r) => r.size,
        }
    }
}

/// One fixed field of a record or message.
#[derive(Debug, Clone, Copy)]
pub struct FieldDesc {
    pub name: &'static str,
    pub ty: FieldType,
    pub doc: &'static str,
}

/// A fixed record (e.g. `Attr`): only fixed fields.
#[derive(Debug)]
pub struct RecordDesc {
    pub name: &'static str,
    pub doc: &'static str,
    pub size: usize,
    pub fields: &'static [FieldDesc],
}

/// Kinds of variable-length tails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailKind {
    /// A path relative to an export (or absolute for MOUNT): 0..=4095 bytes, no NUL.
    Path,
    /// One name (xattr name, file system type): 0..=255 bytes, no NUL.
    Name,
    /// Opaque bytes with a 16-bit length.
    Bytes16,
    /// Opaque bytes with a 32-bit length.
    Bytes32,
    /// Supplementary group ids: a 16-bit count of little-endian u32, at most 64.
    Groups,
    /// Every remaining byte of the payload; no length field; always last.
    Rest,
}

impl TailKind {
    /// Size of the length field stored in the fixed part (0 for `Rest`).
    pub const fn len_size(self) -> usize {
        match self {
            TailKind::Path | TailKind::Name | TailKind::Bytes16 | TailKind::Groups => 2,
            TailKind::Bytes32 => 4,
            TailKind::Rest => 0,
        }
    }
    /// Bytes per counted unit.
    pub const fn unit(self) -> usize {
        match self {
            TailKind::Groups => 4,
            _ => 1,
        }
    }
    /// Maximum count (in units).
    pub const fn max(self) -> usize {
        match self {
            TailKind::Path => crate::MAX_PATH,
            TailKind::Name => crate::MAX_NAME,
            TailKind::Bytes16 => u16::MAX as usize,
            TailKind::Bytes32 => crate::MAX_PAYLOAD,
            TailKind::Groups => crate::MAX_GROUPS,
            TailKind::Rest => crate::MAX_PAYLOAD,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            TailKind::Path => "path",
            TailKind::Name => "name",
            TailKind::Bytes16 => "bytes16",
            TailKind::Bytes32 => "bytes32",
            TailKind::Groups => "groups",
            TailKind::Rest => "rest",
        }
    }
    /// True when the bytes must not contain NUL (strings).
    pub const fn is_string(self) -> bool {
        matches!(self, TailKind::Path | TailKind::Name)
    }
}

/// One tail of a message.
#[derive(Debug, Clone, Copy)]
pub struct TailDesc {
    pub name: &'static str,
    pub kind: TailKind,
    pub doc: &'static str,
}

/// Everything the generators need about one message.
#[derive(Debug)]
pub struct MessageDesc {
    pub name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [FieldDesc],
    pub tails: &'static [TailDesc],
    /// Size of the fixed part including the tail length fields.
    pub fixed_size: usize,
    /// Encodes the deterministic sample used for golden vectors.
    pub sample: fn(&mut Vec<u8>),
    /// Builds a value from arbitrary bytes, encodes, decodes and re-encodes it; `Err`
    /// describes a mismatch (property tests).
    pub roundtrip: fn(&[u8]) -> Result<(), String>,
    /// Decodes arbitrary bytes as this message (fuzzing; must never panic).
    pub validate: fn(&[u8]) -> Result<(), ProtoError>,
}

/// Common behaviour of every message and list record.
pub trait Wire<'a>: Sized {
    /// Static description for generators and docs.
    const DESC: &'static MessageDesc;
    /// Appends the encoding to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes one value from the front of `buf`, returning it and the bytes used.
    fn decode_prefix(buf: &'a [u8]) -> Result<(Self, usize), ProtoError>;
    /// Exact encoded size.
    fn encoded_len(&self) -> usize;
    /// Decodes a whole payload; trailing bytes are an error.
    fn decode(buf: &'a [u8]) -> Result<Self, ProtoError> {
        let (v, used) = Self::decode_prefix(buf)?;
        if used != buf.len() {
            return Err(ProtoError::TrailingBytes { what: Self::DESC.name, extra: buf.len() - used });
        }
        Ok(v)
    }
    /// Encodes into a fresh vector.
    fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode(&mut v);
        v
    }
}

/// Iterates records of type `T` packed back to back in `buf` (e.g. directory entries).
pub struct RecordIter<'a, T> {
    buf: &'a [u8],
    failed: bool,
    _t: core::marker::PhantomData<T>,
}

impl<'a, T: Wire<'a>> RecordIter<'a, T> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, failed: false, _t: core::marker::PhantomData }
    }
}

impl<'a, T: Wire<'a>> Iterator for RecordIter<'a, T> {
    type Item = Result<T, ProtoError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        match T::decode_prefix(self.buf) {
            Ok((v, used)) => {
                self.buf = &self.buf[used..];
                Some(Ok(v))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
