//! The local request protocol between a requester (`libudsproxy.so`, or any tool) and
//! `udsproxyd`, over its request socket (`/var/run/qtfs/remote_uds.sock`,
//! `SOCK_SEQPACKET`, mode 0666).
//!
//! One request, one answer, then the requester closes. Both are single SEQPACKET
//! messages, little-endian:
//!
//! | request | off | size | meaning |
//! |---|---|---|---|
//! | magic | 0 | 4 | [`MAGIC`] |
//! | op | 4 | 2 | [`OP_CONNECT`] |
//! | kind | 6 | 2 | [`KIND_STREAM`], [`KIND_SEQPACKET`] or [`KIND_DGRAM`] |
//! | path_len | 8 | 2 | 1..=[`MAX_PATH`] |
//! | reserved | 10 | 6 | zero |
//! | path | 16 | path_len | absolute HOST path, no NUL |
//!
//! | answer | off | size | meaning |
//! |---|---|---|---|
//! | magic | 0 | 4 | [`MAGIC`] |
//! | status | 4 | 4 | 0: connected; [`PASS`]: not proxied; else a positive errno |
//!
//! With status 0 the answer carries one descriptor (SCM_RIGHTS): a socket of the
//! requested kind, already connected to the HOST socket through the engine. No file is
//! ever created for the rendezvous (the original's `<path>.proxy`). The requester's
//! identity is the request socket's `SO_PEERCRED`/`SO_PEERGROUPS`; udsproxyd sends it to
//! the engine, which connects with it.
//!
//! [`OP_AFFINITY`] asks for, or sets, the CPU affinity of a HOST process or thread (the
//! engine's SCHED_GETAFFINITY/SCHED_SETAFFINITY, gated there by `--allow-kill`, `[Kill]`
//! and "started through rexec_server"). Its request shares the first 12 bytes' layout:
//!
//! | affinity request | off | size | meaning |
//! |---|---|---|---|
//! | magic | 0 | 4 | [`MAGIC`] |
//! | op | 4 | 2 | [`OP_AFFINITY`] |
//! | which | 6 | 2 | [`AFF_GET`] or [`AFF_SET`] |
//! | mask_len | 8 | 2 | GET: 0; SET: 1..=[`MASK_MAX`] |
//! | reserved | 10 | 2 | zero |
//! | pid | 12 | 4 | HOST pid or thread id, > 0 (i32) |
//! | mask | 16 | mask_len | SET: bit i = CPU i |
//!
//! | affinity answer | off | size | meaning |
//! |---|---|---|---|
//! | magic | 0 | 4 | [`MAGIC`] |
//! | status | 4 | 4 | 0: done; [`PASS`]: not asked (no engine, caller not allowed); else the HOST's errno |
//! | mask_len | 8 | 2 | GET with status 0: the HOST's mask length, else 0 |
//! | reserved | 10 | 2 | zero |
//! | mask | 12 | mask_len | bit i = CPU i |
//!
//! A udsproxyd that predates [`OP_AFFINITY`] rejects the request as malformed and answers
//! the 8-byte [`PASS`] of [`OP_CONNECT`]; requesters take that as "not asked".
//!
//! This file is shared, byte for byte, by `preload/` and `tools/udsproxyd` (included with
//! `#[path]`), so the two ends cannot drift. It must stay free of allocation and of
//! dependencies: the preload library runs it inside arbitrary programs.

/// `"QTU1"` in little-endian byte order.
pub const MAGIC: u32 = u32::from_le_bytes(*b"QTU1");
/// Connect a socket of `kind` to `path` on the HOST.
pub const OP_CONNECT: u16 = 1;
pub const KIND_STREAM: u16 = 1;
pub const KIND_SEQPACKET: u16 = 2;
pub const KIND_DGRAM: u16 = 3;
/// Fixed part of a request.
pub const REQ_HDR: usize = 16;
/// Longest path.
pub const MAX_PATH: usize = 4095;
/// Largest request.
pub const REQ_MAX: usize = REQ_HDR + MAX_PATH;
/// Size of an answer.
pub const RSP_LEN: usize = 8;
/// Answer status: udsproxyd does not proxy this path (not whitelisted, or no engine);
/// the requester reports the error of its own local attempt.
pub const PASS: i32 = -1;

