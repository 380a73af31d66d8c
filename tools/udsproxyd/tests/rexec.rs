//! rexec across the proxy: the DPU runs `rexec`, whose rexec_server socket exists only in
//! the HOST's mount namespace, so the stream goes rexec → udsproxyd → engine →
//! rexec_server. A udsproxyd restart (a transport drop) must not end the remote process;
//! killing rexec must end it within a second.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Remote {
    rig: Rig,
    socket: PathBuf,
    pids: PathBuf,
    _server: Proc,
}

fn start(rig_opts: RigOpts) -> Remote {
    let rig = Rig::start(rig_opts);
    let (server, socket) = start_rexec_server(&rig, "/bin/sh\n/bin/echo\n");
    let pids = rig.dpu.join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    assert!(!socket.exists(), "the rexec_server socket must not be visible on the DPU side");
    Remote { rig, socket, pids, _server: server }
}

impl Remote {
    fn rexec(&self, args: &[&str]) -> Command {
        let mut c = Command::new(qtfs_testkit::workspace_bin("qtfs-rexec", "rexec"));
        // Only stdio is inherited (a test runner may leak other descriptors, which rexec
        // would rightly refuse to pass).
        use std::os::unix::process::CommandExt;
        // SAFETY: close_range is async-signal-safe; nothing else runs in the child.
        unsafe {
            c.pre_exec(|| {
                libc::close_range(3, u32::MAX, 0);
                Ok(())
            });
        }
        c.args(args)
            .env("REXEC_SOCKET", &self.socket)
            .env("REXEC_PIDS_DIR", &self.pids)
            .env("UDSPROXY_SOCKET", self.rig.request_socket())
            .stdin(Stdio::null());
        c
    }

    /// The HOST pid of the remote process of local rexec `pid`, once rexec recorded it.
    fn remote_pid(&self, pid: u32) -> i32 {
        let pidfile = self.pids.join(pid.to_string());
        assert!(
            wait_until(Duration::from_secs(10), || std::fs::read_to_string(&pidfile)
                .is_ok_and(|s| !s.trim().is_empty())),
            "the remote process never started"
        );
        std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap()
    }
}

/// Processes of group `pgid` that are not zombies (a killed orphan stays a zombie until
/// its new parent reaps it; it no longer runs).
fn live_group_members(pgid: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid pgrp …; comm may contain spaces, so split after ')'.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 2 && f[0] != "Z" && f[2].parse::<i32>() == Ok(pgid)
        })
        .count()
}

#[test]
fn exit_status_and_output_cross_the_proxy() {
    let r = start(RigOpts::default());
    let o = r.rexec(&["/bin/sh", "-c", "echo out; echo err >&2; exit 42"]).output().unwrap();
    assert_eq!(o.status.code(), Some(42), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"out\n");
    assert_eq!(o.stderr, b"err\n");
    // Without the proxy the socket cannot be reached at all: a clear error, status 255.
    let o = r.rexec(&["/bin/echo", "x"]).env("UDSPROXY_SOCKET", "/nonexistent").output().unwrap();
    assert_eq!(o.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&o.stderr).contains("udsproxyd"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_udsproxyd_restart_does_not_end_the_remote_process() {
    let mut r = start(RigOpts::default());
    let child = r
        .rexec(&["/bin/sh", "-c", "sleep 3; echo finished"])
        .env("REXEC_GRACE", "30")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The remote process runs (its HOST pid recorded) before the transport drops.
    r.remote_pid(child.id());
    // A transport drop: udsproxyd goes away and comes back.
    r.rig.uds.as_mut().unwrap().kill();
    r.rig.uds = None;
    std::thread::sleep(Duration::from_millis(300));
    r.rig.start_udsproxyd();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"finished\n", "the output arrives exactly once");
}

#[test]
fn killing_rexec_ends_the_remote_group_within_a_second() {
    let r = start(RigOpts::default());
    let mut child = r.rexec(&["/bin/sh", "-c", "sleep 30 & sleep 30; wait"]).spawn().unwrap();
    let remote = r.remote_pid(child.id());
    // The HOST shares the pid namespace in this rig: the group is visible.
    assert!(std::path::Path::new(&format!("/proc/{remote}")).exists());
    child.kill().unwrap();
    let _ = child.wait();
    let t0 = Instant::now();
    let gone = wait_until(Duration::from_secs(3), || live_group_members(remote) == 0);
    assert!(gone, "remote group still alive");
    assert!(t0.elapsed() < Duration::from_secs(1), "took {:?}", t0.elapsed());
}
