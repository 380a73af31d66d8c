//! rexec against a real rexec_server (run as root): exit statuses, signals, stdio,
//! env/cwd, descriptor passing, whitelist, handshake, concurrency, and transport drops
//! through a relay that is cut while the remote process runs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use qtfs_testkit::spawn_first_line;

fn out(mut c: Command) -> (i32, String, String) {
    let o = c.stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    (o.status.code().unwrap_or(-1), text(&o.stdout), text(&o.stderr))
}

#[test]
fn exit_codes_are_the_remote_ones() {
    let s = Server::start(&[], &[]);
    for code in [0, 1, 42] {
        let (rc, _, err) = out(s.rexec(&["/bin/sh", "-c", &format!("exit {code}")]));
        assert_eq!(rc, code, "{err}");
    }
    let (rc, o, _) = out(s.rexec(&["/bin/true"]));
    assert_eq!((rc, o.as_str()), (0, ""));
    assert!(s.log_contains("exited") && s.log_contains("status=42"), "every command is logged");
}

#[test]
fn death_by_signal_is_128_plus_n() {
    let s = Server::start(&[], &[]);
    let (rc, _, _) = out(s.rexec(&["/bin/sh", "-c", "kill -KILL $$"]));
    assert_eq!(rc, 128 + 9);
    let (rc, _, _) = out(s.rexec(&["/bin/sh", "-c", "kill -TERM $$"]));
    assert_eq!(rc, 128 + 15);
}

#[test]
fn argv_is_forwarded_verbatim() {
    let s = Server::start(&[], &[]);
    let (rc, o, e) =
        out(s.rexec(&["/bin/sh", "-c", "for a in \"$@\"; do echo \"[$a]\"; done", "x", "a b", "", " *", "-c"]));
    assert_eq!(rc, 0, "{e}");
    assert_eq!(o, "[a b]\n[]\n[ *]\n[-c]\n");
}

#[test]
fn large_stdout_and_stderr_stay_separate_and_ordered() {
    let s = Server::start(&[], &[]);
    // 1 MiB of varied bytes, written 100 times to stdout (100 MiB), one stderr line per copy.
    let block: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let f = s.dir.path().join("block");
    std::fs::write(&f, &block).unwrap();
    let script = format!("i=0; while [ $i -lt 100 ]; do cat {}; i=$((i+1)); echo err$i >&2; done", f.display());
    let t0 = Instant::now();
    let mut child = s.rexec(&["/bin/sh", "-c", &script]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut so = child.stdout.take().unwrap();
    let se = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let mut v = String::new();
        BufReader::new(se).read_to_string(&mut v).unwrap();
        v
    });
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0usize;
    let mut sum = 0u64;
    loop {
        let n = so.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            let want = block[(total + i) % block.len()];
            assert_eq!(b, want, "stdout byte {} differs", total + i);
            sum = sum.wrapping_mul(31).wrapping_add(b as u64);
        }
        total += n;
    }
    let st = child.wait().unwrap();
    let errs = errs.join().unwrap();
    assert_eq!(total, 100 << 20, "stdout length");
    let mut expect_sum = 0u64;
    for i in 0..total {
        expect_sum = expect_sum.wrapping_mul(31).wrapping_add(block[i % block.len()] as u64);
    }
    assert_eq!(sum, expect_sum, "checksum");
    let want: String = (1..=100).map(|i| format!("err{i}\n")).collect();
    assert_eq!(errs, want, "stderr in order, nothing else");
    assert_eq!(st.code(), Some(0));
    eprintln!("100 MiB relayed in {:?}", t0.elapsed());
}

