//! Per-core pools of byte buffers, so that steady-state requests allocate nothing.

const TIERS: [usize; 3] = [4096, 64 * 1024, qtfs_proto::MAX_PAYLOAD + qtfs_proto::HEADER_SIZE];
const KEEP: [usize; 3] = [1024, 128, 16];

/// Free lists of three capacity tiers (4 KiB, 64 KiB, 1 MiB + header); larger buffers
/// are not kept.
#[derive(Default)]
pub(crate) struct BufPool {
    free: [Vec<Vec<u8>>; 3],
}

impl BufPool {
    /// An empty buffer with at least `cap` bytes of capacity.
    pub fn get(&mut self, cap: usize) -> Vec<u8> {
        match TIERS.iter().position(|&t| cap <= t) {
            Some(i) => self.free[i].pop().unwrap_or_else(|| Vec::with_capacity(TIERS[i])),
            None => Vec::with_capacity(cap),
        }
    }

    /// Returns a buffer to the pool.
    pub fn put(&mut self, mut b: Vec<u8>) {
        let c = b.capacity();
        if let Some(i) = TIERS.iter().rposition(|&t| c >= t)
            && c <= TIERS[i] * 2
            && self.free[i].len() < KEEP[i]
        {
            b.clear();
            self.free[i].push(b);
        }
    }
}

#[cfg(test)]
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
}
