//! Fixed-size wire fields: the [`Fixed`] trait (little-endian integers, byte arrays and,
//! through `record!`, nested records) and [`Unstructured`], the arbitrary-input source
//! that property tests and fuzzing build values from.

use super::{FieldType, Scalar};

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
