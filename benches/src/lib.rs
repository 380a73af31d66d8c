//! Shared fixtures of the criterion benches in `benches/` (see the README there).

use std::hint::black_box;

use qtfs_proto::{FrameHeader, Wire, push_frame};

/// One iteration of an encode bench: `msg` framed behind `head` into `buf` (cleared
/// first, so its capacity is reused); returns the frame's length.
pub fn encode_frame<'m, M: Wire<'m>>(buf: &mut Vec<u8>, head: FrameHeader, msg: &M) -> usize {
    buf.clear();
    push_frame(buf, head, black_box(msg));
    black_box(buf.len())
}
