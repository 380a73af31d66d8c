//! `loadgen`: drives the engine over TCP loopback and compares it, in the same run, with
//! the transport limit (`qtfs-echo`: same frames, same pipelining, no file system).
//!
//! Workloads: getattr, open+close, 4 KiB read, 4 KiB write, 1 MiB read, readdir of 1,000
//! entries; queue depth 1 and 32; 1 and 4 connections. Each connection is one thread
//! keeping `qd` requests in flight with raw pipelined frames (no per-request channel), so
//! the client costs as little as possible and the server is what is measured. Also:
//! engine RSS with many connections under load, and engine scaling over `--cores`.
//!
//! `loadgen` alone starts everything itself on a tmpfs export and writes
//! `perf/results/<date>-<host>-loadgen.{json,md}` and SVG charts; `--server ADDR
//! --export PATH` drives an engine that is already running.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use qtfs_client::{ClientConfig, Connection, Cred, Session};
use qtfs_perf::procs::{self, Tmpfs};
use qtfs_perf::results::Method;
use qtfs_perf::{CaseResult, Results, System};
use qtfs_proto::consts::open;
use qtfs_proto::*;

#[path = "loadgen/cpu.rs"]
mod cpu;

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Engine load generator with the transport limit measured in the same run")]
struct Cli {
    /// Drive a running server instead of starting engine and echo server.
    #[arg(long)]
    server: Option<String>,
    /// HOST directory to MOUNT on that server (prepared by loadgen: files are created).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Pre-shared key file for --server.
    #[arg(long)]
    psk_file: Option<PathBuf>,
    /// Workloads, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "getattr,open-close,read4k,write4k,read1m,readdir1000")]
    ops: Vec<Workload>,
    /// Queue depths: requests each connection keeps in flight, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    qd: Vec<usize>,
    /// Connection counts, comma-separated (one thread per connection).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    conns: Vec<usize>,
    /// Seconds per case.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Rounds (each round runs engine and echo back to back per case).
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// One round, 1.5 s per case, fewer cases.
    #[arg(long)]
    quick: bool,
    /// Engine threads for the comparison (default: min(4, CPUs)).
    #[arg(long)]
    cores: Option<usize>,
    /// Skip the RSS and scaling measurements.
    #[arg(long)]
    no_extras: bool,
    /// Only the engine's CPU time per request beside its bare syscalls' (getattr,
    /// open-close, read4k, write4k at the largest --qd): `<date>-<host>-engine-cpu.*`.
    #[arg(long)]
    engine_cpu: bool,
    /// Where results go.
    #[arg(long, default_value = "perf/results")]
    out: PathBuf,
    /// Scratch directory (a tmpfs is mounted inside).
    #[arg(long, default_value = "/tmp/qtfs-loadgen")]
    work: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
enum Workload {
    /// GETATTR of one file.
    Getattr,
    /// OPEN + CLOSE of one file.
    OpenClose,
    /// 4 KiB READ at random offsets.
    Read4k,
    /// 4 KiB WRITE at random offsets.
    Write4k,
    /// 1 MiB READ, sequential.
    Read1m,
    /// READDIR of a directory of 1,000 entries.
    #[value(name = "readdir1000")]
    Readdir,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Getattr => "getattr",
            Workload::OpenClose => "open-close",
            Workload::Read4k => "read4k",
            Workload::Write4k => "write4k",
            Workload::Read1m => "read1m",
            Workload::Readdir => "readdir1000",
        }
    }
    /// Payload bytes per operation (for MB/s), 0 for metadata.
    fn bytes(self) -> u64 {
        match self {
            Workload::Read4k | Workload::Write4k => 4096,
            Workload::Read1m => 1 << 20,
            _ => 0,
        }
    }
}

const FILE_SIZE: u64 = 64 << 20;

/// Where to connect and what to name.
#[derive(Clone)]
struct Target {
    cfg: ClientConfig,
    export_path: String,
}

struct Outcome {
    ops: u64,
    hist: Histogram<u64>,
    secs: f64,
}

