//! Unix-socket channels at the protocol level: the test plays the DPU side with raw
//! CHAN_* frames against the real engine and real HOST sockets in the export directory.
//!
//! Channel life: stream echo with credit, open errors, udsconnect entries, closing and
//! dropped connections, a stalled channel, hostile frames and close order. Message
//! boundaries, HOST listeners and descriptor passing are in `channels_fds.rs`.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qtfs_client::AdminClient;
use qtfs_proto::consts::{self, CHAN_ID_PEER};
use qtfs_proto::header::flags;
use qtfs_proto::*;
use qtfs_testkit::*;

mod chan_common;
use chan_common::*;

#[test]
fn stream_echo_with_credit_and_orderly_close() {
    let e = TestEngine::start(Opts::default());
    let sock = host_echo(&e, "echo.sock");
    let p = Peer::new(&e);
    // A small receive window of our own: the engine must respect it.
    const OUR_WINDOW: u32 = 96 * 1024;
    let mut credit = p.open(1, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), OUR_WINDOW).unwrap() as u64;
    assert!(credit >= 64 * 1024);
    let total: usize = 8 << 20;
    let (mut sent, mut got) = (0usize, 0usize);
    let (mut sum_tx, mut sum_rx) = (0u64, 0u64);
    let mut outstanding = 0u64;
    let chunk: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < total {
        assert!(Instant::now() < deadline, "echo stalled at sent={sent} got={got}");
        while sent < total && credit > 0 {
            let n = (total - sent).min(chunk.len()).min(credit as usize);
            p.data(1, &chunk[..n], false);
            sum_tx = checksum(sum_tx, &chunk[..n]);
            sent += n;
            credit -= n as u64;
        }
        if let Some((h, d)) = p.next(Duration::from_millis(200)) {
            assert_eq!(h.channel, 1);
            match h.op() {
                Some(Op::CHAN_DATA) => {
                    outstanding += d.len() as u64;
                    assert!(outstanding <= OUR_WINDOW as u64, "engine overran our window");
                    sum_rx = checksum(sum_rx, &d);
                    got += d.len();
                    p.send(Op::CHAN_CREDIT, 1, &ChanCredit { bytes: d.len() as u32 });
                    outstanding -= d.len() as u64;
                }
                Some(Op::CHAN_CREDIT) => credit += ChanCredit::decode(&d).unwrap().bytes as u64,
                o => panic!("unexpected {o:?}"),
            }
        }
    }
    assert_eq!(sum_tx, sum_rx);
    // The channel is listed while open.
    let mut a = AdminClient::connect(&e.admin).unwrap();
    let r = a.call(Op::ADMIN_CHANNELS, &Empty {}).unwrap();
    let list = r.decode::<ChannelsRsp>().unwrap();
    assert_eq!(list.count, 1);
    let info = RecordIter::<ChanInfo>::new(list.records.0).next().unwrap().unwrap();
    assert_eq!((info.channel, info.kind, info.state), (1, consts::CHAN_STREAM, consts::CHANST_OPEN));
    assert_eq!(info.bytes_in, total as u64);
    assert_eq!(info.bytes_out, total as u64);
    assert_eq!(info.path.0, sock.as_os_str().as_encoded_bytes());
    // EOF both ways: ours, then the echo server's.
    p.send(Op::CHAN_CLOSE, 1, &ChanClose { how: consts::CHAN_SHUT_WR, error: 0 });
    assert_eq!(p.expect_close(1).0, consts::CHAN_SHUT_WR);
    assert!(wait_until(Duration::from_secs(5), || {
        let r = a.call(Op::ADMIN_CHANNELS, &Empty {}).unwrap();
        r.decode::<ChannelsRsp>().unwrap().count == 0
    }));
}

