//! Engine benches: whitelist matching (64 entries per group, deep paths), path
//! validation and kernel path resolution, and the per-core loop driven by an
//! in-process client (PING, GETATTR, 4 KiB READ from the page cache) at queue depth 32,
//! reported as operations per second of one core.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qtfs_client::{ClientConfig, Connection};
use qtfs_engine::{Config, Engine, StartOptions};
use qtfs_engine::{path, whitelist::Whitelist};
use qtfs_proto::consts::{WlType, open};
use qtfs_proto::*;
use std::hint::black_box;

fn whitelist(c: &mut Criterion) {
    let mut wl = Whitelist::default();
    for i in 0..64 {
        wl.add(WlType::Open, format!("/var/lib/libvirt/qemu/domain-{i}/channel").as_bytes()).unwrap();
    }
    let deep_hit = b"/var/lib/libvirt/qemu/domain-63/channel/target/a/b/c/d/e/f/g/h/monitor.sock";
    let deep_miss = b"/var/lib/libvirt/qemu/domain-99/channel/target/a/b/c/d/e/f/g/h/monitor.sock";
    let mut g = c.benchmark_group("whitelist");
    g.throughput(Throughput::Elements(1));
    g.bench_function("64_entries_deep_hit_last", |b| {
        b.iter(|| black_box(wl.allows(WlType::Open, black_box(deep_hit))))
    });
    g.bench_function("64_entries_deep_miss", |b| b.iter(|| black_box(wl.allows(WlType::Open, black_box(deep_miss)))));
    g.finish();
}

fn paths(c: &mut Criterion) {
    let deep = b"a/b/c/d/e/f/g/h/i/j/file.txt";
    let mut g = c.benchmark_group("path");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_and_split_11_components", |b| b.iter(|| black_box(path::split(black_box(deep)).unwrap())));
    // Kernel resolution beneath a root (what every request pays) against plain openat.
    let d = tempfile::tempdir().unwrap();
    let sub = d.path().join("a/b/c/d/e/f/g/h/i/j");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("file.txt"), b"x").unwrap();
    let root = std::fs::File::open(d.path()).unwrap();
    use std::os::fd::AsRawFd;
    let p = std::ffi::CString::new(deep.to_vec()).unwrap();
    g.bench_function("openat2_beneath_11_components", |b| {
        b.iter(|| {
            let fd = qtfs_engine::sys::openat2(root.as_raw_fd(), &p, libc::O_PATH, 0, 0x08 | 0x02).unwrap();
            black_box(fd)
        })
    });
    g.bench_function("openat_plain_11_components", |b| {
        b.iter(|| black_box(qtfs_engine::sys::openat(root.as_raw_fd(), &p, libc::O_PATH, 0).unwrap()))
    });
    g.finish();
}

/// A pipelined raw connection to an in-process engine.
struct Raw {
    s: TcpStream,
    export: u32,
    handle: u64,
    rx: Vec<u8>,
    _engine: Engine,
    _dir: tempfile::TempDir,
}

fn setup() -> Raw {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::write(export.join("f"), vec![1u8; 1 << 20]).unwrap();
    let wl = dir.path().join("wl");
    let p = export.display();
    std::fs::write(&wl, format!("[Mount]\nPath={p}\n[Open]\nPath={p}\n[Read]\nPath={p}\n")).unwrap();
    let mut cfg = Config::new(vec!["tcp:127.0.0.1:0".parse().unwrap()], wl);
    cfg.insecure = true;
    cfg.cores = 1;
    cfg.pin = true;
    let engine = Engine::start(cfg, StartOptions::default()).unwrap();
    let conn = Connection::open(&ClientConfig::new(engine.addrs()[0].clone()).insecure(), None).unwrap();
    let mut s = TcpStream::from(conn.stream.into_fd());
    let call = |s: &mut TcpStream, op: Op, body: Vec<u8>| -> Vec<u8> {
        let mut f = Vec::new();
        FrameHeader::request(op, 1, body.len() as u32).push(&mut f);
        f.extend_from_slice(&body);
        s.write_all(&f).unwrap();
        let mut hb = [0u8; HEADER_SIZE];
        s.read_exact(&mut hb).unwrap();
        let h = FrameHeader::decode(&hb, MAX_PAYLOAD).unwrap();
        let mut p = vec![0u8; h.len as usize];
        s.read_exact(&mut p).unwrap();
        assert!(!h.is_error(), "setup request {op} failed: {}", h.status);
        p
    };
    let path = export.display().to_string();
    let m = call(
        &mut s,
        Op::MOUNT,
        MountReq { ctx: ReqCtx::default(), flags: 0, groups: Groups::EMPTY, path: Path(path.as_bytes()) }.to_vec(),
    );
    let ex = MountRsp::decode(&m).unwrap().export;
    let ctx = ReqCtx { export: ex, uid: 0, gid: 0 };
    let o = call(
        &mut s,
        Op::OPEN,
        OpenReq { ctx, flags: open::RDONLY, mode: 0, groups: Groups::EMPTY, path: Path(b"f") }.to_vec(),
    );
    let handle = OpenRsp::decode(&o).unwrap().handle;
    Raw { s, export: ex, handle, rx: Vec::with_capacity(1 << 20), _engine: engine, _dir: dir }
}

/// Sends `n` requests in pipelined batches of 32 and waits for every response.
fn run(raw: &mut Raw, n: u64, frame: &[u8]) -> Duration {
    let t0 = Instant::now();
    let qd = 32u64;
    let mut sent = 0u64;
    let mut done = 0u64;
    let mut batch = Vec::with_capacity(frame.len() * qd as usize);
    while done < n {
        batch.clear();
        while sent < n && sent - done < qd {
            batch.extend_from_slice(frame);
            sent += 1;
        }
        if !batch.is_empty() {
            raw.s.write_all(&batch).unwrap();
        }
        let mut tmp = [0u8; 65536];
        let k = raw.s.read(&mut tmp).unwrap();
        raw.rx.extend_from_slice(&tmp[..k]);
        let mut p = FrameParser::new(&raw.rx, MAX_PAYLOAD);
        while let Some(f) = p.next_frame().unwrap() {
            assert!(!f.header.is_error());
            done += 1;
        }
        let used = p.consumed();
        raw.rx.drain(..used);
    }
    t0.elapsed()
}

fn engine_loop(c: &mut Criterion) {
    let mut raw = setup();
    let mut g = c.benchmark_group("engine_core");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    let mut ping = Vec::new();
    push_frame(&mut ping, FrameHeader::request(Op::PING, 7, 0), &Data { data: Rest(&[]) });
    g.bench_function("nop_qd32", |b| b.iter_custom(|n| run(&mut raw, n, &ping)));
    let mut getattr = Vec::new();
    let ctx = ReqCtx { export: raw.export, uid: 0, gid: 0 };
    push_frame(
        &mut getattr,
        FrameHeader::request(Op::GETATTR, 8, 0),
        &GetattrReq { ctx, flags: 0, groups: Groups::EMPTY, path: Path(b"f") },
    );
    g.bench_function("getattr_qd32", |b| b.iter_custom(|n| run(&mut raw, n, &getattr)));
    let mut read = Vec::new();
    push_frame(
        &mut read,
        FrameHeader::request(Op::READ, 9, 0),
        &ReadReq { handle: raw.handle, offset: 8192, len: 4096 },
    );
    g.bench_function("read4k_page_cache_qd32", |b| b.iter_custom(|n| run(&mut raw, n, &read)));
    g.finish();
}

criterion_group!(benches, whitelist, paths, engine_loop);
criterion_main!(benches);
