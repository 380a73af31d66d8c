//! Test rig: two "hosts" on one machine.
//!
//! The HOST is a private mount namespace entered by one thread of the test process: a
//! tmpfs is mounted over `<tmp>/host` there, so sockets bound under it exist only on the
//! HOST side. The engine is spawned from that thread (a child inherits its thread's
//! namespaces), and HOST servers are bound from it. The DPU is the test process's own
//! namespace, where `<tmp>/host` is an empty directory: udsproxyd and the clients run
//! there. `<tmp>/shared` is visible to both (files passed by path).
//!
//! Clients through the real preload library run as child processes: Python, socat, or
//! this test binary re-executed with `LD_PRELOAD` to play a role (`child_role`).
#![allow(dead_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use qtfs_testkit::LogTail;

type Job = Box<dyn FnOnce() + Send>;

/// A thread living in the HOST mount namespace; closures run there.
pub struct HostNs {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
}

impl HostNs {
    pub fn new(host_dir: &Path) -> HostNs {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let dir = std::ffi::CString::new(host_dir.as_os_str().as_encoded_bytes()).unwrap();
        std::thread::spawn(move || {
            // SAFETY: unshare/mount with NUL-terminated strings; CLONE_FS first, so that
            // only this thread changes its mount namespace.
            let r = unsafe {
                if libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS) != 0 {
                    Err(format!("unshare: {}", std::io::Error::last_os_error()))
                } else if libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
                {
                    Err(format!("make / private: {}", std::io::Error::last_os_error()))
                } else if libc::mount(
                    c"tmpfs".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    c"mode=0755".as_ptr().cast(),
                ) != 0
                {
                    Err(format!("mount tmpfs: {}", std::io::Error::last_os_error()))
                } else {
                    Ok(())
                }
            };
            let ok = r.is_ok();
            let _ = ready_tx.send(r);
            if !ok {
                return;
            }
            for job in rx {
                job();
            }
        });
        match ready_rx.recv().unwrap() {
            Ok(()) => {}
            Err(e) => panic!("cannot create the HOST mount namespace (tests need root): {e}"),
        }
        HostNs { tx: Mutex::new(Some(tx)) }
    }

    /// Runs `f` in the HOST namespace and returns its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.tx.lock().unwrap().as_ref().unwrap().send(job).unwrap();
        rx.recv().expect("HOST thread died")
    }
}

/// The target directory of this build (`target/<profile>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Builds (if needed) and returns the paths of `engine` and `libudsproxy.so`. `cargo
/// test --workspace` builds the engine for its own tests but never produces a cdylib,
/// so this runs `cargo build` for both once per test binary (a no-op when up to date).
pub fn artifacts() -> &'static (PathBuf, PathBuf) {
    static A: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    A.get_or_init(|| {
        let t = target_dir();
        let profile = t.file_name().unwrap().to_string_lossy().into_owned();
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.arg("build").arg("--manifest-path").arg(&manifest).args([
            "-p",
            "qtfs-preload",
            "-p",
            "qtfs-engine",
            "--lib",
            "--bin",
            "engine",
        ]);
        c.arg("--target-dir").arg(t.parent().unwrap());
        match profile.as_str() {
            "debug" => {}
            "release" => {
                c.arg("--release");
            }
            p => {
                c.args(["--profile", p]);
            }
        }
        let out = c.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build of the preload library and the engine failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (e, so) = (t.join("engine"), t.join("libudsproxy.so"));
        assert!(e.exists() && so.exists(), "{} or {} missing after cargo build", e.display(), so.display());
        (e, so)
    })
}

