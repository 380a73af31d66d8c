//! `rexec_compare`: remote exec against its limit and its peers, in one run.
//!
//! Latency of running `/bin/true` (median and p99 over `--runs` runs per round, A, B, C, D
//! interleaved): local fork+exec (the limit), `rexec /bin/true` against a rexec_server
//! on a temporary socket (measured), `ssh 127.0.0.1 true` with a ControlMaster and
//! without one (the peers) against a privately started loopback sshd (`sshd -f CONFIG -p
//! PORT`, never the system's). Latency runs pin the client, rexec_server, sshd and the
//! ssh master to CPU 0 (a wake-up across CPUs costs ~20 µs here); streaming runs are
//! unpinned. Streaming: MiB/s of `cat BIGFILE` read through a pipe by this process,
//! locally (limit), through rexec (measured) and through ssh with ControlMaster (peer).
//!
//! Writes `perf/results/<date>-<host>-rexec.{json,md}` and SVG charts. Run as root after
//! `cargo build --release -p qtfs-rexec -p qtfs-perf`:
//! `target/release/rexec_compare` (`--quick` for a short run).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use qtfs_perf::procs::{self, Tmpfs};
use qtfs_perf::results::Method;
use qtfs_perf::{CaseResult, Results, System};

#[derive(Debug, Parser)]
#[command(name = "rexec_compare", about = "rexec latency and streaming vs local fork+exec and ssh, same run")]
struct Cli {
    /// Runs per system per round for the latency cases.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Rounds (every round measures every system).
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Size of the streamed file in MiB.
    #[arg(long, default_value_t = 512)]
    stream_mib: u64,
    /// Streaming repetitions per system per round.
    #[arg(long, default_value_t = 3)]
    stream_reps: usize,
    /// 50 runs, 1 round, 256 MiB.
    #[arg(long)]
    quick: bool,
    /// Do not pin the latency runs to CPU 0.
    #[arg(long)]
    no_pin: bool,
    /// Where results go.
    #[arg(long, default_value = "perf/results")]
    out: PathBuf,
    /// Working directory (a tmpfs is mounted on it for the streamed file).
    #[arg(long, default_value = "perf/work/rexec")]
    work: PathBuf,
}

fn progress(s: &str) {
    eprintln!("rexec_compare: {s}");
}