#[test]
fn stdin_is_piped_through_and_eof_propagates() {
    let s = Server::start(&[], &[]);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut child = s
        .rexec(&["/bin/sh", "-c", "cat; echo done-after-eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut si = child.stdin.take().unwrap();
    let d2 = data.clone();
    let w = std::thread::spawn(move || si.write_all(&d2).unwrap());
    let mut got = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    w.join().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(&got[..data.len()], &data[..]);
    assert_eq!(&got[data.len()..], b"done-after-eof\n");
}

#[test]
fn env_and_cwd_are_applied_and_loader_variables_dropped() {
    // FOO is not on the default allow-list (tests/sanitize.rs has the rest).
    let s = Server::start(&[], &["--env-allow", "FOO"]);
    let cwd = s.dir.path().canonicalize().unwrap();
    let script = "echo \"foo=$FOO pre=[$LD_PRELOAD] lib=[$LD_LIBRARY_PATH] audit=[$LD_AUDIT]\"; pwd";
    let mut c = s.rexec(&["/bin/sh", "-c", script]);
    c.current_dir(&cwd).env("FOO", "bar baz").env("LD_PRELOAD", "").env("LD_LIBRARY_PATH", "/nonexistent");
    c.env("LD_AUDIT", "");
    let (rc, o, e) = out(c);
    assert_eq!(rc, 0, "{e}");
    assert_eq!(o, format!("foo=bar baz pre=[] lib=[] audit=[]\n{}\n", cwd.display()));
    // A preload that the loader actually tries on the DPU side never reaches the HOST.
    let mut c = s.rexec(&["/bin/sh", "-c", "echo \"[$LD_PRELOAD]\""]);
    c.env("LD_PRELOAD", "/nonexistent/libevil.so");
    let (rc, o, _) = out(c);
    assert_eq!((rc, o.as_str()), (0, "[]\n"));
    // --env-allow restricts what is sent.
    let mut c = s.rexec(&["--env-allow", "FOO", "/bin/sh", "-c", "echo \"$FOO/$BAR/$HOME\""]);
    c.env("FOO", "1").env("BAR", "2");
    let (rc, o, _) = out(c);
    assert_eq!((rc, o.as_str()), (0, "1//\n"));
    // The operator may let a loader variable through (--allow-env: the old name of --env-allow).
    let s2 = Server::start(&[], &["--allow-env", "LD_LIBRARY_PATH"]);
    let mut c = s2.rexec(&["/bin/sh", "-c", "echo \"[$LD_LIBRARY_PATH]\""]);
    c.env("LD_LIBRARY_PATH", "/opt/x");
    let (rc, o, _) = out(c);
    assert_eq!((rc, o.as_str()), (0, "[/opt/x]\n"));
}

#[test]
fn sigterm_is_forwarded() {
    let s = Server::start(&[], &[]);
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done";
    let mut child = s.rexec(&["/bin/sh", "-c", script]).stdout(Stdio::piped()).spawn().unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    line.clear();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "got-term\n");
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

fn remote_pid(s: &Server, local: u32) -> i32 {
    let f = s.pids.join(local.to_string());
    assert!(wait_until(Duration::from_secs(5), || f.exists()), "pid file {}", f.display());
    std::fs::read_to_string(&f).unwrap().trim().parse().unwrap()
}

#[test]
fn sigkill_of_rexec_kills_the_remote_group() {
    let s = Server::start(&[], &[]);
    let script = "sleep 300 & sleep 300 & echo started; wait";
    let (mut child, line) = spawn_first_line(&mut s.rexec(&["/bin/sh", "-c", script]));
    assert_eq!(line, "started\n");
    let rpid = remote_pid(&s, child.id());
    let members = group_members(rpid);
    assert!(members.len() >= 3, "shell and two sleeps in group {rpid}: {members:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let t0 = Instant::now();
    assert!(wait_until(Duration::from_secs(1), || group_members(rpid).is_empty()), "group {rpid} still alive");
    eprintln!("remote group gone {:?} after SIGKILL", t0.elapsed());
    // The dead rexec's pid file is stale (unlocked) and the next rexec removes it.
    let stale = s.pids.join(child.id().to_string());
    assert!(stale.exists());
    let (rc, _, _) = out(s.rexec(&["/bin/true"]));
    assert_eq!(rc, 0);
    assert!(!stale.exists(), "stale pid file not cleaned");
}

#[test]
fn pid_file_holds_the_remote_pid_while_running() {
    let s = Server::start(&[], &[]);
    let (mut child, line) =
        spawn_first_line(s.rexec(&["/bin/sh", "-c", "echo $$; cat > /dev/null"]).stdin(Stdio::piped()));
    let rpid = remote_pid(&s, child.id());
    assert_eq!(line.trim().parse::<i32>().unwrap(), rpid);
    let f = s.pids.join(child.id().to_string());
    let mode = std::fs::metadata(&f).unwrap().permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o600);
    drop(child.stdin.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!f.exists(), "pid file removed at exit");
}

#[test]
fn listening_socket_passed_as_fd_29() {
    let s = Server::start(&[], &[]);
    let path = s.dir.path().join("dpu-monitor.sock");
    let l = UnixListener::bind(&path).unwrap();
    let prog = "import socket\nl=socket.socket(fileno=29)\nfor _ in range(2):\n c,_=l.accept()\n d=c.recv(100)\n c.sendall(b'host got '+d)\n c.close()\n";
    let mut c = s.rexec_bare(&s.socket, &["/usr/bin/python3", "-c", prog]);
    map_fds(&mut c, vec![(l.as_raw_fd(), 29)], vec![]);
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(l);
    for msg in ["hello", "again"] {
        let mut conn = UnixStream::connect(&path).unwrap();
        conn.write_all(msg.as_bytes()).unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, format!("host got {msg}"));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn pipes_passed_as_fd_30_and_28() {
    let s = Server::start(&[], &[]);
    let (out_r, out_w) = pipe();
    let (in_r, in_w) = pipe();
    let mut c =
        s.rexec_bare(&s.socket, &["/bin/bash", "-c", "echo hello-from-host >&30; read x <&28; echo \"got $x\" >&30"]);
    map_fds(&mut c, vec![(out_w.as_raw_fd(), 30), (in_r.as_raw_fd(), 28)], vec![]);
    let mut child = c.spawn().unwrap();
    drop(out_w);
    drop(in_r);
    let mut w = std::fs::File::from(in_w);
    w.write_all(b"dpu-line\n").unwrap();
    drop(w);
    let mut got = String::new();
    std::fs::File::from(out_r).read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello-from-host\ngot dpu-line\n");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn regular_file_passed_as_fd_31_at_its_offset() {
    let s = Server::start(&[], &[]);
    let p = s.dir.path().join("data.txt");
    std::fs::write(&p, b"0123456789").unwrap();
    let mut f = std::fs::File::open(&p).unwrap();
    let mut skip = [0u8; 4];
    f.read_exact(&mut skip).unwrap();
    let mut c = s.rexec_bare(&s.socket, &["/bin/bash", "-c", "cat <&31"]);
    map_fds(&mut c, vec![(f.as_raw_fd(), 31)], vec![]);
    let (rc, o, e) = out(c);
    assert_eq!(rc, 0, "{e}");
    assert_eq!(o, "456789");
    // Write mode with O_APPEND is kept.
    let log = s.dir.path().join("log.txt");
    std::fs::write(&log, b"a\n").unwrap();
    let lf = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut c = s.rexec_bare(&s.socket, &["/bin/bash", "-c", "echo b >&31"]);
    map_fds(&mut c, vec![(lf.as_raw_fd(), 31)], vec![]);
    assert_eq!(out(c).0, 0);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\nb\n");
}

#[test]
fn with_strict_fds_unsupported_descriptors_are_refused_before_anything_runs() {
    let s = Server::start(&[], &[]);
    let pty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/ptmx").unwrap();
    let marker = s.dir.path().join("ran");
    let mut c = s.rexec_bare(&s.socket, &["--strict-fds", "/bin/sh", "-c", &format!("touch {}", marker.display())]);
    map_fds(&mut c, vec![(pty.as_raw_fd(), 7)], vec![]);
    let (rc, _, e) = out(c);
    assert_eq!(rc, 126);
    assert!(e.contains("fd 7 is a character device (/dev/"), "{e}");
    let (a, _b) = UnixStream::pair().unwrap();
    let mut c = s.rexec_bare(&s.socket, &["--strict-fds", "/bin/sh", "-c", &format!("touch {}", marker.display())]);
    map_fds(&mut c, vec![(a.as_raw_fd(), 9)], vec![]);
    let (rc, _, e) = out(c);
    assert_eq!(rc, 126);
    assert!(e.contains("fd 9 is a connected or unbound socket"), "{e}");
    assert!(!marker.exists());
}

#[test]
fn not_whitelisted_is_126_with_a_message_and_missing_is_127() {
    let s = Server::start(&["/nonexistent/bin/tool", "/etc/passwd"], &[]);
    let (rc, o, e) = out(s.rexec(&["/bin/ls", "/"]));
    assert_eq!(rc, 126);
    assert_eq!(o, "");
    assert!(e.contains("/bin/ls is not in the whitelist"), "{e}");
    // Byte-exact: "ls" and "/bin/sh " are not "/bin/ls" and "/bin/sh".
    assert_eq!(out(s.rexec(&["/bin/sh ", "-c", "true"])).0, 126);
    let (rc, _, e) = out(s.rexec(&["/nonexistent/bin/tool"]));
    assert_eq!(rc, 127);
    assert!(e.contains("cannot execute /nonexistent/bin/tool: No such file or directory"), "{e}");
    let (rc, _, e) = out(s.rexec(&["/etc/passwd"]));
    assert_eq!(rc, 126);
    assert!(e.contains("Permission denied"), "{e}");
}

#[test]
fn sighup_reloads_the_whitelist() {
    let s = Server::start(&[], &[]);
    assert_eq!(out(s.rexec(&["/bin/echo", "x"])).0, 126);
    let wl = s.dir.path().join("whitelist");
    let mut t = std::fs::read_to_string(&wl).unwrap();
    t.push_str("/bin/echo\n");
    std::fs::write(&wl, t).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(s.pid(), libc::SIGHUP) };
    assert!(wait_until(Duration::from_secs(5), || s.log_contains("whitelist reloaded")));
    let (rc, o, _) = out(s.rexec(&["/bin/echo", "x"]));
    assert_eq!((rc, o.as_str()), (0, "x\n"));
}

#[test]
fn fifty_concurrent_rexecs() {
    let s = Arc::new(Server::start(&[], &[]));
    let t0 = Instant::now();
    let hs: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let (rc, o, e) = out(s.rexec(&["/bin/sh", "-c", &format!("sleep 0.2; echo n{i}; exit {}", i % 7)]));
                assert_eq!(rc, i % 7, "{e}");
                assert_eq!(o, format!("n{i}\n"));
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    eprintln!("50 concurrent rexecs in {:?}", t0.elapsed());
}

#[test]
fn handshake_holds_the_process_until_released() {
    let s = Server::start(&[], &[]);
    for (go, want) in [(b'1', 0), (b'0', 126)] {
        let (rd_r, rd_w) = pipe(); // rexec reads RD
        let (wr_r, wr_w) = pipe(); // rexec writes WR
        let marker = s.dir.path().join(format!("ran-{go}"));
        let mut c = s.rexec_bare(&s.socket, &["/bin/sh", "-c", &format!("touch {}; echo running", marker.display())]);
        c.env("REXEC_HANDSHAKE_RD", "40").env("REXEC_HANDSHAKE_WR", "41");
        map_fds(&mut c, vec![(rd_r.as_raw_fd(), 40), (wr_w.as_raw_fd(), 41)], vec![]);
        let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(rd_r);
        drop(wr_w);
        let mut wr = std::fs::File::from(wr_r);
        let mut b = [0u8; 1];
        wr.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"1");
        // The pid file exists before "1" is written, and the process is held.
        let rpid = remote_pid(&s, child.id());
        assert!(rpid > 0);
        std::thread::sleep(Duration::from_millis(300));
        assert!(!marker.exists(), "process ran before its release");
        std::fs::File::from(rd_w).write_all(&[go]).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(want), "{}", text(&o.stderr));
        assert_eq!(marker.exists(), want == 0);
        if want == 0 {
            assert_eq!(text(&o.stdout), "running\n");
        } else {
            assert!(text(&o.stderr).contains("aborted by the caller"), "{}", text(&o.stderr));
        }
    }
}

