//! Hostile input to rexec_server: garbage, bad headers, oversized and malformed
//! REXEC_EXEC frames, bad REXEC_ATTACH, garbage inside a session. The server must answer
//! with an error frame or close the connection, never crash, and never fork for an
//! invalid request (the whitelisted binary of every hostile request leaves a marker file
//! if it ever runs).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use qtfs_proto::consts::rexec as k;
use qtfs_proto::*;

/// Sends bytes, returns the answer frame header (None = closed without an answer).
fn exchange(s: &Server, bytes: &[u8]) -> Option<FrameHeader> {
    let mut c = UnixStream::connect(&s.socket).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = c.write_all(bytes);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut hb = [0u8; HEADER_SIZE];
    match c.read_exact(&mut hb) {
        Ok(()) => Some(FrameHeader::decode(&hb, MAX_PAYLOAD).expect("server sent a bad header")),
        Err(_) => None,
    }
}

fn exec_frame(req: &RexecExecReq<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    push_frame(&mut v, FrameHeader::request(Op::REXEC_EXEC, 9, 0), req);
    v
}

fn base<'a>(argv: &'a [u8], fds: &'a [u8], count: u32) -> RexecExecReq<'a> {
    RexecExecReq {
        flags: 0,
        window: 65536,
        fd_count: count,
        argv: Bytes32(argv),
        env: Bytes32(b""),
        cwd: qtfs_proto::Path(b"/"),
        fds: Rest(fds),
    }
}

