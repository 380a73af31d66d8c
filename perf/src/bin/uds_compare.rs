//! `uds_compare`: the unix-socket proxy against its limit, its reference, the original's
//! topology and the peer a user would pick, side by side in one run.
//!
//! Systems (client → … → server, the server always the same in-process unix socket):
//! - `direct` (limit): the client connects to the server socket itself.
//! - `socat` (reference): `socat UNIX-LISTEN … UNIX-CONNECT` — one relay process.
//! - `socat-tcp-socat` (anchor, the original's topology): UDS → socat → TCP loopback →
//!   socat → UDS.
//! - `ssh` (peer): `ssh -L local.sock:server.sock` through a privately started loopback
//!   `sshd` (aes128-gcm, no compression).
//! - `udsproxy` (measured): client → udsproxyd → TCP loopback → engine → server; the
//!   client gets its socket from udsproxyd exactly as libudsproxy.so does.
//!
//! Cases: streaming MiB/s with 64 KiB writes (processes unpinned), and 1-byte ping-pong
//! latency p50/p99 with every process and thread pinned to CPU 0 (a wake-up across the
//! two vCPUs costs ~20 µs here, see BENCH-METHOD.md). Systems run interleaved (A, B, …,
//! A, B …) for `--rounds` rounds, each phase with freshly started processes.
//!
//! Writes `perf/results/<date>-<machine>-uds.json` (schema `qtfs-perf/1`, see
//! perf/README.md) and a markdown table beside it. Needs root (sshd), `socat`, `sshd`,
//! `ssh`, `ssh-keygen`, `taskset`, and release builds of `engine` and `udsproxyd`
//! (`cargo build --release -p qtfs-engine -p qtfs-udsproxyd`).
//!
//! Usage: `cargo run --release -p qtfs-perf --bin uds_compare -- [--rounds N]
//! [--seconds S] [--pings N] [--quick] [--out DIR] [--bin-dir DIR] [--only NAMES]`

use std::collections::BTreeMap;

use qtfs_perf::results::Method;
use qtfs_perf::{CaseResult, Results, System};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../preload/src/wire.rs"]
#[allow(dead_code)]
mod wire;

const CHUNK: usize = 64 * 1024;

#[derive(Debug, clap::Parser)]
#[command(
    name = "uds_compare",
    about = "The unix-socket proxy (udsproxyd + engine) against direct, socat, socat-tcp-socat and ssh, same run",
    after_help = "Needs root (sshd), socat, sshd, ssh, ssh-keygen, taskset and release builds of engine and udsproxyd \
in --bin-dir. Writes DIR/<date>-<machine>-uds.{json,md}."
)]
struct Cli {
    /// Rounds (every round measures every system) [default 2; --quick 1].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,
    /// Seconds of streaming per system and round [default 3; --quick 1].
    #[arg(long, value_name = "S")]
    seconds: Option<f64>,
    /// Ping-pong round trips per system and round [default 5000; --quick 2000].
    #[arg(long, value_name = "N")]
    pings: Option<usize>,
    /// One short round: the defaults above marked --quick (options given explicitly still win).
    #[arg(long)]
    quick: bool,
    /// Where results go.
    #[arg(long, value_name = "DIR", default_value = "perf/results")]
    out: PathBuf,
    /// Where the engine and udsproxyd binaries are [default: this program's directory].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Only these systems, comma-separated (debugging; a partial run still writes its report).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    only: Vec<String>,
}

struct Opts {
    rounds: usize,
    seconds: f64,
    pings: usize,
    out: PathBuf,
    bin_dir: PathBuf,
    only: Vec<String>,
}

fn parse_opts() -> Opts {
    let c = <Cli as clap::Parser>::parse();
    let exe = std::env::current_exe().unwrap_or_default();
    Opts {
        rounds: c.rounds.unwrap_or(if c.quick { 1 } else { 2 }),
        seconds: c.seconds.unwrap_or(if c.quick { 1.0 } else { 3.0 }),
        pings: c.pings.unwrap_or(if c.quick { 2000 } else { 5000 }),
        out: c.out,
        bin_dir: c.bin_dir.unwrap_or_else(|| exe.parent().map(Path::to_path_buf).unwrap_or_default()),
        only: c.only,
    }
}

