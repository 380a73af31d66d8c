//! The ring ABI of FUSE over io_uring (`include/uapi/linux/fuse.h`, protocol 7.42+): the
//! `fuse_uring_*` structures, the commands and their 80-byte command area, with their
//! layout asserted at compile time. See the parent module for the kernel's rules.

use std::mem::{offset_of, size_of};

use io_uring::squeue;

/// INIT flag (64-bit flags): the server serves requests through io_uring.
pub use crate::kernel::abi::init::OVER_IO_URING as FUSE_OVER_IO_URING;
/// [`FUSE_OVER_IO_URING`] as a bit of `fuse_init_out.flags2` (the upper 32 flag bits).
pub const FUSE_OVER_IO_URING_FLAGS2: u32 = (FUSE_OVER_IO_URING >> 32) as u32;
/// The first protocol minor with FUSE over io_uring.
pub const FUSE_URING_MIN_MINOR: u32 = 42;
/// Size of `fuse_uring_req_header.in_out` (holds the in or out header).
pub const FUSE_URING_IN_OUT_HEADER_SZ: usize = 128;
/// Size of `fuse_uring_req_header.op_in` (the request's per-opcode struct).
pub const FUSE_URING_OP_IN_OUT_SZ: usize = 128;
/// `enum fuse_uring_cmd`: not a command.
pub const FUSE_IO_URING_CMD_INVALID: u32 = 0;
/// `enum fuse_uring_cmd`: register an entry's buffers and wait for a request.
pub const FUSE_IO_URING_CMD_REGISTER: u32 = 1;
/// `enum fuse_uring_cmd`: commit a reply and wait for the next request.
pub const FUSE_IO_URING_CMD_COMMIT_AND_FETCH: u32 = 2;
/// The kernel's smallest request buffer.
pub use crate::kernel::abi::MIN_READ_BUFFER as FUSE_MIN_READ_BUFFER;
/// `sizeof(struct fuse_in_header)`.
pub const FUSE_IN_HEADER_LEN: usize = 40;
/// `sizeof(struct fuse_out_header)`.
pub use crate::kernel::abi::OUT_HEADER_SIZE as FUSE_OUT_HEADER_LEN;
/// REGISTER's iovec count (`FUSE_URING_IOV_SEGS`: header and payload).
pub(super) const FUSE_URING_IOV_SEGS: u32 = 2;
/// The command area of a 128-byte SQE.
pub(super) const SQE128_CMD_AREA: usize = 80;
/// Offset of `len` in `struct io_uring_sqe` (io_uring uapi; stable).
pub(super) const SQE_LEN_OFFSET: usize = 24;
/// Tries of a REGISTER the kernel answers `-EAGAIN` (INIT not answered yet), 1 ms apart.
pub(super) const REGISTER_EAGAIN_TRIES: u32 = 5000;

/// `struct fuse_uring_ent_in_out`: the ring part of an entry's header.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FuseUringEntInOut {
    /// Unused by the kernel so far (written 0).
    pub flags: u64,
    /// The request's id for the commit (its `unique`).
    pub commit_id: u64,
    /// Bytes used in the payload buffer (request: written by the kernel; reply: by us).
    pub payload_sz: u32,
    /// Padding.
    pub padding: u32,
    /// Reserved.
    pub reserved: u64,
}

/// `struct fuse_uring_req_header`: iov[0] of an entry.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FuseUringReqHeader {
    /// `fuse_in_header` of a request / `fuse_out_header` of the reply.
    pub in_out: [u8; FUSE_URING_IN_OUT_HEADER_SZ],
    /// The per-opcode argument struct of the request.
    pub op_in: [u8; FUSE_URING_OP_IN_OUT_SZ],
    /// Commit id and payload size.
    pub ring_ent_in_out: FuseUringEntInOut,
}

/// `struct fuse_uring_cmd_req`: the command in the SQE's 80-byte command area.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FuseUringCmdReq {
    /// Unused so far (0).
    pub flags: u64,
    /// For COMMIT_AND_FETCH: the `commit_id` of the request answered.
    pub commit_id: u64,
    /// The queue.
    pub qid: u16,
    /// Padding.
    pub padding: [u8; 6],
}

const _: () = {
    assert!(size_of::<FuseUringEntInOut>() == 32);
    assert!(offset_of!(FuseUringEntInOut, commit_id) == 8);
    assert!(offset_of!(FuseUringEntInOut, payload_sz) == 16);
    assert!(offset_of!(FuseUringEntInOut, reserved) == 24);
    assert!(size_of::<FuseUringReqHeader>() == 288);
    assert!(offset_of!(FuseUringReqHeader, op_in) == 128);
    assert!(offset_of!(FuseUringReqHeader, ring_ent_in_out) == 256);
    assert!(size_of::<FuseUringCmdReq>() == 24);
    assert!(offset_of!(FuseUringCmdReq, commit_id) == 8);
    assert!(offset_of!(FuseUringCmdReq, qid) == 16);
    assert!(size_of::<FuseUringCmdReq>() <= SQE128_CMD_AREA);
    assert!(size_of::<squeue::Entry128>() == 128);
    assert!(FUSE_IN_HEADER_LEN <= FUSE_URING_IN_OUT_HEADER_SZ);
    assert!(FUSE_OVER_IO_URING_FLAGS2 == 1 << 9);
};

/// The payload size the kernel requires of every entry: `max(FUSE_MIN_READ_BUFFER,
/// max_write, max_pages * PAGE_SIZE)` with the values of the INIT reply
/// (`fuse_uring_create()`).
pub fn min_payload_size(max_write: u32, max_pages: u16) -> usize {
    let pages = usize::from(max_pages).saturating_mul(page_size());
    FUSE_MIN_READ_BUFFER.max(max_write as usize).max(pages)
}

pub(super) fn page_size() -> usize {
    // SAFETY: sysconf reads a system value and touches no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// The 80-byte command area holding a `fuse_uring_cmd_req`.
pub(super) fn cmd_area(qid: u16, commit_id: u64) -> [u8; SQE128_CMD_AREA] {
    let mut area = [0u8; SQE128_CMD_AREA];
    area[offset_of!(FuseUringCmdReq, commit_id)..][..8].copy_from_slice(&commit_id.to_ne_bytes());
    area[offset_of!(FuseUringCmdReq, qid)..][..2].copy_from_slice(&qid.to_ne_bytes());
    area
}

/// `entry` with `sqe->len` set, which `opcode::UringCmd80` leaves 0.
pub(super) fn with_sqe_len(entry: squeue::Entry128, len: u32) -> squeue::Entry128 {
    // SAFETY: Entry128 is `repr(C)`: a 64-byte `io_uring_sqe` (integers and unions of
    // integers) and 64 bytes of command data, 128 bytes (asserted above) that are all
    // initialised; every bit pattern of those bytes is a valid Entry128.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(entry) };
    raw[SQE_LEN_OFFSET..SQE_LEN_OFFSET + 4].copy_from_slice(&len.to_ne_bytes());
    // SAFETY: as above.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

pub(super) fn read_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map(u32::from_ne_bytes).unwrap_or(0)
}

pub(super) fn read_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map(u64::from_ne_bytes).unwrap_or(0)
}