/// A stand-in for the proxy path: relays rexec's connections to the server and can be
/// cut like a transport drop. Like the engine, it keeps the HOST-side connections open
/// across a cut (unless told to close them, like an engine restart).
struct Relay {
    path: PathBuf,
    target: PathBuf,
    host_side: Arc<Mutex<Vec<UnixStream>>>,
    dpu_side: Arc<Mutex<Vec<UnixStream>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(path: &Path, target: &Path) -> Relay {
        let mut r = Relay {
            path: path.to_path_buf(),
            target: target.to_path_buf(),
            host_side: Default::default(),
            dpu_side: Default::default(),
            stop: Arc::new(AtomicBool::new(false)),
            acceptor: None,
        };
        r.listen();
        r
    }

    fn listen(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let l = UnixListener::bind(&self.path).unwrap();
        l.set_nonblocking(true).unwrap();
        self.stop.store(false, Ordering::SeqCst);
        let (stop, target, host, dpu) =
            (self.stop.clone(), self.target.clone(), self.host_side.clone(), self.dpu_side.clone());
        self.acceptor = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let h = UnixStream::connect(&target).unwrap();
                        dpu.lock().unwrap().push(c.try_clone().unwrap());
                        host.lock().unwrap().push(h.try_clone().unwrap());
                        pump(c.try_clone().unwrap(), h.try_clone().unwrap());
                        pump(h, c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }

    /// The transport drops: the DPU side sees EOF, bytes in flight are lost, new
    /// connections are refused until `restore`.
    fn cut(&mut self, close_host_side: bool) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            a.join().unwrap();
        }
        let _ = std::fs::remove_file(&self.path);
        for c in self.dpu_side.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        if close_host_side {
            for c in self.host_side.lock().unwrap().drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn restore(&mut self) {
        self.listen();
    }
}

/// Copies `from` to `to` until either fails; never propagates EOF (the other side of a
/// cut stays open, as the engine keeps a channel's HOST socket).
fn pump(from: UnixStream, to: UnixStream) {
    std::thread::spawn(move || qtfs_testkit::sock::copy_stream(from, to));
}

fn drop_during_run(server_args: &[&str], close_host_side: bool) {
    let s = Server::start(&[], server_args);
    let relay_path = s.dir.path().join("relay.sock");
    let mut relay = Relay::start(&relay_path, &s.socket);
    let script = "i=1; while [ $i -le 30 ]; do echo line$i; i=$((i+1)); sleep 0.1; done; cat > /dev/null; echo end";
    let mut c = s.rexec_bare(&relay_path, &["/bin/sh", "-c", script]);
    map_fds(&mut c, vec![], vec![]);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // stdin written before, during and after the drop must arrive exactly once too.
    let writer = std::thread::spawn(move || {
        for i in 0..30 {
            stdin.write_all(format!("in{i}\n").as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(80));
        }
    });
    std::thread::sleep(Duration::from_millis(1000));
    relay.cut(close_host_side);
    std::thread::sleep(Duration::from_millis(1000));
    relay.restore();
    writer.join().unwrap();
    let o = child.wait_with_output().unwrap();
    let want: String = (1..=30).map(|i| format!("line{i}\n")).collect::<String>() + "end\n";
    assert_eq!(text(&o.stdout), want, "stderr: {}", text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(s.log_contains("client reattached"), "no reattach in the server log");
}

#[test]
fn transport_drop_is_survived_and_nothing_is_lost_or_duplicated() {
    drop_during_run(&[], false);
}

#[test]
fn proxy_restart_with_eof_grace_is_survived() {
    drop_during_run(&["--eof-grace", "10"], true);
}

#[test]
fn client_gone_for_longer_than_the_grace_gives_up() {
    let s = Server::start(&[], &["--eof-grace", "1"]);
    let relay_path = s.dir.path().join("relay.sock");
    let mut relay = Relay::start(&relay_path, &s.socket);
    let mut c = s.rexec_bare(&relay_path, &["--grace", "1", "/bin/sh", "-c", "echo up; exec sleep 30"]);
    map_fds(&mut c, vec![], vec![]);
    let (child, _) = spawn_first_line(c.stderr(Stdio::piped()));
    let rpid = remote_pid(&s, child.id());
    relay.cut(true);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o.stderr).contains("giving up"), "{}", text(&o.stderr));
    assert!(
        wait_until(Duration::from_secs(5), || group_members(rpid).is_empty()),
        "server did not kill after its grace"
    );
}

#[test]
fn server_refuses_to_start_without_a_whitelist_and_runs_once() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(SERVER)
        .args([
            "--whitelist",
            d.path().join("none").to_str().unwrap(),
            "--socket",
            d.path().join("s.sock").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o.stderr).contains("whitelist"), "{}", text(&o.stderr));
    let s = Server::start(&[], &[]);
    let o = Command::new(SERVER)
        .arg("--whitelist")
        .arg(s.dir.path().join("whitelist"))
        .arg("--socket")
        .arg(&s.socket)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o.stderr).contains("another rexec_server is running"), "{}", text(&o.stderr));
    let mode = std::fs::metadata(&s.socket).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    // An unreachable server is a clear local error.
    let mut c = s.rexec_bare(Path::new("/nonexistent/rexec.sock"), &["/bin/true"]);
    map_fds(&mut c, vec![], vec![]);
    let (rc, _, e) = out(c);
    assert_eq!(rc, 255);
    assert!(e.contains("cannot reach rexec_server at /nonexistent/rexec.sock"), "{e}");
}
