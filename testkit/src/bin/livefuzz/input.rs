//! livefuzz's random inputs: the seeded generator ([`Rng`]), valid-looking requests with
//! random fields and plausible values ([`request`]), and the damage done to frames
//! ([`mutate`]).

use qtfs_proto::consts::open;
use qtfs_proto::*;

use super::{Conn, Ctx};

/// SplitMix64: small, fast, and the same sequence for the same seed everywhere.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub(crate) fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    pub(crate) fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Random bytes, fewer than `max`.
    pub(crate) fn upto(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max) as usize;
        self.bytes(n)
    }
}
const PATHS: &[&[u8]] = &[
    b"",
    b"a",
    b"b",
    b"d",
    b"d/x",
    b"d/y/z",
    b"fifo",
    b"link",
    b"sock",
    b"..",
    b"../..",
    b"d/../../etc",
    b"/etc/passwd",
    b"a\x00b",
    b".",
    b"d/.",
    b"nonexistent/deeper",
];

pub(crate) fn path(rng: &mut Rng) -> Vec<u8> {
    if rng.pct(3) {
        return vec![b'n'; 1 + rng.below(300) as usize];
    }
    if rng.pct(3) {
        return rng.upto(40);
    }
    rng.pick(PATHS).to_vec()
}

pub(crate) fn handle(c: &Conn, ctx: &Ctx, rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=4 if !c.handles.is_empty() => *rng.pick(&c.handles),
        5 if !c.closed.is_empty() => *rng.pick(&c.closed),
        6 => {
            let g = ctx.handles.lock().unwrap();
            if g.is_empty() { rng.next() } else { *rng.pick(&g) }
        }
        7 => rng.next(),
        _ => rng.below(8),
    }
}

/// One valid-looking request (random fields, plausible values).
pub(crate) fn request(c: &mut Conn, ctx: &Ctx, rng: &mut Rng) -> Vec<u8> {
    let id = if rng.pct(5) { c.next_id } else { c.id() };
    let export = if rng.pct(90) { c.export } else { rng.below(4) as u32 };
    let uid = if rng.pct(80) { 0 } else { *rng.pick(&[1u32, 1000, 65534, u32::MAX]) };
    let rc = ReqCtx { export, uid, gid: uid };
    let p = path(rng);
    let q = path(rng);
    let h = handle(c, ctx, rng);
    let max = if rng.pct(5) { 65536 } else { 512 };
    let data = rng.upto(max);
    let mut f = Vec::new();
    macro_rules! put {
        ($op:expr, $m:expr) => {
            push_frame(&mut f, FrameHeader::request($op, id, 0), &$m)
        };
    }
    let g = Groups::EMPTY;
    match rng.below(32) {
        0 => put!(Op::GETATTR, GetattrReq { ctx: rc, flags: rng.below(2) as u32, groups: g, path: Path(&p) }),
        1 => put!(Op::LOOKUP, PathReq { ctx: rc, groups: g, path: Path(&p) }),
        2 => put!(Op::STATFS, PathReq { ctx: rc, groups: g, path: Path(&p) }),
        3 => put!(Op::READLINK, PathReq { ctx: rc, groups: g, path: Path(&p) }),
        4 => put!(Op::UNLINK, PathReq { ctx: rc, groups: g, path: Path(&p) }),
        5 => put!(Op::RMDIR, PathReq { ctx: rc, groups: g, path: Path(&p) }),
        6 | 7 => {
            let flags = *rng.pick(&[open::RDONLY, open::RDWR, open::WRONLY, open::RDWR | open::NONBLOCK]);
            put!(Op::OPEN, OpenReq { ctx: rc, flags, mode: 0o644, groups: g, path: Path(&p) })
        }
        8 => put!(
            Op::CREATE,
            CreateReq { ctx: rc, flags: open::RDWR, mode: 0o644, umask: 0o022, cflags: 0, groups: g, path: Path(&p) }
        ),
        9 => {
            c.closed.push(h);
            put!(Op::CLOSE, HandleReq { handle: h })
        }
        10 | 11 => put!(Op::READ, ReadReq { handle: h, offset: rng.below(1 << 20), len: rng.below(70_000) as u32 }),
        12 | 13 => put!(Op::WRITE, WriteReq { handle: h, offset: rng.below(1 << 20), flags: 0, data: Rest(&data) }),
        14 => put!(Op::FSYNC, FsyncReq { handle: h, flags: rng.below(2) as u32 }),
        15 => put!(
            Op::FALLOCATE,
            FallocateReq { handle: h, mode: 0, offset: rng.below(1 << 20), len: rng.below(1 << 20) }
        ),
        16 => put!(Op::FGETATTR, HandleReq { handle: h }),
        17 => put!(Op::LLSEEK, LlseekReq { handle: h, offset: rng.next() as i64 % 4096, whence: rng.below(5) as u32 }),
        18 => {
            put!(Op::FIFO_POLL, PollReq { handle: h, events: libc::POLLIN as u32, timeout_ms: rng.below(1500) as u32 })
        }
        19 => put!(
            Op::EPOLL_CTL,
            EpollCtlReq { handle: h, op: 1 + rng.below(3) as u32, events: libc::EPOLLIN as u32, cookie: rng.next() }
        ),
        20 => put!(Op::MKDIR, MkdirReq { ctx: rc, mode: 0o755, umask: 0, groups: g, path: Path(&p) }),
        21 => put!(
            Op::MKNOD,
            MknodReq {
                ctx: rc,
                mode: *rng.pick(&[libc::S_IFIFO, libc::S_IFREG, libc::S_IFSOCK, libc::S_IFCHR]) | 0o644,
                umask: 0,
                rdev_major: 1,
                rdev_minor: 3,
                groups: g,
                path: Path(&p),
            }
        ),
        22 => put!(Op::SYMLINK, SymlinkReq { ctx: rc, groups: g, path: Path(&p), target: Path(&q) }),
        23 => put!(Op::LINK, LinkReq { ctx: rc, groups: g, old_path: Path(&p), new_path: Path(&q) }),
        24 => put!(
            Op::RENAME,
            RenameReq { ctx: rc, flags: rng.below(3) as u32, groups: g, old_path: Path(&p), new_path: Path(&q) }
        ),
        25 => put!(
            Op::READDIR,
            ReaddirReq {
                ctx: rc,
                cookie: rng.below(20),
                max_bytes: rng.below(70_000) as u32,
                flags: rng.below(2) as u32,
                groups: g,
                path: Path(&p),
            }
        ),
        26 => put!(
            Op::XATTR_SET,
            XattrSetReq {
                ctx: rc,
                flags: 0,
                groups: g,
                path: Path(&p),
                name: Name(b"user.fuzz"),
                value: Bytes32(&data[..data.len().min(256)]),
            }
        ),
        27 => {
            put!(Op::XATTR_GET, XattrGetReq { ctx: rc, size: 256, groups: g, path: Path(&p), name: Name(b"user.fuzz") })
        }
        28 => put!(
            Op::SETATTR,
            SetattrReq {
                ctx: rc,
                handle: if rng.pct(50) { h } else { 0 },
                valid: rng.below(64) as u32,
                mode: 0o600,
                uid: 0,
                gid: 0,
                size: rng.below(1 << 20),
                atime_sec: 0,
                mtime_sec: 0,
                atime_nsec: 0,
                mtime_nsec: 0,
                groups: g,
                path: Path(&p),
            }
        ),
        29 => {
            let op = *rng.pick(&[Op::CHAN_OPEN, Op::CHAN_DATA, Op::CHAN_CLOSE, Op::CHAN_CREDIT, Op::CHAN_LISTEN]);
            let mut h = FrameHeader::request(op, id, 0);
            h.channel = rng.below(4) as u32;
            if op == Op::CHAN_OPEN {
                let m = ChanOpenReq {
                    kind: 1 + rng.below(3) as u32,
                    credit: rng.below(1 << 20) as u32,
                    listener: 0,
                    uid: 0,
                    gid: 0,
                    groups: g,
                    path: Path(&p),
                };
                push_frame(&mut f, h, &m);
            } else {
                h.flags = if rng.pct(50) { 0 } else { flags::REQUEST };
                h.len = data.len() as u32;
                h.push(&mut f);
                f.extend_from_slice(&data);
            }
        }
        30 => put!(Op::PING, Data { data: Rest(&data) }),
        _ => {
            // Any op number at all, random payload.
            let mut h = FrameHeader::request(Op::PING, id, data.len() as u32);
            h.op = rng.next() as u16;
            h.push(&mut f);
            f.extend_from_slice(&data);
        }
    }
    f
}

