//! What the typed operations ([`crate::Ops`]) need from a connection: send one encoded
//! request frame and get the frame answering it. Three transports implement it:
//!
//! - `&`[`Session`](crate::Session) and [`InEpoch`](crate::InEpoch): pipelined, any
//!   thread, the response matched by id on the connection's reader thread
//!   ([`crate::session`]);
//! - [`BlockingConn`](crate::BlockingConn): one connection used by one thread, one request
//!   at a time, the response read by the caller itself (qtfs-fuse's workers).
//!
//! Owns the request frame's encoding, once for every transport ([`with_request`]: the
//! header is written by [`FrameHeader::write_to`], never by byte offset, into a reused
//! per-thread buffer) and the mapping of an error response to [`ClientError::Remote`].

use std::cell::Cell;
use std::io::Write;

use qtfs_proto::{FrameHeader, HEADER_SIZE, MAX_PAYLOAD, Op, Wire};

use crate::error::{ClientError, Result};
use crate::stream::Stream;

/// Sends a request and gets its response.
pub trait Transport {
    /// Sends `req` (numbering it, [`Request::number`]), waits for its response and hands
    /// the response's payload to `f`, which may take the vector to keep it without a copy.
    /// An error response is `Err(Remote(errno))`.
    fn round_trip<R>(&mut self, req: Request<'_>, f: impl FnOnce(&mut Vec<u8>) -> Result<R>) -> Result<R>;

    /// Sends request `op` whose payload is `msg` followed by `tail` (sent as it is, not
    /// copied into the frame: a WRITE's data), waits for the response and hands its
    /// payload to `f` (see [`Transport::round_trip`]).
    fn exchange<'m, M: Wire<'m>, R>(
        &mut self,
        op: Op,
        msg: &M,
        tail: &[u8],
        f: impl FnOnce(&mut Vec<u8>) -> Result<R>,
    ) -> Result<R> {
        with_request(FrameHeader::request(op, 0, 0), msg, tail, |req| self.round_trip(req, f))
    }

    /// The attributes of the directories the request just answered changed, or of the
    /// directory it listed to the end, as the engine read them right after
    /// (`feat::DIR_ATTR`, `feat::LIST_ATTR`, asked for by the connection); ignored unless
    /// the transport keeps them.
    fn changed_dirs(&mut self, _dirs: &[qtfs_proto::Attr]) {}
}

/// An encoded request frame on its way out: room for the header (written when the sender
/// numbers the request, [`Request::number`]) and the message, then a tail sent after it
/// without a copy.
#[derive(Debug)]
pub struct Request<'a> {
    header: FrameHeader,
    frame: &'a mut [u8],
    tail: &'a [u8],
}

impl Request<'_> {
    /// The request's header (its `len` counts the tail).
    pub fn header(&self) -> FrameHeader {
        self.header
    }

    /// Gives the request id `id`, written into the frame's header.
    pub fn number(&mut self, id: u64) {
        self.header.id = id;
        self.header.write_to(self.frame);
    }

    /// The bytes to send: the frame (header and message), then the tail.
    pub fn bytes(&self) -> [&[u8]; 2] {
        [self.frame, self.tail]
    }

    /// Writes the whole request to `s` (one `writev` with a tail).
    pub fn send(&self, s: &mut Stream) -> std::io::Result<()> {
        if self.tail.is_empty() { s.write_all(self.frame) } else { s.write_all_vectored(&self.bytes()) }
    }
}

