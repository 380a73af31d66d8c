//! Steady-state requests (getattr, 4 KiB read, 4 KiB write) allocate nothing on the
//! engine's core threads: a counting global allocator counts allocations made by
//! threads the engine marks through its `on_core_start` hook.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use qtfs_client::{ClientConfig, Cred, Session};
use qtfs_engine::{Config, Engine, StartOptions};
use qtfs_proto::consts::open;

struct Counting;
static CORE_ALLOCS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static IS_CORE: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if IS_CORE.try_with(|c| c.get()).unwrap_or(false) {
            CORE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if IS_CORE.try_with(|c| c.get()).unwrap_or(false) {
            CORE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn mark_core() {
    IS_CORE.with(|c| c.set(true));
}

#[test]
fn no_allocation_per_request_in_steady_state() {
    let d = tempfile::tempdir().unwrap();
    let export = d.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let wl = d.path().join("wl");
    let p = export.display();
    std::fs::write(
        &wl,
        format!("[Mount]\nPath={p}\n[Open]\nPath={p}\n[Read]\nPath={p}\n[Write]\nPath={p}\n[Create]\nPath={p}\n"),
    )
    .unwrap();
    let mut cfg = Config::new(vec!["tcp:127.0.0.1:0".parse().unwrap()], wl);
    cfg.insecure = true;
    cfg.cores = 1;
    let mut engine = Engine::start(cfg, StartOptions { on_core_start: Some(mark_core), ..Default::default() }).unwrap();
    let s = Session::connect(ClientConfig::new(engine.addrs()[0].clone()).insecure(), 1).unwrap();
    let root = Cred::root();
    let (ex, _) = s.mount(export.to_str().unwrap(), &root).unwrap();
    let (h, _) = s.create(ex, b"f", open::RDWR, 0o644, 0, true, &root).unwrap();
    let block = vec![5u8; 4096];
    // Pipelined requests may run in any order: give the reads data from the start.
    std::fs::write(export.join("f"), vec![1u8; 64 * 4096]).unwrap();
    let round = |n: usize| {
        for i in 0..n {
            let off = (i as u64 % 64) * 4096;
            // Pipelined bursts, as a busy client sends them.
            let w = s
                .submit(
                    qtfs_proto::Op::WRITE,
                    &qtfs_proto::WriteReq { handle: h, offset: off, flags: 0, data: qtfs_proto::Rest(&block) },
                )
                .unwrap();
            let r = s.submit(qtfs_proto::Op::READ, &qtfs_proto::ReadReq { handle: h, offset: off, len: 4096 }).unwrap();
            let g = s
                .submit(
                    qtfs_proto::Op::GETATTR,
                    &qtfs_proto::GetattrReq {
                        ctx: qtfs_proto::ReqCtx { export: ex, uid: 0, gid: 0 },
                        flags: 0,
                        groups: qtfs_proto::Groups::EMPTY,
                        path: qtfs_proto::Path(b"f"),
                    },
                )
                .unwrap();
            w.wait().unwrap();
            assert_eq!(r.wait().unwrap().payload.len(), 4096);
            g.wait().unwrap();
        }
    };
    round(3000); // warm the pools, slabs and histograms
    let before = CORE_ALLOCS.load(Ordering::Relaxed);
    round(5000);
    let allocs = CORE_ALLOCS.load(Ordering::Relaxed) - before;
    let requests = 15_000u64;
    eprintln!("core-thread allocations: {allocs} for {requests} requests");
    assert!(
        allocs * 100 < requests,
        "{allocs} allocations for {requests} requests: the steady state must not allocate per request"
    );
    s.close();
    engine.stop();
}
