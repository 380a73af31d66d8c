//! Test rig: the real `engine` binary on a temporary export and the real `qtfs-fuse`
//! binary mounting it on a temporary directory, plus a plain local directory beside the
//! export on the same file system for differential checks.
//!
//! The engine binary is found next to this test's executable (`target/<profile>/engine`,
//! which `cargo test --workspace` builds before running any test); when it is missing
//! (e.g. `cargo test -p qtfs-client-fuse` on a clean tree) it is built with the same
//! cargo and profile. Needs root and /dev/fuse: without them the tests fail loudly.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The whitelist groups the rig's export is in besides Mount (written first): every one
/// but Kill.
fn groups() -> impl Iterator<Item = &'static str> {
    qtfs_testkit::ALL_GROUPS.iter().copied().filter(|g| !matches!(*g, "Mount" | "Kill"))
}

/// `target/<profile>/` of this build.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent().and_then(|p| p.parent()).expect("target/<profile>").to_path_buf()
}

/// The engine binary, built if it is not there yet.
pub fn engine_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = target_dir();
            let bin = dir.join("engine");
            if !bin.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let mut cmd = Command::new(cargo);
                cmd.args(["build", "-q", "-p", "qtfs-engine", "--bin", "engine"]);
                if dir.file_name().is_some_and(|n| n == "release") {
                    cmd.arg("--release");
                }
                let st = cmd.status().expect("run cargo build for the engine");
                assert!(st.success(), "cargo build -p qtfs-engine failed");
            }
            assert!(bin.exists(), "engine binary not found at {}", bin.display());
            bin
        })
        .clone()
}

pub fn fuse_bin() -> &'static str {
    env!("CARGO_BIN_EXE_qtfs-fuse")
}

/// Fails loudly when the machine cannot run FUSE tests (no silent skip).
pub fn require_fuse() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the FUSE tests need root (they mount and switch uids)");
    assert!(Path::new("/dev/fuse").exists(), "/dev/fuse is missing (scripts/setup.sh test creates it)");
    assert!(
        Command::new("fusermount3").arg("-V").output().is_ok(),
        "fusermount3 is missing (scripts/setup.sh test installs fuse3)"
    );
}

/// How to start a rig.
pub struct Opts {
    pub cores: usize,
    pub connections: usize,
    /// Extra `-o` options for qtfs-fuse.
    pub mount_opts: Vec<String>,
    pub psk: Option<String>,
    /// Extra engine arguments (e.g. `--allow-devices`).
    pub engine_args: Vec<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts { cores: 2, connections: 2, mount_opts: vec![], psk: None, engine_args: vec![] }
    }
}

pub struct Engine {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub struct Rig {
    pub dir: tempfile::TempDir,
    /// The exported HOST directory.
    pub export: PathBuf,
    /// A plain directory on the same file system, for differential checks.
    pub local: PathBuf,
    pub mnt: PathBuf,
    pub engine: Option<Engine>,
    pub fuse: Option<Child>,
    pub fuse_log: Arc<Mutex<Vec<String>>>,
    opts: Opts,
}

fn pump(
    stream: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
    tag: &'static str,
) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if std::env::var("QTFS_TEST_LOG").is_ok() {
                eprintln!("[{tag}] {line}");
            }
            let _ = tx.send(line.clone());
            log.lock().unwrap().push(line);
        }
    });
    rx
}