// ------------------------------------------------------------------ pinning

fn pin_thread(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; affinity of this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

// ------------------------------------------------------------------ the server

/// The server: first byte 'S' = sink (reads to EOF, answers the byte count and the
/// nanoseconds from first byte to EOF), 'P' = ping-pong (echoes single bytes, pinned).
fn server(path: &Path) -> std::thread::JoinHandle<()> {
    let l = UnixListener::bind(path).expect("bind server");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut mode = [0u8; 1];
                if s.read_exact(&mut mode).is_err() {
                    return;
                }
                match mode[0] {
                    b'S' => {
                        let mut buf = vec![0u8; 256 * 1024];
                        let mut total = 0u64;
                        let mut t0 = None;
                        loop {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    t0.get_or_insert_with(Instant::now);
                                    total += n as u64;
                                }
                            }
                        }
                        let ns = t0.map(|t| t.elapsed().as_nanos() as u64).unwrap_or(1);
                        let mut r = [0u8; 16];
                        r[..8].copy_from_slice(&total.to_le_bytes());
                        r[8..].copy_from_slice(&ns.to_le_bytes());
                        let _ = s.write_all(&r);
                    }
                    b'P' => {
                        pin_thread(0);
                        let mut b = [0u8; 1];
                        while s.read_exact(&mut b).is_ok() {
                            if s.write_all(&b).is_err() {
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            });
        }
    })
}

// ------------------------------------------------------------------ systems

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sys {
    Direct,
    Socat,
    SocatTcp,
    Ssh,
    Udsproxy,
}

impl Sys {
    const ALL: [Sys; 5] = [Sys::Direct, Sys::Socat, Sys::SocatTcp, Sys::Ssh, Sys::Udsproxy];
    fn name(self) -> &'static str {
        match self {
            Sys::Direct => "direct",
            Sys::Socat => "socat",
            Sys::SocatTcp => "socat-tcp-socat",
            Sys::Ssh => "ssh",
            Sys::Udsproxy => "udsproxy",
        }
    }
    fn role(self) -> &'static str {
        match self {
            Sys::Direct => "limit",
            Sys::Socat => "limit",
            Sys::SocatTcp => "anchor",
            Sys::Ssh => "peer",
            Sys::Udsproxy => "measured",
        }
    }
    fn detail(self) -> &'static str {
        match self {
            Sys::Direct => "client connects to the server socket (no relay)",
            Sys::Socat => "socat UNIX-LISTEN:…,fork UNIX-CONNECT:server (one relay; reference)",
            Sys::SocatTcp => {
                "socat UNIX-LISTEN → TCP 127.0.0.1 → socat TCP-LISTEN → UNIX-CONNECT (the original's topology)"
            }
            Sys::Ssh => "ssh -L local.sock:server.sock via a private loopback sshd, aes128-gcm, no compression",
            Sys::Udsproxy => "client → udsproxyd → TCP 127.0.0.1 → engine --cores 1 → server (release builds)",
        }
    }
}

/// Processes of one system instance, killed on drop.
struct Running {
    children: Vec<Child>,
    entry: PathBuf,
    /// udsproxyd's request socket (udsproxy only).
    request: Option<PathBuf>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Env {
    dir: PathBuf,
    srv: PathBuf,
    bin_dir: PathBuf,
    ssh_dir: PathBuf,
    port_base: u16,
    seq: std::cell::Cell<u16>,
}

impl Env {
    fn port(&self) -> u16 {
        let s = self.seq.get();
        self.seq.set(s.wrapping_add(1) % 2000);
        self.port_base + s
    }