/// One pipelined connection: keeps `qd` operations in flight until `stop`.
fn drive(
    t: &Target,
    w: Workload,
    qd: usize,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> std::io::Result<(u64, Histogram<u64>)> {
    let conn = Connection::open(&t.cfg, None).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut s = TcpStream::from(conn.stream.into_fd());
    let mut next_id = 1u64;
    let mut call = |s: &mut TcpStream, op: Op, msg: &dyn Fn(&mut Vec<u8>)| -> std::io::Result<(FrameHeader, Vec<u8>)> {
        let mut out = Vec::new();
        let start = out.len();
        out.resize(HEADER_SIZE, 0);
        msg(&mut out);
        let h = FrameHeader::request(op, next_id, (out.len() - HEADER_SIZE) as u32);
        next_id += 1;
        h.write_to(&mut out[start..]);
        s.write_all(&out)?;
        let mut hb = [0u8; HEADER_SIZE];
        s.read_exact(&mut hb)?;
        let rh = FrameHeader::decode(&hb, MAX_PAYLOAD).map_err(std::io::Error::other)?;
        let mut p = vec![0u8; rh.len as usize];
        s.read_exact(&mut p)?;
        if rh.is_error() {
            return Err(std::io::Error::from_raw_os_error(rh.status));
        }
        Ok((rh, p))
    };
    let root = ReqCtx::default();
    let path = t.export_path.clone();
    let (_, p) = call(&mut s, Op::MOUNT, &|o| {
        MountReq { ctx: root, flags: 0, groups: Groups::EMPTY, path: Path(path.as_bytes()) }.encode(o)
    })?;
    let export = MountRsp::decode(&p).map_err(std::io::Error::other)?.export;
    let ctx = ReqCtx { export, uid: 0, gid: 0 };
    let (_, p) = call(&mut s, Op::OPEN, &|o| {
        OpenReq { ctx, flags: open::RDWR, mode: 0, groups: Groups::EMPTY, path: Path(b"f") }.encode(o)
    })?;
    let handle = OpenRsp::decode(&p).map_err(std::io::Error::other)?.handle;

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 2).expect("bounds");
    let wbuf = vec![0x5au8; 4096];
    let mut rng = seed | 1;
    let mut seq_off = 0u64;
    // Slot i holds (send time, phase) of the operation with id ≡ i (mod slots).
    let slots = qd.next_power_of_two() * 4;
    let mut sent: Vec<Option<(Instant, u8)>> = vec![None; slots];
    let mut id = 1u64;
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let encode = |out: &mut Vec<u8>, id: u64, phase: u8, handle2: u64, rng: &mut u64, seq_off: &mut u64| {
        let start = out.len();
        out.resize(start + HEADER_SIZE, 0);
        let op = match (w, phase) {
            (Workload::Getattr, _) => {
                GetattrReq { ctx, flags: 0, groups: Groups::EMPTY, path: Path(b"f") }.encode(out);
                Op::GETATTR
            }
            (Workload::OpenClose, 0) => {
                OpenReq { ctx, flags: open::RDONLY, mode: 0, groups: Groups::EMPTY, path: Path(b"f") }.encode(out);
                Op::OPEN
            }
            (Workload::OpenClose, _) => {
                HandleReq { handle: handle2 }.encode(out);
                Op::CLOSE
            }
            (Workload::Read4k, _) | (Workload::Write4k, _) => {
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                let off = (*rng % (FILE_SIZE / 4096)) * 4096;
                if w == Workload::Read4k {
                    ReadReq { handle, offset: off, len: 4096 }.encode(out);
                    Op::READ
                } else {
                    WriteReq { handle, offset: off, flags: 0, data: Rest(&wbuf) }.encode(out);
                    Op::WRITE
                }
            }
            (Workload::Read1m, _) => {
                ReadReq { handle, offset: *seq_off, len: 1 << 20 }.encode(out);
                *seq_off = (*seq_off + (1 << 20)) % FILE_SIZE;
                Op::READ
            }
            (Workload::Readdir, _) => {
                ReaddirReq {
                    ctx,
                    cookie: 0,
                    max_bytes: 64 * 1024,
                    flags: 0,
                    groups: Groups::EMPTY,
                    path: Path(b"dir1000"),
                }
                .encode(out);
                Op::READDIR
            }
        };
        let h = FrameHeader::request(op, id, (out.len() - start - HEADER_SIZE) as u32);
        h.write_to(&mut out[start..start + HEADER_SIZE]);
    };
    for _ in 0..qd {
        encode(&mut out, id, 0, 0, &mut rng, &mut seq_off);
        sent[(id as usize) % slots] = Some((Instant::now(), 0));
        id += 1;
    }
    s.write_all(&out)?;
    let mut ops = 0u64;
    let mut inflight = qd;
    let mut rx: Vec<u8> = Vec::with_capacity(4 << 20);
    let mut tmp = vec![0u8; 1 << 20];
    while inflight > 0 {
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        rx.extend_from_slice(&tmp[..n]);
        out.clear();
        let mut p = FrameParser::new(&rx, MAX_PAYLOAD);
        let stopping = stop.load(Ordering::Relaxed);
        while let Some(f) = p.next_frame().map_err(std::io::Error::other)? {
            if f.header.is_error() {
                return Err(std::io::Error::from_raw_os_error(f.header.status));
            }
            let slot = (f.header.id as usize) % slots;
            let (t0, phase) = sent[slot].take().ok_or_else(|| std::io::Error::other("response to an unknown id"))?;
            inflight -= 1;
            if w == Workload::OpenClose && phase == 0 {
                // Phase two of the same operation: close the handle just opened.
                let h2 = OpenRsp::decode(f.payload).map_err(std::io::Error::other)?.handle;
                encode(&mut out, id, 1, h2, &mut rng, &mut seq_off);
                sent[(id as usize) % slots] = Some((t0, 1));
                id += 1;
                inflight += 1;
                continue;
            }
            let _ = hist.record(t0.elapsed().as_nanos() as u64);
            ops += 1;
            if !stopping {
                encode(&mut out, id, 0, 0, &mut rng, &mut seq_off);
                if sent[(id as usize) % slots].is_some() {
                    return Err(std::io::Error::other("id window overflow"));
                }
                sent[(id as usize) % slots] = Some((Instant::now(), 0));
                id += 1;
                inflight += 1;
            }
        }
        let used = p.consumed();
        rx.drain(..used);
        if !out.is_empty() {
            s.write_all(&out)?;
        }
    }
    Ok((ops, hist))
}

