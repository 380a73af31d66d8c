//! What the admin socket lists of each channel (ADMIN_CHANNELS): per-channel counters
//! the loop that owns the channel updates with relaxed atomics and the admin thread
//! reads, and the response records built from them within one frame.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use qtfs_proto::{ChanInfo, ChannelsRsp, MAX_PATH, MAX_PAYLOAD, Path, Rest, Wire};

use crate::{Credit, Kind, St};

/// One live channel, as the admin socket shows it.
#[derive(Debug)]
pub struct ChanStat {
    pub conn_id: u64,
    pub channel: u32,
    pub kind: u32,
    pub path: Vec<u8>,
    pub state: AtomicU32,
    pub credit_tx: AtomicU32,
    pub credit_rx: AtomicU32,
    /// Bytes received from the QTP peer (to be written to the local socket).
    pub bytes_in: AtomicU64,
    /// Bytes read from the local socket and sent to the QTP peer.
    pub bytes_out: AtomicU64,
}

impl ChanStat {
    pub fn new(conn_id: u64, channel: u32, kind: Kind, path: &[u8], st: St, credit: &Credit) -> ChanStat {
        ChanStat {
            conn_id,
            channel,
            kind: kind.wire(),
            path: path.to_vec(),
            state: AtomicU32::new(st.wire()),
            credit_tx: AtomicU32::new(credit.tx_u32()),
            credit_rx: AtomicU32::new(credit.rx_u32()),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    /// Publishes the channel's credit.
    pub fn credit(&self, c: &Credit) {
        self.credit_tx.store(c.tx_u32(), Ordering::Relaxed);
        self.credit_rx.store(c.rx_u32(), Ordering::Relaxed);
    }

    pub fn state(&self, st: St) {
        self.state.store(st.wire(), Ordering::Relaxed);
    }

    /// The ChanInfo record (the path cut to [`MAX_PATH`]).
    pub fn info(&self) -> ChanInfo<'_> {
        ChanInfo {
            conn_id: self.conn_id,
            channel: self.channel,
            kind: self.kind,
            state: self.state.load(Ordering::Relaxed),
            credit_tx: self.credit_tx.load(Ordering::Relaxed),
            credit_rx: self.credit_rx.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            path: Path(self.path.get(..self.path.len().min(MAX_PATH)).unwrap_or_default()),
        }
    }
}

/// ChanInfo records of `chans`, in the order given, as many as fit one frame: the
/// records and their count, for [`ChannelsRsp`].
pub fn records<'a>(chans: impl IntoIterator<Item = &'a ChanStat>) -> (Vec<u8>, u32) {
    let mut recs = Vec::new();
    let mut count = 0u32;
    for c in chans {
        let rec = c.info();
        if recs.len() + rec.encoded_len() + 64 > MAX_PAYLOAD {
            break;
        }
        rec.encode(&mut recs);
        count += 1;
    }
    (recs, count)
}

/// The ADMIN_CHANNELS response for `recs` from [`records`].
pub fn response(recs: &(Vec<u8>, u32)) -> ChannelsRsp<'_> {
    ChannelsRsp { count: recs.1, records: Rest(&recs.0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qtfs_proto::RecordIter;

    #[test]
    fn the_listing_fits_one_frame() {
        let long = vec![b'p'; MAX_PATH + 100];
        let chans: Vec<ChanStat> = (0..400)
            .map(|i| ChanStat::new(1, i, Kind::Stream, &long, St::Open, &Credit { tx: 5, ..Credit::default() }))
            .collect();
        let r = records(&chans);
        assert!(r.1 > 0 && (r.1 as usize) < chans.len(), "cut, not empty");
        let mut out = Vec::new();
        response(&r).encode(&mut out);
        assert!(out.len() <= MAX_PAYLOAD);
        let decoded = ChannelsRsp::decode(&out).unwrap();
        let infos: Vec<_> = RecordIter::<ChanInfo>::new(decoded.records.0).collect::<Result<_, _>>().unwrap();
        assert_eq!(infos.len(), r.1 as usize);
        assert_eq!(infos[3].channel, 3);
        assert_eq!(infos[0].path.0.len(), MAX_PATH);
        assert_eq!(infos[0].credit_tx, 5);
        assert_eq!(infos[0].state, St::Open.wire());
    }
}
