//! Identity: with --allow-group other users may connect, and every command runs as the
//! user who connected (root only for root); files named in FD records are reopened as
//! that user; only that user may reattach. The pid map directory works for them (1733).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use qtfs_proto::*;

const NOBODY: u32 = 65534;

/// The group given to --allow-group: by name where the system has one for 65534.
fn group_arg() -> &'static str {
    let g = std::fs::read_to_string("/etc/group").unwrap_or_default();
    if g.lines().any(|l| l.starts_with("nogroup:x:65534:")) { "nogroup" } else { "65534" }
}

/// rexec as uid/gid 65534 without supplementary groups, in "/".
fn as_nobody(mut c: Command) -> Command {
    c.uid(NOBODY).gid(NOBODY).current_dir("/");
    c
}

fn out(mut c: Command) -> (i32, String, String) {
    let o = c.stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    (o.status.code().unwrap_or(-1), text(&o.stdout), text(&o.stderr))
}

#[test]
fn with_allow_group_a_user_runs_commands_as_themselves() {
    let s = Server::start(&[], &["--allow-group", group_arg()]);
    let md = std::fs::metadata(&s.socket).unwrap();
    assert_eq!((md.mode() & 0o777, md.gid()), (0o660, NOBODY));
    // The pid map directory as a distribution ships it, with a stale file of root's.
    std::fs::create_dir(&s.pids).unwrap();
    std::fs::set_permissions(&s.pids, std::fs::Permissions::from_mode(0o1733)).unwrap();
    let stale = s.pids.join("999999");
    std::fs::write(&stale, "1").unwrap();
    let mut c = as_nobody(s.rexec(&["/bin/sh", "-c", "id -u; id -g; id -G; echo $$; cat >/dev/null"]));
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..4 {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        lines.push(l.trim().to_string());
    }
    assert_eq!(&lines[..3], ["65534", "65534", "65534"], "remote uid, gid, groups");
    let rpid: i32 = lines[3].parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{rpid}/status")).unwrap();
    assert!(status.contains("Uid:\t65534\t65534\t65534\t65534"), "{status}");
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    assert!(status.contains("CapPrm:\t0000000000000000"), "{status}");
    // rexec (not root) made its pid map file in the 1733 directory.
    let map = s.pids.join(child.id().to_string());
    assert!(wait_until(Duration::from_secs(5), || std::fs::read_to_string(&map).is_ok_and(|t| t == lines[3])));
    assert_eq!(std::fs::metadata(&map).unwrap().uid(), NOBODY);
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stderr), "", "no warning about the pid directory or anything else");
    assert!(!map.exists(), "map file removed at exit");
    assert!(stale.exists(), "another user's file is not ours to remove");
    assert!(s.log_contains("run_as=uid=65534 gid=65534"), "identity logged");
    // Root still runs as root.
    let (rc, o, e) = out(s.rexec(&["/bin/sh", "-c", "id -u"]));
    assert_eq!((rc, o.as_str()), (0, "0\n"), "{e}");
}

#[test]
fn without_allow_group_another_user_gets_a_clear_error() {
    let s = Server::start(&[], &[]);
    let md = std::fs::metadata(&s.socket).unwrap();
    assert_eq!(md.mode() & 0o777, 0o600);
    let marker = s.dir.path().join("ran");
    let (rc, _, e) = out(as_nobody(s.rexec(&["/bin/sh", "-c", &format!("touch {}", marker.display())])));
    assert_eq!(rc, 255, "{e}");
    assert!(e.contains("cannot reach rexec_server") && e.contains("Permission denied"), "{e}");
    assert!(e.contains("--allow-group"), "{e}");
    assert!(!marker.exists());
}

#[test]
fn a_user_does_not_get_a_root_only_file_through_an_fd_record() {
    let s = Server::start(&[], &["--allow-group", group_arg()]);
    let secret = s.dir.path().join("secret");
    std::fs::write(&secret, "top secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Opened by root, inherited by a process that is no longer root.
    let f = std::fs::File::open(&secret).unwrap();
    let mut c = as_nobody(s.rexec_bare(&s.socket, &["/bin/sh", "-c", "cat <&6"]));
    map_fds(&mut c, vec![(f.as_raw_fd(), 6)], vec![]);
    let (rc, o, e) = out(c);
    assert!(!o.contains("top secret"), "{o}");
    assert_eq!(rc, 126, "{e}");
    assert!(e.contains("cannot reopen fd 6") && e.contains("Permission denied"), "{e}");
    // The same file is readable to root's rexec, and to the user once it may read it.
    let mut c = s.rexec_bare(&s.socket, &["/bin/sh", "-c", "cat <&6"]);
    map_fds(&mut c, vec![(f.as_raw_fd(), 6)], vec![]);
    assert_eq!(out(c).1, "top secret\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = as_nobody(s.rexec_bare(&s.socket, &["/bin/sh", "-c", "cat <&6"]));
    map_fds(&mut c, vec![(f.as_raw_fd(), 6)], vec![]);
    assert_eq!(out(c).1, "top secret\n");
}

#[test]
fn attach_from_another_uid_is_refused() {
    let s = Server::start(&[], &["--allow-group", group_arg()]);
    let mut child = s.rexec(&["/bin/sleep", "30"]).spawn().unwrap();
    let map = s.pids.join(child.id().to_string());
    assert!(wait_until(Duration::from_secs(5), || std::fs::read_to_string(&map).is_ok_and(|t| !t.is_empty())));
    let rpid: i32 = std::fs::read_to_string(&map).unwrap().trim().parse().unwrap();
    let socket = s.socket.clone();
    // One thread with the effective ids of 65534 (raw calls: only this thread changes;
    // SO_PEERCRED reports effective ids).
    let status = std::thread::spawn(move || {
        // SAFETY: per-thread raw syscalls; -1 leaves the real and saved ids alone.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setresgid, -1i32, NOBODY, -1i32), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, -1i32, NOBODY, -1i32), 0);
        }
        let mut c = UnixStream::connect(&socket).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut v = Vec::new();
        let req = RexecAttachReq { pid: rpid, token: [0; 16], received: 0 };
        push_frame(&mut v, FrameHeader::request(Op::REXEC_ATTACH, 1, 0), &req);
        c.write_all(&v).unwrap();
        let mut hb = [0u8; HEADER_SIZE];
        c.read_exact(&mut hb).unwrap();
        let h = FrameHeader::decode(&hb, MAX_PAYLOAD).unwrap();
        assert!(h.is_error());
        h.status
    })
    .join()
    .unwrap();
    // (A wrong token from the owner would be EACCES.)
    assert_eq!(status, libc::EPERM);
    // The log is read from the server's stderr by another thread: it may lag the answer.
    assert!(wait_until(Duration::from_secs(5), || s.log_contains("REXEC_ATTACH from another user")));
    child.kill().unwrap();
    child.wait().unwrap();
}
