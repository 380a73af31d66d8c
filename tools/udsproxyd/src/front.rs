//! The request socket (`--socket`, SOCK_SEQPACKET, mode 0666): requesters ask for a
//! channel with one message and get one answer (see `preload/src/wire.rs`).
//!
//! One thread with its own epoll: accepting, reading a request and deciding never
//! waits on anyone, so a requester that connects and stays silent delays nobody (it is
//! dropped after two seconds). The decision is local: the path must be covered by the
//! udsconnect whitelist and an engine connection must be up; otherwise the answer is
//! "not proxied" and the requester reports its own local error, exactly as without the
//! proxy. Accepted requests go to a relay loop, which answers once the engine has.
//!
//! Affinity requests (`wire::OP_AFFINITY`) are decided here too: the requester's uid
//! (`SO_PEERCRED`) must be allowed by `Config::may_control_processes` (root, udsproxyd's
//! own uid, `--process-control-uid`), and an engine connection that offers SYSCALLS must
//! be up; otherwise the answer is "not asked" and the requester acts locally. The engine
//! itself decides which HOST processes may be acted on.
//!
//! This module owns requester connections until they are handed to a loop; it must not
//! touch channels.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::relay::{Cmd, Ident, Kind, answer, answer_affinity};
use crate::{Shared, sys, wire, wl};

const T_LISTEN: u64 = u64::MAX;
const T_WAKE: u64 = u64::MAX - 1;
const SILENT_LIMIT: Duration = Duration::from_secs(2);

pub struct Front {
    sh: Arc<Shared>,
    ep: OwnedFd,
    listener: OwnedFd,
    _wake: OwnedFd,
    waiting: HashMap<RawFd, (OwnedFd, Instant)>,
}

impl Front {
    pub fn new(sh: Arc<Shared>, listener: OwnedFd, wake: &OwnedFd) -> std::io::Result<Front> {
        let ep = sys::epoll_create()?;
        sys::set_nonblock(listener.as_raw_fd(), true)?;
        sys::epoll_add(ep.as_raw_fd(), listener.as_raw_fd(), libc::EPOLLIN as u32, T_LISTEN)?;
        let wake = wake.try_clone()?;
        sys::epoll_add(ep.as_raw_fd(), wake.as_raw_fd(), libc::EPOLLIN as u32, T_WAKE)?;
        Ok(Front { sh, ep, listener, _wake: wake, waiting: HashMap::new() })
    }

    pub fn run(&mut self) {
        let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 128];
        while !self.sh.shutdown.load(Ordering::Acquire) {
            let n = sys::epoll_wait(self.ep.as_raw_fd(), &mut evs, 500);
            for ev in &evs[..n] {
                match ev.u64 {
                    T_LISTEN => self.accept(),
                    T_WAKE => {}
                    fd => self.request(fd as RawFd),
                }
            }
            if !self.waiting.is_empty() {
                self.waiting.retain(|_, (_, t)| t.elapsed() < SILENT_LIMIT);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match sys::accept(self.listener.as_raw_fd()) {
                Ok(fd) => {
                    let raw = fd.as_raw_fd();
                    if sys::epoll_add(self.ep.as_raw_fd(), raw, libc::EPOLLIN as u32, raw as u64).is_ok() {
                        self.waiting.insert(raw, (fd, Instant::now()));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn request(&mut self, raw: RawFd) {
        let mut buf = [0u8; wire::REQ_MAX + 1];
        let n = match sys::recv_nb(raw, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        let Some((fd, t0)) = self.waiting.remove(&raw) else { return };
        sys::epoll_del(self.ep.as_raw_fd(), raw);
        self.sh.stats.requests.fetch_add(1, Ordering::Relaxed);
        if wire::request_op(&buf[..n]) == Some(wire::OP_AFFINITY) {
            return self.affinity(fd, &buf[..n]);
        }
        match self.decide(&fd, &buf[..n]) {
            Some((kind, path, ident)) => {
                let loops = &self.sh.loops;
                let start = self.sh.rr.fetch_add(1, Ordering::Relaxed) as usize;
                let up = (0..loops.len())
                    .map(|k| (start + k) % loops.len())
                    .find(|&i| loops[i].connected.load(Ordering::Acquire));
                match up {
                    Some(i) => loops[i].post(Cmd::Open { requester: fd, kind, path, ident, t0 }),
                    None => {
                        tracing::debug!("no engine connection: request not proxied");
                        self.sh.stats.passed.fetch_add(1, Ordering::Relaxed);
                        answer(&fd, wire::PASS, None);
                    }
                }
            }
            None => {
                self.sh.stats.passed.fetch_add(1, Ordering::Relaxed);
                answer(&fd, wire::PASS, None);
            }
        }
    }

    /// An affinity request: relayed to an engine connection, or answered "not asked".
    fn affinity(&mut self, fd: OwnedFd, msg: &[u8]) {
        let Some(req) = wire::decode_affinity(msg) else {
            self.sh.stats.passed.fetch_add(1, Ordering::Relaxed);
            return answer_affinity(&fd, wire::PASS, &[]);
        };
        let uid = sys::peer_cred(fd.as_raw_fd()).map(|(_, uid, _)| uid).ok();
        if !uid.is_some_and(|u| self.sh.cfg.may_control_processes(u)) {
            tracing::info!(uid = ?uid, pid = req.pid, "affinity request refused: the requester's uid is not allowed");
            self.sh.stats.passed.fetch_add(1, Ordering::Relaxed);
            return answer_affinity(&fd, wire::PASS, &[]);
        }
        let loops = &self.sh.loops;
        let start = self.sh.rr.fetch_add(1, Ordering::Relaxed) as usize;
        let up = (0..loops.len())
            .map(|k| (start + k) % loops.len())
            .find(|&i| loops[i].connected.load(Ordering::Acquire) && loops[i].syscalls.load(Ordering::Acquire));
        match up {
            Some(i) => {
                let mask = (req.which == wire::AFF_SET).then(|| req.mask.to_vec());
                loops[i].post(Cmd::Affinity { requester: fd, pid: req.pid, mask });
            }
            None => {
                tracing::debug!("no engine connection offering process control: affinity request not relayed");
                self.sh.stats.passed.fetch_add(1, Ordering::Relaxed);
                answer_affinity(&fd, wire::PASS, &[]);
            }
        }
    }

    /// Whether and how to proxy a request.
    fn decide(&self, fd: &OwnedFd, msg: &[u8]) -> Option<(Kind, Vec<u8>, Ident)> {
        let req = wire::decode_request(msg)?;
        if req.op != wire::OP_CONNECT {
            return None;
        }
        let kind = match req.kind {
            wire::KIND_STREAM => Kind::Stream,
            wire::KIND_SEQPACKET => Kind::Seqpacket,
            wire::KIND_DGRAM => Kind::Dgram,
            _ => return None,
        };
        let path = wl::normalize(req.path)?;
        if !self.sh.wl.read().allows(&path) {
            tracing::debug!(path = %String::from_utf8_lossy(&path), "not in the udsconnect whitelist: not proxied");
            return None;
        }
        let (_, uid, gid) = sys::peer_cred(fd.as_raw_fd()).ok()?;
        let mut groups = sys::peer_groups(fd.as_raw_fd()).unwrap_or_default();
        groups.truncate(64); // what the channel request carries
        Some((kind, path, Ident { uid, gid, groups }))
    }
}
