//! Helpers shared by the channel tests (`channels.rs`, `channels_fds.rs`): the DPU side of
//! a channel ([`Peer`]: raw CHAN_* frames over a session) and checksums. The raw socket
//! helpers (bound listeners, sendmsg/recvmsg with SCM_RIGHTS, an echo server) are the
//! testkit's, re-exported here.
#![allow(dead_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qtfs_client::Session;
use qtfs_proto::header::flags;
use qtfs_proto::*;
use qtfs_testkit::*;

pub use qtfs_testkit::sock::*;

/// The DPU side of a channel test: a session whose one-way frames are collected.
pub struct Peer {
    pub s: Session,
    pub rx: Mutex<Receiver<(FrameHeader, Vec<u8>)>>,
}

impl Peer {
    pub fn new(e: &TestEngine) -> Peer {
        let s = e.session(1);
        let (tx, rx) = channel();
        let tx = Mutex::new(tx);
        s.set_frame_handler(Arc::new(move |_c, h, p| {
            let _ = tx.lock().unwrap().send((h, p));
        }));
        Peer { s, rx: Mutex::new(rx) }
    }

    pub fn open(&self, id: u32, kind: u32, path: &[u8], credit: u32) -> Result<u32, i32> {
        let m = ChanOpenReq { kind, credit, listener: 0, uid: 0, gid: 0, groups: Groups::EMPTY, path: Path(path) };
        match self.s.submit_on_channel(0, Op::CHAN_OPEN, id, &m).unwrap().wait() {
            Ok(r) => Ok(r.decode::<ChanAccept>().unwrap().credit),
            Err(e) => Err(e.errno()),
        }
    }

    /// Binds a HOST server socket of type `ty` at `e.path(name)`, opens channel `id` of
    /// `kind` to it with `credit`, and returns the server's end of the engine's connection.
    pub fn open_to_host(&self, e: &TestEngine, id: u32, kind: u32, name: &str, ty: i32, credit: u32) -> OwnedFd {
        let path = e.path(name);
        let l = raw_bound(&path, ty);
        self.open(id, kind, path.as_os_str().as_encoded_bytes(), credit).unwrap();
        raw_accept(l.as_raw_fd())
    }

    pub fn send<'m, M: Wire<'m>>(&self, op: Op, chan: u32, m: &M) {
        self.s.conn(0).send(FrameHeader::message(op, chan, 0), &m.to_vec()).unwrap();
    }

    pub fn data(&self, chan: u32, bytes: &[u8], more: bool) {
        let mut h = FrameHeader::message(Op::CHAN_DATA, chan, 0);
        if more {
            h.flags |= flags::MORE;
        }
        self.s.conn(0).send(h, bytes).unwrap();
    }

    /// The next CHAN_CLOSE on `chan` (skipping credit frames): (how, error).
    pub fn expect_close(&self, chan: u32) -> (u32, i32) {
        let (_, c) = self.expect(Op::CHAN_CLOSE, chan);
        let c = ChanClose::decode(&c).unwrap();
        (c.how, c.error)
    }

    pub fn next(&self, t: Duration) -> Option<(FrameHeader, Vec<u8>)> {
        match self.rx.lock().unwrap().recv_timeout(t) {
            Ok(f) => Some(f),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("session gone"),
        }
    }

    /// The next frame of `op` on `chan`, skipping credit frames.
    pub fn expect(&self, op: Op, chan: u32) -> (FrameHeader, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some((h, p)) = self.next(Duration::from_millis(100)) {
                if h.op == op as u16 && h.channel == chan {
                    return (h, p);
                }
                if h.op != Op::CHAN_CREDIT as u16 {
                    panic!("unexpected frame op {:#x} chan {:#x} waiting for {op}", h.op, h.channel);
                }
            }
        }
        panic!("no {op} on channel {chan:#x}");
    }
}

/// A stream echo server bound at `e.path(name)`; returns its path.
pub fn host_echo(e: &TestEngine, name: &str) -> std::path::PathBuf {
    let path = e.path(name);
    echo_server(std::os::unix::net::UnixListener::bind(&path).unwrap());
    path
}

pub fn checksum(acc: u64, b: &[u8]) -> u64 {
    b.iter().fold(acc, |a, &x| a.wrapping_mul(1_000_003).wrapping_add(x as u64))
}
