//! Harness of the rexec tests: a real rexec_server on a temporary socket with a
//! temporary whitelist, and rexec commands pointed at it (REXEC_PIDS_DIR in the temp dir).

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qtfs_testkit::LogTail;

pub const REXEC: &str = env!("CARGO_BIN_EXE_rexec");
pub const SERVER: &str = env!("CARGO_BIN_EXE_rexec_server");

/// Binaries every test server allows.
pub const DEFAULT_WL: &[&str] =
    &["/bin/sh", "sh", "/bin/bash", "/bin/true", "/bin/cat", "/usr/bin/python3", "/bin/sleep", "sleep"];

pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub pids: PathBuf,
    /// The server's stderr.
    pub log: LogTail,
}

impl Server {
    pub fn start(extra_wl: &[&str], args: &[&str]) -> Server {
        Server::start_with(extra_wl, args, |_| {})
    }

    /// `start`, with `setup` applied to the server's command first (a `pre_exec` that
    /// changes what the server inherits, say).
    pub fn start_with(extra_wl: &[&str], args: &[&str], setup: impl FnOnce(&mut Command)) -> Server {
        let dir = tempfile::Builder::new().prefix("rx").tempdir_in("/tmp").unwrap();
        let wl = dir.path().join("whitelist");
        let mut text = String::new();
        for b in DEFAULT_WL.iter().chain(extra_wl) {
            text.push_str(b);
            text.push('\n');
        }
        std::fs::write(&wl, text).unwrap();
        std::fs::set_permissions(&wl, std::fs::Permissions::from_mode(0o600)).unwrap();
        let socket = dir.path().join("rexec.sock");
        let pids = dir.path().join("pids");
        let mut cmd = Command::new(SERVER);
        setup(&mut cmd);
        // A test run killed from outside (a timeout) must not leave servers behind.
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .arg("--whitelist")
            .arg(&wl)
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = LogTail::new(child.stderr.take().unwrap(), "server", "REXEC_TEST_LOG");
        if !log.contains_within("rexec_server ready", Duration::from_secs(20)) {
            let _ = child.kill();
            panic!("rexec_server did not start: {log:?}");
        }
        Server { child, dir, socket, pids, log }
    }

    /// A rexec command aimed at this server (stdin /dev/null unless changed). The test
    /// harness may leak descriptors (jobserver pipes, /dev/null…) into children, which
    /// rexec would pass or refuse: everything above 2 is closed in the child.
    pub fn rexec(&self, args: &[&str]) -> Command {
        let mut c = self.rexec_bare(&self.socket, args);
        close_extra_fds(&mut c, &[]);
        c
    }

    /// Like `rexec`, at another socket, without closing descriptors (use `map_fds`).
    pub fn rexec_bare(&self, socket: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(REXEC);
        c.args(args).env("REXEC_SOCKET", socket).env("REXEC_PIDS_DIR", &self.pids).stdin(Stdio::null());
        c.env_remove("REXEC_HANDSHAKE_RD").env_remove("REXEC_HANDSHAKE_WR");
        c
    }

    /// Waits (up to 10 s) for a log line containing `needle`: another thread reads the
    /// log, so a line the process has already written may not be here yet.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.contains(needle)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In the child before exec: `dup2(src, dst)` for each pair, then every other descriptor
/// above 2 is closed (`keep` are extra numbers left alone).
pub fn map_fds(c: &mut Command, pairs: Vec<(i32, i32)>, keep: Vec<i32>) {
    // SAFETY: the closure only calls async-signal-safe functions (dup2, fcntl, close).
    unsafe {
        c.pre_exec(move || {
            // Every source first moves out of the way (a source may have the number of
            // an earlier target), then lands on its target; dup2 from another number also
            // clears FD_CLOEXEC (a source may already have the wanted number).
            let mut moved = [0i32; 64];
            for (i, &(s, _)) in pairs.iter().enumerate().take(64) {
                moved[i] = libc::fcntl(s, libc::F_DUPFD_CLOEXEC, 600);
                if moved[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &(_, d)) in pairs.iter().enumerate().take(64) {
                if libc::dup2(moved[i], d) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for fd in 3..1024 {
                if !pairs.iter().any(|&(_, d)| d == fd) && !keep.contains(&fd) {
                    libc::close(fd);
                }
            }
            Ok(())
        });
    }
}

fn close_extra_fds(c: &mut Command, keep: &[i32]) {
    let keep = keep.to_vec();
    // SAFETY: close() is async-signal-safe.
    unsafe {
        c.pre_exec(move || {
            for fd in 3..1024 {
                if !keep.contains(&fd) {
                    libc::close(fd);
                }
            }
            Ok(())
        });
    }
}

/// A pipe: (read end, write end), close-on-exec.
pub fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    qtfs_testkit::sock::raw_pipe()
}

pub use qtfs_testkit::wait_until;

/// Pids of the processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command name: state ppid pgrp …
        let Some(rest) = stat.rsplit_once(')').map(|x| x.1) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[2].parse::<i32>().ok() == Some(pgid) && f[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

/// Writes an executable (0755) script `body` at `path`.
pub fn script(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A stand-in for udsproxyd at `path`: every connect request is answered with a stream
/// connected to `target`, so rexec reaches rexec_server through the proxy route. The
/// thread lives as long as the test process.
pub fn fake_udsproxyd(path: &Path, target: &Path) {
    use qtfs_udsproxyd::{sys, wire};
    use std::os::fd::AsRawFd;
    let l = qtfs_udsproxyd::bind_path(path, libc::SOCK_SEQPACKET, 0o666).unwrap();
    let target = target.to_path_buf();
    std::thread::spawn(move || {
        while let Ok(c) = sys::accept(l.as_raw_fd()) {
            if !sys::wait_readable(c.as_raw_fd(), Duration::from_secs(5)).unwrap_or(false) {
                continue;
            }
            let mut buf = [0u8; wire::REQ_MAX];
            let Ok(n) = sys::recv_nb(c.as_raw_fd(), &mut buf) else { continue };
            if wire::decode_request(&buf[..n]).is_none() {
                continue;
            }
            let s = std::os::unix::net::UnixStream::connect(&target).unwrap();
            sys::send_with_fds(c.as_raw_fd(), &wire::encode_answer(0), &[s.as_raw_fd()]).unwrap();
        }
    });
}

/// Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, …
pub fn proc_stat(pid: i32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').map(|x| x.1).unwrap_or("").split_whitespace().map(str::to_string).collect()
}

/// A process that exists and is not a zombie.
pub fn running(pid: i32) -> bool {
    proc_stat(pid).first().is_some_and(|s| s != "Z")
}
