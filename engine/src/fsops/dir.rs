//! Directories: READDIR.
//!
//! The directory is opened beneath the export (`O_RDONLY | O_DIRECTORY`), checked
//! against `[Readdir]` on its real path, and read inline as the caller from the client's
//! cookie (`getdents64`), up to the client's byte budget; `READDIR_PLUS` adds each
//! entry's attributes (`statx` relative to the directory, not following symlinks).
//!
//! A listing that reaches the end carries the directory's attributes, read right after
//! it, where the connection agreed on `feat::LIST_ATTR`.
//!
//! This module owns READDIR and the directory record encoding.

use std::os::fd::{AsRawFd, RawFd};

use qtfs_proto::consts::{self, WlType, errno};
use qtfs_proto::*;

use super::common::{Next, Req, agreed, fail, finish, resolve};
use super::gates::allowed_fd;
use super::req::FsReq;
use super::state::Ctx;
use super::steps::ReaddirArgs;
use crate::creds;
use crate::path::SAFE;
use crate::sys;

/// READDIR: opens the directory, then lists it ([`listed`]).
pub(super) fn readdir(core: &mut Ctx, rq: &Req<'_>) {
    let Some(m) = rq.decode::<ReaddirReq>(core) else { return };
    let Some(mut r) = rq.begin_at(core, &m.ctx, &m.groups, m.path.0) else { return };
    let args = ReaddirArgs { cookie: m.cookie, max_bytes: m.max_bytes, flags: m.flags };
    let p = if m.path.is_empty() { &b"."[..] } else { m.path.0 };
    let i = r.push_str(p);
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK;
    if let Next::Now(r, a, res) = resolve(core, r, args, None, i, flags, 0, SAFE) {
        opened(core, r, a, res);
    }
}

/// READDIR: the directory opened; check it and answer its entries after the cookie.
pub(super) fn opened(core: &mut Ctx, r: Box<FsReq>, a: ReaddirArgs, res: i32) {
    let dir = match allowed_fd(core, &r, res, WlType::Readdir, b"") {
        Ok(d) => d,
        Err(e) => return fail(core, r, e),
    };
    let (cookie, max, plus) = (a.cookie, a.max_bytes as usize, a.flags & consts::READDIR_PLUS != 0);
    let max = max.clamp(512, MAX_PAYLOAD - 64 - AttrRsp::FIXED_SIZE);
    let mut out = core.r.bufs.get(max.min(64 * 1024));
    let ident = r.ident.clone();
    let res = creds::with_ident(&ident, || readdir_fill(dir.as_raw_fd(), cookie, max, plus, &mut out));
    let res = match res {
        Ok(x) => x,
        Err(e) => Err(sys::errno_of(&e)),
    };
    match res {
        Ok((count, eof)) => {
            let mut flags = if eof { consts::READDIR_EOF } else { 0 };
            // Read after the listing, which may have set its atime (a statx of an open
            // descriptor needs no permission); left out if it cannot be read.
            if eof
                && agreed(core, &r, consts::feat::LIST_ATTR)
                && let Ok(attr) = sys::statx(dir.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
            {
                AttrRsp { attr }.encode(&mut out);
                flags |= consts::READDIR_ATTR;
            }
            finish(core, r, &ReaddirRsp { count, flags, entries: Rest(&out) });
            core.r.bufs.put(out);
        }
        Err(e) => {
            core.r.bufs.put(out);
            fail(core, r, e)
        }
    }
}

/// Fills `out` with directory records after `cookie`; returns (count, eof). `.` and `..`
/// are not reported (clients synthesise them; `..` of an export root is outside it).
fn readdir_fill(fd: RawFd, cookie: u64, max: usize, plus: bool, out: &mut Vec<u8>) -> Result<(u32, bool), i32> {
    let err = |e: std::io::Error| sys::errno_of(&e);
    sys::lseek(fd, cookie as i64, libc::SEEK_SET).map_err(err)?;
    let mut dbuf = [0u8; 16 * 1024];
    let mut count = 0u32;
    loop {
        let n = sys::getdents64(fd, &mut dbuf).map_err(err)?;
        if n == 0 {
            return Ok((count, true));
        }
        for d in sys::dirents(dbuf.get(..n).unwrap_or_default()) {
            if d.name == b"." || d.name == b".." {
                continue;
            }
            let before = out.len();
            if plus {
                let name = match std::ffi::CString::new(d.name) {
                    Ok(c) => c,
                    Err(_) => continue,
                };
                let attr = match sys::statx(fd, &name, libc::AT_SYMLINK_NOFOLLOW) {
                    Ok(a) => a,
                    // Raced with an unlink: skip the entry.
                    Err(_) => continue,
                };
                DirEntryPlus { cookie: d.off as u64, attr, name: Name(d.name) }.encode(out);
            } else {
                DirEntry { ino: d.ino, cookie: d.off as u64, dtype: d.dtype, name: Name(d.name) }.encode(out);
            }
            if out.len() > max {
                out.truncate(before);
                if count == 0 {
                    return Err(errno::EINVAL);
                }
                return Ok((count, false));
            }
            count += 1;
        }
    }
}
