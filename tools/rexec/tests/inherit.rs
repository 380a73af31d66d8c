//! What the remote process inherits: the shared character devices reopened on the HOST,
//! regular files only where the HOST can see them, every other descriptor left out with
//! one warning line (or refused with --strict-fds), and default signal dispositions with
//! an empty mask whatever rexec_server inherited.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use qtfs_proto::consts::rexec as k;
use qtfs_proto::*;

fn out(mut c: Command) -> (i32, String, String) {
    let o = c.stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    (o.status.code().unwrap_or(-1), text(&o.stdout), text(&o.stderr))
}

/// A remote script that reports, for each fd of `fds`, its target or "closed".
fn report(fds: &[i32]) -> String {
    let list: Vec<String> = fds.iter().map(i32::to_string).collect();
    format!(
        "for f in {}; do if [ -e /proc/self/fd/$f ]; then echo \"$f $(readlink /proc/self/fd/$f)\"; \
         else echo \"$f closed\"; fi; done",
        list.join(" ")
    )
}

#[test]
fn shared_devices_are_reopened_and_other_descriptors_left_out_with_one_warning() {
    let s = Server::start(&[], &[]);
    let data = s.dir.path().join("data.txt");
    std::fs::write(&data, b"file-data").unwrap();
    let file = std::fs::File::open(&data).unwrap();
    let null_w = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let pty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/ptmx").unwrap();
    let (sock, _peer) = UnixStream::pair().unwrap();
    let script = format!(
        "{}; echo x >&7 && echo wrote; head -c 3 <&8 | od -An -tx1 | tr -d ' '; cat <&6; echo",
        report(&[6, 7, 8, 9, 10])
    );
    let mut c = s.rexec_bare(&s.socket, &["/bin/sh", "-c", &script]);
    let pairs = vec![
        (file.as_raw_fd(), 6),
        (null_w.as_raw_fd(), 7),
        (zero.as_raw_fd(), 8),
        (pty.as_raw_fd(), 9),
        (sock.as_raw_fd(), 10),
    ];
    map_fds(&mut c, pairs, vec![]);
    let (rc, o, e) = out(c);
    assert_eq!(rc, 0, "{e}");
    let canon = data.canonicalize().unwrap();
    assert_eq!(
        o,
        format!("6 {}\n7 /dev/null\n8 /dev/zero\n9 closed\n10 closed\nwrote\n000000\nfile-data\n", canon.display())
    );
    assert_eq!(e.lines().count(), 1, "one warning line: {e}");
    assert!(e.starts_with("rexec: not passed to the remote process: fd 9 (a character device /dev/"), "{e}");
    assert!(e.trim_end().ends_with(", fd 10 (a connected or unbound socket)"), "{e}");
}

#[test]
fn through_the_proxy_dpu_local_files_are_left_out() {
    let s = Server::start(&[], &[]);
    let proxy = s.dir.path().join("udsproxyd.sock");
    fake_udsproxyd(&proxy, &s.socket);
    // Not a local socket: rexec has to ask the (fake) udsproxyd.
    let remote_socket = s.dir.path().join("host-only/rexec.sock");
    let data = s.dir.path().join("NAME.pid");
    std::fs::write(&data, b"123").unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let run = |strict: bool| {
        let mut args = vec![];
        if strict {
            args.push("--strict-fds");
        }
        let script = report(&[6, 7]);
        args.extend(["/bin/sh", "-c", &script]);
        let mut c = s.rexec_bare(&remote_socket, &args);
        c.env("UDSPROXY_SOCKET", &proxy);
        map_fds(&mut c, vec![(file.as_raw_fd(), 6), (null.as_raw_fd(), 7)], vec![]);
        out(c)
    };
    let (rc, o, e) = run(false);
    assert_eq!(rc, 0, "{e}");
    assert_eq!(o, "6 closed\n7 /dev/null\n");
    let canon = data.canonicalize().unwrap();
    assert_eq!(e, format!("rexec: not passed to the remote process: fd 6 (a DPU-local file {})\n", canon.display()));
    let (rc, o, e) = run(true);
    assert_eq!((rc, o.as_str()), (126, ""), "{e}");
    assert!(e.contains(&format!("fd 6 is a DPU-local file ({})", canon.display())), "{e}");
    // The same file through a direct connection is passed.
    let mut c = s.rexec_bare(&s.socket, &["/bin/sh", "-c", &report(&[6])]);
    map_fds(&mut c, vec![(file.as_raw_fd(), 6)], vec![]);
    let (rc, o, e) = out(c);
    assert_eq!((rc, o, e), (0, format!("6 {}\n", canon.display()), String::new()));
}

