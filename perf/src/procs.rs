//! Starting the project's own daemons for a benchmark, and watching them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qtfs_proto::Addr;

/// The directory holding this binary (where `cargo build` also put the engine).
pub fn bin_dir() -> PathBuf {
    std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_else(|| PathBuf::from("."))
}

/// A project binary next to this one (`engine`, `qtfs-fuse`, …).
pub fn sibling(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A daemon started for a benchmark; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub addr: Option<Addr>,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size in KiB (VmRSS), if the process is alive.
    pub fn rss_kib(&self) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a daemon and waits for the stderr line containing `ready`; an address after
/// `listen=` on that line becomes `addr`.
pub fn spawn_until_ready(mut cmd: Command, ready: &str, timeout: Duration) -> std::io::Result<Daemon> {
    let mut child = cmd.stderr(Stdio::piped()).stdout(Stdio::null()).spawn()?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = ready.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent && line.contains(&ready) {
                let addr =
                    line.find("listen=").and_then(|i| line[i + 7..].split_whitespace().next()).map(str::to_string);
                let _ = tx.send(addr);
                sent = true;
            }
            if std::env::var_os("QTFS_PERF_VERBOSE").is_some() {
                eprintln!("[daemon] {line}");
            }
        }
    });
    match rx.recv_timeout(timeout) {
        Ok(a) => Ok(Daemon { child, addr: a.and_then(|a| Addr::parse(&a).ok()) }),
        Err(_) => {
            let _ = child.kill();
            Err(std::io::Error::other("daemon did not become ready"))
        }
    }
}

/// Starts the engine on TCP loopback (port chosen by the kernel) exporting `export`.
pub fn start_engine(work: &Path, export: &Path, cores: usize, extra: &[&str]) -> std::io::Result<Daemon> {
    let wl = work.join("whitelist");
    let p = export.display();
    let mut text = String::from("# benchmark whitelist\n");
    for g in [
        "Mount", "Open", "Read", "Write", "Readdir", "Mkdir", "Rmdir", "Create", "Unlink", "Rename", "Setattr",
        "Setxattr",
    ] {
        text.push_str(&format!("[{g}]\nPath={p}\n"));
    }
    std::fs::write(&wl, text)?;
    let mut cmd = Command::new(sibling("engine"));
    cmd.arg("--cores")
        .arg(cores.to_string())
        .args(["--listen", "tcp:127.0.0.1:0", "--insecure-test-mode", "--whitelist"])
        .arg(&wl)
        .arg("--admin-socket")
        .arg(work.join(format!("engine-{cores}.sock")))
        .arg("--lock-file")
        .arg(work.join(format!("engine-{cores}.lock")))
        .args(extra);
    // The ready line is logged at INFO.
    cmd.args(["--log-level", "INFO"]);
    spawn_until_ready(cmd, "engine ready", Duration::from_secs(20))
}

/// A tmpfs mounted at `dir` (the fair backing store of BENCH-METHOD.md); unmounted on drop.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size_mib: u64) -> std::io::Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .status()?;
        if !st.success() {
            return Err(std::io::Error::other("mount -t tmpfs failed (root needed)"));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