fn run_case(t: &Target, w: Workload, qd: usize, conns: usize, secs: f64) -> std::io::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|i| {
            let t = t.clone();
            let stop = stop.clone();
            std::thread::spawn(move || drive(&t, w, qd, stop, 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1)))
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 2).expect("bounds");
    let mut ops = 0;
    for th in threads {
        let (n, h) = th.join().map_err(|_| std::io::Error::other("driver panicked"))??;
        ops += n;
        let _ = hist.add(&h);
    }
    Ok(Outcome { ops, hist, secs: t0.elapsed().as_secs_f64() })
}

/// Creates the files the workloads use under `dir`.
fn prepare(dir: &Path) -> std::io::Result<()> {
    let f = std::fs::File::create(dir.join("f"))?;
    f.set_len(FILE_SIZE)?;
    let chunk = vec![0xabu8; 1 << 20];
    let mut w = std::io::BufWriter::new(&f);
    for _ in 0..(FILE_SIZE >> 20) {
        w.write_all(&chunk)?;
    }
    w.flush()?;
    let d = dir.join("dir1000");
    std::fs::create_dir_all(&d)?;
    for i in 0..1000 {
        std::fs::write(d.join(format!("entry-{i:05}")), b"")?;
    }
    Ok(())
}

/// Bytes of a READDIR response for `dir1000` on the engine (so the echo server answers
/// with the same size).
fn readdir_bytes(t: &Target) -> usize {
    let Ok(s) = Session::connect(t.cfg.clone(), 1) else { return 32 * 1024 };
    let Ok((ex, _)) = s.mount(&t.export_path, &Cred::root()) else { return 32 * 1024 };
    let r = s.call(
        Op::READDIR,
        &ReaddirReq {
            ctx: ReqCtx { export: ex, uid: 0, gid: 0 },
            cookie: 0,
            max_bytes: 64 * 1024,
            flags: 0,
            groups: Groups::EMPTY,
            path: Path(b"dir1000"),
        },
    );
    r.map(|r| r.payload.len().saturating_sub(8)).unwrap_or(32 * 1024)
}

/// Results of suite `suite`: `rounds` interleaved rounds of `secs` seconds a case, no warm-up.
fn interleaved(suite: &str, rounds: u32, secs: f64, notes: String, systems: Vec<System>) -> Results {
    Results::new(suite, Method { rounds, order: "interleaved".into(), duration_s: secs, warmup_s: 0.0, notes }, systems)
}

fn progress(msg: &str) {
    eprintln!("[loadgen] {msg}");
}

