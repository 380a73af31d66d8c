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
        }
    }
}
