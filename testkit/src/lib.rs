//! # qtfs-testkit — the harness of the integration tests
//!
//! Starts the real `engine` binary on a temporary export (optionally tmpfs-backed) with
//! a whitelist, waits until it is ready, and hands out client sessions. Every crate's
//! integration tests use this one harness. Raw unix-socket fixtures (SCM_RIGHTS send and
//! receive, bound and listening sockets, an echo server) are in [`sock`]; a child daemon's
//! log, collected and waited on, is a [`LogTail`].

pub mod layout;
pub mod logtail;
pub mod sock;

pub use logtail::LogTail;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use qtfs_client::{ClientConfig, Cred, Session};
use qtfs_proto::{Addr, Psk};

pub const ALL_GROUPS: &[&str] = &[
    "Open",
    "Write",
    "Read",
    "Readdir",
    "Mkdir",
    "Rmdir",
    "Create",
    "Unlink",
    "Rename",
    "Setattr",
    "Setxattr",
    "Mount",
    "Kill",
    "Udsconnect",
];

/// How to start a test engine.
pub struct Opts {
    pub cores: usize,
    /// Groups (other than Mount) that allow the export; None = all.
    pub groups: Option<Vec<&'static str>>,
    pub psk: Option<String>,
    pub insecure: bool,
    pub extra_args: Vec<String>,
    /// Extra whitelist text appended.
    pub extra_wl: String,
    /// Back the export with a tmpfs (exercises the engine's inline memory paths).
    pub tmpfs: bool,
    /// Arguments placed before the harness's own (rarely needed).
    pub pre_args: Vec<String>,
    /// The engine's `--log-level` (DEBUG unless a test floods the log; INFO at least:
    /// the harness waits for the "engine ready" line).
    pub log_level: &'static str,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            cores: 2,
            groups: None,
            psk: None,
            insecure: true,
            extra_args: vec![],
            extra_wl: String::new(),
            tmpfs: false,
            pre_args: vec![],
            log_level: "DEBUG",
        }
    }
}

impl Opts {
    /// The default options with `args` added to the engine's command line.
    pub fn args(args: &[&str]) -> Opts {
        Opts { extra_args: args.iter().map(|a| a.to_string()).collect(), ..Default::default() }
    }
}

pub struct TestEngine {
    pub child: Child,
    pub addr: Addr,
    pub dir: tempfile::TempDir,
    pub export: PathBuf,
    pub admin: PathBuf,
    pub whitelist: PathBuf,
    /// The engine's stderr.
    pub log: LogTail,
    pub psk: Option<Psk>,
    pub tmpfs: bool,
}

/// The workspace's target directory of the running test (`target/debug` …).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut d = exe.parent().expect("exe dir").to_path_buf();
    if d.ends_with("deps") {
        d.pop();
    }
    d
}

/// A workspace binary (`engine`, `qtfs-fuse`, …), built on first use if the test run did
/// not build it already.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let p = target_dir().join(bin);
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if !p.exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root).args(["build", "-q", "-p", package, "--bin", bin]);
        if target_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("run cargo build");
        assert!(st.success(), "cargo build -p {package} --bin {bin} failed");
    }
    p
}

/// The engine binary: `$QTFS_TEST_ENGINE` when set (to run the same tests against
/// another build, e.g. for before/after figures), else the workspace's.
pub fn engine_bin() -> PathBuf {
    match std::env::var_os("QTFS_TEST_ENGINE") {
        Some(p) => PathBuf::from(p),
        None => workspace_bin("qtfs-engine", "engine"),
    }
}