#[test]
fn open_errors_are_those_of_a_local_connect() {
    let e = TestEngine::start(Opts::default());
    let p = Peer::new(&e);
    let b = |x: &std::path::Path| x.as_os_str().as_encoded_bytes().to_vec();
    assert_eq!(p.open(1, consts::CHAN_STREAM, &b(&e.path("missing.sock")), 65536), Err(libc::ENOENT));
    std::fs::write(e.path("plain"), b"x").unwrap();
    assert_eq!(p.open(2, consts::CHAN_STREAM, &b(&e.path("plain")), 65536), Err(libc::ECONNREFUSED));
    // A socket file nobody listens on.
    let dead = e.path("dead.sock");
    drop(UnixListener::bind(&dead).unwrap());
    assert_eq!(p.open(3, consts::CHAN_STREAM, &b(&dead), 65536), Err(libc::ECONNREFUSED));
    // Outside [Udsconnect] (the whitelist only holds the export), also through a symlink.
    let outside = e.dir.path().join("outside.sock");
    let _l = UnixListener::bind(&outside).unwrap();
    assert_eq!(p.open(4, consts::CHAN_STREAM, &b(&outside), 65536), Err(libc::ECONNREFUSED));
    std::os::unix::fs::symlink(&outside, e.path("link.sock")).unwrap();
    assert_eq!(p.open(5, consts::CHAN_STREAM, &b(&e.path("link.sock")), 65536), Err(libc::ECONNREFUSED));
    // Hostile ids and kinds.
    let sock = host_echo(&e, "ok.sock");
    assert_eq!(p.open(CHAN_ID_PEER | 9, consts::CHAN_STREAM, &b(&sock), 65536), Err(libc::EINVAL));
    assert_eq!(p.open(0, consts::CHAN_STREAM, &b(&sock), 65536), Err(libc::EINVAL));
    assert_eq!(p.open(6, 77, &b(&sock), 65536), Err(libc::EPROTONOSUPPORT));
    assert_eq!(p.open(7, consts::CHAN_STREAM, b"relative.sock", 65536), Err(libc::EINVAL));
    p.open(8, consts::CHAN_STREAM, &b(&sock), 65536).unwrap();
    assert_eq!(p.open(8, consts::CHAN_STREAM, &b(&sock), 65536), Err(libc::EEXIST));
    // Data beyond the granted credit closes the channel with EPROTO.
    p.data(8, &vec![1u8; (1 << 20) + 100], false);
    assert_eq!(p.expect_close(8), (consts::CHAN_CLOSE_ALL, libc::EPROTO));
    // The connection (and file requests on it) survived all of it.
    assert_eq!(p.s.ping(b"still here").unwrap(), b"still here");
}

/// The user's case: `/var/run` is a symlink to `/run` and `[Udsconnect]` names
/// `/var/run/rexec`, while a channel is checked against the socket's real path
/// `/run/rexec/rexec_uds.sock`. Here `t/var/run → ../run`.
#[test]
fn udsconnect_entries_naming_symlinks_match_their_targets() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    std::fs::create_dir_all(t.join("run/rexec")).unwrap();
    std::fs::create_dir_all(t.join("run/other")).unwrap();
    std::fs::create_dir(t.join("var")).unwrap();
    std::os::unix::fs::symlink("../run", t.join("var/run")).unwrap();
    let sock = t.join("run/rexec/rexec_uds.sock");
    echo_server(UnixListener::bind(&sock).unwrap());
    let outside = t.join("run/other/x.sock");
    let _l = UnixListener::bind(&outside).unwrap();
    let e = TestEngine::start(Opts {
        extra_wl: format!("[Udsconnect]\nPath={}/var/run/rexec\n", t.display()),
        ..Default::default()
    });
    let p = Peer::new(&e);
    let b = |x: &std::path::Path| x.as_os_str().as_encoded_bytes().to_vec();
    p.open(1, consts::CHAN_STREAM, &b(&sock), 65536).expect("the entry resolves to run/rexec");
    p.data(1, b"ping", false);
    assert_eq!(p.expect(Op::CHAN_DATA, 1).1, b"ping");
    // Named the way the entry is spelt: the same socket.
    p.open(2, consts::CHAN_STREAM, &b(&t.join("var/run/rexec/rexec_uds.sock")), 65536).unwrap();
    // A sibling of the resolved directory is not covered.
    assert_eq!(p.open(3, consts::CHAN_STREAM, &b(&outside), 65536), Err(libc::ECONNREFUSED));
    assert_eq!(p.open(4, consts::CHAN_STREAM, &b(&t.join("var/run/other/x.sock")), 65536), Err(libc::ECONNREFUSED));
}

#[test]
fn closing_the_connection_releases_channels_and_descriptors() {
    // Sockets of dropped connections are held for the session grace period (see the next
    // test); a short grace lets this one check that they are released afterwards.
    let e = TestEngine::start(Opts::args(&["--session-grace", "1"]));
    let sock = host_echo(&e, "echo.sock");
    let p = Peer::new(&e);
    let before = e.fd_count();
    for i in 1..=50 {
        p.open(i, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), 65536).unwrap();
    }
    assert!(e.fd_count() >= before + 50);
    p.s.close();
    assert!(wait_until(Duration::from_secs(5), || e.fd_count() <= before), "fds {} > {before}", e.fd_count());
    let mut a = AdminClient::connect(&e.admin).unwrap();
    let r = a.call(Op::ADMIN_CHANNELS, &Empty {}).unwrap();
    assert_eq!(r.decode::<ChannelsRsp>().unwrap().count, 0);
}