/// Get or set the CPU affinity of a HOST process or thread.
pub const OP_AFFINITY: u16 = 2;
pub const AFF_GET: u16 = 1;
pub const AFF_SET: u16 = 2;
/// Longest CPU mask carried (8192 CPUs; the engine's limit for SCHED_SETAFFINITY).
pub const MASK_MAX: usize = 1024;
/// Largest affinity request.
pub const AFF_REQ_MAX: usize = REQ_HDR + MASK_MAX;
/// Fixed part of an affinity answer.
pub const AFF_RSP_HDR: usize = 12;
/// Largest affinity answer.
pub const AFF_RSP_MAX: usize = AFF_RSP_HDR + MASK_MAX;

/// A decoded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub op: u16,
    pub kind: u16,
    pub path: &'a [u8],
}

/// Encodes a request into `buf`; returns its length, or None if the path is empty,
/// too long, contains NUL, or `buf` is too small.
pub fn encode_request(buf: &mut [u8], op: u16, kind: u16, path: &[u8]) -> Option<usize> {
    let n = REQ_HDR + path.len();
    if path.is_empty() || path.len() > MAX_PATH || buf.len() < n || path.contains(&0) {
        return None;
    }
    buf[..REQ_HDR].fill(0);
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[4..6].copy_from_slice(&op.to_le_bytes());
    buf[6..8].copy_from_slice(&kind.to_le_bytes());
    buf[8..10].copy_from_slice(&(path.len() as u16).to_le_bytes());
    buf[REQ_HDR..n].copy_from_slice(path);
    Some(n)
}

/// Decodes a request; None for anything malformed (hostile input is normal input).
pub fn decode_request(b: &[u8]) -> Option<Request<'_>> {
    if b.len() < REQ_HDR || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != MAGIC {
        return None;
    }
    let op = u16::from_le_bytes([b[4], b[5]]);
    let kind = u16::from_le_bytes([b[6], b[7]]);
    let len = u16::from_le_bytes([b[8], b[9]]) as usize;
    if b[10..REQ_HDR].iter().any(|&x| x != 0) || len == 0 || len > MAX_PATH || b.len() != REQ_HDR + len {
        return None;
    }
    let path = &b[REQ_HDR..];
    if path.contains(&0) {
        return None;
    }
    Some(Request { op, kind, path })
}

/// The op of a request with a valid magic (which decoder applies), or None.
pub fn request_op(b: &[u8]) -> Option<u16> {
    if b.len() < REQ_HDR || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != MAGIC {
        return None;
    }
    Some(u16::from_le_bytes([b[4], b[5]]))
}

/// A decoded affinity request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffinityRequest<'a> {
    /// [`AFF_GET`] or [`AFF_SET`].
    pub which: u16,
    pub pid: i32,
    /// Empty for [`AFF_GET`].
    pub mask: &'a [u8],
}

/// Encodes an affinity request; None for a pid ≤ 0, an unknown `which`, a mask that is
/// empty for SET, present for GET or longer than [`MASK_MAX`], or a short `buf`.
pub fn encode_affinity(buf: &mut [u8], which: u16, pid: i32, mask: &[u8]) -> Option<usize> {
    let n = REQ_HDR + mask.len();
    let mask_ok = match which {
        AFF_GET => mask.is_empty(),
        AFF_SET => !mask.is_empty() && mask.len() <= MASK_MAX,
        _ => false,
    };
    if pid <= 0 || !mask_ok || buf.len() < n {
        return None;
    }
    buf[..REQ_HDR].fill(0);
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[4..6].copy_from_slice(&OP_AFFINITY.to_le_bytes());
    buf[6..8].copy_from_slice(&which.to_le_bytes());
    buf[8..10].copy_from_slice(&(mask.len() as u16).to_le_bytes());
    buf[12..16].copy_from_slice(&pid.to_le_bytes());
    buf[REQ_HDR..n].copy_from_slice(mask);
    Some(n)
}

