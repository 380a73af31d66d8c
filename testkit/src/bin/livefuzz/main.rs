//! livefuzz — a stateful fuzzer against a live engine (stable toolchain, no cargo-fuzz).
//!
//! ```text
//! livefuzz [--seconds N] [--seed S] [--clients N] [--cores N]
//! ```
//!
//! Starts the workspace's `engine` (testkit) on a tmpfs export, keeps a healthy client
//! asking GETATTR every 100 ms, and runs `--clients` fuzz clients for `--seconds`. Each
//! fuzz client loops over scenarios: garbage and mutated handshakes before ATTACH;
//! authenticated sessions sending valid, mutated and random requests (pipelined in
//! batches, handles reused after CLOSE and across sessions, connections dropped in the
//! middle of requests); READs left pending on FIFOs; floods of pipelined requests
//! never read. At the end it checks that the engine stayed up and logged no bug (a
//! panic, even one contained to a connection), that the healthy client got every
//! answer, and that within 5 s of the fuzz clients leaving the engine's RSS is back
//! within 2× its baseline + 16 MiB and its descriptors within baseline + 64. It prints
//! the frames sent and their rate, the healthy client's latency percentiles and the
//! RSS and descriptor figures before, during and after; exit status 0 = pass.
//!
//! The seed (printed; `--seed` replays it) fixes every fuzz client's choices; what the
//! engine answers, and so which handles exist, still depends on timing.
//!
//! Here: the command line, the shared statistics, the raw fuzz connection ([`Conn`]), the
//! scenarios and the checks at the end; the random inputs (the seeded generator, valid
//! requests and their mutations) are in `input`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qtfs_client::{ClientConfig, Cred, Session};
use qtfs_proto::consts::{self, open};
use qtfs_proto::*;
use qtfs_testkit::{Opts, TestEngine, connect_tcp_from, raw_handshake, wait_until};

mod input;

use input::{Rng, mutate, request};

struct Args {
    seconds: u64,
    seed: u64,
    clients: usize,
    cores: usize,
}

fn usage() -> ! {
    eprintln!("usage: livefuzz [--seconds N] [--seed S] [--clients N] [--cores N]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args { seconds: 60, seed: 0, clients: 4, cores: 2 };
    let mut seed = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        let num = |v: &str| -> u64 {
            let r = match v.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => v.parse(),
            };
            r.unwrap_or_else(|_| usage())
        };
        match k.as_str() {
            "--seconds" => a.seconds = num(&v),
            "--seed" => seed = Some(num(&v)),
            "--clients" => a.clients = num(&v).max(1) as usize,
            "--cores" => a.cores = num(&v).max(1) as usize,
            _ => usage(),
        }
    }
    a.seed = seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
    });
    a
}

#[derive(Default)]
struct Stats {
    frames: AtomicU64,
    bytes: AtomicU64,
    conns: AtomicU64,
    responses: AtomicU64,
    closed_by_engine: AtomicU64,
}

/// Handles seen by any fuzz client (reused across sessions, where they must fail).
type Shared = Arc<Mutex<Vec<u64>>>;

struct Ctx {
    dst: SocketAddr,
    stats: Arc<Stats>,
    handles: Shared,
    export_path: String,
    deadline: Instant,
}

/// One raw connection of a fuzz client.
struct Conn {
    s: TcpStream,
    rx: Vec<u8>,
    dead: bool,
    next_id: u64,
    export: u32,
    handles: Vec<u64>,
    closed: Vec<u64>,
}

impl Conn {
    fn open(ctx: &Ctx, rng: &mut Rng) -> Option<Conn> {
        // Spread over a few local addresses, as several DPUs would be.
        let src = Ipv4Addr::new(127, 0, 9, 1 + rng.below(8) as u8);
        let s = connect_tcp_from(src, ctx.dst).ok()?;
        s.set_nodelay(true).ok()?;
        s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
        ctx.stats.conns.fetch_add(1, Ordering::Relaxed);
        Some(Conn { s, rx: Vec::new(), dead: false, next_id: 100, export: 0, handles: Vec::new(), closed: Vec::new() })
    }