#[test]
fn a_dropped_connection_is_not_an_eof_until_the_grace_ends() {
    let e = TestEngine::start(Opts::args(&["--session-grace", "2"]));
    let p = Peer::new(&e);
    let host = p.open_to_host(&e, 1, consts::CHAN_STREAM, "host.sock", libc::SOCK_STREAM, 65536);
    // The transport drops (no CHAN_CLOSE): the HOST server must not see EOF, because the
    // DPU program may reattach through a new connection (rexec does).
    p.s.close();
    let t0 = Instant::now();
    assert!(!readable_within(host.as_raw_fd(), Duration::from_millis(1200)), "EOF on a transport drop");
    // After the grace period the socket is closed.
    assert!(readable_within(host.as_raw_fd(), Duration::from_secs(5)), "never closed after the grace");
    assert!(t0.elapsed() >= Duration::from_millis(1500), "closed before the grace ended: {:?}", t0.elapsed());
    let (d, _) = raw_recv(host.as_raw_fd(), 16);
    assert!(d.is_empty(), "EOF");
}

#[test]
fn an_orderly_close_reaches_the_host_at_once() {
    let e = TestEngine::start(Opts::args(&["--session-grace", "30"]));
    let p = Peer::new(&e);
    let host = p.open_to_host(&e, 1, consts::CHAN_STREAM, "host.sock", libc::SOCK_STREAM, 65536);
    // The DPU program closed its socket: udsproxyd sends CHAN_CLOSE; the HOST server sees
    // EOF promptly (rexec_server kills the processes of a dead client on it).
    p.send(Op::CHAN_CLOSE, 1, &ChanClose { how: consts::CHAN_CLOSE_ALL, error: 0 });
    assert!(readable_within(host.as_raw_fd(), Duration::from_millis(1000)), "no EOF after CHAN_CLOSE");
    let (d, _) = raw_recv(host.as_raw_fd(), 16);
    assert!(d.is_empty());
}