/// Decodes an affinity request; None for anything malformed.
pub fn decode_affinity(b: &[u8]) -> Option<AffinityRequest<'_>> {
    if request_op(b)? != OP_AFFINITY {
        return None;
    }
    let which = u16::from_le_bytes([b[6], b[7]]);
    let len = u16::from_le_bytes([b[8], b[9]]) as usize;
    let pid = i32::from_le_bytes([b[12], b[13], b[14], b[15]]);
    let len_ok = match which {
        AFF_GET => len == 0,
        AFF_SET => (1..=MASK_MAX).contains(&len),
        _ => false,
    };
    if !len_ok || b[10..12].iter().any(|&x| x != 0) || pid <= 0 || b.len() != REQ_HDR + len {
        return None;
    }
    Some(AffinityRequest { which, pid, mask: &b[REQ_HDR..] })
}

/// Encodes an affinity answer into `buf` (at least [`AFF_RSP_HDR`] + the mask); returns
/// its length. A mask longer than [`MASK_MAX`] or than `buf` allows is not sent (EINVAL).
pub fn encode_affinity_answer(buf: &mut [u8], status: i32, mask: &[u8]) -> usize {
    let (status, mask) =
        // 22 = EINVAL (the same value on every Linux architecture; no libc here).
        if mask.len() > MASK_MAX || buf.len() < AFF_RSP_HDR + mask.len() { (22, &[][..]) } else { (status, mask) };
    buf[..AFF_RSP_HDR].fill(0);
    buf[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    buf[4..8].copy_from_slice(&status.to_le_bytes());
    buf[8..10].copy_from_slice(&(mask.len() as u16).to_le_bytes());
    buf[AFF_RSP_HDR..AFF_RSP_HDR + mask.len()].copy_from_slice(mask);
    AFF_RSP_HDR + mask.len()
}

/// Decodes an affinity answer into (status, mask). The 8-byte [`PASS`] answer of a
/// udsproxyd that does not know [`OP_AFFINITY`] decodes as (PASS, empty).
pub fn decode_affinity_answer(b: &[u8]) -> Option<(i32, &[u8])> {
    if b.len() == RSP_LEN {
        return (decode_answer(b)? == PASS).then_some((PASS, &[][..]));
    }
    if b.len() < AFF_RSP_HDR || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != MAGIC {
        return None;
    }
    let status = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let len = u16::from_le_bytes([b[8], b[9]]) as usize;
    if len > MASK_MAX || b.len() != AFF_RSP_HDR + len || b[10..12].iter().any(|&x| x != 0) {
        return None;
    }
    Some((status, &b[AFF_RSP_HDR..]))
}

pub fn encode_answer(status: i32) -> [u8; RSP_LEN] {
    let mut b = [0u8; RSP_LEN];
    b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&status.to_le_bytes());
    b
}

