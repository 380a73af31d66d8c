//! `--pidfile` and `--daemonize-on-socket` (qemu's -daemonize, as libvirt's capability
//! probe uses it): the parent exits 0 once the remote process made its socket, the pid
//! in the pid file is a local daemon that owns the remote process, and a remote process
//! that exits first gives rexec its status.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// A fake qemu on the HOST side: says something on stderr, then listens on the unix
/// socket "$1" (after a short delay) and sleeps.
const FAKE_QEMU: &str = "#!/bin/sh\necho starting >&2\nexec /usr/bin/python3 -c '\nimport socket, sys, time\n\
                         time.sleep(0.3)\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen(1)\n\
                         time.sleep(300)\n' \"$1\"\n";

/// A server whose whitelist allows one fake binary: the script `body`, named `name`, in a
/// directory made for it before the server starts. (That directory, the binary, the
/// server.)
fn server_with(name: &str, body: &str) -> (tempfile::TempDir, PathBuf, Server) {
    let t = tempfile::Builder::new().prefix("rxd").tempdir_in("/tmp").unwrap();
    let fake = t.path().join(name);
    script(&fake, body);
    let s = Server::start(&[fake.to_str().unwrap()], &[]);
    (t, fake, s)
}

/// Starts a daemonized rexec of the fake qemu: (daemon pid, remote pid, pid file).
fn start_daemon(s: &Server, fake: &Path, tag: &str) -> (i32, i32, PathBuf) {
    let pidfile = s.dir.path().join(format!("{tag}.pid"));
    let sock = s.dir.path().join(format!("{tag}.monitor"));
    let args = [
        "--pidfile",
        pidfile.to_str().unwrap(),
        "--daemonize-on-socket",
        sock.to_str().unwrap(),
        fake.to_str().unwrap(),
        sock.to_str().unwrap(),
    ];
    let t0 = Instant::now();
    let child = s.rexec(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let parent = child.id() as i32;
    // Returns only once the parent exited and nothing holds the caller's pipes any more.
    let o = child.wait_with_output().unwrap();
    eprintln!("daemonized in {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(15), "took {:?}", t0.elapsed());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "starting\n", "output before the socket reaches the caller");
    let daemon: i32 = std::fs::read_to_string(&pidfile).unwrap().strip_suffix('\n').unwrap().parse().unwrap();
    assert_ne!(daemon, parent);
    assert!(running(daemon), "daemon {daemon} not running");
    assert_eq!(std::fs::read_to_string(format!("/proc/{daemon}/comm")).unwrap(), "rexec\n");
    // Its own session, stdio on /dev/null.
    assert_eq!(proc_stat(daemon)[3], daemon.to_string(), "setsid");
    for fd in 0..3 {
        assert_eq!(std::fs::read_link(format!("/proc/{daemon}/fd/{fd}")).unwrap(), Path::new("/dev/null"));
    }
    let mode = std::fs::metadata(&pidfile).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    // The pid map follows the daemon.
    assert!(!s.pids.join(parent.to_string()).exists(), "the parent's map file is left");
    let remote: i32 = std::fs::read_to_string(s.pids.join(daemon.to_string())).unwrap().trim().parse().unwrap();
    assert!(!group_members(remote).is_empty(), "remote {remote} not running");
    (daemon, remote, pidfile)
}

/// Starts a daemonized fake qemu (`name`) on a server of its own, sends the daemon `sig`
/// and checks that the remote process ends; (its tools directory, the server, the
/// daemon's pid, its pid file).
fn signal_daemon(name: &str, sig: i32) -> (tempfile::TempDir, Server, i32, PathBuf) {
    let (t, fake, s) = server_with("fake-qemu", FAKE_QEMU);
    let (daemon, remote, pidfile) = start_daemon(&s, &fake, name);
    // SAFETY: a process of this test.
    unsafe { libc::kill(daemon, sig) };
    assert!(wait_until(Duration::from_secs(5), || group_members(remote).is_empty()), "remote {remote} survived");
    (t, s, daemon, pidfile)
}

#[test]
fn sigkill_of_the_daemon_ends_the_remote_process() {
    signal_daemon("a", libc::SIGKILL);
}

#[test]
fn sigterm_of_the_daemon_is_forwarded_and_its_pid_file_removed() {
    let (_t, s, daemon, pidfile) = signal_daemon("b", libc::SIGTERM);
    assert!(wait_until(Duration::from_secs(5), || !running(daemon)), "daemon still running");
    assert!(!pidfile.exists(), "pid file left behind");
    assert!(!s.pids.join(daemon.to_string()).exists(), "map file left behind");
}

#[test]
fn a_remote_exit_before_the_socket_is_the_exit_status() {
    let (_t, fake, s) = server_with("fails", "#!/bin/sh\necho boom >&2\nexit 3\n");
    let pidfile = s.dir.path().join("c.pid");
    let sock = s.dir.path().join("c.monitor");
    let o = s
        .rexec(&[
            "--pidfile",
            pidfile.to_str().unwrap(),
            "--daemonize-on-socket",
            sock.to_str().unwrap(),
            fake.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "boom\n");
    assert!(!pidfile.exists());
}

#[test]
fn a_socket_that_never_appears_stops_the_remote_process() {
    let (_t, fake, s) = server_with("silent", "#!/bin/sh\necho $$\nexec sleep 300\n");
    let sock = s.dir.path().join("e.monitor");
    let t0 = Instant::now();
    let o = s
        .rexec(&["--daemonize-on-socket", sock.to_str().unwrap(), fake.to_str().unwrap()])
        .env("REXEC_DAEMONIZE_TIMEOUT", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert!(text(&o.stderr).contains("did not appear within 1 s"), "{}", text(&o.stderr));
    let remote: i32 = text(&o.stdout).trim().parse().unwrap();
    assert!(wait_until(Duration::from_secs(5), || group_members(remote).is_empty()), "remote {remote} survived");
}

#[test]
fn pidfile_without_daemonizing_names_rexec_itself() {
    let s = Server::start(&[], &[]);
    let pidfile = s.dir.path().join("d.pid");
    let script = format!("cat {}", pidfile.display());
    let child = s
        .rexec(&["--pidfile", pidfile.to_str().unwrap(), "/bin/sh", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stdout), format!("{id}\n"));
    assert!(!pidfile.exists(), "removed at the end");
}