impl Rig {
    /// Engine + mount, ready to use.
    pub fn start(opts: Opts) -> Rig {
        if let Ok(dirs) = std::env::var("QTFS_POSIX_DIRS") {
            return Rig::on_dirs(&dirs, opts);
        }
        require_fuse();
        let dir = tempfile::Builder::new().prefix("qtfs-fuse-test").tempdir().unwrap();
        let export = dir.path().join("export");
        let local = dir.path().join("local");
        let mnt = dir.path().join("mnt");
        for d in [&export, &local, &mnt] {
            std::fs::create_dir(d).unwrap();
        }
        // Both trees world-writable like a shared directory, so other uids can work there.
        use std::os::unix::fs::PermissionsExt;
        for d in [&export, &local] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let export = export.canonicalize().unwrap();
        let mut wl = format!("[Mount]\nPath={}\n", export.display());
        for g in groups() {
            wl.push_str(&format!("[{g}]\nPath={}\n", export.display()));
        }
        std::fs::write(dir.path().join("whitelist"), wl).unwrap();
        if let Some(k) = &opts.psk {
            let kp = dir.path().join("psk");
            std::fs::write(&kp, k).unwrap();
            std::fs::set_permissions(&kp, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let mut rig =
            Rig { dir, export, local, mnt, engine: None, fuse: None, fuse_log: Arc::new(Mutex::new(Vec::new())), opts };
        rig.start_engine(0);
        rig.mount();
        rig
    }

    /// No engine and no FUSE: `QTFS_POSIX_DIRS=REF:TARGET` runs a test's scenarios in a
    /// fresh directory under REF (the rig's `local`) and one under TARGET (its `mnt` and
    /// `export` alike), so the POSIX suite (tests/posix.rs) can check any mounted file
    /// system against a reference directory: tests/vm runs it in a guest on a qtfs.ko mount
    /// against the guest's tmpfs. Mount options are ignored.
    fn on_dirs(dirs: &str, opts: Opts) -> Rig {
        use std::os::unix::fs::PermissionsExt;
        let (r, t) = dirs.split_once(':').expect("QTFS_POSIX_DIRS=REF:TARGET");
        let dir = tempfile::Builder::new().prefix("qtfs-posix").tempdir_in(t).unwrap();
        let local = tempfile::Builder::new().prefix("qtfs-posix").tempdir_in(r).unwrap().keep();
        let mnt = dir.path().to_path_buf();
        for d in [&local, &mnt] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        Rig {
            dir,
            export: mnt.clone(),
            local,
            mnt,
            engine: None,
            fuse: None,
            fuse_log: Arc::new(Mutex::new(Vec::new())),
            opts,
        }
    }

    /// An engine with the whitelist `wl` and no mount (for exports outside the rig's
    /// directory, such as the HOST's /proc); mount with `fuse_args()`.
    pub fn engine_only(opts: Opts, wl: &str) -> Rig {
        require_fuse();
        let dir = tempfile::Builder::new().prefix("qtfs-fuse-test").tempdir().unwrap();
        let (export, local, mnt) = (dir.path().join("export"), dir.path().join("local"), dir.path().join("mnt"));
        for d in [&export, &local, &mnt] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(dir.path().join("whitelist"), wl).unwrap();
        let mut rig =
            Rig { dir, export, local, mnt, engine: None, fuse: None, fuse_log: Arc::new(Mutex::new(Vec::new())), opts };
        rig.start_engine(0);
        rig
    }

    pub fn psk_path(&self) -> PathBuf {
        self.dir.path().join("psk")
    }

    /// Starts the engine on `port` (0 = any free port).
    pub fn start_engine(&mut self, port: u16) {
        let d = self.dir.path();
        let mut cmd = Command::new(engine_bin());
        cmd.arg("--cores")
            .arg(self.opts.cores.to_string())
            .arg("--listen")
            .arg(format!("tcp:127.0.0.1:{port}"))
            .arg("--whitelist")
            .arg(d.join("whitelist"))
            .arg("--admin-socket")
            .arg(d.join("engine.sock"))
            .arg("--lock-file")
            .arg(d.join("engine.lock"))
            .arg("--log-level")
            .arg("INFO")
            .arg("--no-pin")
            .args(&self.opts.engine_args);
        if self.opts.psk.is_some() {
            cmd.arg("--psk-file").arg(self.psk_path());
        } else {
            cmd.arg("--insecure-test-mode");
        }
        let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("spawn engine");
        let log = Arc::new(Mutex::new(Vec::new()));
        let rx = pump(child.stderr.take().unwrap(), log.clone(), "engine");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("engine ready") => {
                    let i = line.find("listen=").expect("listen= in the ready line");
                    let a = line[i + 7..].split_whitespace().next().unwrap();
                    break a.rsplit(':').next().unwrap().trim_end_matches(',').parse::<u16>().expect("port");
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("engine did not start: {:?}", log.lock().unwrap());
                }
            }
        };
        // Keep draining the log in the background.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        self.engine = Some(Engine { child, port, log });
    }

    pub fn port(&self) -> u16 {
        self.engine.as_ref().expect("engine").port
    }

    pub fn server(&self) -> String {
        format!("tcp:127.0.0.1:{}", self.port())
    }