fn main() {
    let cli = Cli::parse();
    let workloads = cli.ops.clone();
    let (secs, rounds) = if cli.quick { (cli.duration.min(1.5), 1) } else { (cli.duration, cli.rounds.max(1)) };
    // SAFETY: ignoring SIGPIPE: a server that goes away is an error, not a signal.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if cli.engine_cpu {
        return cpu::run(&cli, secs, rounds);
    }

    if let Some(server) = &cli.server {
        let export = cli.export.clone().expect("--export PATH is required with --server");
        prepare(&export).expect("prepare export");
        let mut cfg = ClientConfig::new(Addr::parse(server).expect("address"));
        match &cli.psk_file {
            Some(p) => cfg = cfg.with_psk(Psk::load(p).expect("key")),
            None => cfg = cfg.insecure(),
        }
        let t = Target { cfg, export_path: export.display().to_string() };
        for &w in &workloads {
            for &qd in &cli.qd {
                for &c in &cli.conns {
                    let o = run_case(&t, w, qd, c, secs).expect("case");
                    println!(
                        "{:<12} qd {:<3} conns {:<2} {:>10.0} ops/s  p50 {:>7.1} µs  p99 {:>7.1} µs  p999 {:>7.1} µs",
                        w.name(),
                        qd,
                        c,
                        o.ops as f64 / o.secs,
                        o.hist.value_at_quantile(0.5) as f64 / 1e3,
                        o.hist.value_at_quantile(0.99) as f64 / 1e3,
                        o.hist.value_at_quantile(0.999) as f64 / 1e3
                    );
                }
            }
        }
        return;
    }

    // Self-contained comparison.
    let work = cli.work.clone();
    let _ = std::fs::create_dir_all(&work);
    let tmp = Tmpfs::mount(&work.join("export"), 256).expect("tmpfs export (run as root)");
    let export = tmp.0.canonicalize().expect("export path");
    prepare(&export).expect("prepare export");
    let cpus = qtfs_perf::machine::cpus();
    let cores = cli.cores.unwrap_or(cpus.min(4));
    progress(&format!("engine --cores {cores} on a tmpfs export; echo server as the transport limit"));
    let engine = procs::start_engine(&work, &export, cores, &[]).expect("start engine");
    let eng_t = Target {
        cfg: ClientConfig::new(engine.addr.clone().expect("engine address")).insecure(),
        export_path: export.display().to_string(),
    };
    let rb = readdir_bytes(&eng_t);
    let mut cmd = std::process::Command::new(procs::sibling("qtfs-echo"));
    cmd.args(["--readdir-bytes", &rb.to_string()]);
    let echo = procs::spawn_until_ready(cmd, "echo ready", Duration::from_secs(10)).expect("start qtfs-echo");
    let echo_t = Target {
        cfg: ClientConfig::new(echo.addr.clone().expect("echo address")).insecure(),
        export_path: export.display().to_string(),
    };

    let mut cases: Vec<(Workload, usize, usize)> = Vec::new();
    for &w in &workloads {
        for &qd in &cli.qd {
            for &c in &cli.conns {
                if cli.quick && c > 1 && qd == 1 {
                    continue;
                }
                cases.push((w, qd, c));
            }
        }
    }
    let total = cases.len() as f64 * rounds as f64 * 2.0 * (secs + 0.3);
    progress(&format!("{} cases × {rounds} round(s) × 2 systems ≈ {:.0} s", cases.len(), total));
    let mut results = interleaved(
        "loadgen",
        rounds,
        secs,
        format!(
            "TCP loopback, tmpfs export, engine --cores {cores}, client and servers share {cpus} CPUs; ops/s per case"
        ),
        vec![
            System::new("engine", "measured", &format!("engine --cores {cores}, io_uring, tmpfs export")),
            System::new("echo", "limit", "qtfs-echo: same frames and pipelining, no file system"),
        ],
    );
    let started = Instant::now();
    let mut done = 0.0;
    for &(w, qd, c) in &cases {
        let name = format!("{}-qd{qd}-c{c}", w.name());
        let mut cr = CaseResult::new(&name, "ops_per_s", "ops/s", true);
        let mut best_p: [(f64, f64, f64); 2] = [(0.0, 0.0, 0.0); 2];
        let mut best_ops = [0.0f64; 2];
        for _ in 0..rounds {
            for (i, (sys, t)) in [("engine", &eng_t), ("echo", &echo_t)].into_iter().enumerate() {
                match run_case(t, w, qd, c, secs) {
                    Ok(o) => {
                        let rate = o.ops as f64 / o.secs;
                        cr.add(sys, rate);
                        if rate > best_ops[i] {
                            best_ops[i] = rate;
                            best_p[i] = (
                                o.hist.value_at_quantile(0.5) as f64 / 1e3,
                                o.hist.value_at_quantile(0.99) as f64 / 1e3,
                                o.hist.value_at_quantile(0.999) as f64 / 1e3,
                            );
                        }
                    }
                    Err(e) => progress(&format!("{name} on {sys}: {e}")),
                }
                done += secs + 0.3;
            }
        }
        for (i, sys) in ["engine", "echo"].iter().enumerate() {
            cr.extra(sys, "p50_us", best_p[i].0);
            cr.extra(sys, "p99_us", best_p[i].1);
            cr.extra(sys, "p999_us", best_p[i].2);
            if w.bytes() > 0 {
                cr.extra(sys, "MiB_per_s", best_ops[i] * w.bytes() as f64 / (1 << 20) as f64);
            }
        }
        let target: &[(&str, Option<f64>, Option<f64>)] = match w {
            Workload::Read1m => &[("engine/echo", Some(0.7), None)],
            Workload::Getattr | Workload::Read4k | Workload::Write4k | Workload::OpenClose => {
                &[("engine/echo", Some(0.7), None)]
            }
            Workload::Readdir => &[],
        };
        cr.finish(&[("engine", "echo")], target);
        progress(&format!(
            "{name:<22} engine {:>9.0} ops/s  echo {:>9.0} ops/s  ratio {:.2}  [{:.0}/{:.0} s]",
            cr.best.get("engine").copied().unwrap_or(0.0),
            cr.best.get("echo").copied().unwrap_or(0.0),
            cr.ratios.get("engine/echo").copied().unwrap_or(0.0),
            started.elapsed().as_secs_f64(),
            total.max(done)
        ));
        results.results.push(cr);
    }
    drop(echo);
    let engine_rss = engine.rss_kib();
    drop(engine);

    if !cli.no_extras {
        // RSS with 4 cores and 64 connections under load.
        progress("RSS: engine --cores 4, 64 connections × qd 8, 4 KiB reads");
        if let Ok(big) = procs::start_engine(&work, &export, 4, &[]) {
            let t = Target {
                cfg: ClientConfig::new(big.addr.clone().expect("addr")).insecure(),
                export_path: eng_t.export_path.clone(),
            };
            let stop = Arc::new(AtomicBool::new(false));
            let sampler = {
                let stop = stop.clone();
                let pid = big.pid();
                std::thread::spawn(move || {
                    let mut max = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(r) = std::fs::read_to_string(format!("/proc/{pid}/status")).ok().and_then(|s| {
                            s.lines()
                                .find(|l| l.starts_with("VmRSS:"))
                                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                        }) {
                            max = max.max(r);
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    max
                })
            };
            let o = run_case(&t, Workload::Read4k, 8, 64, secs.max(2.0));
            stop.store(true, Ordering::Relaxed);
            let max_kib = sampler.join().unwrap_or(0);
            let mut cr = CaseResult::new("rss-4cores-64conns", "max_rss", "MiB", false);
            cr.add("engine", max_kib as f64 / 1024.0);
            cr.add("target", 64.0);
            if let Ok(o) = o {
                cr.extra("engine", "ops_per_s", o.ops as f64 / o.secs);
            }
            cr.finish(&[("engine", "target")], &[("engine/target", None, Some(1.0))]);
            progress(&format!("max RSS {:.1} MiB (target ≤ 64 MiB)", max_kib as f64 / 1024.0));
            results.results.push(cr);
        }
        // Scaling over --cores 1..N.
        let mut scale_cases = Vec::new();
        for w in [Workload::Getattr, Workload::Read4k] {
            let mut cr = CaseResult::new(&format!("scaling-{}-qd32-c4", w.name()), "ops_per_s", "ops/s", true);
            // 1, 2, 4, … up to the CPUs of this machine (and the CPU count itself).
            let mut counts: Vec<usize> =
                std::iter::successors(Some(1usize), |n| Some(n * 2)).take_while(|&n| n <= cpus.max(1)).collect();
            if counts.last() != Some(&cpus.max(1)) {
                counts.push(cpus.max(1));
            }
            for &n in &counts {
                if let Ok(d) = procs::start_engine(&work, &export, n, &[]) {
                    let t = Target {
                        cfg: ClientConfig::new(d.addr.clone().expect("addr")).insecure(),
                        export_path: eng_t.export_path.clone(),
                    };
                    for _ in 0..rounds {
                        if let Ok(o) = run_case(&t, w, 32, 4, secs) {
                            cr.add(&format!("cores-{n}"), o.ops as f64 / o.secs);
                        }
                    }
                }
            }
            let pairs: Vec<(String, String)> =
                counts.iter().skip(1).map(|n| (format!("cores-{n}"), "cores-1".to_string())).collect();
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            cr.finish(&refs, &[]);
            progress(&format!("{}: {:?}", cr.case, cr.best));
            scale_cases.push(cr);
        }
        results.results.extend(scale_cases);
    }
    if let Some(r) = engine_rss {
        progress(&format!("engine RSS after the comparison: {:.1} MiB", r as f64 / 1024.0));
    }

    qtfs_perf::publish(&results, &cli.out, "loadgen");
}
