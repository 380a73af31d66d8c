//! The 32-byte frame header and the incremental frame parser.
//!
//! Layout (little-endian):
//!
//! | off | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 2 | magic | `0x5451` (bytes `Q` `T`) |
//! | 2 | 1 | version | protocol version (1) |
//! | 3 | 1 | flags | REQUEST, RESPONSE, ERROR, MORE |
//! | 4 | 2 | op | operation |
//! | 6 | 2 | reserved | zero |
//! | 8 | 4 | channel | channel id (0 = file system / control) |
//! | 12 | 4 | len | payload length |
//! | 16 | 8 | id | request id, echoed in the response |
//! | 24 | 4 | status | errno of a failed request (positive), 0 on success |
//! | 28 | 4 | reserved | zero |

use crate::{MAX_PAYLOAD, Op, ProtoError, VERSION};

pub const MAGIC: u16 = 0x5451;
pub const HEADER_SIZE: usize = 32;

/// Frame flag bits.
pub mod flags {
    /// The frame is a request that expects exactly one response (several with MORE).
    pub const REQUEST: u8 = 0x01;
    /// The frame answers the request with the same id.
    pub const RESPONSE: u8 = 0x02;
    /// The request failed: `status` holds the errno, the payload is empty.
    pub const ERROR: u8 = 0x04;
    /// More frames follow for the same request or channel message.
    pub const MORE: u8 = 0x08;
    /// Every defined bit.
    pub const ALL: u8 = REQUEST | RESPONSE | ERROR | MORE;
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameHeader {
    pub flags: u8,
    pub op: u16,
    pub channel: u32,
    pub len: u32,
    pub id: u64,
    pub status: i32,
}

impl FrameHeader {
    pub const fn request(op: Op, id: u64, len: u32) -> Self {
        Self { flags: flags::REQUEST, op: op as u16, channel: 0, len, id, status: 0 }
    }
    pub const fn response(op: u16, id: u64, len: u32) -> Self {
        Self { flags: flags::RESPONSE, op, channel: 0, len, id, status: 0 }
    }
    pub const fn error(op: u16, id: u64, errno: i32) -> Self {
        Self { flags: flags::RESPONSE | flags::ERROR, op, channel: 0, len: 0, id, status: errno }
    }
    /// A one-way message (channel data, credit, close, events).
    pub const fn message(op: Op, channel: u32, len: u32) -> Self {
        Self { flags: 0, op: op as u16, channel, len, id: 0, status: 0 }
    }
    pub const fn is_request(&self) -> bool {
        self.flags & flags::REQUEST != 0
    }
    pub const fn is_response(&self) -> bool {
        self.flags & flags::RESPONSE != 0
    }
    pub const fn is_error(&self) -> bool {
        self.flags & flags::ERROR != 0
    }
    pub const fn has_more(&self) -> bool {
        self.flags & flags::MORE != 0
    }
    /// The known operation, if any.
    pub fn op(&self) -> Option<Op> {
        Op::from_u16(self.op)
    }

    #[inline]
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        self.write_array(&mut b);
        b
    }

    /// Writes the header into the first 32 bytes of `b`.
    #[inline]
    pub fn write_to(&self, b: &mut [u8]) {
        // A buffer shorter than a header is the caller's bug (never input).
        #[allow(clippy::indexing_slicing)]
        b[..HEADER_SIZE].copy_from_slice(&self.encode());
    }

    #[inline]
    fn write_array(&self, b: &mut [u8; HEADER_SIZE]) {
        b[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        b[2] = VERSION;
        b[3] = self.flags;
        b[4..6].copy_from_slice(&self.op.to_le_bytes());
        b[6..8].copy_from_slice(&[0, 0]);
        b[8..12].copy_from_slice(&self.channel.to_le_bytes());
        b[12..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..24].copy_from_slice(&self.id.to_le_bytes());
        b[24..28].copy_from_slice(&self.status.to_le_bytes());
        b[28..32].copy_from_slice(&[0, 0, 0, 0]);
    }

    /// Appends the header to `out`.
    #[inline]
    pub fn push(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.encode());
    }