    /// The common arguments of a qtfs-fuse command line (before REMOTE MNT), with the
    /// transport of [`transport`]: `-o io_uring=on`, `-o io_uring=off,dev_ring=on` or `-o io_uring=off,dev_ring=off`.
    pub fn fuse_args(&self) -> Vec<String> {
        let mut a = vec!["-f".to_string(), "--server".into(), self.server(), "--connections".into()];
        a.push(self.opts.connections.to_string());
        if self.opts.psk.is_some() {
            a.push("--psk-file".into());
            a.push(self.psk_path().display().to_string());
        } else {
            a.push("--insecure-test-mode".into());
        }
        a.push("--log-level".into());
        a.push("info".into());
        a.push("-o".into());
        a.push(
            match transport() {
                Transport::Uring => "io_uring=on",
                Transport::DevRing => "io_uring=off,dev_ring=on",
                Transport::Dev => "io_uring=off,dev_ring=off",
            }
            .into(),
        );
        for o in &self.opts.mount_opts {
            a.push("-o".into());
            a.push(o.clone());
        }
        a
    }

    /// Mounts the export on `mnt` with qtfs-fuse in the foreground and waits for it.
    pub fn mount(&mut self) {
        let mut child = Command::new(fuse_bin())
            .args(self.fuse_args())
            .arg(&self.export)
            .arg(&self.mnt)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn qtfs-fuse");
        let rx = pump(child.stderr.take().unwrap(), self.fuse_log.clone(), "fuse");
        std::thread::spawn(move || while rx.recv().is_ok() {});
        let ok =
            wait_until(Duration::from_secs(20), || is_mounted(&self.mnt) || child.try_wait().ok().flatten().is_some());
        if !ok || !is_mounted(&self.mnt) {
            let _ = child.kill();
            panic!("qtfs-fuse did not mount: {:?}", self.fuse_log.lock().unwrap());
        }
        self.fuse = Some(child);
        self.check_transport();
    }

    /// Waits for qtfs-fuse's `transport:` line and checks it names the transport asked
    /// for (`QTFS_FUSE_TRANSPORT`).
    pub fn check_transport(&self) {
        let line = || self.fuse_log.lock().unwrap().iter().rev().find(|l| l.contains("transport: ")).cloned();
        // The line comes once the rings are registered, right after INIT.
        assert!(
            wait_until(Duration::from_secs(20), || line().is_some()),
            "no transport line from qtfs-fuse: {:?}",
            self.fuse_log.lock().unwrap()
        );
        let l = line().unwrap();
        let want = match transport() {
            Transport::Uring => "transport: io_uring",
            Transport::DevRing => "transport: /dev/fuse through",
            Transport::Dev => "transport: /dev/fuse (",
        };
        assert!(l.contains(want), "QTFS_FUSE_TRANSPORT wants {want:?}, qtfs-fuse says: {l}");
    }

    /// Unmounts and waits for qtfs-fuse to exit; returns its exit status code.
    pub fn unmount(&mut self) -> Option<i32> {
        let st = Command::new("fusermount3").arg("-u").arg(&self.mnt).status().unwrap();
        assert!(st.success(), "fusermount3 -u failed");
        let mut child = self.fuse.take()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            assert!(Instant::now() < deadline, "qtfs-fuse did not exit after unmount");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the engine (a crash); returns its port for a restart.
    pub fn kill_engine(&mut self) -> u16 {
        let mut e = self.engine.take().expect("engine running");
        e.child.kill().unwrap();
        e.child.wait().unwrap();
        e.port
    }

    /// Path in the mount.
    pub fn m(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Path in the export (the HOST view).
    pub fn h(&self, rel: &str) -> PathBuf {
        self.export.join(rel)
    }

    /// How many requests of operation `op` the rig's engine has served.
    pub fn engine_requests(&self, op: qtfs_proto::Op) -> u64 {
        qtfs_testkit::op_requests(&self.dir.path().join("engine.sock"), op)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if self.fuse.is_some() {
            let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.mnt).status();
            if let Some(mut c) = self.fuse.take() {
                let deadline = Instant::now() + Duration::from_secs(5);
                while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(mut e) = self.engine.take() {
            let _ = e.child.kill();
            let _ = e.child.wait();
        }
    }
}

/// How the suite's mounts get their requests (`QTFS_FUSE_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `dev` or unset: `/dev/fuse`, blocking workers (`-o io_uring=off,dev_ring=off`).
    Dev,
    /// `devring`: `/dev/fuse` served by ring threads (`-o dev_ring=on`).
    DevRing,
    /// `uring`: FUSE over io_uring (`-o io_uring=on`; the caller sets
    /// /sys/module/fuse/parameters/enable_uring to Y, the rig does not touch it).
    Uring,
}

pub fn transport() -> Transport {
    match std::env::var("QTFS_FUSE_TRANSPORT").as_deref() {
        Ok("uring") => Transport::Uring,
        Ok("devring") => Transport::DevRing,
        Ok("dev") | Ok("") | Err(_) => Transport::Dev,
        Ok(v) => panic!("QTFS_FUSE_TRANSPORT={v}: uring, devring or dev"),
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let Ok(p) = p.canonicalize() else { return false };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines().any(|l| l.split(' ').nth(4) == p.to_str() && l.contains(" - fuse"))
}

pub use qtfs_testkit::wait_until;

/// Runs `sh -c script` in `dir` as uid/gid with the given supplementary groups
/// (via setpriv); returns "exit=N" plus stdout and stderr, with `dir` replaced by ROOT.
pub fn sh_as(uid: u32, gid: u32, groups: &[u32], dir: &Path, script: &str) -> String {
    let g = if groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        format!("--groups={}", groups.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(","))
    };
    let out = Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg(g)
        .args(["sh", "-c", script])
        .current_dir(dir)
        .env("LC_ALL", "C")
        .output()
        .expect("setpriv");
    let d = dir.to_str().unwrap();
    format!(
        "exit={}\n{}{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).replace(d, "ROOT"),
        String::from_utf8_lossy(&out.stderr).replace(d, "ROOT")
    )
}

/// The errno name of a result, or "ok".
pub fn res<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => match e.raw_os_error() {
            Some(n) => errno_name(n),
            None => format!("{e}"),
        },
    }
}