    fn cmd(&self, pinned: bool, prog: &str) -> Command {
        if pinned {
            let mut c = Command::new("taskset");
            c.arg("-c").arg("0").arg(prog);
            c
        } else {
            Command::new(prog)
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spawn(mut c: Command) -> Child {
    let log = std::env::var_os("UDS_COMPARE_LOG").is_some();
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if log { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {c:?}: {e}"))
}

fn start(env: &Env, sys: Sys, pinned: bool) -> Running {
    let srv = env.srv.display().to_string();
    match sys {
        Sys::Direct => Running { children: vec![], entry: env.srv.clone(), request: None },
        Sys::Socat => {
            let entry = env.dir.join(format!("socat-{}.sock", env.port()));
            let mut c = env.cmd(pinned, "socat");
            c.arg(format!("UNIX-LISTEN:{},fork,unlink-early", entry.display())).arg(format!("UNIX-CONNECT:{srv}"));
            let ch = spawn(c);
            wait_for("socat", Duration::from_secs(5), || entry.exists());
            Running { children: vec![ch], entry, request: None }
        }
        Sys::SocatTcp => {
            let entry = env.dir.join(format!("socat2-{}.sock", env.port()));
            let port = env.port();
            let mut a = env.cmd(pinned, "socat");
            a.arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr")).arg(format!("UNIX-CONNECT:{srv}"));
            let a = spawn(a);
            wait_for("socat tcp", Duration::from_secs(5), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
            let mut b = env.cmd(pinned, "socat");
            b.arg(format!("UNIX-LISTEN:{},fork,unlink-early", entry.display()))
                .arg(format!("TCP:127.0.0.1:{port},nodelay"));
            let b = spawn(b);
            wait_for("socat uds", Duration::from_secs(5), || entry.exists());
            Running { children: vec![a, b], entry, request: None }
        }
        Sys::Ssh => {
            let d = &env.ssh_dir;
            let port = env.port();
            let conf = d.join("sshd_config");
            std::fs::write(
                &conf,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {h}\nAuthorizedKeysFile {a}\nPidFile {p}\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                     PermitRootLogin yes\nAllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\n\
                     Ciphers aes128-gcm@openssh.com\nCompression no\n",
                    h = d.join("host_key").display(),
                    a = d.join("authorized_keys").display(),
                    p = d.join(format!("sshd-{port}.pid")).display(),
                ),
            )
            .expect("sshd config");
            let mut s = env.cmd(pinned, "/usr/sbin/sshd");
            s.arg("-D").arg("-f").arg(&conf).arg("-p").arg(port.to_string());
            let sshd = spawn(s);
            wait_for("sshd", Duration::from_secs(5), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
            let entry = env.dir.join(format!("ssh-{port}.sock"));
            let _ = std::fs::remove_file(&entry);
            let mut c = env.cmd(pinned, "ssh");
            c.args(["-N", "-F", "/dev/null", "-i"])
                .arg(d.join("id"))
                .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
                .args([
                    "-o",
                    "Ciphers=aes128-gcm@openssh.com",
                    "-o",
                    "Compression=no",
                    "-o",
                    "ExitOnForwardFailure=yes",
                ])
                .args(["-o", "StreamLocalBindUnlink=yes", "-p"])
                .arg(port.to_string())
                .arg("-L")
                .arg(format!("{}:{srv}", entry.display()))
                .arg("root@127.0.0.1");
            let ssh = spawn(c);
            wait_for("ssh forward", Duration::from_secs(10), || entry.exists());
            Running { children: vec![ssh, sshd], entry, request: None }
        }
        Sys::Udsproxy => {
            let port = env.port();
            let wl = env.dir.join("whitelist");
            std::fs::write(&wl, format!("[Mount]\nPath={d}\n[Udsconnect]\nPath={d}\n", d = env.dir.display())).unwrap();
            let mut e = env.cmd(pinned, env.bin_dir.join("engine").to_str().unwrap());
            e.args(["--cores", "1", "--listen", &format!("tcp:127.0.0.1:{port}"), "--insecure-test-mode"])
                .arg("--whitelist")
                .arg(&wl);
            quiet_daemon(&mut e, &env.dir, "engine.sock", "engine.lock");
            if !pinned {
                e.arg("--no-pin");
            }
            let engine = spawn(e);
            wait_for("engine", Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
            let request = env.dir.join("remote_uds.sock");
            let mut u = env.cmd(pinned, env.bin_dir.join("udsproxyd").to_str().unwrap());
            u.args(["--server", &format!("tcp:127.0.0.1:{port}"), "--insecure-test-mode", "--udsconnect"])
                .arg(&env.dir)
                .arg("--socket")
                .arg(&request);
            quiet_daemon(&mut u, &env.dir, "udsproxyd.sock", "uds.lock");
            let uds = spawn(u);
            let r = Running { children: vec![uds, engine], entry: env.srv.clone(), request: Some(request) };
            wait_for("udsproxyd", Duration::from_secs(10), || connect(&r).is_ok());
            r
        }
    }
}

/// The arguments every daemon of ours gets here: its admin socket and lock file in `dir`,
/// and errors only in its log.
fn quiet_daemon(c: &mut Command, dir: &Path, admin: &str, lock: &str) {
    c.arg("--admin-socket").arg(dir.join(admin)).arg("--lock-file").arg(dir.join(lock)).args(["--log-level", "ERROR"]);
}

/// A connected client socket for a running system.
fn connect(r: &Running) -> std::io::Result<UnixStream> {
    let Some(req) = &r.request else { return UnixStream::connect(&r.entry) };
    // The exchange libudsproxy.so makes after a failed local connect.
    // SAFETY: socket calls on descriptors we own; buffers live on this frame.
    unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        let s = OwnedFd::from_raw_fd(s);
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as u16;
        for (d, c) in sa.sun_path.iter_mut().zip(req.as_os_str().as_encoded_bytes()) {
            *d = *c as libc::c_char;
        }
        if libc::connect(s.as_raw_fd(), (&sa as *const libc::sockaddr_un).cast(), 110) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut b = [0u8; wire::REQ_MAX];
        let n =
            wire::encode_request(&mut b, wire::OP_CONNECT, wire::KIND_STREAM, r.entry.as_os_str().as_encoded_bytes())
                .expect("request");
        libc::send(s.as_raw_fd(), b.as_ptr().cast(), n, 0);
        let mut ans = [0u8; 8];
        let mut cbuf = [0u64; 8];
        let mut iov = libc::iovec { iov_base: ans.as_mut_ptr().cast(), iov_len: 8 };
        let mut m: libc::msghdr = std::mem::zeroed();
        m.msg_iov = &mut iov;
        m.msg_iovlen = 1;
        m.msg_control = cbuf.as_mut_ptr().cast();
        m.msg_controllen = 64;
        if libc::recvmsg(s.as_raw_fd(), &mut m, 0) != 8 || wire::decode_answer(&ans) != Some(0) {
            return Err(std::io::Error::other("udsproxyd did not proxy"));
        }
        let c = libc::CMSG_FIRSTHDR(&m);
        Ok(UnixStream::from(OwnedFd::from_raw_fd(*(libc::CMSG_DATA(c) as *const i32))))
    }
}

// ------------------------------------------------------------------ measurements

/// Streams 64 KiB writes for `secs`; returns MiB/s as the server saw it.
fn stream(r: &Running, secs: f64) -> f64 {
    let mut s = connect(r).expect("connect");
    s.write_all(b"S").unwrap();
    let buf = vec![0x5au8; CHUNK];
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        s.write_all(&buf).unwrap();
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut res = [0u8; 16];
    s.read_exact(&mut res).unwrap();
    let total = u64::from_le_bytes(res[..8].try_into().unwrap());
    let ns = u64::from_le_bytes(res[8..].try_into().unwrap()).max(1);
    total as f64 / (1 << 20) as f64 / (ns as f64 / 1e9)
}

/// 1-byte round trips from a thread pinned to CPU 0; returns (p50, p99) in µs.
fn pingpong(r: &Running, n: usize) -> (f64, f64) {
    let s = connect(r).expect("connect");
    // A thread of its own: pinning it leaves the main thread (the streaming client) free.
    let mut lat = std::thread::spawn(move || {
        pin_thread(0);
        let mut s = s;
        s.write_all(b"P").unwrap();
        let mut b = [7u8; 1];
        for _ in 0..n / 10 {
            s.write_all(&b).unwrap();
            s.read_exact(&mut b).unwrap();
        }
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            s.write_all(&b).unwrap();
            s.read_exact(&mut b).unwrap();
            lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        lat
    })
    .join()
    .unwrap();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (lat[n / 2], lat[(n * 99) / 100])
}

// ------------------------------------------------------------------ report

struct Case {
    name: &'static str,
    metric: &'static str,
    unit: &'static str,
    higher: bool,
    values: BTreeMap<&'static str, Vec<f64>>,
    target: (&'static str, Option<f64>, Option<f64>),
}

fn main() {
    let o = parse_opts();
    for b in ["engine", "udsproxyd"] {
        assert!(
            o.bin_dir.join(b).exists(),
            "{} missing: cargo build --release -p qtfs-engine -p qtfs-udsproxyd",
            o.bin_dir.join(b).display()
        );
    }
    let tmp = std::env::temp_dir().join(format!("uds-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let ssh_dir = tmp.join("ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::create_dir_all("/run/sshd").ok();
    for (k, f) in [("ed25519", "host_key"), ("ed25519", "id")] {
        let st =
            Command::new("ssh-keygen").args(["-q", "-t", k, "-N", "", "-f"]).arg(ssh_dir.join(f)).status().unwrap();
        assert!(st.success(), "ssh-keygen");
    }
    std::fs::copy(ssh_dir.join("id.pub"), ssh_dir.join("authorized_keys")).unwrap();
    let env = Env {
        srv: tmp.join("server.sock"),
        dir: tmp.clone(),
        bin_dir: o.bin_dir.clone(),
        ssh_dir,
        port_base: 20000 + (std::process::id() % 20000) as u16,
        seq: std::cell::Cell::new(0),
    };
    let _srv = server(&env.srv);
    let mut thr = Case {
        name: "stream-64k",
        metric: "throughput",
        unit: "MiB/s",
        higher: true,
        values: BTreeMap::new(),
        target: ("udsproxy/socat-tcp-socat", Some(1.5), None),
    };
    let mut p50 = Case {
        name: "pingpong-1b-p50",
        metric: "latency",
        unit: "us",
        higher: false,
        values: BTreeMap::new(),
        target: ("udsproxy/socat-tcp-socat", None, Some(1.0)),
    };
    let mut p99 = Case {
        name: "pingpong-1b-p99",
        metric: "latency",
        unit: "us",
        higher: false,
        values: BTreeMap::new(),
        target: ("", None, None),
    };
    for round in 0..o.rounds {
        for sys in Sys::ALL {
            if !o.only.is_empty() && !o.only.iter().any(|n| n == sys.name()) {
                continue;
            }
            let r = start(&env, sys, false);
            stream(&r, 0.5_f64.min(o.seconds / 2.0)); // warm-up (TCP slow start)
            let mib = stream(&r, o.seconds);
            drop(r);
            let r = start(&env, sys, true);
            let (a, b) = pingpong(&r, o.pings);
            drop(r);
            eprintln!(
                "round {round} {:16} stream {mib:8.0} MiB/s   ping-pong p50 {a:6.1} µs  p99 {b:6.1} µs",
                sys.name()
            );
            thr.values.entry(sys.name()).or_default().push(mib);
            p50.values.entry(sys.name()).or_default().push(a);
            p99.values.entry(sys.name()).or_default().push(b);
        }
    }
    // ---- results (qtfs-perf/1) through the shared library
    let warmup = 0.5_f64.min(o.seconds / 2.0);
    let mut results = Results::new(
        "uds",
        Method {
            rounds: o.rounds as u32,
            order: "interleaved".into(),
            duration_s: o.seconds,
            warmup_s: warmup,
            notes: format!(
                "stream: 64 KiB writes, unpinned; ping-pong: {} x 1 byte, all processes on CPU 0 (taskset -c 0)",
                o.pings
            ),
        },
        Sys::ALL.iter().map(|s| System::new(s.name(), s.role(), s.detail())).collect(),
    );
    for c in [&thr, &p50, &p99] {
        let mut cr = CaseResult::new(c.name, c.metric, c.unit, c.higher);
        for (sys, vals) in &c.values {
            for v in vals {
                cr.add(sys, *v);
            }
        }
        let targets: Vec<(&str, Option<f64>, Option<f64>)> =
            if c.target.0.is_empty() { vec![] } else { vec![(c.target.0, c.target.1, c.target.2)] };
        cr.finish(
            &[("udsproxy", "socat-tcp-socat"), ("udsproxy", "socat"), ("udsproxy", "ssh"), ("udsproxy", "direct")],
            &targets,
        );
        results.results.push(cr);
    }
    qtfs_perf::publish(&results, &o.out, "uds_compare");
    let _ = std::fs::remove_dir_all(&tmp);
}
