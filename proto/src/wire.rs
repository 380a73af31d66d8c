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

use crate::error::ProtoError;

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

/// Consumes arbitrary input bytes to build values (property tests and fuzzing).
#[derive(Debug)]
pub struct Unstructured<'a> {
    data: &'a [u8],
}

impl<'a> Unstructured<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }
    /// Up to `n` bytes (fewer when exhausted).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    /// Fills exactly `N` bytes, zero-padded.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        let t = self.take(N);
        b[..t.len()].copy_from_slice(t);
        b
    }
    /// A length in `0..=max` taken from the next byte pair.
    pub fn len(&mut self, max: usize) -> usize {
        let b: [u8; 2] = self.array();
        (u16::from_le_bytes(b) as usize) % (max + 1)
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A value of known size at a fixed offset.
pub trait Fixed: Sized + Copy {
    const SIZE: usize;
    const TYPE: FieldType;
    /// Writes exactly `SIZE` bytes at the start of `out`.
    fn put(&self, out: &mut [u8]);
    /// Reads from the first `SIZE` bytes of `src` (the caller checked the length).
    fn get(src: &[u8]) -> Self;
    /// A deterministic sample value for golden vectors; `seed` varies per field.
    fn sample(seed: u64) -> Self;
    /// A value built from arbitrary bytes.
    fn arbitrary(u: &mut Unstructured<'_>) -> Self {
        let mut b = vec![0u8; Self::SIZE];
        let t = u.take(Self::SIZE);
        b[..t.len()].copy_from_slice(t);
        Self::get(&b)
    }
}

macro_rules! fixed_int {
    ($($t:ty => $s:ident),* $(,)?) => {$(
        impl Fixed for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            const TYPE: FieldType = FieldType::Scalar(Scalar::$s);
            #[inline(always)]
            fn put(&self, out: &mut [u8]) {
                out[..Self::SIZE].copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn get(src: &[u8]) -> Self {
                let mut b = [0u8; core::mem::size_of::<$t>()];
                b.copy_from_slice(&src[..Self::SIZE]);
                <$t>::from_le_bytes(b)
            }
            fn sample(seed: u64) -> Self {
                // Distinct bytes per field so a swapped field shows in the vectors.
                let v = seed.wrapping_mul(0x0101_0101_0101_0101) ^ 0x0807_0605_0403_0201;
                v as $t
            }
        }
    )*};
}
fixed_int!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, i32 => I32, i64 => I64);

impl<const N: usize> Fixed for [u8; N] {
    const SIZE: usize = N;
    const TYPE: FieldType = FieldType::Bytes(N);
    #[inline(always)]
    fn put(&self, out: &mut [u8]) {
        out[..N].copy_from_slice(self);
    }
    #[inline(always)]
    fn get(src: &[u8]) -> Self {
        let mut b = [0u8; N];
        b.copy_from_slice(&src[..N]);
        b
    }
    fn sample(seed: u64) -> Self {
        let mut b = [0u8; N];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (seed as u8).wrapping_mul(31).wrapping_add(i as u8);
        }
        b
    }
}

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

/// Encodes `$v`, decodes the bytes, and checks the value and a re-encoding match.
#[macro_export]
#[doc(hidden)]
macro_rules! check_roundtrip {
    ($name:ident, $v:ident) => {{
        let bytes = $crate::wire::Wire::to_vec(&$v);
        if bytes.len() != $crate::wire::Wire::encoded_len(&$v) {
            return Err(format!("encoded_len {} != actual {}", $crate::wire::Wire::encoded_len(&$v), bytes.len()));
        }
        let d = <$name as $crate::wire::Wire>::decode(&bytes).map_err(|e| format!("decode failed: {e}"))?;
        if d != $v {
            return Err(format!("decoded {d:?} != original {:?}", $v));
        }
        if $crate::wire::Wire::to_vec(&d) != bytes {
            return Err("re-encoding differs".into());
        }
        Ok(())
    }};
}