/// Damages a frame: bits, lengths, header fields, truncation, extension.
pub(crate) fn mutate(f: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..1 + rng.below(3) {
        match rng.below(9) {
            0 | 1 if f.len() > HEADER_SIZE => {
                let i = HEADER_SIZE + rng.below((f.len() - HEADER_SIZE) as u64) as usize;
                f[i] ^= 1 << rng.below(8);
            }
            2 => {
                // Truncate the payload, keeping the header's length or fixing it.
                let keep = HEADER_SIZE + rng.below((f.len() - HEADER_SIZE + 1) as u64) as usize;
                f.truncate(keep);
                if rng.pct(70) {
                    let l = (f.len() - HEADER_SIZE) as u32;
                    f[12..16].copy_from_slice(&l.to_le_bytes());
                }
            }
            3 => {
                let extra = rng.upto(64);
                f.extend_from_slice(&extra);
                if rng.pct(70) {
                    let l = (f.len() - HEADER_SIZE) as u32;
                    f[12..16].copy_from_slice(&l.to_le_bytes());
                }
            }
            4 => f[3] = *rng.pick(&[0u8, flags::REQUEST, flags::RESPONSE, flags::REQUEST | flags::MORE, flags::ERROR]),
            5 => {
                let op = rng.below(0x0500) as u16;
                f[4..6].copy_from_slice(&op.to_le_bytes());
            }
            6 => f[8..12].copy_from_slice(&(rng.below(8) as u32).to_le_bytes()),
            7 if rng.pct(20) => {
                // Any header bit: mostly closes the connection (out of sync).
                let i = rng.below(HEADER_SIZE as u64) as usize;
                f[i] ^= 1 << rng.below(8);
            }
            _ => {
                let l = rng.below((f.len() as u64).max(1) * 2) as u32;
                f[12..16].copy_from_slice(&l.to_le_bytes());
            }
        }
    }
}
