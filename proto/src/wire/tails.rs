//! Variable-length tails: the [`Tail`] trait, the byte-string tails ([`Path`], [`Name`],
//! [`Bytes16`], [`Bytes32`], [`Rest`]) with their limits, [`Groups`], and the
//! little-endian length fields the fixed part stores for them.

use super::{TailKind, Unstructured};
use crate::error::ProtoError;

/// A variable-length tail value borrowed from (or destined for) a payload.
pub trait Tail<'a>: Sized + Copy {
    const KIND: TailKind;
    /// Number of units (bytes, or u32 for groups).
    fn count(&self) -> usize;
    /// Appends the wire bytes.
    fn write(&self, out: &mut Vec<u8>);
    /// Validates and wraps the wire bytes.
    fn read(bytes: &'a [u8]) -> Result<Self, ProtoError>;
    /// A deterministic sample.
    fn sample(seed: u64) -> Self;
    /// A valid value borrowed from arbitrary bytes. `last` is true for the final tail,
    /// where `Rest` takes everything left.
    fn arbitrary(u: &mut Unstructured<'a>, last: bool) -> Self;
}

fn check_string(kind: TailKind, b: &[u8]) -> Result<(), ProtoError> {
    if b.len() > kind.max() {
        return Err(ProtoError::TooLong { what: kind.name(), len: b.len(), max: kind.max() });
    }
    if kind.is_string() && b.contains(&0) {
        return Err(ProtoError::BadString(kind.name()));
    }
    Ok(())
}

macro_rules! byte_tail {
    ($(#[$m:meta])* $name:ident, $kind:ident, $sample:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name<'a>(pub &'a [u8]);

        impl<'a> $name<'a> {
            pub const fn new(b: &'a [u8]) -> Self {
                Self(b)
            }
            pub const fn as_bytes(&self) -> &'a [u8] {
                self.0
            }
            pub const fn len(&self) -> usize {
                self.0.len()
            }
            pub const fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
            /// Lossy text for logs and error messages.
            pub fn display(&self) -> std::borrow::Cow<'a, str> {
                String::from_utf8_lossy(self.0)
            }
        }

        impl core::fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                if TailKind::$kind.is_string() {
                    write!(f, "{:?}", self.display())
                } else {
                    write!(f, "<{} bytes>", self.0.len())
                }
            }
        }

        impl<'a> From<&'a [u8]> for $name<'a> {
            fn from(b: &'a [u8]) -> Self {
                Self(b)
            }
        }
        impl<'a> From<&'a str> for $name<'a> {
            fn from(s: &'a str) -> Self {
                Self(s.as_bytes())
            }
        }

        impl<'a> Tail<'a> for $name<'a> {
            const KIND: TailKind = TailKind::$kind;
            #[inline]
            fn count(&self) -> usize {
                self.0.len()
            }
            #[inline]
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.0);
            }
            #[inline]
            fn read(bytes: &'a [u8]) -> Result<Self, ProtoError> {
                check_string(TailKind::$kind, bytes)?;
                Ok(Self(bytes))
            }
            fn sample(seed: u64) -> Self {
                let all: &'static [&'static [u8]] = $sample;
                Self(all[(seed as usize) % all.len()])
            }
            fn arbitrary(u: &mut Unstructured<'a>, last: bool) -> Self {
                let k = TailKind::$kind;
                let max = k.max().min(4096);
                let n = if last && k == TailKind::Rest { usize::MAX } else { u.len(max) };
                let mut b = u.take(n);
                if k.is_string() {
                    if let Some(p) = b.iter().position(|&c| c == 0) {
                        b = &b[..p];
                    }
                }
                Self(b)
            }
        }
    };
}

byte_tail!(
    /// A path: relative to the export for file requests (empty = the export root),
    /// absolute for MOUNT. At most 4,095 bytes, never NUL.
    Path, Path, &[b"dir/file.txt", b"a/b/c", b"images/vm1.qcow2"]
);
byte_tail!(
    /// A name (xattr name, file system type): at most 255 bytes, never NUL.
    Name, Name, &[b"user.comment", b"tmpfs", b"trusted.x"]
);
byte_tail!(
    /// Opaque bytes with a 16-bit length.
    Bytes16, Bytes16, &[b"\x00\x01binary\xff", b"opts=1"]
);
byte_tail!(
    /// Opaque bytes with a 32-bit length.
    Bytes32, Bytes32, &[b"value\x00with\x00nul", b"0123456789abcdef"]
);
byte_tail!(
    /// Every remaining payload byte (data of READ/WRITE/CHAN_DATA, record lists).
    Rest, Rest, &[b"payload bytes \x00\x01\x02", b"x"]
);

/// Supplementary groups, stored on the wire as little-endian u32s.
#[derive(Clone, Copy)]
pub enum Groups<'a> {
    /// Borrowed wire bytes (length is a multiple of 4).
    Wire(&'a [u8]),
    /// Native ids, for encoding.
    Ids(&'a [u32]),
}

impl Default for Groups<'_> {
    fn default() -> Self {
        Groups::Ids(&[])
    }
}

impl<'a> Groups<'a> {
    pub const EMPTY: Groups<'static> = Groups::Ids(&[]);
    pub fn len(&self) -> usize {
        match self {
            Groups::Wire(b) => b.len() / 4,
            Groups::Ids(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        let (wire, ids): (&'a [u8], &'a [u32]) = match *self {
            Groups::Wire(b) => (b, &[]),
            Groups::Ids(v) => (&[], v),
        };
        wire.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).chain(ids.iter().copied())
    }
    pub fn to_vec(&self) -> Vec<u32> {
        self.iter().collect()
    }
}

impl PartialEq for Groups<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl Eq for Groups<'_> {}

impl core::fmt::Debug for Groups<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> Tail<'a> for Groups<'a> {
    const KIND: TailKind = TailKind::Groups;
    fn count(&self) -> usize {
        self.len()
    }
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Groups::Wire(b) => out.extend_from_slice(b),
            Groups::Ids(v) => {
                for g in v.iter() {
                    out.extend_from_slice(&g.to_le_bytes());
                }
            }
        }
    }
    fn read(bytes: &'a [u8]) -> Result<Self, ProtoError> {
        if !bytes.len().is_multiple_of(4) || bytes.len() / 4 > crate::MAX_GROUPS {
            return Err(ProtoError::TooLong { what: "groups", len: bytes.len() / 4, max: crate::MAX_GROUPS });
        }
        Ok(Groups::Wire(bytes))
    }
    fn sample(_seed: u64) -> Self {
        Groups::Ids(&[10, 100, 1000])
    }
    fn arbitrary(u: &mut Unstructured<'a>, _last: bool) -> Self {
        let n = u.len(crate::MAX_GROUPS);
        let b = u.take(n * 4);
        Groups::Wire(&b[..b.len() - b.len() % 4])
    }
}

/// Reads a little-endian length field of `size` bytes.
#[inline(always)]
pub fn get_len(src: &[u8], size: usize) -> usize {
    match size {
        2 => u16::from_le_bytes([src[0], src[1]]) as usize,
        4 => u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize,
        _ => 0,
    }
}

/// Writes a little-endian length field of `size` bytes.
#[inline(always)]
pub fn put_len(dst: &mut [u8], size: usize, v: usize) {
    match size {
        2 => dst[..2].copy_from_slice(&(v as u16).to_le_bytes()),
        4 => dst[..4].copy_from_slice(&(v as u32).to_le_bytes()),
        _ => {}
    }
}