    fn send(&mut self, ctx: &Ctx, b: &[u8]) {
        if self.dead {
            return;
        }
        match self.s.write_all(b) {
            Ok(()) => {
                ctx.stats.frames.fetch_add(1, Ordering::Relaxed);
                ctx.stats.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            Err(_) => self.dead = true,
        }
    }

    /// Reads what arrives within `wait`; learns handles and the export from answers.
    /// Returns the answer to `want`, if it came.
    fn pump(&mut self, ctx: &Ctx, wait: Duration, want: Option<u64>) -> Option<(FrameHeader, Vec<u8>)> {
        let until = Instant::now() + wait;
        let mut got = None;
        while !self.dead {
            let left = until.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd { fd: self.s.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
            if n <= 0 {
                break;
            }
            let mut b = [0u8; 65536];
            match self.s.read(&mut b) {
                Ok(0) => {
                    ctx.stats.closed_by_engine.fetch_add(1, Ordering::Relaxed);
                    self.dead = true;
                }
                Ok(n) => self.rx.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.dead = true,
            }
            while self.rx.len() >= HEADER_SIZE {
                let Ok(h) = FrameHeader::decode(&self.rx, MAX_PAYLOAD) else {
                    self.dead = true;
                    break;
                };
                let total = HEADER_SIZE + h.len as usize;
                if self.rx.len() < total {
                    break;
                }
                let payload = self.rx[HEADER_SIZE..total].to_vec();
                self.rx.drain(..total);
                ctx.stats.responses.fetch_add(1, Ordering::Relaxed);
                self.learn(ctx, &h, &payload);
                if want == Some(h.id) && h.is_response() {
                    got = Some((h, payload));
                }
            }
            if got.is_some() || Instant::now() >= until {
                break;
            }
        }
        got
    }

    fn learn(&mut self, ctx: &Ctx, h: &FrameHeader, p: &[u8]) {
        if !h.is_response() || h.is_error() {
            return;
        }
        match h.op() {
            Some(Op::OPEN | Op::CREATE) => {
                if let Ok(r) = OpenRsp::decode(p) {
                    self.handles.push(r.handle);
                    let mut g = ctx.handles.lock().unwrap();
                    if g.len() < 4096 {
                        g.push(r.handle);
                    }
                }
            }
            Some(Op::MOUNT) => {
                if let Ok(r) = MountRsp::decode(p) {
                    self.export = r.export;
                }
            }
            _ => {}
        }
    }

    /// A request and its answer (setup steps).
    fn call<'m, M: Wire<'m>>(&mut self, ctx: &Ctx, op: Op, msg: &M) -> Option<(FrameHeader, Vec<u8>)> {
        let id = self.id();
        let mut f = Vec::new();
        push_frame(&mut f, FrameHeader::request(op, id, 0), msg);
        self.send(ctx, &f);
        self.pump(ctx, Duration::from_secs(2), Some(id))
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Connects, authenticates and mounts the export.
    fn session(ctx: &Ctx, rng: &mut Rng) -> Option<Conn> {
        let mut c = Conn::open(ctx, rng)?;
        c.s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        raw_handshake(&mut c.s, None).ok()?;
        c.s.set_read_timeout(None).ok()?;
        let m = MountReq {
            ctx: ReqCtx::default(),
            flags: 0,
            groups: Groups::EMPTY,
            path: Path(ctx.export_path.as_bytes()),
        };
        c.call(ctx, Op::MOUNT, &m)?;
        (c.export != 0 || !c.dead).then_some(c)
    }
}

/// Before ATTACH: garbage, damaged HELLO/ATTACH, frames of the wrong kind.
fn pre_handshake(ctx: &Ctx, rng: &mut Rng) {
    let Some(mut c) = Conn::open(ctx, rng) else { return };
    let hs = qtfs_proto::handshake::ClientHandshake::new(None, true, consts::feat::ALL, None);
    let mut hello = Vec::new();
    let name = "f".repeat(rng.below(300) as usize);
    push_frame(&mut hello, FrameHeader::request(Op::HELLO, 1, 0), &hs.hello(&name));
    match rng.below(6) {
        0 => {
            let g = rng.upto(2048);
            c.send(ctx, &g);
        }
        1 => {
            let mut h = FrameHeader::request(Op::PING, rng.next(), rng.below(700) as u32);
            h.op = rng.below(0x0500) as u16;
            h.flags = *rng.pick(&[0u8, flags::REQUEST, flags::RESPONSE, flags::MORE, flags::ERROR]);
            let mut f = h.encode().to_vec();
            let body = rng.upto(u64::from(h.len) + 1);
            f.extend_from_slice(&body);
            c.send(ctx, &f);
        }
        2 => {
            mutate(&mut hello, rng);
            c.send(ctx, &hello);
        }
        3 => {
            c.send(ctx, &hello);
            let mut a = Vec::new();
            let att = Attach { session_id: rng.next(), session_token: [rng.next() as u8; 16], mac: [0; 32] };
            push_frame(&mut a, FrameHeader::request(Op::ATTACH, 2, 0), &att);
            if rng.pct(60) {
                mutate(&mut a, rng);
            }
            c.send(ctx, &a);
        }
        4 => {
            // Requests before the handshake.
            let mut f = request(&mut c, ctx, rng);
            if rng.pct(50) {
                f[3] = 0;
            }
            c.send(ctx, &f);
        }
        _ => {
            // A partial HELLO, then nothing (the handshake timeout closes it).
            let cut = rng.below(hello.len() as u64) as usize;
            c.send(ctx, &hello[..cut]);
        }
    }
    c.pump(ctx, Duration::from_millis(rng.below(30)), None);
}

/// An authenticated session sending valid, damaged and random requests in pipelined
/// batches; it may vanish in the middle of a request.
fn session(ctx: &Ctx, rng: &mut Rng) {
    let Some(mut c) = Conn::session(ctx, rng) else { return };
    // Some files to work on.
    for name in [&b"a"[..], b"b"] {
        let r = CreateReq {
            ctx: ReqCtx { export: c.export, uid: 0, gid: 0 },
            flags: open::RDWR,
            mode: 0o644,
            umask: 0,
            cflags: 0,
            groups: Groups::EMPTY,
            path: Path(name),
        };
        c.call(ctx, Op::CREATE, &r);
    }
    let frames = 1 + rng.below(300);
    let mut sent = 0;
    while sent < frames && !c.dead && Instant::now() < ctx.deadline {
        let batch = 1 + rng.below(32);
        for _ in 0..batch {
            let mut f = request(&mut c, ctx, rng);
            if rng.pct(25) {
                mutate(&mut f, rng);
            }
            c.send(ctx, &f);
            sent += 1;
            if rng.pct(1) {
                return; // gone in the middle of requests
            }
        }
        c.pump(ctx, Duration::from_millis(rng.below(20)), None);
    }
    c.pump(ctx, Duration::from_millis(rng.below(50)), None);
}

/// READs (and polls) left pending on a FIFO, then the connection dropped.
fn pending_fifo(ctx: &Ctx, rng: &mut Rng) {
    let Some(mut c) = Conn::session(ctx, rng) else { return };
    let rc = ReqCtx { export: c.export, uid: 0, gid: 0 };
    let name = format!("fifo{}", rng.below(4));
    let mk = MknodReq {
        ctx: rc,
        mode: libc::S_IFIFO | 0o666,
        umask: 0,
        rdev_major: 0,
        rdev_minor: 0,
        groups: Groups::EMPTY,
        path: Path(name.as_bytes()),
    };
    c.call(ctx, Op::MKNOD, &mk);
    let o = OpenReq { ctx: rc, flags: open::RDWR, mode: 0, groups: Groups::EMPTY, path: Path(name.as_bytes()) };
    let Some((h, p)) = c.call(ctx, Op::OPEN, &o) else { return };
    let Ok(r) = OpenRsp::decode(&p).map_err(|_| ()).and_then(|r| if h.is_error() { Err(()) } else { Ok(r) }) else {
        return;
    };
    for _ in 0..1 + rng.below(8) {
        let id = c.id();
        let mut f = Vec::new();
        if rng.pct(70) {
            push_frame(
                &mut f,
                FrameHeader::request(Op::READ, id, 0),
                &ReadReq { handle: r.handle, offset: 0, len: 64 },
            );
        } else {
            let m = PollReq { handle: r.handle, events: libc::POLLIN as u32, timeout_ms: 60_000 };
            push_frame(&mut f, FrameHeader::request(Op::FIFO_POLL, id, 0), &m);
        }
        c.send(ctx, &f);
    }
    c.pump(ctx, Duration::from_millis(rng.below(10)), None);
}

/// Pipelined requests never read, then gone.
fn flood(ctx: &Ctx, rng: &mut Rng) {
    let Some(mut c) = Conn::session(ctx, rng) else { return };
    let n = 100 + rng.below(900);
    for _ in 0..n {
        let id = c.id();
        let mut f = Vec::new();
        if rng.pct(50) {
            let m = GetattrReq {
                ctx: ReqCtx { export: c.export, uid: 0, gid: 0 },
                flags: 0,
                groups: Groups::EMPTY,
                path: Path(b""),
            };
            push_frame(&mut f, FrameHeader::request(Op::GETATTR, id, 0), &m);
        } else {
            let d = rng.upto(8192);
            push_frame(&mut f, FrameHeader::request(Op::PING, id, 0), &Data { data: Rest(&d) });
        }
        c.send(ctx, &f);
        if c.dead {
            break;
        }
    }
}

fn fuzz_client(ctx: Arc<Ctx>, seed: u64) {
    let mut rng = Rng(seed);
    while Instant::now() < ctx.deadline {
        match rng.below(100) {
            0..=24 => pre_handshake(&ctx, &mut rng),
            25..=84 => session(&ctx, &mut rng),
            85..=94 => pending_fifo(&ctx, &mut rng),
            _ => flood(&ctx, &mut rng),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let args = parse_args();
    println!(
        "livefuzz: seed {:#x} (replay: --seed {:#x}), {} s, {} fuzz clients, {} cores",
        args.seed, args.seed, args.seconds, args.clients, args.cores
    );
    let mut e = TestEngine::start(Opts {
        cores: args.cores,
        tmpfs: true,
        log_level: "INFO",
        extra_args: vec!["--session-grace".into(), "1".into()],
        ..Default::default()
    });
    let export_path = e.export.display().to_string();

    // The healthy client, and the baseline once it is warm.
    let mut cfg = ClientConfig::new(e.addr.clone()).insecure();
    cfg.request_timeout = Some(Duration::from_secs(5));
    let healthy = Session::connect(cfg, 1).expect("healthy client connects");
    let (ex, _) = healthy.mount(&export_path, &Cred::root()).expect("healthy client mounts");
    for _ in 0..200 {
        healthy.getattr(ex, b"", false, &Cred::root()).expect("warm-up GETATTR");
    }
    let (rss0, fds0) = (e.rss_bytes(), e.fd_count());

    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let monitor = {
        let (stop, lat, failures) = (stop.clone(), lat.clone(), failures.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                match healthy.getattr(ex, b"", false, &Cred::root()) {
                    Ok(_) => lat.lock().unwrap().push(t0.elapsed()),
                    Err(err) => failures.lock().unwrap().push(format!("{err}")),
                }
                std::thread::sleep(Duration::from_millis(100).saturating_sub(t0.elapsed()));
            }
            healthy
        })
    };

    let t_start = Instant::now();
    let ctx = Arc::new(Ctx {
        dst: e.tcp_addr(),
        stats: Arc::new(Stats::default()),
        handles: Arc::new(Mutex::new(Vec::new())),
        export_path: export_path.clone(),
        deadline: t_start + Duration::from_secs(args.seconds),
    });
    let workers: Vec<_> = (0..args.clients)
        .map(|i| {
            let ctx = ctx.clone();
            let seed = args.seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            std::thread::spawn(move || fuzz_client(ctx, seed))
        })
        .collect();

    let (mut rss_max, mut fds_max) = (rss0, fds0);
    let mut next_report = t_start + Duration::from_secs(10);
    let mut engine_died = false;
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(250));
        rss_max = rss_max.max(e.rss_bytes());
        fds_max = fds_max.max(e.fd_count());
        if !e.alive() {
            engine_died = true;
            break;
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(10);
            let f = ctx.stats.frames.load(Ordering::Relaxed);
            println!(
                "  {:>4.0} s: {f} frames ({:.0}/s), engine RSS {:.1} MiB, {} fds",
                t_start.elapsed().as_secs_f64(),
                f as f64 / t_start.elapsed().as_secs_f64(),
                mib(e.rss_bytes()),
                e.fd_count()
            );
        }
    }
    for w in workers {
        let _ = w.join();
    }
    let fuzz_time = t_start.elapsed();
    // Every fuzz connection is closed now; give the engine 5 s to let go of them.
    let t_left = Instant::now();
    let (rss_limit, fds_limit) = (2 * rss0 + (16 << 20), fds0 + 64);
    let recovered =
        !engine_died && wait_until(Duration::from_secs(5), || e.rss_bytes() <= rss_limit && e.fd_count() <= fds_limit);
    let recovery = t_left.elapsed();
    let (rss_after, fds_after) = (e.rss_bytes(), e.fd_count());
    stop.store(true, Ordering::Relaxed);
    let healthy = monitor.join().expect("monitor thread");
    let alive = e.alive() && !engine_died;
    let final_ok = alive && healthy.getattr(ex, b"", false, &Cred::root()).is_ok();

    let st = &ctx.stats;
    let frames = st.frames.load(Ordering::Relaxed);
    println!(
        "fuzz: {frames} frames ({:.0}/s), {:.1} MiB, {} connections ({} closed by the engine), {} answers, in {:.1} s",
        frames as f64 / fuzz_time.as_secs_f64(),
        mib(st.bytes.load(Ordering::Relaxed)),
        st.conns.load(Ordering::Relaxed),
        st.closed_by_engine.load(Ordering::Relaxed),
        st.responses.load(Ordering::Relaxed),
        fuzz_time.as_secs_f64()
    );
    let mut l = lat.lock().unwrap().clone();
    l.sort();
    let fails = failures.lock().unwrap().clone();
    println!(
        "healthy client: {} GETATTRs, p50 {:?}, p99 {:?}, max {:?}, {} failed",
        l.len(),
        percentile(&l, 0.5),
        percentile(&l, 0.99),
        l.last().copied().unwrap_or_default(),
        fails.len()
    );
    println!(
        "engine RSS: {:.1} MiB before, {:.1} max during, {:.1} after {:.1} s (limit {:.1}); fds: {fds0} before, {fds_max} max, {fds_after} after (limit {fds_limit})",
        mib(rss0),
        mib(rss_max),
        mib(rss_after),
        recovery.as_secs_f64(),
        mib(rss_limit)
    );
    let log = e.log.lines();
    let bugs: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("panicked") || l.contains("bug while serving") || l.contains("core loop ended"))
        .collect();
    let errors = log.iter().filter(|l| l.contains("ERROR")).count();
    println!("engine log: {} lines, {errors} at ERROR", log.len());

    let mut problems = Vec::new();
    if !alive {
        problems.push(format!("the engine died: {:?}", e.child.try_wait()));
    }
    if !final_ok {
        problems.push("the healthy client is not served at the end".into());
    }
    if !fails.is_empty() {
        problems.push(format!("the healthy client had {} failed requests (first: {})", fails.len(), fails[0]));
    }
    if !recovered {
        problems.push("RSS or descriptors did not come back within 5 s".into());
    }
    if !bugs.is_empty() {
        problems.push(format!("{} bug reports in the engine's log, first: {}", bugs.len(), bugs[0]));
    }
    if frames == 0 {
        problems.push("no frame was sent".into());
    }
    if problems.is_empty() {
        println!("livefuzz: PASS (seed {:#x})", args.seed);
    } else {
        for p in &problems {
            println!("livefuzz: FAIL: {p}");
        }
        for l in bugs.iter().take(20) {
            println!("  {l}");
        }
        println!("livefuzz: replay with --seed {:#x}", args.seed);
        std::process::exit(1);
    }
}