/// Encodes a request — `header` (its `len` set here) followed by `msg`, then `tail` —
/// into this thread's reused frame buffer and hands it to `send`. A payload over
/// [`MAX_PAYLOAD`] is `Remote(E2BIG)`, refused before anything is sent.
pub(crate) fn with_request<'m, M: Wire<'m>, R>(
    header: FrameHeader,
    msg: &M,
    tail: &[u8],
    send: impl FnOnce(Request<'_>) -> Result<R>,
) -> Result<R> {
    thread_local! {
        static FRAME: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }
    // Taken, not borrowed: a request made while this one is out (from a response
    // handler) gets a buffer of its own instead of a borrow conflict.
    let mut frame = FRAME.take();
    let r = encode_request(&mut frame, header, msg, tail.len())
        .and_then(|header| send(Request { header, frame: &mut frame, tail }));
    FRAME.set(frame);
    r
}

/// Encodes `msg` into `frame` (cleared) after room for the header, and returns the header
/// for it (written when the sender numbers the request): `len` counts the `tail_len` bytes
/// sent after the frame.
fn encode_request<'m, M: Wire<'m>>(
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
pub fn remote_error(h: &FrameHeader) -> ClientError {
    ClientError::Remote(if h.status > 0 { h.status } else { libc::EIO })
}

#[cfg(test)]
mod tests {
    use super::*;
    use qtfs_proto::{HandleReq, Rest, WriteReq};

    #[test]
    fn the_header_counts_the_tail_and_is_written_by_its_own_encoder() {
        let msg = WriteReq { handle: 9, offset: 4096, flags: 0, data: Rest(&[]) };
        let tail = [5u8; 100];
        with_request(FrameHeader::request(Op::WRITE, 0, 0), &msg, &tail, |mut req| {
            let h = req.header();
            assert_eq!(h.len as usize, msg.encoded_len() + 100);
            req.number(42);
            let [frame, t] = req.bytes();
            assert_eq!(frame.len(), HEADER_SIZE + msg.encoded_len(), "the old contents are gone");
            assert_eq!(t, &tail[..]);
            let back = FrameHeader::decode(frame, MAX_PAYLOAD).unwrap();
            assert_eq!((back.op, back.id, back.len, back.is_request()), (Op::WRITE as u16, 42, h.len, true));
            assert_eq!(&frame[HEADER_SIZE..], &msg.to_vec()[..]);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn an_oversized_payload_is_refused_before_sending() {
        let tail = vec![0u8; MAX_PAYLOAD];
        let r = with_request(FrameHeader::request(Op::FGETATTR, 0, 0), &HandleReq { handle: 1 }, &tail, |_| {
            panic!("sent an oversized request")
        });
        assert!(matches!(r, Err::<(), _>(ClientError::Remote(libc::E2BIG))));
    }

    #[test]
    fn the_frame_buffer_is_reused_from_request_to_request() {
        let at = |handle| {
            let h = FrameHeader::request(Op::FGETATTR, 0, 0);
            with_request(h, &HandleReq { handle }, &[], |req| Ok(req.bytes()[0].as_ptr() as usize)).unwrap()
        };
        let first = at(1);
        assert_eq!(at(2), first, "no allocation per request");
    }

    #[test]
    fn a_request_made_while_another_is_out_gets_its_own_buffer() {
        let outer = with_request(FrameHeader::request(Op::FGETATTR, 0, 0), &HandleReq { handle: 1 }, &[], |req| {
            let inner = with_request(FrameHeader::request(Op::CLOSE, 0, 0), &HandleReq { handle: 2 }, &[], |mut r| {
                r.number(7);
                Ok(r.bytes()[0].to_vec())
            })?;
            assert_eq!(HandleReq::decode(&req.bytes()[0][HEADER_SIZE..]).unwrap().handle, 1, "not overwritten");
            Ok(inner)
        })
        .unwrap();
        assert_eq!(FrameHeader::decode(&outer, MAX_PAYLOAD).unwrap().op, Op::CLOSE as u16);
    }

    #[test]
    fn an_error_response_without_errno_is_eio() {
        assert!(matches!(remote_error(&FrameHeader::error(1, 1, 0)), ClientError::Remote(libc::EIO)));
        assert!(matches!(remote_error(&FrameHeader::error(1, 1, libc::ENOENT)), ClientError::Remote(libc::ENOENT)));
    }
}