/// Reads session frames until REXEC_EXIT: (stderr text, exit status).
fn read_until_exit(conn: &mut UnixStream) -> (String, i32) {
    let mut err = Vec::new();
    loop {
        let mut hb = [0u8; HEADER_SIZE];
        conn.read_exact(&mut hb).unwrap();
        let h = FrameHeader::decode(&hb, MAX_PAYLOAD).unwrap();
        let mut p = vec![0u8; h.len as usize];
        conn.read_exact(&mut p).unwrap();
        match h.op() {
            Some(Op::REXEC_DATA) if h.channel == 2 => err.extend_from_slice(&p),
            Some(Op::REXEC_EXIT) => return (text(&err), RexecExit::decode(&p).unwrap().status),
            _ => {}
        }
    }
}

#[test]
fn the_server_reopens_no_device_but_the_shared_ones() {
    let s = Server::start(&[], &[]);
    let marker = s.dir.path().join("ran");
    let script = format!("touch {}", marker.display());
    let mut argv = b"/bin/sh\0-c\0".to_vec();
    argv.extend_from_slice(script.as_bytes());
    argv.push(0);
    let rdwr = qtfs_proto::consts::open::from_linux(libc::O_RDWR);
    for (path, ok) in [(&b"/dev/ptmx"[..], false), (b"/dev/kmsg", false), (b"/dev/full", true)] {
        let mut recs = Vec::new();
        for (fd, kind) in [(0, k::FD_PIPE_IN), (1, k::FD_PIPE_OUT), (2, k::FD_PIPE_OUT)] {
            RexecFd { fd, kind, stream: fd, flags: 0, offset: 0, path: qtfs_proto::Path(b"") }.encode(&mut recs);
        }
        RexecFd { fd: 5, kind: k::FD_FILE, stream: 0, flags: rdwr, offset: 0, path: qtfs_proto::Path(path) }
            .encode(&mut recs);
        let req = RexecExecReq {
            flags: 0,
            window: 65536,
            fd_count: 4,
            argv: Bytes32(&argv),
            env: Bytes32(b""),
            cwd: qtfs_proto::Path(b"/"),
            fds: Rest(&recs),
        };
        let mut frame = Vec::new();
        push_frame(&mut frame, FrameHeader::request(Op::REXEC_EXEC, 1, 0), &req);
        let mut conn = UnixStream::connect(&s.socket).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        conn.write_all(&frame).unwrap();
        let (err, status) = read_until_exit(&mut conn);
        let shown = text(path);
        if ok {
            assert_eq!(status, 0, "{shown}: {err}");
            assert!(wait_until(Duration::from_secs(5), || marker.exists()));
        } else {
            assert_eq!(status, 126, "{shown}");
            assert!(err.contains(&format!("fd 5 ({shown}) is not a regular file or one of /dev/null")), "{err}");
            assert!(!marker.exists(), "{shown}: ran");
        }
    }
}

/// A server that inherited SIGHUP ignored (as under `nohup`) and SIGUSR2 blocked.
fn nohup_server() -> Server {
    Server::start_with(&["/bin/grep"], &[], |c| {
        // SAFETY: signal and sigprocmask are async-signal-safe; sigset_t is plain data.
        unsafe {
            c.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR2);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
    })
}

#[test]
fn remote_commands_start_with_default_signals_whatever_the_server_inherited() {
    let s = nohup_server();
    let (rc, o, e) = out(s.rexec(&["/bin/sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"]));
    assert_eq!(rc, 0, "{e}");
    assert_eq!(o, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    // A forwarded SIGHUP now ends a process that does not handle it.
    let mut child = s.rexec(&["/bin/sleep", "30"]).spawn().unwrap();
    let map = s.pids.join(child.id().to_string());
    assert!(wait_until(Duration::from_secs(5), || std::fs::read_to_string(&map).is_ok_and(|t| !t.is_empty())));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let mut status = None;
    assert!(wait_until(Duration::from_secs(10), || {
        status = child.try_wait().unwrap();
        status.is_some()
    }));
    assert_eq!(status.unwrap().code(), Some(128 + libc::SIGHUP));
    // And the server's own SIGHUP (reload) works under nohup too.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(s.pid(), libc::SIGHUP) };
    assert!(wait_until(Duration::from_secs(5), || s.log_contains("whitelist reloaded")));
}