#[test]
fn hostile_input_never_crashes_or_forks() {
    let d = tempfile::Builder::new().prefix("rxh").tempdir_in("/tmp").unwrap();
    let marker = d.path().join("ran");
    let tool = d.path().join("tool.sh");
    script(&tool, &format!("#!/bin/sh\ntouch {}\n", marker.display()));
    let tool_s = tool.to_str().unwrap().to_string();
    let mut s = Server::start(&[&tool_s], &["--grace", "1"]);
    let mut argv = tool_s.as_bytes().to_vec();
    argv.push(0);

    // Garbage and bad headers: closed without an answer.
    assert!(exchange(&s, b"GET / HTTP/1.0\r\n\r\n").is_none());
    assert!(exchange(&s, &[0u8; 4096]).is_none());
    let mut big = FrameHeader::request(Op::REXEC_EXEC, 1, 0).encode();
    big[12..16].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
    assert!(exchange(&s, &big).is_none(), "oversized length");
    let mut half = exec_frame(&base(&argv, &[], 0));
    half.truncate(half.len() - 3);
    assert!(exchange(&s, &half).is_none(), "truncated frame");

    // Well-framed but malformed requests: an error frame with an errno.
    let check = |s: &Server, bytes: Vec<u8>, errno: i32, what: &str| {
        let h = exchange(s, &bytes).unwrap_or_else(|| panic!("{what}: no answer"));
        assert!(h.is_error(), "{what}: not an error");
        assert_eq!(h.status, errno, "{what}");
    };
    let mut bad_payload = FrameHeader::request(Op::REXEC_EXEC, 1, 5).encode().to_vec();
    bad_payload.extend_from_slice(b"\x01\x02\x03\x04\x05");
    check(&s, bad_payload, libc::EBADMSG, "short payload");
    check(&s, exec_frame(&base(tool_s.as_bytes(), &[], 0)), libc::EBADMSG, "argv without NUL");
    check(&s, exec_frame(&base(b"\0", &[], 0)), libc::EINVAL, "empty argv[0]");
    check(&s, exec_frame(&base(&argv, &[], 1)), libc::EBADMSG, "missing fd record");
    check(&s, exec_frame(&base(&argv, &[], 100_000)), libc::E2BIG, "huge fd_count");
    let mut many = Vec::new();
    for fd in 0..300u32 {
        RexecFd { fd, kind: k::FD_PIPE_IN, stream: fd, flags: 0, offset: 0, path: qtfs_proto::Path(b"") }
            .encode(&mut many);
    }
    check(&s, exec_frame(&base(&argv, &many, 300)), libc::E2BIG, "300 fds");
    let rec = |fd: u32, kind: u32, stream: u32, flags: u32, path: &'static [u8]| {
        RexecFd { fd, kind, stream, flags, offset: 0, path: qtfs_proto::Path(path) }.to_vec()
    };
    check(&s, exec_frame(&base(&argv, &rec(99_999, k::FD_PIPE_IN, 3, 0, b""), 1)), libc::EINVAL, "fd too large");
    check(&s, exec_frame(&base(&argv, &rec(5, 77, 5, 0, b""), 1)), libc::EINVAL, "bad kind");
    check(&s, exec_frame(&base(&argv, &rec(5, k::FD_FILE, 0, 0, b"etc/passwd"), 1)), libc::EINVAL, "relative file");
    check(
        &s,
        exec_frame(&base(&argv, &rec(5, k::FD_FILE, 0, 0xffff_0000, b"/etc/passwd"), 1)),
        libc::EINVAL,
        "bad flags",
    );
    check(&s, exec_frame(&base(&argv, &rec(5, k::FD_LISTENER, 0, 2, b""), 1)), libc::EINVAL, "dgram listener");
    let mut dup = rec(5, k::FD_PIPE_IN, 5, 0, b"");
    dup.extend(rec(5, k::FD_PIPE_OUT, 6, 0, b""));
    check(&s, exec_frame(&base(&argv, &dup, 2)), libc::EINVAL, "fd twice");
    let mut w = base(&argv, &[], 0);
    w.window = 1;
    check(&s, exec_frame(&w), libc::EINVAL, "window");
    let mut f = base(&argv, &[], 0);
    f.flags = 0x80;
    check(&s, exec_frame(&f), libc::EINVAL, "unknown flag");
    let mut e = base(&argv, &[], 0);
    e.env = Bytes32(b"NOEQUALS\0");
    check(&s, exec_frame(&e), libc::EINVAL, "env without =");
    let mut c = base(&argv, &[], 0);
    c.cwd = qtfs_proto::Path(b"relative");
    check(&s, exec_frame(&c), libc::EINVAL, "relative cwd");
    let huge = vec![b'x'; (1 << 20) + 1];
    let mut hb = huge.clone();
    hb.push(0);
    check(&s, exec_frame(&base(&hb, &[], 0)), libc::E2BIG, "argv over 1 MiB");

    // Wrong first frames.
    let mut v = Vec::new();
    push_frame(&mut v, FrameHeader::request(Op::PING, 1, 0), &Data { data: Rest(b"x") });
    check(&s, v, libc::EPROTO, "PING");
    let mut v = Vec::new();
    push_frame(&mut v, FrameHeader::message(Op::REXEC_EXEC, 0, 0), &base(&argv, &[], 0));
    assert!(exchange(&s, &v).is_none(), "one-way EXEC is not a request");
    let mut v = Vec::new();
    push_frame(
        &mut v,
        FrameHeader::request(Op::REXEC_ATTACH, 1, 0),
        &RexecAttachReq { pid: 1, token: [0; 16], received: 0 },
    );
    check(&s, v, libc::ESRCH, "attach to pid 1");

    // Random frames with random payloads.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rnd = || qtfs_testkit::xorshift(&mut seed);
    for i in 0..200 {
        let len = (rnd() % 300) as usize;
        let payload: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        let op = if i % 2 == 0 { Op::REXEC_EXEC } else { Op::REXEC_ATTACH };
        let mut v = FrameHeader::request(op, i, len as u32).encode().to_vec();
        v.extend_from_slice(&payload);
        if let Some(h) = exchange(&s, &v) {
            assert!(h.is_error(), "random payload {i} accepted");
        }
    }
    assert!(s.alive(), "rexec_server died");
    assert!(!marker.exists(), "an invalid request ran the binary");

    // Garbage inside a live session detaches it (transport trouble), and the grace
    // period then ends the process.
    let mut conn = UnixStream::connect(&s.socket).unwrap();
    let mut sleeper = Vec::new();
    sleeper.extend_from_slice(b"/bin/sleep\x0030\x00");
    let recs = [rec(0, k::FD_PIPE_IN, 0, 0, b""), rec(1, k::FD_PIPE_OUT, 1, 0, b"")].concat();
    conn.write_all(&exec_frame(&base(&sleeper, &recs, 2))).unwrap();
    let mut hb = [0u8; HEADER_SIZE];
    conn.read_exact(&mut hb).unwrap();
    let h = FrameHeader::decode(&hb, MAX_PAYLOAD).unwrap();
    let mut p = vec![0u8; h.len as usize];
    conn.read_exact(&mut p).unwrap();
    let started = RexecStarted::decode(&p).unwrap();
    assert!(started.pid > 0);
    assert_eq!(group_members(started.pid).len(), 1);
    conn.write_all(&[0xAB; 64]).unwrap();
    assert!(
        wait_until(Duration::from_secs(8), || group_members(started.pid).is_empty()),
        "detached session not ended after its grace"
    );
    // A wrong token for a live session is refused.
    let mut conn2 = UnixStream::connect(&s.socket).unwrap();
    conn2.write_all(&exec_frame(&base(&sleeper, &recs, 2))).unwrap();
    conn2.read_exact(&mut hb).unwrap();
    let h = FrameHeader::decode(&hb, MAX_PAYLOAD).unwrap();
    let mut p = vec![0u8; h.len as usize];
    conn2.read_exact(&mut p).unwrap();
    let st2 = RexecStarted::decode(&p).unwrap();
    let mut v = Vec::new();
    let mut bad = st2.token;
    bad[0] ^= 1;
    push_frame(
        &mut v,
        FrameHeader::request(Op::REXEC_ATTACH, 1, 0),
        &RexecAttachReq { pid: st2.pid, token: bad, received: 0 },
    );
    check(&s, v, libc::EACCES, "wrong token");
    drop(conn2);
    assert!(wait_until(Duration::from_secs(2), || group_members(st2.pid).is_empty()), "EOF did not kill");

    // Still serving.
    assert!(s.alive());
    let o = s.rexec(&["/bin/sh", "-c", "echo fine"]).stdout(Stdio::piped()).output().unwrap();
    assert_eq!(text(&o.stdout), "fine\n");
    assert!(!marker.exists());
}