#[test]
fn a_stalled_channel_slows_neither_its_connection_nor_other_channels() {
    let e = TestEngine::start(Opts::default());
    // Two firehoses on the HOST: one read by a channel that keeps granting credit, one
    // by a channel whose reader never grants any more.
    let fire = e.path("fire.sock");
    let l = UnixListener::bind(&fire).unwrap();
    let written: Arc<Vec<std::sync::atomic::AtomicU64>> = Arc::new((0..2).map(|_| Default::default()).collect());
    {
        let written = written.clone();
        std::thread::spawn(move || {
            for (i, s) in l.incoming().enumerate().take(2) {
                let (mut s, written) = (s.unwrap(), written.clone());
                std::thread::spawn(move || {
                    let b = vec![3u8; 64 * 1024];
                    while let Ok(n) = s.write(&b) {
                        written[i].fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
    }
    let p = Arc::new(Peer::new(&e));
    let (s, ex) = (&p.s, {
        let (ex, _) = p.s.mount(e.export.to_str().unwrap(), &qtfs_client::Cred::root()).unwrap();
        ex
    });
    std::fs::write(e.path("small"), vec![1u8; 4096]).unwrap();
    let (fh, _) = s.open(ex, b"small", consts::open::RDONLY, 0, &qtfs_client::Cred::root()).unwrap();
    let fp = fire.as_os_str().as_encoded_bytes().to_vec();
    p.open(1, consts::CHAN_STREAM, &fp, 1 << 20).unwrap();
    // A pump reads every frame: channel 1 gets its credit back, channel 2 never does.
    let got = Arc::new([std::sync::atomic::AtomicU64::new(0), std::sync::atomic::AtomicU64::new(0)]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pump = {
        let (p, got, stop) = (p.clone(), got.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Some((h, d)) = p.next(Duration::from_millis(50)) else { continue };
                if h.op == Op::CHAN_DATA as u16 {
                    got[(h.channel - 1) as usize].fetch_add(d.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    if h.channel == 1 {
                        p.send(Op::CHAN_CREDIT, 1, &ChanCredit { bytes: d.len() as u32 });
                    }
                }
            }
        })
    };
    // The best of four half-second windows: the other tests of this binary share the two
    // CPUs, and a single window swings tenfold; head-of-line blocking would keep every
    // window near zero.
    let measure = || {
        let (mut best_mib, mut best_ops) = (0f64, 0f64);
        for _ in 0..4 {
            let before = got[0].load(std::sync::atomic::Ordering::Relaxed);
            let (ops, el) = repeat_for(0.5, || assert_eq!(s.read(fh, 0, 4096).unwrap().len(), 4096));
            let mib = (got[0].load(std::sync::atomic::Ordering::Relaxed) - before) as f64 / el / (1 << 20) as f64;
            best_mib = best_mib.max(mib);
            best_ops = best_ops.max(ops as f64 / el);
        }
        (best_mib, best_ops)
    };
    let (base_mib, base_ops) = measure();
    const STALLED_WINDOW: u32 = 256 * 1024;
    p.open(2, consts::CHAN_STREAM, &fp, STALLED_WINDOW).unwrap();
    assert!(wait_until(Duration::from_secs(5), || got[1].load(std::sync::atomic::Ordering::Relaxed)
        == STALLED_WINDOW as u64));
    let (mib, ops) = measure();
    eprintln!(
        "same connection: baseline {base_mib:.0} MiB/s {base_ops:.0} reads/s; stalled neighbour {mib:.0} MiB/s {ops:.0} reads/s"
    );
    assert_eq!(got[1].load(std::sync::atomic::Ordering::Relaxed), STALLED_WINDOW as u64, "never more than the credit");
    // Head-of-line blocking would stop both almost completely; the bound leaves room for
    // the noise of a 2-CPU machine running the other tests of this binary in parallel.
    assert!(mib > 0.15 * base_mib, "the other channel slowed: {mib:.0} vs {base_mib:.0} MiB/s");
    assert!(ops > 0.15 * base_ops, "file requests on the same connection slowed: {ops:.0} vs {base_ops:.0}/s");
    // The stalled HOST writer is blocked by its socket, not by the engine's memory.
    let held = written[1].load(std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(written[1].load(std::sync::atomic::Ordering::Relaxed), held);
    assert!(held < (STALLED_WINDOW as u64) + (8 << 20), "{held}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    pump.join().unwrap();
}

#[test]
fn hostile_channel_frames_never_hurt_the_engine() {
    let e = TestEngine::start(Opts::default());
    let sock = host_echo(&e, "echo.sock");
    let p = Peer::new(&e);
    p.open(1, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
    let ops = [
        Op::CHAN_OPEN,
        Op::CHAN_DATA,
        Op::CHAN_CREDIT,
        Op::CHAN_CLOSE,
        Op::CHAN_LISTEN,
        Op::CHAN_UNLISTEN,
        Op::CHAN_SCM,
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || xorshift(&mut seed);
    for i in 0..3000 {
        let op = ops[(next() % ops.len() as u64) as usize];
        let len = (next() % 300) as usize;
        let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let chan = match next() % 4 {
            0 => 1,
            1 => 0,
            2 => CHAN_ID_PEER | (next() as u32 & 0xff),
            _ => next() as u32,
        };
        let mut h = FrameHeader::message(op, chan, 0);
        if i % 3 == 0 {
            h.flags = flags::REQUEST;
            h.id = 1_000_000 + i;
        }
        if i % 7 == 0 {
            h.flags |= flags::MORE;
        }
        p.s.conn(0).send(h, &payload).unwrap();
    }
    // Whatever happened to channel 1, the connection and the engine are fine.
    assert_eq!(p.s.ping(b"still alive").unwrap(), b"still alive");
    let p2 = Peer::new(&e);
    p2.open(5, consts::CHAN_STREAM, sock.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
    p2.data(5, b"echo?", false);
    assert_eq!(p2.expect(Op::CHAN_DATA, 5).1, b"echo?");
}

#[test]
fn the_server_closing_first_then_the_client_ends_the_channel() {
    let e = TestEngine::start(Opts::default());
    let sp = e.path("first.sock");
    let l = UnixListener::bind(&sp).unwrap();
    let p = Peer::new(&e);
    for id in 1..=3u32 {
        p.open(id, consts::CHAN_STREAM, sp.as_os_str().as_encoded_bytes(), 1 << 20).unwrap();
        let (mut srv, _) = l.accept().unwrap();
        srv.write_all(b"bye").unwrap();
        drop(srv);
        assert_eq!(p.expect(Op::CHAN_DATA, id).1, b"bye");
        assert_eq!(p.expect_close(id).0, consts::CHAN_SHUT_WR);
        // Our EOF completes the channel on the engine side (it was already read-done).
        p.send(Op::CHAN_CLOSE, id, &ChanClose { how: consts::CHAN_SHUT_WR, error: 0 });
    }
    let mut a = AdminClient::connect(&e.admin).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        a.call(Op::ADMIN_CHANNELS, &Empty {}).unwrap().decode::<ChannelsRsp>().unwrap().count == 0
    }));
    assert_eq!(p.s.ping(b"alive").unwrap(), b"alive");
}
