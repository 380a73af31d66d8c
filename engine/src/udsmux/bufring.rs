//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`) for channel receives.
//!
//! A channel that waits for data holds no buffer: its receive names a buffer group and
//! the kernel picks a buffer only when bytes arrive. So a thousand idle channels cost a
//! thousand small headers, not a thousand 256 KiB buffers. A buffer is handed back to
//! the ring as soon as its bytes have been copied into a frame, within the same turn.
//!
//! This module owns the ring memory; it must not know what channels are.

// Reached by bytes from untrusted peers: a slip must fail a request, not panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;
use io_uring::types::BufRingEntry;

/// Bytes per buffer: also the largest SEQPACKET/DGRAM message a channel relays.
pub(crate) const BUF_SIZE: usize = 256 * 1024;
/// Buffers per core (a power of two).
const BUF_COUNT: u16 = 64;
/// Buffer group id of the channel ring.
pub(crate) const BGID: u16 = 0x5153;

pub(crate) struct BufRing {
    entries: *mut BufRingEntry,
    layout: Layout,
    bufs: Vec<u8>,
    /// Our copy of the tail; published with a release store.
    tail: u16,
}

impl BufRing {
    /// Allocates the buffers and registers the ring with `ring`.
    pub fn new(ring: &IoUring) -> io::Result<BufRing> {
        let layout = Layout::from_size_align(BUF_COUNT as usize * std::mem::size_of::<BufRingEntry>(), 4096)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc_zeroed(layout) } as *mut BufRingEntry;
        if entries.is_null() {
            return Err(io::Error::from_raw_os_error(libc::ENOMEM));
        }
        let mut r = BufRing { entries, layout, bufs: vec![0u8; BUF_SIZE * BUF_COUNT as usize], tail: 0 };
        // SAFETY: the entry array is page aligned, BUF_COUNT entries long, and lives until
        // `self` is dropped, which happens after the ring (the core drops its ring first).
        unsafe { ring.submitter().register_buf_ring_with_flags(entries as u64, BUF_COUNT, BGID, 0)? };
        for bid in 0..BUF_COUNT {
            r.put(bid);
        }
        Ok(r)
    }

    /// The received bytes of buffer `bid`.
    pub fn data(&self, bid: u16, len: usize) -> &[u8] {
        let start = (bid as usize % BUF_COUNT as usize) * BUF_SIZE;
        self.bufs.get(start..start + len.min(BUF_SIZE)).unwrap_or_default()
    }

    /// Gives buffer `bid` back to the kernel.
    pub fn put(&mut self, bid: u16) {
        let bid = bid % BUF_COUNT;
        let idx = (self.tail & (BUF_COUNT - 1)) as usize;
        let addr = self.bufs.as_ptr() as u64 + bid as u64 * BUF_SIZE as u64;
        // SAFETY: idx < BUF_COUNT, inside the entry array; the kernel reads an entry only
        // after the tail store below makes it visible.
        let e = unsafe { &mut *self.entries.add(idx) };
        e.set_addr(addr);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field of the first entry is the ring's shared tail; it is a
        // naturally aligned u16 that the kernel only reads.
        let tail = unsafe { &*(BufRingEntry::tail(self.entries) as *const AtomicU16) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the ring that used it is gone.
        unsafe { dealloc(self.entries as *mut u8, self.layout) };
    }
}