fn run_ok(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Pins (or unpins) every thread of `pid` (and of this process when `pid` is 0).
fn pin(pid: u32, cpus: &str) {
    let p = if pid == 0 { std::process::id() } else { pid };
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &p.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
    master: Option<Child>,
}

impl Sshd {
    fn start(dir: &Path) -> std::io::Result<Sshd> {
        std::fs::create_dir_all(dir)?;
        for (k, t) in [("hostkey", "ed25519"), ("id", "ed25519")] {
            let p = dir.join(k);
            if !p.exists() && !run_ok(Command::new("ssh-keygen").args(["-q", "-t", t, "-N", "", "-f"]).arg(&p)) {
                return Err(std::io::Error::other("ssh-keygen failed"));
            }
        }
        std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys"))?;
        std::fs::write(dir.join("empty-bashrc"), "")?;
        // sshd insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {d}/hostkey\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
                 StrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nPrintMotd no\nPrintLastLog no\nUseDNS no\nCiphers aes128-gcm@openssh.com\nCompression no\n\
                 MaxSessions 100\nMaxStartups 100\nLogLevel ERROR\n",
                d = dir.display()
            ),
        )?;
        // The login shell (bash) sources ~/.bashrc for ssh commands, and root's runs
        // `pyenv init` (~100 ms): in a private mount namespace of this sshd only, an empty
        // file hides it, so that ssh is measured rather than a startup file (BENCH-METHOD.md).
        let script = format!(
            "[ -f /root/.bashrc ] && mount --bind {d}/empty-bashrc /root/.bashrc; exec /usr/sbin/sshd -D -e -f {d}/sshd_config -p {port}",
            d = dir.display()
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let s = Sshd { child, port, dir: dir.to_path_buf(), master: None };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !run_ok(&mut s.ssh(false, &["true"])) {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("private sshd does not answer"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(s)
    }

    fn base(&self) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "Compression=no"])
            .args(["-o", "Ciphers=aes128-gcm@openssh.com", "-i"])
            .arg(self.dir.join("id"))
            .args(["-p", &self.port.to_string()]);
        c
    }

    fn ssh(&self, cm: bool, cmd: &[&str]) -> Command {
        let mut c = self.base();
        let cp = format!("ControlPath={}/cm", self.dir.display());
        if cm {
            c.args(["-o", "ControlMaster=no", "-o", &cp]);
        }
        c.arg("root@127.0.0.1").args(cmd);
        c
    }

    fn start_master(&mut self) -> std::io::Result<()> {
        let cp = format!("ControlPath={}/cm", self.dir.display());
        // A socket left by an earlier run would make the master disable multiplexing.
        let _ = std::fs::remove_file(self.dir.join("cm"));
        let m = self
            .base()
            .args(["-o", "ControlMaster=yes", "-o", &cp, "-N", "root@127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.master = Some(m);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Checked with `ssh -O check`, so that a silent fallback to new connections
        // cannot pass for multiplexing.
        let mut check = self.base();
        check.args(["-o", &cp, "-O", "check", "root@127.0.0.1"]);
        while !run_ok(&mut check) {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("ssh ControlMaster does not answer"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(m) = &mut self.master {
            let _ = m.kill();
            let _ = m.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Wall time of one run, in ms.
fn time_one(cmd: &mut Command) -> f64 {
    let t0 = Instant::now();
    let st = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    assert!(st.is_ok_and(|s| s.success()), "{cmd:?} failed");
    ms
}

/// MiB/s of a command's stdout read by this process through a pipe.
fn stream(mut cmd: Command, bytes: u64) -> f64 {
    let t0 = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => panic!("read: {e}"),
        }
    }
    let st = child.wait().unwrap();
    let s = t0.elapsed().as_secs_f64();
    assert!(st.success() && n == bytes, "{cmd:?}: {n} of {bytes} bytes");
    bytes as f64 / (1 << 20) as f64 / s
}

fn main() {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.runs = 50;
        cli.rounds = 1;
        cli.stream_mib = 256;
        cli.stream_reps = 2;
    }
    let work = std::env::current_dir().unwrap().join(&cli.work);
    std::fs::create_dir_all(&work).unwrap();
    let work = work.canonicalize().unwrap();
    let tmp = work.join("tmpfs");
    let _tmpfs = Tmpfs::mount(&tmp, cli.stream_mib + 64).expect("tmpfs (run as root)");

    // rexec_server on a private socket.
    let wl = work.join("whitelist");
    std::fs::write(&wl, "/bin/true\n/bin/cat\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wl, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sock = work.join("rexec.sock");
    let mut sc = Command::new(procs::sibling("rexec_server"));
    sc.arg("--whitelist").arg(&wl).arg("--socket").arg(&sock).env("RUST_LOG", "warn,qtfs_rexec::server=info");
    // The ready line is at INFO; per-command lines cost a little on both sides of the
    // comparison only for rexec, so they stay on (the server logs every command).
    let server = procs::spawn_until_ready(sc, "rexec_server ready", Duration::from_secs(20)).expect("rexec_server");
    let pids = work.join("pids");
    let rexec = procs::sibling("rexec");
    let rexec_cmd = |args: &[&str]| {
        let mut c = Command::new(&rexec);
        c.args(args).env("REXEC_SOCKET", &sock).env("REXEC_PIDS_DIR", &pids);
        // rexec passes every inherited descriptor on (or refuses it): give it only stdio,
        // whatever this benchmark inherited from its own parent.
        use std::os::unix::process::CommandExt;
        // SAFETY: close() is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                for fd in 3..1024 {
                    libc::close(fd);
                }
                Ok(())
            })
        };
        c
    };

    progress("starting a private sshd on 127.0.0.1");
    let mut sshd = Sshd::start(&work.join("ssh")).expect("private sshd");
    sshd.start_master().expect("ssh ControlMaster");
    let bashrc = {
        let o = sshd.ssh(true, &["echo ${PYENV_ROOT:-none}"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };

    let systems = vec![
        System::new("local", "limit", "fork+exec of /bin/true by this process (std::process::Command)"),
        System::new("rexec", "measured", "rexec /bin/true against rexec_server on a unix socket (same host, no proxy)"),
        System::new(
            "ssh-cm",
            "peer",
            "ssh 127.0.0.1 true through an established ControlMaster (aes128-gcm, private sshd)",
        ),
        System::new(
            "ssh",
            "peer",
            "ssh 127.0.0.1 true, new connection each time (ed25519 key, aes128-gcm, private sshd)",
        ),
    ];
    let notes = format!(
        "latency: {} runs/system/round, interleaved one run each, {}; streaming: {} MiB file on tmpfs read through a \
         pipe by the benchmark, {} reps/system/round, unpinned; the private sshd hides /root/.bashrc (pyenv) in its own \
         mount namespace, so its login shell {} a heavy startup file",
        cli.runs,
        if cli.no_pin { "unpinned" } else { "client, rexec_server, sshd and ssh master pinned to CPU 0" },
        cli.stream_mib,
        cli.stream_reps,
        if bashrc.starts_with("none") { "does not source" } else { "sources" },
    );
    let method = Method { rounds: cli.rounds, order: "interleaved".into(), duration_s: 0.0, warmup_s: 0.0, notes };
    let mut results = Results::new("rexec", method, systems);

    // Warm-up (page cache, ssh master, server threads).
    for _ in 0..5 {
        time_one(&mut Command::new("/bin/true"));
        time_one(&mut rexec_cmd(&["/bin/true"]));
        time_one(&mut sshd.ssh(true, &["true"]));
    }
    time_one(&mut sshd.ssh(false, &["true"]));

    let names = ["local", "rexec", "ssh-cm", "ssh"];
    let mut med = CaseResult::new("true-latency-median", "latency", "ms", false);
    let mut p99 = CaseResult::new("true-latency-p99", "latency", "ms", false);
    for round in 0..cli.rounds {
        if !cli.no_pin {
            pin(0, "0");
            pin(server.pid(), "0");
            pin(sshd.child.id(), "0");
            if let Some(m) = &sshd.master {
                pin(m.id(), "0");
            }
        }
        let mut lat: Vec<Vec<f64>> = vec![Vec::new(); 4];
        for _ in 0..cli.runs {
            lat[0].push(time_one(&mut Command::new("/bin/true")));
            lat[1].push(time_one(&mut rexec_cmd(&["/bin/true"])));
            lat[2].push(time_one(&mut sshd.ssh(true, &["true"])));
            lat[3].push(time_one(&mut sshd.ssh(false, &["true"])));
        }
        for (i, v) in lat.iter_mut().enumerate() {
            v.sort_by(|a, b| a.total_cmp(b));
            med.add(names[i], percentile(v, 0.5));
            p99.add(names[i], percentile(v, 0.99));
        }
        progress(&format!(
            "round {}: median ms local {:.3} rexec {:.3} ssh-cm {:.3} ssh {:.3}",
            round + 1,
            percentile(&lat[0], 0.5),
            percentile(&lat[1], 0.5),
            percentile(&lat[2], 0.5),
            percentile(&lat[3], 0.5)
        ));
    }
    let lat_ratios = [("rexec", "ssh"), ("rexec", "ssh-cm"), ("rexec", "local")];
    med.finish(&lat_ratios, &[("rexec/ssh", None, Some(0.3)), ("rexec/ssh-cm", None, Some(1.0))]);
    p99.finish(&lat_ratios, &[("rexec/ssh", None, Some(0.3)), ("rexec/ssh-cm", None, Some(1.0))]);

    // Streaming, unpinned.
    let all_cpus = format!("0-{}", qtfs_perf::machine::cpus().max(1) - 1);
    pin(0, &all_cpus);
    pin(server.pid(), &all_cpus);
    pin(sshd.child.id(), &all_cpus);
    if let Some(m) = &sshd.master {
        pin(m.id(), &all_cpus);
    }
    let big = tmp.join("bigfile");
    {
        let block: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
        let mut f = std::fs::File::create(&big).unwrap();
        use std::io::Write;
        for _ in 0..cli.stream_mib {
            f.write_all(&block).unwrap();
        }
    }
    let bytes = cli.stream_mib << 20;
    let bigs = big.to_str().unwrap().to_string();
    let mut st = CaseResult::new("cat-stream", "throughput", "MiB/s", true);
    let snames = ["local", "rexec", "ssh-cm"];
    for round in 0..cli.rounds {
        let mut best = [0f64; 3];
        for _ in 0..cli.stream_reps {
            let mut l = Command::new("/bin/cat");
            l.arg(&bigs);
            best[0] = best[0].max(stream(l, bytes));
            best[1] = best[1].max(stream(rexec_cmd(&["/bin/cat", &bigs]), bytes));
            best[2] = best[2].max(stream(sshd.ssh(true, &["cat", &bigs]), bytes));
        }
        for (i, b) in best.iter().enumerate() {
            st.add(snames[i], *b);
        }
        progress(&format!(
            "round {}: MiB/s local {:.0} rexec {:.0} ssh-cm {:.0}",
            round + 1,
            best[0],
            best[1],
            best[2]
        ));
    }
    st.finish(&[("rexec", "ssh-cm"), ("rexec", "local")], &[("rexec/ssh-cm", Some(1.0), None)]);
    results.results.push(med);
    results.results.push(p99);
    results.results.push(st);

    qtfs_perf::publish(&results, &cli.out, "rexec_compare");
    drop(sshd);
    drop(server);
}
