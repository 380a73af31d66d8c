//! What the typed operations ([`crate::Ops`]) need from a connection: send one request
//! frame and get the frame answering it. Two transports implement it:
//!
//! - `&`[`Session`](crate::Session): pipelined, any thread, the response matched by id on
//!   the connection's reader thread ([`crate::session`]);
//! - [`BlockingConn`](crate::BlockingConn): one connection used by one thread, one request
//!   at a time, the response read by the caller itself (qtfs-fuse's workers).
//!
//! Owns the request frame's encoding (the header is written by [`FrameHeader::write_to`],
//! never by byte offset) and the mapping of an error response to [`ClientError::Remote`].

use qtfs_proto::{FrameHeader, HEADER_SIZE, MAX_PAYLOAD, Op, Wire};

use crate::error::{ClientError, Result};

/// Sends a request and gets its response.
pub trait Transport {
    /// Sends request `op` whose payload is `msg` followed by `tail` (sent as it is, not
    /// copied into the frame: a WRITE's data), waits for the response and hands its
    /// payload to `f`, which may take the vector to keep it without a copy. An error
    /// response is `Err(Remote(errno))`.
    fn exchange<'m, M: Wire<'m>, R>(
        &mut self,
        op: Op,
        msg: &M,
        tail: &[u8],
        f: impl FnOnce(&mut Vec<u8>) -> Result<R>,
    ) -> Result<R>;
}

/// Encodes `msg` into `frame` (cleared) after room for the header, and returns the header
/// for it: `len` counts the `tail_len` bytes sent after the frame. The sender fills in the
/// request id and writes the header into `frame[..HEADER_SIZE]` with
/// [`FrameHeader::write_to`]. A payload over [`MAX_PAYLOAD`] is `Remote(E2BIG)`.
pub(crate) fn encode_request<'m, M: Wire<'m>>(
    frame: &mut Vec<u8>,
    header: FrameHeader,
    msg: &M,
    tail_len: usize,
) -> Result<FrameHeader> {
    frame.clear();
    frame.resize(HEADER_SIZE, 0);
    msg.encode(frame);
    let len = frame.len() - HEADER_SIZE + tail_len;
    if len > MAX_PAYLOAD {
        return Err(ClientError::Remote(libc::E2BIG));
    }
    Ok(FrameHeader { len: len as u32, ..header })
}

/// The error an error response stands for (EIO when it names no errno).
pub(crate) fn remote_error(h: &FrameHeader) -> ClientError {
    ClientError::Remote(if h.status > 0 { h.status } else { libc::EIO })
}

#[cfg(test)]
mod tests {
    use super::*;
    use qtfs_proto::{HandleReq, Rest, WriteReq};

    #[test]
    fn the_header_counts_the_tail_and_is_written_by_its_own_encoder() {
        let mut frame = vec![7u8; 3];
        let msg = WriteReq { handle: 9, offset: 4096, flags: 0, data: Rest(&[]) };
        let h = encode_request(&mut frame, FrameHeader::request(Op::WRITE, 0, 0), &msg, 100).unwrap();
        assert_eq!(frame.len(), HEADER_SIZE + msg.encoded_len(), "the old contents are gone");
        assert_eq!(h.len as usize, msg.encoded_len() + 100);
        FrameHeader { id: 42, ..h }.write_to(&mut frame);
        let back = FrameHeader::decode(&frame, MAX_PAYLOAD).unwrap();
        assert_eq!((back.op, back.id, back.len, back.is_request()), (Op::WRITE as u16, 42, h.len, true));
        assert_eq!(&frame[HEADER_SIZE..], &msg.to_vec()[..]);
    }

    #[test]
    fn an_oversized_payload_is_refused_before_sending() {
        let mut frame = Vec::new();
        let r =
            encode_request(&mut frame, FrameHeader::request(Op::FGETATTR, 0, 0), &HandleReq { handle: 1 }, MAX_PAYLOAD);
        assert!(matches!(r, Err(ClientError::Remote(libc::E2BIG))));
    }

    #[test]
    fn an_error_response_without_errno_is_eio() {
        assert!(matches!(remote_error(&FrameHeader::error(1, 1, 0)), ClientError::Remote(libc::EIO)));
        assert!(matches!(remote_error(&FrameHeader::error(1, 1, libc::ENOENT)), ClientError::Remote(libc::ENOENT)));
    }
}
