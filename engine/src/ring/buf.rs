//! Per-core pools of byte buffers, so that steady-state requests allocate nothing.

const TIERS: [usize; 3] = [4096, 64 * 1024, qtfs_proto::MAX_PAYLOAD + qtfs_proto::HEADER_SIZE];
const KEEP: [usize; 3] = [1024, 128, 16];
/// What `shrink` keeps of each tier.
const KEEP_IDLE: [usize; 3] = [64, 8, 1];

/// Free lists of three capacity tiers (4 KiB, 64 KiB, 1 MiB + header); larger buffers
/// are not kept.
#[derive(Default)]
pub(crate) struct BufPool {
    free: [Vec<Vec<u8>>; 3],
}

impl BufPool {
    /// An empty buffer with at least `cap` bytes of capacity.
    pub fn get(&mut self, cap: usize) -> Vec<u8> {
        match self.free.iter_mut().zip(TIERS).find(|(_, t)| cap <= *t) {
            Some((free, t)) => free.pop().unwrap_or_else(|| Vec::with_capacity(t)),
            None => Vec::with_capacity(cap),
        }
    }

    /// Returns a buffer to the pool.
    pub fn put(&mut self, mut b: Vec<u8>) {
        let c = b.capacity();
        if let Some(((free, t), keep)) = self.free.iter_mut().zip(TIERS).zip(KEEP).rev().find(|((_, t), _)| c >= *t)
            && c <= t * 2
            && free.len() < keep
        {
            b.clear();
            free.push(b);
        }
    }

    /// Frees the spare buffers beyond `KEEP_IDLE` (once a burst is over: a full pool
    /// of every tier is about 28 MiB per core).
    pub fn shrink(&mut self) {
        for (free, keep) in self.free.iter_mut().zip(KEEP_IDLE) {
            free.truncate(keep);
            free.shrink_to_fit();
        }
    }

    /// Spare buffers held (tests).
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.free.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn reuses_by_tier() {
        let mut p = BufPool::default();
        let b = p.get(100);
        assert!(b.capacity() >= 4096);
        let ptr = b.as_ptr();
        p.put(b);
        let b = p.get(4000);
        assert_eq!(b.as_ptr(), ptr, "reused");
        let big = p.get(1 << 20);
        assert!(big.capacity() >= 1 << 20);
        p.put(big);
        assert!(p.get(70_000).capacity() >= 70_000);
    }

    #[test]
    fn shrink_keeps_a_reserve() {
        let mut p = BufPool::default();
        let bufs: Vec<Vec<u8>> = (0..200).map(|_| p.get(100)).collect();
        for b in bufs {
            p.put(b);
        }
        assert_eq!(p.held(), 200);
        p.shrink();
        assert_eq!(p.held(), KEEP_IDLE[0]);
    }
}