    /// Decodes and validates a header. The operation number is *not* checked here, so
    /// that a peer can answer an unknown operation with an error instead of dropping
    /// the connection; the payload length is checked against `max_payload`.
    #[inline]
    pub fn decode(b: &[u8], max_payload: usize) -> Result<Self, ProtoError> {
        // A fixed-size array from here on: every index below is checked at compile time.
        let Some(b) = b.first_chunk::<HEADER_SIZE>() else {
            return Err(ProtoError::Truncated { what: "frame header", need: HEADER_SIZE, have: b.len() });
        };
        let magic = u16::from_le_bytes([b[0], b[1]]);
        if magic != MAGIC {
            return Err(ProtoError::BadMagic(magic));
        }
        if b[2] != VERSION {
            return Err(ProtoError::BadVersion(b[2]));
        }
        let fl = b[3];
        if fl & !flags::ALL != 0 || (fl & flags::REQUEST != 0 && fl & flags::RESPONSE != 0) {
            return Err(ProtoError::BadFlags(fl));
        }
        if b[6] != 0 || b[7] != 0 || b[28..32] != [0, 0, 0, 0] {
            return Err(ProtoError::Reserved);
        }
        let len = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        if len as usize > max_payload.min(MAX_PAYLOAD) {
            return Err(ProtoError::TooLong {
                what: "frame payload",
                len: len as usize,
                max: max_payload.min(MAX_PAYLOAD),
            });
        }
        Ok(Self {
            flags: fl,
            op: u16::from_le_bytes([b[4], b[5]]),
            channel: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            len,
            id: u64::from_le_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
            status: i32::from_le_bytes([b[24], b[25], b[26], b[27]]),
        })
    }
}

/// A complete frame borrowed from a receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    pub payload: &'a [u8],
}

/// Splits complete frames off the front of a byte buffer without copying.
///
/// `next` returns `Ok(None)` when the buffer holds only part of a frame; the caller
/// keeps the unconsumed tail (`consumed()` tells how much was used) and appends more.
#[derive(Debug)]
pub struct FrameParser<'a> {
    buf: &'a [u8],
    pos: usize,
    max_payload: usize,
}

impl<'a> FrameParser<'a> {
    pub fn new(buf: &'a [u8], max_payload: usize) -> Self {
        Self { buf, pos: 0, max_payload }
    }

    /// Bytes consumed by the frames returned so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// How many more bytes the partial frame at the front needs (0 if unknown).
    pub fn missing(&self) -> usize {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.len() < HEADER_SIZE {
            return HEADER_SIZE - rest.len();
        }
        match FrameHeader::decode(rest, self.max_payload) {
            Ok(h) => (HEADER_SIZE + h.len as usize).saturating_sub(rest.len()),
            Err(_) => 0,
        }
    }

    /// The next complete frame, `Ok(None)` if incomplete, or an error for a bad header
    /// (after which the stream is out of sync and must be closed).
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'a>>, ProtoError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if rest.len() < HEADER_SIZE {
            return Ok(None);
        }
        let header = FrameHeader::decode(rest, self.max_payload)?;
        let total = HEADER_SIZE + header.len as usize;
        let Some(payload) = rest.get(HEADER_SIZE..total) else { return Ok(None) };
        self.pos += total;
        Ok(Some(Frame { header, payload }))
    }
}

/// Appends a whole frame (header + encoded message) to `out`.
pub fn push_frame<'m, M: crate::Wire<'m>>(out: &mut Vec<u8>, mut header: FrameHeader, msg: &M) {
    let start = out.len();
    out.resize(start + HEADER_SIZE, 0);
    msg.encode(out);
    header.len = (out.len() - start - HEADER_SIZE) as u32;
    if let Some(h) = out.get_mut(start..start + HEADER_SIZE) {
        header.write_to(h);
    }
}