pub fn errno_name(n: i32) -> String {
    let names = [
        (libc::EPERM, "EPERM"),
        (libc::ENOENT, "ENOENT"),
        (libc::EACCES, "EACCES"),
        (libc::EEXIST, "EEXIST"),
        (libc::EXDEV, "EXDEV"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::EISDIR, "EISDIR"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENOTEMPTY, "ENOTEMPTY"),
        (libc::ELOOP, "ELOOP"),
        (libc::ENODATA, "ENODATA"),
        (libc::ERANGE, "ERANGE"),
        (libc::EBUSY, "EBUSY"),
        (libc::ENAMETOOLONG, "ENAMETOOLONG"),
        (libc::EBADF, "EBADF"),
        (libc::EIO, "EIO"),
        (libc::ENXIO, "ENXIO"),
        (libc::EMLINK, "EMLINK"),
    ];
    names.iter().find(|(v, _)| *v == n).map_or_else(|| format!("errno {n}"), |(_, s)| s.to_string())
}

/// Starts a rig with default options, runs the same scenario in a fresh directory `name`
/// of the local directory and of the mount, each appending to its own log, and asserts
/// that the logs are the same; the rig is returned for checks on the HOST side.
pub fn same_on_both(name: &str, f: impl Fn(&Path, &mut Vec<String>)) -> Rig {
    let rig = Rig::start(Opts::default());
    let local_root = rig.local.join(name);
    let mnt_root = rig.mnt.join(name);
    std::fs::create_dir(&local_root).unwrap();
    std::fs::create_dir(&mnt_root).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for d in [&local_root, &mnt_root] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let (mut want, mut got) = (Vec::new(), Vec::new());
    f(&local_root, &mut want);
    f(&mnt_root, &mut got);
    for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
        assert_eq!(w, g, "{name}: step {i} differs between the local directory and the mount");
    }
    assert_eq!(want.len(), got.len(), "{name}: different number of steps");
    rig
}

/// A second qtfs-fuse mount of the rig's export, with the rig's options (unmounted and
/// stopped when dropped): what two clients of one export see of each other.
pub struct SecondMount {
    pub mnt: PathBuf,
    child: Child,
}

impl SecondMount {
    pub fn new(rig: &Rig) -> SecondMount {
        let mnt = rig.dir.path().join("mnt2");
        std::fs::create_dir(&mnt).unwrap();
        let child = Command::new(fuse_bin())
            .args(rig.fuse_args())
            .arg(&rig.export)
            .arg(&mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the second qtfs-fuse");
        assert!(wait_until(Duration::from_secs(20), || is_mounted(&mnt)), "second mount did not come up");
        SecondMount { mnt, child }
    }

    /// A path through the second mount.
    pub fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }
}

impl Drop for SecondMount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.mnt).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
