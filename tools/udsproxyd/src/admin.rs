//! The admin socket (`--admin-socket`, mode 0600): the engine's admin framing, so that
//! `qtcfg`/`qtinfo` speak to udsproxyd exactly as to the engine. udsproxyd holds only
//! the udsconnect whitelist, kept in memory (the original's client-side whitelist was
//! runtime-only too): other groups and `WL_PERSIST` are refused with EOPNOTSUPP. The
//! requests are decoded and answered in `qtfs_daemon::admin`; this is udsproxyd's state
//! behind them.
//!
//! One plain thread per admin connection; admin traffic never touches a relay loop.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use qtfs_proto::consts::{self, WlType, errno};
use qtfs_proto::{AdminInfo, ConnInfo, Name, Op, OpCounter};

use qtfs_daemon::admin::{Admin, info};

use crate::{Shared, sys};

pub fn serve(listener: OwnedFd, sh: Arc<Shared>) {
    let _ = sys::set_nonblock(listener.as_raw_fd(), false);
    let l = std::os::unix::net::UnixListener::from(listener);
    qtfs_daemon::admin::serve(l, &sh.shutdown, "udsproxyd-admin-conn", sh.clone());
}

impl Admin for Shared {
    const WL_TYPES: &'static [WlType] = &[WlType::Udsconnect];

    fn info(&self) -> AdminInfo<'static> {
        let connected = self.loops.iter().filter(|l| l.connected.load(Ordering::Relaxed)).count() as u32;
        AdminInfo {
            cores: self.loops.len() as u32,
            sessions: connected,
            connections: connected,
            channels: self.chans.lock().len() as u32,
            ..info(b"udsproxyd", self.started, &self.log_level)
        }
    }

    fn log_level(&self) -> (&AtomicU32, &(dyn Fn(u32) + Send + Sync)) {
        (&self.log_level, &*self.set_log_level)
    }

    fn wl_list(&self, _types: &[WlType], each: &mut dyn FnMut(WlType, u32, &[u8])) {
        // Udsconnect, the one group held, is the only one asked for.
        for (i, e) in self.wl.read().entries().iter().enumerate() {
            each(WlType::Udsconnect, i as u32, e);
        }
    }

    fn wl_add(&self, _t: WlType, path: &[u8], persist: bool) -> Result<u32, i32> {
        if persist {
            return Err(errno::EOPNOTSUPP);
        }
        self.wl.write().add(path)
    }

    fn wl_del(&self, _t: WlType, index: u32, persist: bool) -> Result<Vec<u8>, i32> {
        if persist {
            return Err(errno::EOPNOTSUPP);
        }
        self.wl.write().delete(index)
    }

    fn counters(&self, clear: bool) -> (Vec<OpCounter>, u64) {
        let r = (counters(self), self.stats.since.lock().elapsed().as_millis() as u64);
        if clear {
            self.stats.clear();
        }
        r
    }

    fn clear(&self) {
        self.stats.clear();
    }

    fn conns(&self, each: &mut dyn FnMut(ConnInfo<'_>)) {
        let peer = self.cfg.server.to_string();
        for (i, l) in self.loops.iter().enumerate() {
            let up = l.connected.load(Ordering::Relaxed);
            each(ConnInfo {
                conn_id: i as u64,
                session: l.conn_id.load(Ordering::Relaxed),
                core: i as u32,
                state: if up { consts::CONN_ACTIVE } else { consts::CONN_RECONNECTING },
                inflight: 0,
                channels: l.channels.load(Ordering::Relaxed),
                handles: 0,
                requests: l.frames.load(Ordering::Relaxed),
                bytes_in: l.bytes_in.load(Ordering::Relaxed),
                bytes_out: 0,
                peer: Name(peer.as_bytes()),
            });
        }
    }

    fn channels(&self) -> (Vec<u8>, u32) {
        let mut chans: Vec<_> = self.chans.lock().iter().map(|(k, v)| (*k, v.clone())).collect();
        chans.sort_by_key(|(k, _)| *k);
        qtfs_chan::listing::records(chans.iter().map(|(_, c)| &**c))
    }
}

/// The counters as OpCounter records, in the rows `qtinfo -u` shows: CHAN_OPEN
/// (requests = requests on the request socket; errors = those not proxied or refused by
/// the engine; latency = engine round trip of the opens), CHAN_DATA (bytes from the
/// engine / to the engine), CHAN_SCM (descriptors passed), CHAN_CLOSE (channels closed on
/// an error). Engine reconnects are logged.
fn counters(sh: &Shared) -> Vec<OpCounter> {
    let s = &sh.stats;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let hist = s.open_lat.lock();
    let zero = |op: Op| OpCounter {
        op: op as u16,
        requests: 0,
        errors: 0,
        bytes_in: 0,
        bytes_out: 0,
        lat_p50_ns: 0,
        lat_p99_ns: 0,
        lat_p999_ns: 0,
        lat_max_ns: 0,
    };
    vec![
        OpCounter {
            requests: l(&s.requests),
            errors: l(&s.passed) + l(&s.open_errors),
            lat_p50_ns: hist.value_at_quantile(0.5),
            lat_p99_ns: hist.value_at_quantile(0.99),
            lat_p999_ns: hist.value_at_quantile(0.999),
            lat_max_ns: hist.max(),
            ..zero(Op::CHAN_OPEN)
        },
        OpCounter { bytes_in: l(&s.bytes_down), bytes_out: l(&s.bytes_up), ..zero(Op::CHAN_DATA) },
        OpCounter { requests: l(&s.scm), ..zero(Op::CHAN_SCM) },
        OpCounter { errors: l(&s.chan_errors), ..zero(Op::CHAN_CLOSE) },
    ]
}