pub fn raise_nofile() {
    // SAFETY: rlimit is plain data; raising our soft limit to the hard limit.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

/// A child process whose stderr lines are collected; killed on drop.
pub struct Proc {
    pub child: Child,
    /// The process's stderr.
    pub log: LogTail,
    pub tag: &'static str,
}

impl Proc {
    pub fn spawn(mut cmd: Command, tag: &'static str) -> Proc {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = LogTail::new(child.stderr.take().unwrap(), tag, "UDS_TEST_LOG");
        Proc { child, log, tag }
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let ok = self.log.contains_within(needle, timeout);
        assert!(ok, "{}: no {needle:?} in log: {:?}", self.tag, self.log);
    }

    /// Waits (up to 10 s) for a log line containing `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.contains(needle)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub use qtfs_testkit::wait_until;

/// Options of a rig.
pub struct RigOpts {
    /// udsproxyd --udsconnect entries, relative to the HOST dir ("" = the HOST dir).
    pub udsconnect: Vec<&'static str>,
    /// Extra engine whitelist text.
    pub extra_wl: String,
    /// Engine [Udsconnect] entries relative to the HOST dir (default: the HOST dir).
    pub engine_uds: Vec<&'static str>,
    pub extra_udsproxyd: Vec<String>,
    /// Extra engine arguments (e.g. `--allow-kill`).
    pub extra_engine: Vec<String>,
    pub cores: usize,
}

impl Default for RigOpts {
    fn default() -> Self {
        RigOpts {
            udsconnect: vec![""],
            extra_wl: String::new(),
            engine_uds: vec![""],
            extra_udsproxyd: vec![],
            extra_engine: vec![],
            cores: 2,
        }
    }
}

/// HOST namespace + engine + udsproxyd.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub host: PathBuf,
    pub dpu: PathBuf,
    pub shared: PathBuf,
    pub ns: HostNs,
    pub engine: Option<Proc>,
    pub engine_addr: String,
    pub uds: Option<Proc>,
    pub opts_udsproxyd: Vec<String>,
}

impl Rig {
    pub fn start(o: RigOpts) -> Rig {
        raise_nofile();
        let (engine_bin, _) = artifacts();
        let dir = tempfile::tempdir().unwrap();
        let (host, dpu, shared) = (dir.path().join("host"), dir.path().join("dpu"), dir.path().join("shared"));
        for d in [&host, &dpu, &shared] {
            std::fs::create_dir(d).unwrap();
        }
        let ns = HostNs::new(&host);
        let join =
            |rel: &str| if rel.is_empty() { host.display().to_string() } else { host.join(rel).display().to_string() };
        let uds_entries: Vec<String> = o.engine_uds.iter().map(|r| join(r)).collect();
        let wl = format!(
            "[Mount]\nPath={s}\n[Open]\nPath={s}\n[Read]\nPath={s}\n[Write]\nPath={s}\n[Udsconnect]\nPath={}\n{}",
            uds_entries.join(";"),
            o.extra_wl,
            s = shared.display()
        );
        std::fs::write(dir.path().join("whitelist"), wl).unwrap();
        let mut cmd = Command::new(engine_bin);
        cmd.args(["--cores", &o.cores.to_string(), "--listen", "tcp:127.0.0.1:0", "--insecure-test-mode", "--no-pin"])
            .arg("--whitelist")
            .arg(dir.path().join("whitelist"))
            .arg("--admin-socket")
            .arg(dir.path().join("engine.sock"))
            .arg("--lock-file")
            .arg(dir.path().join("engine.lock"))
            .args(["--log-level", "DEBUG"])
            .args(&o.extra_engine);
        let engine = ns.run(move || Proc::spawn(cmd, "engine"));
        engine.wait_log("engine ready", Duration::from_secs(20));
        let line = engine.log.wait_for("engine ready", Duration::ZERO).unwrap();
        let i = line.find("listen=").unwrap();
        let engine_addr = line[i + 7..].split_whitespace().next().unwrap().to_string();
        let mut args = vec!["--server".to_string(), engine_addr.clone(), "--insecure-test-mode".into()];
        for u in &o.udsconnect {
            args.push("--udsconnect".into());
            args.push(join(u));
        }
        args.extend(o.extra_udsproxyd.iter().cloned());
        let mut r =
            Rig { dir, host, dpu, shared, ns, engine: Some(engine), engine_addr, uds: None, opts_udsproxyd: args };
        r.start_udsproxyd();
        r
    }

    pub fn request_socket(&self) -> PathBuf {
        self.dpu.join("remote_uds.sock")
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.dpu.join("udsproxyd.sock")
    }

    pub fn start_udsproxyd(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_udsproxyd"));
        cmd.args(&self.opts_udsproxyd)
            .arg("--socket")
            .arg(self.request_socket())
            .arg("--admin-socket")
            .arg(self.admin_socket())
            .arg("--lock-file")
            .arg(self.dpu.join("uds.lock"))
            .args(["--log-level", "DEBUG"]);
        let p = Proc::spawn(cmd, "udsproxyd");
        p.wait_log("connected to the engine", Duration::from_secs(20));
        self.uds = Some(p);
    }

    /// Starts the engine again (same whitelist, same port).
    pub fn restart_engine(&mut self) {
        if let Some(mut e) = self.engine.take() {
            e.kill();
        }
        let (engine_bin, _) = artifacts();
        let mut cmd = Command::new(engine_bin);
        cmd.args(["--cores", "2", "--listen", &self.engine_addr, "--insecure-test-mode", "--no-pin"])
            .arg("--whitelist")
            .arg(self.dir.path().join("whitelist"))
            .arg("--admin-socket")
            .arg(self.dir.path().join("engine.sock"))
            .arg("--lock-file")
            .arg(self.dir.path().join("engine.lock"))
            .args(["--log-level", "DEBUG"]);
        let e = self.ns.run(move || Proc::spawn(cmd, "engine"));
        e.wait_log("engine ready", Duration::from_secs(20));
        self.engine = Some(e);
    }

    /// A client command with the preload library in the DPU namespace.
    pub fn preloaded(&self, prog: &str) -> Command {
        let (_, so) = artifacts();
        let mut c = Command::new(prog);
        c.env("LD_PRELOAD", so).env("UDSPROXY_SOCKET", self.request_socket());
        c
    }

    /// Re-runs this test binary as a preloaded client playing `role`.
    pub fn child(&self, role: &str, env: &[(&str, String)]) -> Output {
        let mut c = self.preloaded(std::env::current_exe().unwrap().to_str().unwrap());
        c.args(["child_role", "--exact", "--ignored", "--nocapture", "--test-threads=1"]).env("UDS_CHILD_ROLE", role);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "child role {role} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Binds a stream listener at a HOST path.
    pub fn host_listener(&self, name: &str) -> UnixListener {
        let p = self.host.join(name);
        self.ns.run(move || UnixListener::bind(p).unwrap())
    }

    /// Binds a raw socket of `ty` at a HOST path (listening unless datagram).
    pub fn host_raw(&self, name: &str, ty: i32) -> OwnedFd {
        let p = self.host.join(name);
        self.ns.run(move || raw_bound(&p, ty))
    }

    /// Connects a stream socket from the HOST namespace.
    pub fn host_connect(&self, p: PathBuf) -> std::io::Result<UnixStream> {
        self.ns.run(move || UnixStream::connect(p))
    }

    /// A channel socket obtained from udsproxyd by the request protocol (what the
    /// preload library does after a failed local connect), for in-process clients.
    pub fn channel(&self, path: &Path, kind: u16) -> Result<OwnedFd, i32> {
        request_channel(&self.request_socket(), path, kind)
    }

    pub fn admin(&self) -> qtfs_client::AdminClient {
        qtfs_client::AdminClient::connect(&self.admin_socket()).unwrap()
    }

    pub fn engine_admin(&self) -> qtfs_client::AdminClient {
        qtfs_client::AdminClient::connect(&self.dir.path().join("engine.sock")).unwrap()
    }
}

#[path = "../../../../preload/src/wire.rs"]
#[allow(dead_code)]
pub mod wire;

/// The request exchange of the preload library; Err(-1) = not proxied.
pub fn request_channel(sock: &Path, path: &Path, kind: u16) -> Result<OwnedFd, i32> {
    use qtfs_udsproxyd::request::{Outcome, connect};
    match connect(sock, kind, path, std::time::Duration::from_secs(10)) {
        Ok(Outcome::Connected(fd)) => Ok(fd),
        Ok(Outcome::NotProxied) => Err(wire::PASS),
        Ok(Outcome::Refused(e)) => Err(e),
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

// ------------------------------------------------------------------ raw sockets

pub use qtfs_testkit::sock::*;

// ------------------------------------------------------------------ HOST servers

/// A message echo server for SEQPACKET (listening) or DGRAM (bound) sockets.
pub fn msg_echo_server(fd: OwnedFd, ty: i32) {
    std::thread::spawn(move || {
        if ty == libc::SOCK_DGRAM {
            loop {
                let (d, _, from) = raw_recvfrom(fd.as_raw_fd(), 300_000);
                raw_sendto(fd.as_raw_fd(), &d, &[], Some(&from));
            }
        }
        loop {
            let c = raw_accept(fd.as_raw_fd());
            std::thread::spawn(move || {
                loop {
                    let (d, _) = raw_recv(c.as_raw_fd(), 300_000);
                    if d.is_empty() {
                        break;
                    }
                    raw_send(c.as_raw_fd(), &d, &[]);
                }
            });
        }
    });
}

/// A fast order-sensitive checksum of a byte stream, independent of how the stream is
/// cut into reads.
#[derive(Default)]
pub struct Sum {
    acc: u64,
    pend: [u8; 8],
    n: usize,
    pub bytes: u64,
}

impl Sum {
    fn word(&mut self, w: u64) {
        self.acc = (self.acc.rotate_left(5) ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    pub fn feed(&mut self, mut b: &[u8]) {
        self.bytes += b.len() as u64;
        while self.n > 0 && !b.is_empty() {
            self.pend[self.n] = b[0];
            self.n = (self.n + 1) % 8;
            b = &b[1..];
            if self.n == 0 {
                let w = u64::from_le_bytes(self.pend);
                self.word(w);
            }
        }
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap()));
        }
        for &x in chunks.remainder() {
            self.pend[self.n] = x;
            self.n += 1;
        }
    }
    pub fn value(&self) -> (u64, u64, [u8; 8], usize) {
        (self.acc, self.bytes, self.pend, self.n)
    }
}

/// Deterministic pseudo-random bytes.
pub fn fill(seed: &mut u64, b: &mut [u8]) {
    for c in b.chunks_mut(8) {
        let v = qtfs_testkit::xorshift(seed).to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
}

/// Starts a real rexec_server on the rig's HOST side with `whitelist` (one path per line)
/// and waits until it serves; returns it and its socket (not visible on the DPU side).
pub fn start_rexec_server(rig: &Rig, whitelist: &str) -> (Proc, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let wl = rig.dir.path().join("rexec-whitelist");
    std::fs::write(&wl, whitelist).unwrap();
    std::fs::set_permissions(&wl, std::fs::Permissions::from_mode(0o600)).unwrap();
    let socket = rig.host.join("rexec.sock");
    let mut cmd = Command::new(qtfs_testkit::workspace_bin("qtfs-rexec", "rexec_server"));
    cmd.arg("--whitelist").arg(&wl).arg("--socket").arg(&socket).env("RUST_LOG", "debug");
    let server = rig.ns.run(move || Proc::spawn(cmd, "rexec_server"));
    server.wait_log("rexec_server ready", Duration::from_secs(20));
    (server, socket)
}