impl TestEngine {
    pub fn start(opts: Opts) -> TestEngine {
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        std::fs::create_dir(&export).unwrap();
        let export = export.canonicalize().unwrap();
        if opts.tmpfs {
            let st =
                Command::new("mount").args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"]).arg(&export).status().unwrap();
            assert!(st.success(), "mount tmpfs (tests run as root)");
        }
        let whitelist = dir.path().join("whitelist");
        let mut wl = format!("# test whitelist\n[Mount]\nPath={}\n", export.display());
        for g in opts.groups.clone().unwrap_or_else(|| ALL_GROUPS.to_vec()) {
            if g != "Mount" && g != "Kill" {
                wl.push_str(&format!("[{g}]\nPath={}\n", export.display()));
            }
        }
        wl.push_str(&opts.extra_wl);
        std::fs::write(&whitelist, wl).unwrap();
        let admin = dir.path().join("engine.sock");
        let mut psk = None;
        let mut cmd = Command::new(engine_bin());
        cmd.args(&opts.pre_args);
        cmd.arg("--cores")
            .arg(opts.cores.to_string())
            .arg("--listen")
            .arg("tcp:127.0.0.1:0")
            .arg("--whitelist")
            .arg(&whitelist)
            .arg("--admin-socket")
            .arg(&admin)
            .arg("--lock-file")
            .arg(dir.path().join("engine.lock"))
            .arg("--log-level")
            .arg(opts.log_level)
            .args(&opts.extra_args);
        if let Some(k) = &opts.psk {
            let kp = dir.path().join("psk");
            std::fs::write(&kp, k).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&kp, std::fs::Permissions::from_mode(0o600)).unwrap();
            cmd.arg("--psk-file").arg(&kp);
            psk = Some(Psk::parse(k).unwrap());
        }
        if opts.insecure {
            cmd.arg("--insecure-test-mode");
        }
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        let log = LogTail::new(child.stderr.take().unwrap(), "engine", "QTFS_TEST_LOG");
        let ready = log.wait_line(Duration::from_secs(20), |l| l.contains("engine ready") && l.contains("listen="));
        let Some(line) = ready else {
            let _ = child.kill();
            panic!("engine did not start: {log:?}");
        };
        // The first address when several listeners are bound (`tcp:…,unix:…`).
        let i = line.find("listen=").unwrap();
        let a = line[i + 7..].split_whitespace().next().unwrap().split(',').next().unwrap();
        let addr = Addr::parse(a).unwrap();
        TestEngine { child, addr, dir, export, admin, whitelist, log, psk, tmpfs: opts.tmpfs }
    }

    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.addr.clone());
        c.request_timeout = Some(Duration::from_secs(30));
        match &self.psk {
            Some(k) => c.with_psk(k.clone()),
            None => c.insecure(),
        }
    }

    pub fn session(&self, conns: usize) -> Session {
        Session::connect(self.config(), conns).unwrap()
    }

    /// A session with the export mounted; returns (session, export id).
    pub fn mounted(&self, conns: usize) -> (Session, u32) {
        let s = self.session(conns);
        let (e, _) = s.mount(self.export.to_str().unwrap(), &Cred::root()).unwrap();
        (s, e)
    }

    /// [`mounted`](Self::mounted), and file `name` created in the export (read-write,
    /// 0644, by root): (session, export, handle).
    pub fn mounted_file(&self, conns: usize, name: &str) -> (Session, u32, u64) {
        let (s, ex) = self.mounted(conns);
        let (h, _) =
            s.create(ex, name.as_bytes(), qtfs_proto::consts::open::RDWR, 0o644, 0, true, &Cred::root()).unwrap();
        (s, ex, h)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.export.join(rel)
    }

    /// A symlink `name` beside the export that names it (like `/var/run` -> `/run`), for
    /// whitelist entries spelled through a symlink.
    pub fn link_to_export(&self, name: &str) -> PathBuf {
        let link = self.dir.path().join(name);
        std::os::unix::fs::symlink(&self.export, &link).unwrap();
        link
    }

    /// Waits (up to 10 s) for a log line containing `needle`: another thread reads the
    /// log, so a line the process has already written may not be here yet.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.contains(needle)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open descriptors of the engine process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    /// Resident memory of the engine process, in bytes (0 once it is gone).
    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(self.pid())
    }

    /// Whether the engine process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// The engine's own counts from its admin socket: (sessions, connections).
    pub fn admin_counts(&self) -> (u32, u32) {
        let mut a = qtfs_client::AdminClient::connect(&self.admin).unwrap();
        let r = a.call(qtfs_proto::Op::ADMIN_INFO, &qtfs_proto::Empty {}).unwrap();
        let i = r.decode::<qtfs_proto::AdminInfo>().unwrap();
        (i.sessions, i.connections)
    }

    /// The TCP address the engine listens on.
    pub fn tcp_addr(&self) -> std::net::SocketAddr {
        match &self.addr {
            Addr::Tcp(a) => *a,
            a => panic!("not a TCP listener: {a}"),
        }
    }

    /// Sends SIGTERM and waits; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("engine did not stop within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.tmpfs {
            let _ = Command::new("umount").arg("-l").arg(&self.export).status();
        }
    }
}

/// CHAN_LISTEN for a stream listener at HOST path `path` with `mode`, owned by root.
pub fn root_listen_req(path: &[u8], mode: u32) -> qtfs_proto::ChanListenReq<'_> {
    use qtfs_proto::{ChanListenReq, Groups, Path, consts};
    ChanListenReq { kind: consts::CHAN_STREAM, mode, uid: 0, gid: 0, groups: Groups::EMPTY, path: Path(path) }
}

