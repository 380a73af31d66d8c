//! The pre-shared key never survives in freed memory: every heap block freed while a key
//! is loaded, cloned and dropped is scanned (by a wrapping global allocator, before the
//! block goes back to the system allocator) for the key's bytes and for its hex text.
//! A separate test binary, so that the allocator watches nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use qtfs_proto::Psk;

/// 32 distinctive key bytes; a block holding their first 8, or the hex text of those,
/// counts as a leak.
const KEY: &[u8; 32] = b"QTFS-ZEROIZE-TEST-KEY-0123456789";

static ARMED: AtomicBool = AtomicBool::new(false);
static FREED_WITH_KEY: AtomicUsize = AtomicUsize::new(0);
static FREED_WITH_HEX: AtomicUsize = AtomicUsize::new(0);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The hex text of KEY's first 8 bytes, built without allocating (used in `dealloc`).
fn hex_prefix() -> [u8; 16] {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, &b) in KEY[..8].iter().enumerate() {
        out[2 * i] = D[(b >> 4) as usize];
        out[2 * i + 1] = D[(b & 15) as usize];
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay.windows(needle.len()).any(|w| w == needle)
}

struct Watching;

fn inspect(block: &[u8]) {
    if contains(block, &KEY[..8]) {
        FREED_WITH_KEY.fetch_add(1, Ordering::Relaxed);
    }
    if contains(block, &hex_prefix()) {
        FREED_WITH_HEX.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; `dealloc` only reads the
// block (still allocated, `layout.size()` bytes) before handing it back.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) {
            // SAFETY: the caller hands us a live block of layout.size() bytes; it is freed
            // only below.
            inspect(unsafe { std::slice::from_raw_parts(ptr, layout.size()) });
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A moved block leaves its old copy behind: treat it like a free.
        if ARMED.load(Ordering::Relaxed) {
            // SAFETY: the old block is live for layout.size() bytes until System.realloc.
            inspect(unsafe { std::slice::from_raw_parts(ptr, layout.size()) });
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Watching = Watching;

#[test]
fn a_dropped_key_leaves_no_copy_in_freed_memory() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("psk");
    std::fs::write(&p, format!("{}\n", hex(KEY))).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    ARMED.store(true, Ordering::SeqCst);
    {
        let k = Psk::load(&p).unwrap();
        assert_eq!(k.bytes(), KEY);
        let k2 = k.clone();
        drop(k);
        assert_eq!(k2.bytes(), KEY);
        let k3 = Psk::from_bytes(KEY.to_vec()).unwrap();
        assert_eq!(k3, k2);
        let short = Psk::from_bytes(KEY[..8].to_vec());
        assert!(short.is_err());
    }
    ARMED.store(false, Ordering::SeqCst);
    assert_eq!(FREED_WITH_KEY.load(Ordering::SeqCst), 0, "key bytes left in freed memory");
    assert_eq!(FREED_WITH_HEX.load(Ordering::SeqCst), 0, "the key file's text left in freed memory");
}