/// Declares a fixed record: a plain struct of fixed fields.
#[macro_export]
macro_rules! record {
    (
        $(#[doc = $doc:expr])*
        pub struct $name:ident {
            $( $(#[doc = $fdoc:expr])* pub $field:ident : $fty:ty ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[doc = $fdoc])* pub $field: $fty, )*
        }

        impl $name {
            pub const DESC: $crate::wire::RecordDesc = $crate::wire::RecordDesc {
                name: stringify!($name),
                doc: concat!($($doc, "\n",)* ""),
                size: 0 $(+ <$fty as $crate::wire::Fixed>::SIZE)*,
                fields: &[ $( $crate::wire::FieldDesc {
                    name: stringify!($field),
                    ty: <$fty as $crate::wire::Fixed>::TYPE,
                    doc: concat!($($fdoc, " ",)* ""),
                }, )* ],
            };
        }

        impl $crate::wire::Fixed for $name {
            const SIZE: usize = 0 $(+ <$fty as $crate::wire::Fixed>::SIZE)*;
            const TYPE: $crate::wire::FieldType = $crate::wire::FieldType::Record(&$name::DESC);
            #[inline]
            #[allow(unused_assignments)]
            fn put(&self, out: &mut [u8]) {
                let mut off = 0usize;
                $(
                    <$fty as $crate::wire::Fixed>::put(&self.$field, &mut out[off..]);
                    off += <$fty as $crate::wire::Fixed>::SIZE;
                )*
            }
            #[inline]
            #[allow(unused_assignments)]
            fn get(src: &[u8]) -> Self {
                let mut off = 0usize;
                $(
                    let $field = <$fty as $crate::wire::Fixed>::get(&src[off..]);
                    off += <$fty as $crate::wire::Fixed>::SIZE;
                )*
                Self { $($field,)* }
            }
            #[allow(unused_assignments, unused_variables, unused_mut)]
            fn sample(seed: u64) -> Self {
                let mut s = seed.wrapping_mul(7);
                $(
                    s += 1;
                    let $field = <$fty as $crate::wire::Fixed>::sample(s);
                )*
                Self { $($field,)* }
            }
        }
    };
}

/// Declares a message: fixed fields, then tails (see the module comment).
#[macro_export]
macro_rules! message {
    // With tails: the struct borrows from the payload.
    (
        $(#[doc = $doc:expr])*
        pub struct $name:ident<'a> {
            $( $(#[doc = $fdoc:expr])* pub $field:ident : $fty:ty, )*
            tail {
                $( $(#[doc = $tdoc:expr])* pub $tfield:ident : $tty:ident, )+
            }
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name<'a> {
            $( $(#[doc = $fdoc])* pub $field: $fty, )*
            $( $(#[doc = $tdoc])* pub $tfield: $crate::wire::$tty<'a>, )+
        }

        impl<'a> $name<'a> {
            /// Size of the fixed part, tail length fields included.
            pub const FIXED_SIZE: usize = 0
                $(+ <$fty as $crate::wire::Fixed>::SIZE)*
                $(+ <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::KIND.len_size())+;
        }

        impl<'a> $crate::wire::Wire<'a> for $name<'a> {
            const DESC: &'static $crate::wire::MessageDesc = &$crate::wire::MessageDesc {
                name: stringify!($name),
                doc: concat!($($doc, "\n",)* ""),
                fields: &[ $( $crate::wire::FieldDesc {
                    name: stringify!($field),
                    ty: <$fty as $crate::wire::Fixed>::TYPE,
                    doc: concat!($($fdoc, " ",)* ""),
                }, )* ],
                tails: &[ $( $crate::wire::TailDesc {
                    name: stringify!($tfield),
                    kind: <$crate::wire::$tty<'static> as $crate::wire::Tail<'static>>::KIND,
                    doc: concat!($($tdoc, " ",)* ""),
                }, )+ ],
                fixed_size: 0
                    $(+ <$fty as $crate::wire::Fixed>::SIZE)*
                    $(+ <$crate::wire::$tty<'static> as $crate::wire::Tail<'static>>::KIND.len_size())+,
                sample: |out| {
                    let mut s = 0u64;
                    $( s += 1; let $field = <$fty as $crate::wire::Fixed>::sample(s); )*
                    $( s += 1; let $tfield = <$crate::wire::$tty<'static> as $crate::wire::Tail<'static>>::sample(s); )+
                    let _ = s;
                    $crate::wire::Wire::encode(&$name { $($field,)* $($tfield,)+ }, out);
                },
                roundtrip: |bytes| {
                    let mut u = $crate::wire::Unstructured::new(bytes);
                    $( let $field = <$fty as $crate::wire::Fixed>::arbitrary(&mut u); )*
                    let ntails = [$(stringify!($tfield)),+].len();
                    let mut i = 0usize;
                    $( i += 1; let $tfield = <$crate::wire::$tty<'_> as $crate::wire::Tail<'_>>::arbitrary(&mut u, i == ntails); )+
                    let v = $name { $($field,)* $($tfield,)+ };
                    $crate::check_roundtrip!($name, v)
                },
                validate: |b| <$name<'_> as $crate::wire::Wire<'_>>::decode(b).map(|_| ()),
            };

            #[inline]
            #[allow(unused_assignments)]
            fn encode(&self, out: &mut Vec<u8>) {
                let start = out.len();
                out.resize(start + Self::FIXED_SIZE, 0);
                let fixed = &mut out[start..];
                let mut off = 0usize;
                $(
                    <$fty as $crate::wire::Fixed>::put(&self.$field, &mut fixed[off..]);
                    off += <$fty as $crate::wire::Fixed>::SIZE;
                )*
                $(
                    {
                        let k = <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::KIND;
                        $crate::wire::put_len(&mut fixed[off..], k.len_size(),
                            $crate::wire::Tail::count(&self.$tfield));
                        off += k.len_size();
                    }
                )+
                $( $crate::wire::Tail::write(&self.$tfield, out); )+
            }

            #[inline]
            fn encoded_len(&self) -> usize {
                Self::FIXED_SIZE
                    $(+ $crate::wire::Tail::count(&self.$tfield)
                        * <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::KIND.unit())+
            }

            #[inline]
            #[allow(unused_assignments)]
            fn decode_prefix(buf: &'a [u8]) -> Result<(Self, usize), $crate::ProtoError> {
                if buf.len() < Self::FIXED_SIZE {
                    return Err($crate::ProtoError::Truncated {
                        what: stringify!($name), need: Self::FIXED_SIZE, have: buf.len(),
                    });
                }
                let mut off = 0usize;
                $(
                    let $field = <$fty as $crate::wire::Fixed>::get(&buf[off..]);
                    off += <$fty as $crate::wire::Fixed>::SIZE;
                )*
                let mut pos = Self::FIXED_SIZE;
                $(
                    let $tfield = {
                        let k = <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::KIND;
                        let nbytes = if k.len_size() == 0 {
                            buf.len() - pos
                        } else {
                            let count = $crate::wire::get_len(&buf[off..], k.len_size());
                            off += k.len_size();
                            if count > k.max() {
                                return Err($crate::ProtoError::TooLong {
                                    what: concat!(stringify!($name), ".", stringify!($tfield)),
                                    len: count, max: k.max(),
                                });
                            }
                            count * k.unit()
                        };
                        if buf.len() - pos < nbytes {
                            return Err($crate::ProtoError::Truncated {
                                what: concat!(stringify!($name), ".", stringify!($tfield)),
                                need: pos + nbytes, have: buf.len(),
                            });
                        }
                        let v = <$crate::wire::$tty<'a> as $crate::wire::Tail<'a>>::read(&buf[pos..pos + nbytes])?;
                        pos += nbytes;
                        v
                    };
                )+
                Ok((Self { $($field,)* $($tfield,)+ }, pos))
            }
        }
    };
    // Without tails: a plain copyable struct.
    (
        $(#[doc = $doc:expr])*
        pub struct $name:ident {
            $( $(#[doc = $fdoc:expr])* pub $field:ident : $fty:ty, )*
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name {
            $( $(#[doc = $fdoc])* pub $field: $fty, )*
        }

        impl $name {
            /// Size of the whole message.
            pub const FIXED_SIZE: usize = 0 $(+ <$fty as $crate::wire::Fixed>::SIZE)*;
        }

        impl<'a> $crate::wire::Wire<'a> for $name {
            const DESC: &'static $crate::wire::MessageDesc = &$crate::wire::MessageDesc {
                name: stringify!($name),
                doc: concat!($($doc, "\n",)* ""),
                fields: &[ $( $crate::wire::FieldDesc {
                    name: stringify!($field),
                    ty: <$fty as $crate::wire::Fixed>::TYPE,
                    doc: concat!($($fdoc, " ",)* ""),
                }, )* ],
                tails: &[],
                fixed_size: 0 $(+ <$fty as $crate::wire::Fixed>::SIZE)*,
                #[allow(unused_mut)]
                sample: |out| {
                    let mut s = 0u64;
                    $( s += 1; let $field = <$fty as $crate::wire::Fixed>::sample(s); )*
                    let _ = s;
                    $crate::wire::Wire::encode(&$name { $($field,)* }, out);
                },
                #[allow(unused_variables, unused_mut)]
                roundtrip: |bytes| {
                    let mut u = $crate::wire::Unstructured::new(bytes);
                    $( let $field = <$fty as $crate::wire::Fixed>::arbitrary(&mut u); )*
                    let v = $name { $($field,)* };
                    $crate::check_roundtrip!($name, v)
                },
                validate: |b| <$name as $crate::wire::Wire<'_>>::decode(b).map(|_| ()),
            };

            #[inline]
            #[allow(unused_assignments, unused_variables, unused_mut)]
            fn encode(&self, out: &mut Vec<u8>) {
                let start = out.len();
                out.resize(start + Self::FIXED_SIZE, 0);
                let fixed = &mut out[start..];
                let mut off = 0usize;
                $(
                    <$fty as $crate::wire::Fixed>::put(&self.$field, &mut fixed[off..]);
                    off += <$fty as $crate::wire::Fixed>::SIZE;
                )*
            }

            #[inline]
            fn encoded_len(&self) -> usize {
                Self::FIXED_SIZE
            }

            #[inline]
            #[allow(unused_assignments, unused_variables, unused_mut)]
            fn decode_prefix(buf: &'a [u8]) -> Result<(Self, usize), $crate::ProtoError> {
                if buf.len() < Self::FIXED_SIZE {
                    return Err($crate::ProtoError::Truncated {
                        what: stringify!($name), need: Self::FIXED_SIZE, have: buf.len(),
                    });
                }
                let mut off = 0usize;
                $(
                    let $field = <$fty as $crate::wire::Fixed>::get(&buf[off..]);
                    off += <$fty as $crate::wire::Fixed>::SIZE;
                )*
                Ok((Self { $($field,)* }, Self::FIXED_SIZE))
            }
        }
    };
}