pub fn decode_answer(b: &[u8]) -> Option<i32> {
    if b.len() != RSP_LEN || u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != MAGIC {
        return None;
    }
    Some(i32::from_le_bytes([b[4], b[5], b[6], b[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_input() {
        let mut b = [0u8; REQ_MAX];
        let n = encode_request(&mut b, OP_CONNECT, KIND_DGRAM, b"/run/x.sock").unwrap();
        let r = decode_request(&b[..n]).unwrap();
        assert_eq!((r.op, r.kind, r.path), (OP_CONNECT, KIND_DGRAM, &b"/run/x.sock"[..]));
        assert!(decode_request(&b[..n - 1]).is_none(), "length mismatch");
        assert!(decode_request(&b[..REQ_HDR - 1]).is_none());
        assert!(encode_request(&mut b, 1, 1, b"").is_none());
        assert!(encode_request(&mut b, 1, 1, b"a\0b").is_none());
        assert!(encode_request(&mut b, 1, 1, &[b'a'; MAX_PATH + 1]).is_none());
        let mut bad = b;
        bad[0] ^= 1;
        assert!(decode_request(&bad[..n]).is_none(), "magic");
        let mut bad = b;
        bad[12] = 1;
        assert!(decode_request(&bad[..n]).is_none(), "reserved");
        assert_eq!(decode_answer(&encode_answer(PASS)), Some(PASS));
        assert_eq!(decode_answer(&encode_answer(111)), Some(111));
        assert!(decode_answer(&[0; 7]).is_none());
        for i in 0..2000usize {
            let junk: Vec<u8> = (0..(i % 64)).map(|k| (k * 31 + i) as u8).collect();
            let _ = decode_request(&junk);
            let _ = decode_affinity(&junk);
            let _ = decode_affinity_answer(&junk);
        }
    }

    #[test]
    fn affinity_round_trip_and_compatibility() {
        let mut b = [0u8; AFF_REQ_MAX];
        let n = encode_affinity(&mut b, AFF_SET, 4242, &[2, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(request_op(&b[..n]), Some(OP_AFFINITY));
        let r = decode_affinity(&b[..n]).unwrap();
        assert_eq!((r.which, r.pid, r.mask), (AFF_SET, 4242, &[2u8, 0, 0, 0, 0, 0, 0, 0][..]));
        // The connect decoder (all an older udsproxyd has) rejects it: it answers PASS.
        assert!(decode_request(&b[..n]).is_none());
        let n = encode_affinity(&mut b, AFF_GET, 7, &[]).unwrap();
        assert_eq!(n, REQ_HDR);
        assert_eq!(decode_affinity(&b[..n]).unwrap().which, AFF_GET);
        assert!(decode_request(&b[..n]).is_none());
        assert!(encode_affinity(&mut b, AFF_GET, 7, &[1]).is_none());
        assert!(encode_affinity(&mut b, AFF_SET, 7, &[]).is_none());
        assert!(encode_affinity(&mut b, AFF_SET, 0, &[1]).is_none());
        assert!(encode_affinity(&mut b, AFF_SET, 7, &[1; MASK_MAX + 1]).is_none());
        assert!(encode_affinity(&mut b, 9, 7, &[1]).is_none());
        let mut bad = b;
        bad[12..16].copy_from_slice(&(-1i32).to_le_bytes());
        assert!(decode_affinity(&bad[..REQ_HDR]).is_none(), "negative pid");
        let mut bad = b;
        bad[10] = 1;
        assert!(decode_affinity(&bad[..REQ_HDR]).is_none(), "reserved");
        // A connect request is not an affinity request.
        let n = encode_request(&mut b, OP_CONNECT, KIND_STREAM, b"/x").unwrap();
        assert!(decode_affinity(&b[..n]).is_none());
        let mut a = [0u8; AFF_RSP_MAX];
        let n = encode_affinity_answer(&mut a, 0, &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode_affinity_answer(&a[..n]), Some((0, &[3u8, 0, 0, 0, 0, 0, 0, 0][..])));
        let n = encode_affinity_answer(&mut a, 3, &[]);
        assert_eq!(decode_affinity_answer(&a[..n]), Some((3, &[][..])));
        assert_eq!(decode_affinity_answer(&encode_answer(PASS)), Some((PASS, &[][..])));
        assert!(decode_affinity_answer(&encode_answer(0)).is_none());
        assert!(decode_affinity_answer(&a[..n - 1]).is_none());
    }
}
