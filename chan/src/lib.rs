//! The channel core: what both ends of a unix-socket channel (`proto/PROTOCOL.md`,
//! Channels) must agree on, written once. The engine (`engine/src/udsmux/`, io_uring)
//! and udsproxyd (`tools/udsproxyd/src/relay/`, epoll) keep only their own I/O around it.
//!
//! - [`Kind`] and [`St`]: channel kinds (with the relay kinds of passed pipes) and states;
//! - [`Credit`]: the credit windows of one channel (grant, consume, withhold);
//! - [`Flow`]: one channel's data path: the CHAN_DATA rules, message assembly over MORE
//!   frames ([`Assembly`]), the local write queue, half-close bookkeeping;
//! - [`scm`]: CHAN_SCM records, built from passed descriptors and parsed (bounded) from
//!   the peer;
//! - [`reopen`]: the security policy that recreates a passed regular file (one check,
//!   the system calls supplied by the caller);
//! - [`ChanStat`] and [`listing`]: the per-channel counters the admin socket lists.
//!
//! Nothing here performs I/O: it holds descriptors it is given and decides; the caller
//! reads, writes, opens and sends frames.
//!
//! Why its own crate and not a `proto` module: `proto` is the wire format, used by every
//! peer (the FUSE client, the dependency-light `preload`, the fuzzers, the C code
//! generator); this is channel *behaviour* that only the two channel ends need, and it
//! holds OS objects (`OwnedFd`) and OS policy (open flags, file types).

// Reached by bytes from untrusted peers: a slip must refuse, not panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

mod credit;
mod flow;
mod kind;
pub mod listing;
pub mod reopen;
pub mod scm;

pub use credit::{Credit, TX_LIMIT};
pub use flow::{Assembly, Delivery, Flow, OutMsg};
pub use kind::{Kind, St};
pub use listing::ChanStat;

/// Bytes one side lets its peer send ahead on one channel (its receive window).
pub const WINDOW: u32 = 1 << 20;
/// Largest SEQPACKET/DGRAM message relayed (one read of the local socket; the engine's
/// receive buffer size).
pub const MSG_MAX: usize = 256 * 1024;
/// Largest message assembled from CHAN_DATA frames with MORE. The credit window bounds
/// it already (bytes of an unfinished message are not returned as credit); this is the
/// second line.
pub const ASSEMBLE_MAX: usize = 4 * MSG_MAX;
/// Most descriptors one message carries (the kernel's `SCM_MAX_FD`), and so the most
/// records one CHAN_SCM may hold.
pub const MAX_SCM_FDS: usize = 253;

/// Why a channel is refused or closed: the errno for the peer (wire numbering) and a
/// line for the log.
pub type Refusal = (i32, &'static str);

/// The local errno `e` in wire numbering.
pub fn wire_errno(e: i32) -> i32 {
    qtfs_proto::errno::from_local(e)
}

/// Whether `id` is a channel (or relay, or listener) id that the sender of a frame may
/// choose: the server (engine) picks ids with `CHAN_ID_PEER` set, the client (DPU side)
/// non-zero ids without it.
pub fn id_chosen_by(id: u32, server: bool) -> bool {
    let peer = id & qtfs_proto::consts::CHAN_ID_PEER != 0;
    if server { peer } else { id != 0 && !peer }
}

/// The CHAN_OPEN (header and request) a side sends for a connection accepted on a
/// listener it holds for the peer: our whole window as credit, the listener's id, the
/// connecting process's uid and gid (`SO_PEERCRED`), and the listener's path if any.
pub fn accepted_open(
    channel: u32,
    req: u64,
    kind: Kind,
    listener: u32,
    (uid, gid): (u32, u32),
    path: &[u8],
) -> (qtfs_proto::FrameHeader, qtfs_proto::ChanOpenReq<'_>) {
    let h = qtfs_proto::FrameHeader { channel, ..qtfs_proto::FrameHeader::request(qtfs_proto::Op::CHAN_OPEN, req, 0) };
    let groups = qtfs_proto::Groups::EMPTY;
    let m = qtfs_proto::ChanOpenReq {
        kind: kind.wire(),
        credit: WINDOW,
        listener,
        uid,
        gid,
        groups,
        path: qtfs_proto::Path(path),
    };
    (h, m)
}