/// The per-operation counters of the engine behind admin socket `admin`
/// (ADMIN_COUNTERS): what a test counts to show which requests reached the engine.
pub fn op_counters(admin: &Path) -> Vec<qtfs_proto::OpCounter> {
    use qtfs_proto::wire::Fixed;
    use qtfs_proto::{CountersReq, CountersRsp, Op, OpCounter};
    let mut a = qtfs_client::AdminClient::connect(admin).expect("connect to the engine's admin socket");
    let r = a.call(Op::ADMIN_COUNTERS, &CountersReq { flags: 0 }).expect("ADMIN_COUNTERS");
    let c = r.decode::<CountersRsp>().expect("ADMIN_COUNTERS answer");
    c.records.0.chunks(OpCounter::DESC.size).map(OpCounter::get).collect()
}

/// How many requests of operation `op` the engine behind `admin` has served.
pub fn op_requests(admin: &Path, op: qtfs_proto::Op) -> u64 {
    op_counters(admin).iter().find(|c| c.op == op as u16).map_or(0, |c| c.requests)
}

/// Binds the calling thread to `cpu` (a test that needs its requests on one CPU, e.g.
/// one FUSE io_uring queue); false if it cannot run there.
pub fn pin_to_cpu(cpu: usize) -> bool {
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return false;
    }
    // SAFETY: a zeroed cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu is within the set (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// Polls `f` until it holds or `timeout` passes (then one last try): the one way the
/// project's tests wait for a condition. Polls every 5 ms, so a condition that becomes
/// true is seen promptly without burning a CPU the code under test needs.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

/// The next value of a xorshift64 sequence (`seed` must not be 0): cheap, deterministic
/// pseudo-random numbers for fuzz-like tests and generated payloads.
pub fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Runs `f` over and over for `secs` seconds; (how many times, seconds it took). For the
/// tests that measure one side's throughput while another side loads the engine.
pub fn repeat_for(secs: f64, mut f: impl FnMut()) -> (u64, f64) {
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        f();
        n += 1;
    }
    (n, t0.elapsed().as_secs_f64())
}

/// Spawns `cmd` with its stdout piped and reads the first line it prints (a test's shell
/// prints a pid first); the child keeps its stdout (what was read ahead of the line is
/// lost).
pub fn spawn_first_line(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    (child, line)
}

pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Resident memory of process `pid`, in bytes (0 if it cannot be read).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// A TCP connection to `dst` from the local address `src` (any 127.0.0.0/8 address
/// works on loopback: tests use them to appear as many different peers).
pub fn connect_tcp_from(src: std::net::Ipv4Addr, dst: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(dst) = dst else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    let s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let local = sin(src, 0);
    // SAFETY: `local` is a valid sockaddr_in of `len` bytes.
    if unsafe { libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let remote = sin(*dst.ip(), dst.port());
    // SAFETY: `remote` is a valid sockaddr_in of `len` bytes.
    if unsafe { libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s)
}

/// The client half of HELLO/ATTACH on a stream the caller drives itself (raw frames
/// afterwards); `psk` None = insecure test mode.
pub fn raw_handshake<S: std::io::Read + std::io::Write>(
    s: &mut S,
    psk: Option<&Psk>,
) -> qtfs_client::Result<qtfs_proto::handshake::Agreed> {
    use qtfs_proto::{AttachAck, FrameHeader, HelloAck, MAX_PAYLOAD, Op, Wire, push_frame};
    let mut hs = qtfs_proto::handshake::ClientHandshake::new(psk, psk.is_none(), qtfs_proto::consts::feat::ALL, None);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    push_frame(&mut out, FrameHeader::request(Op::HELLO, 1, 0), &hs.hello("testkit"));
    s.write_all(&out).map_err(|e| qtfs_client::ClientError::io("send HELLO", e))?;
    let h = qtfs_client::read_frame(s, &mut buf, MAX_PAYLOAD)?.ok_or(qtfs_client::ClientError::Disconnected)?;
    if h.is_error() {
        return Err(qtfs_client::ClientError::Remote(h.status));
    }
    let attach = hs.on_hello_ack(&HelloAck::decode(&buf)?)?;
    out.clear();
    push_frame(&mut out, FrameHeader::request(Op::ATTACH, 2, 0), &attach);
    s.write_all(&out).map_err(|e| qtfs_client::ClientError::io("send ATTACH", e))?;
    let h = qtfs_client::read_frame(s, &mut buf, MAX_PAYLOAD)?.ok_or(qtfs_client::ClientError::Disconnected)?;
    if h.is_error() {
        return Err(qtfs_client::ClientError::Remote(h.status));
    }
    Ok(hs.on_attach_ack(&AttachAck::decode(&buf)?)?)
}
