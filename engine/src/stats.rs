//! Counters: per operation (requests, errors, bytes, latency histogram) and per
//! connection. Each core records into its own `CoreStats` once per loop turn, so the
//! hot path touches only core-local memory; the admin socket merges the cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use qtfs_proto::{Op, OpCounter};

/// Counters of one operation on one core.
pub struct OpStat {
    pub requests: u64,
    pub errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub hist: Histogram<u64>,
}

impl OpStat {
    fn new() -> OpStat {
        OpStat {
            requests: 0,
            errors: 0,
            bytes_in: 0,
            bytes_out: 0,
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("valid histogram bounds"),
        }
    }
}

/// One completed request, buffered during a loop turn.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub op_index: u16,
    pub ok: bool,
    pub bytes_in: u32,
    pub bytes_out: u32,
    pub latency_ns: u64,
}

/// All operation counters of one core.
pub struct CoreStats {
    ops: Vec<Option<OpStat>>,
    pub since: Instant,
}

impl Default for CoreStats {
    fn default() -> Self {
        CoreStats { ops: (0..Op::INDEX_LIMIT).map(|_| None).collect(), since: Instant::now() }
    }
}

impl CoreStats {
    pub fn record(&mut self, batch: &[Done]) {
        for d in batch {
            let s = self.ops[d.op_index as usize].get_or_insert_with(OpStat::new);
            s.requests += 1;
            if !d.ok {
                s.errors += 1;
            }
            s.bytes_in += d.bytes_in as u64;
            s.bytes_out += d.bytes_out as u64;
            let _ = s.hist.record(d.latency_ns.max(1));
        }
    }

    pub fn clear(&mut self) {
        *self = CoreStats::default();
    }
}

/// Merges the cores into one counter per operation with traffic.
pub fn merge(cores: &[parking_lot::Mutex<CoreStats>], clear: bool) -> (Vec<OpCounter>, u64) {
    let mut merged: Vec<Option<OpStat>> = (0..Op::INDEX_LIMIT).map(|_| None).collect();
    let mut since = Instant::now();
    for c in cores {
        let mut c = c.lock();
        since = since.min(c.since);
        for (i, s) in c.ops.iter().enumerate() {
            if let Some(s) = s {
                let m = merged[i].get_or_insert_with(OpStat::new);
                m.requests += s.requests;
                m.errors += s.errors;
                m.bytes_in += s.bytes_in;
                m.bytes_out += s.bytes_out;
                let _ = m.hist.add(&s.hist);
            }
        }
        if clear {
            c.clear();
        }
    }
    let out = Op::ALL
        .iter()
        .filter_map(|op| {
            let s = merged[op.index()].as_ref()?;
            Some(OpCounter {
                op: *op as u16,
                requests: s.requests,
                errors: s.errors,
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
                lat_p50_ns: s.hist.value_at_quantile(0.50),
                lat_p99_ns: s.hist.value_at_quantile(0.99),
                lat_p999_ns: s.hist.value_at_quantile(0.999),
                lat_max_ns: s.hist.max(),
            })
        })
        .collect();
    (out, since.elapsed().as_millis() as u64)
}

/// What the admin socket shows of one connection; updated by its core with relaxed
/// atomics.
#[derive(Debug)]
pub struct ConnShared {
    pub id: u64,
    pub core: u32,
    pub peer: String,
    pub session: AtomicU64,
    /// Feature bits agreed at the handshake (`feat::*`; 0 before).
    pub features: AtomicU64,
    pub state: AtomicU32,
    pub inflight: AtomicU32,
    pub channels: AtomicU32,
    pub requests: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl ConnShared {
    pub fn new(id: u64, core: u32, peer: String) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            id,
            core,
            peer,
            session: AtomicU64::new(0),
            features: AtomicU64::new(0),
            state: AtomicU32::new(qtfs_proto::consts::CONN_HANDSHAKE),
            inflight: AtomicU32::new(0),
            channels: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        })
    }
    pub fn add_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What the admin socket shows of one channel (ADMIN_CHANNELS): the channel core's
/// counters, updated by its core with relaxed atomics, read by the admin thread.
pub use qtfs_chan::ChanStat as ChanShared;

/// Every live channel of the engine, by (connection id, channel id).
pub type ChanRegistry = parking_lot::Mutex<std::collections::HashMap<(u64, u32), Arc<ChanShared>>>;

/// At most one log line per second per call site; the lines left out are counted and
/// reported (`suppressed = N`) with the next one that passes. Use through
/// [`log_limited!`](crate::log_limited) (one static `RateLimit` per call site), for every
/// line a peer can trigger at will.
pub struct RateLimit {
    /// Milliseconds since [`epoch_ms`]'s epoch, plus one, of the last line; 0 = never.
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

fn epoch_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl RateLimit {
    pub const fn new() -> RateLimit {
        RateLimit { last: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// `Some(lines suppressed since the last one)` when a line may be written now.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(epoch_ms())
    }

    fn admit_at(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 1000)
            && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `tracing::event!` limited to one line per second at this call site, e.g.
/// `log_limited!(tracing::Level::WARN, conn = id, "refused: {e}")`; lines left out are
/// counted in the next one's `suppressed` field.
#[macro_export]
macro_rules! log_limited {
    ($lvl:expr, $($arg:tt)+) => {{
        static RL: $crate::stats::RateLimit = $crate::stats::RateLimit::new();
        if let Some(suppressed) = RL.admit() {
            if suppressed > 0 {
                tracing::event!($lvl, suppressed, $($arg)+);
            } else {
                tracing::event!($lvl, $($arg)+);
            }
        }
    }};
}

#[cfg(test)]
mod rate_tests {
    use super::RateLimit;

    #[test]
    fn one_line_per_second_with_a_count() {
        let r = RateLimit::new();
        assert_eq!(r.admit_at(1), Some(0));
        for t in [2, 500, 1000] {
            assert_eq!(r.admit_at(t), None);
        }
        assert_eq!(r.admit_at(1001), Some(3));
        assert_eq!(r.admit_at(1002), None);
        assert_eq!(r.admit_at(5000), Some(1));
    }
}
