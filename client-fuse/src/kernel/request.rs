//! A kernel request: its header ([`Request`]) and its operation ([`Op`]), parsed from
//! the operation's arguments given as two slices, `fixed` (the operation's structure)
//! and `rest` (names, written data). `/dev/fuse` delivers both in one buffer, which
//! [`split`] cuts at the structure's size; FUSE over io_uring delivers them apart.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use super::Errno;
use super::abi::{self, InHeader, InitIn, Rd, op};

/// Who asked: the header of a request.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    header: InHeader,
}

impl Request {
    pub fn new(header: InHeader) -> Request {
        Request { header }
    }
    pub fn unique(&self) -> u64 {
        self.header.unique
    }
    pub fn nodeid(&self) -> u64 {
        self.header.nodeid
    }
    pub fn opcode(&self) -> u32 {
        self.header.opcode
    }
    pub fn uid(&self) -> u32 {
        self.header.uid
    }
    pub fn gid(&self) -> u32 {
        self.header.gid
    }
    pub fn pid(&self) -> u32 {
        self.header.pid
    }
}

/// `struct fuse_setattr_in`, the fields this crate reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetattrIn {
    pub valid: u32,
    pub fh: u64,
    pub size: u64,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `struct fuse_read_in` (READ, READDIR, READDIRPLUS).
#[derive(Debug, Clone, Copy)]
pub struct ReadIn {
    pub fh: u64,
    pub offset: u64,
    pub size: u32,
    pub read_flags: u32,
    pub lock_owner: u64,
    pub flags: u32,
}

/// `struct fuse_release_in` (RELEASE, RELEASEDIR).
#[derive(Debug, Clone, Copy)]
pub struct ReleaseIn {
    pub fh: u64,
    pub flags: u32,
    pub release_flags: u32,
    pub lock_owner: u64,
}

/// `struct fuse_lk_in`.
#[derive(Debug, Clone, Copy)]
pub struct LkIn {
    pub fh: u64,
    pub owner: u64,
    pub start: u64,
    pub end: u64,
    pub typ: u32,
    pub pid: u32,
    pub lk_flags: u32,
}

/// One operation with its arguments.
#[derive(Debug)]
pub enum Op<'a> {
    Lookup {
        name: &'a OsStr,
    },
    Forget {
        nlookup: u64,
    },
    /// (node, nlookup) pairs, 16 bytes each.
    BatchForget {
        nodes: &'a [u8],
    },
    Getattr {
        fh: Option<u64>,
    },
    Setattr(SetattrIn),
    Readlink,
    Symlink {
        name: &'a OsStr,
        target: &'a OsStr,
    },
    Mknod {
        mode: u32,
        rdev: u32,
        umask: u32,
        name: &'a OsStr,
    },
    Mkdir {
        mode: u32,
        umask: u32,
        name: &'a OsStr,
    },
    Unlink {
        name: &'a OsStr,
    },
    Rmdir {
        name: &'a OsStr,
    },
    Rename {
        newdir: u64,
        flags: u32,
        name: &'a OsStr,
        newname: &'a OsStr,
    },
    Link {
        oldnode: u64,
        newname: &'a OsStr,
    },
    Open {
        flags: u32,
    },
    Read(ReadIn),
    Write {
        fh: u64,
        offset: u64,
        write_flags: u32,
        lock_owner: u64,
        flags: u32,
        data: &'a [u8],
    },
    Statfs,
    Release(ReleaseIn),
    Fsync {
        fh: u64,
        datasync: bool,
    },
    Setxattr {
        flags: u32,
        name: &'a OsStr,
        value: &'a [u8],
    },
    Getxattr {
        size: u32,
        name: &'a OsStr,
    },
    Listxattr {
        size: u32,
    },
    Removexattr {
        name: &'a OsStr,
    },
    Flush {
        fh: u64,
        lock_owner: u64,
    },
    Init(InitIn),
    Opendir {
        flags: u32,
    },
    Readdir(ReadIn),
    Releasedir(ReleaseIn),
    Fsyncdir {
        fh: u64,
        datasync: bool,
    },
    Getlk(LkIn),
    Setlk {
        lk: LkIn,
        sleep: bool,
    },
    Create {
        flags: u32,
        mode: u32,
        umask: u32,
        name: &'a OsStr,
    },
    Interrupt {
        unique: u64,
    },
    Destroy,
    Ioctl {
        fh: u64,
        flags: u32,
        cmd: u32,
        in_data: &'a [u8],
        out_size: u32,
    },
    Poll {
        fh: u64,
        kh: u64,
        flags: u32,
        events: u32,
    },
    Readdirplus(ReadIn),
    Fallocate {
        fh: u64,
        offset: u64,
        length: u64,
        mode: u32,
    },
    Lseek {
        fh: u64,
        offset: i64,
        whence: u32,
    },
    /// An operation this crate does not serve (answered ENOSYS).
    Other(u32),
}

/// Size of the fixed argument structure of `opcode` (`setxattr_ext`: FUSE_SETXATTR_EXT
/// was negotiated, which makes `fuse_setxattr_in` 16 bytes).
pub fn fixed_size(opcode: u32, setxattr_ext: bool) -> usize {
    match opcode {
        op::FORGET | op::OPEN | op::OPENDIR | op::RENAME | op::LINK | op::MKDIR | op::INTERRUPT => 8,
        op::GETXATTR | op::LISTXATTR | op::BATCH_FORGET => 8,
        op::SETXATTR if setxattr_ext => 16,
        op::SETXATTR => 8,
        op::GETATTR | op::MKNOD | op::CREATE | op::FSYNC | op::FSYNCDIR | op::RENAME2 => 16,
        op::RELEASE | op::RELEASEDIR | op::FLUSH | op::POLL | op::LSEEK => 24,
        op::IOCTL | op::FALLOCATE => 32,
        op::READ | op::WRITE | op::READDIR | op::READDIRPLUS => 40,
        op::GETLK | op::SETLK | op::SETLKW => 48,
        op::SETATTR => 88,
        op::INIT => 64,
        _ => 0,
    }
}

/// A request's header, its operation's structure and the bytes after it.
pub type Split<'a> = (InHeader, &'a [u8], &'a [u8]);

/// Splits one request buffer (header included) into (header, fixed, rest); the
/// extensions the header announces (`total_extlen`) are left out. `Err`: too short
/// for its header or its own length.
pub fn split(buf: &[u8], setxattr_ext: bool) -> Result<Split<'_>, Option<InHeader>> {
    let h = InHeader::decode(buf).ok_or(None)?;
    let args = buf.get(InHeader::SIZE..h.len as usize).ok_or(Some(h))?;
    let ext = usize::from(h.total_extlen) * 8;
    let args = args.get(..args.len().checked_sub(ext).ok_or(Some(h))?).ok_or(Some(h))?;
    // INIT's structure grew over the versions: an old kernel's shorter one is taken whole.
    let n = fixed_size(h.opcode, setxattr_ext).min(if h.opcode == op::INIT { args.len() } else { usize::MAX });
    if args.len() < n {
        return Err(Some(h));
    }
    let (fixed, rest) = args.split_at(n);
    Ok((h, fixed, rest))
}

/// A request of the io_uring transport, delivered apart: the header, the operation's
/// structure (`op_in`, exactly as long as the kernel's first argument) and the other
/// arguments (`payload`), as (header, fixed, rest) with the extensions the header
/// announces (`total_extlen`, at the payload's end) left out. `Err`: a header too short
/// or extensions longer than the payload.
pub fn split_ring<'a>(in_header: &[u8], op_in: &'a [u8], payload: &'a [u8]) -> Result<Split<'a>, Option<InHeader>> {
    let h = InHeader::decode(in_header).ok_or(None)?;
    let ext = usize::from(h.total_extlen) * 8;
    let rest = payload.get(..payload.len().checked_sub(ext).ok_or(Some(h))?).ok_or(Some(h))?;
    Ok((h, op_in, rest))
}

/// Which requests are served: without `allow_other`, only the mounting user's and the
/// ones the kernel makes on its own (which may carry any user).
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub allow_other: bool,
    pub owner: u32,
}

impl Gate {
    pub fn permitted(&self, h: &InHeader) -> bool {
        if self.allow_other || h.uid == self.owner {
            return true;
        }
        matches!(
            h.opcode,
            op::INIT
                | op::DESTROY
                | op::READ
                | op::READDIR
                | op::READDIRPLUS
                | op::FORGET
                | op::BATCH_FORGET
                | op::WRITE
                | op::FSYNC
                | op::FSYNCDIR
                | op::RELEASE
                | op::RELEASEDIR
                | op::INTERRUPT
        )
    }
}

/// Does the kernel wait for an answer to this request?
pub fn answered(h: &InHeader) -> bool {
    !matches!(h.opcode, op::FORGET | op::BATCH_FORGET)
}

fn name(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(abi::cstr(b).0)
}

fn two_names(b: &[u8]) -> (&OsStr, &OsStr) {
    let (a, rest) = abi::cstr(b);
    (OsStr::from_bytes(a), name(rest))
}

fn time(r: &mut Rd<'_>) -> Option<u64> {
    r.u64()
}

/// An operation as the trace log shows it: its arguments, the bytes of data and values
/// only counted.
pub struct Brief<'o, 'a>(pub &'o Op<'a>);

impl std::fmt::Debug for Brief<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Op::Write { fh, offset, data, .. } => {
                write!(f, "Write {{ fh: {fh}, offset: {offset}, {} bytes }}", data.len())
            }
            Op::Setxattr { name, value, .. } => write!(f, "Setxattr {{ name: {name:?}, {} bytes }}", value.len()),
            Op::BatchForget { nodes } => write!(f, "BatchForget {{ {} nodes }}", nodes.len() / 16),
            o => write!(f, "{o:?}"),
        }
    }
}

impl<'a> Op<'a> {
    /// Parses operation `opcode` from its `fixed` structure and the `rest`. A structure
    /// too short for the operation is EIO; a length that contradicts the data, EINVAL.
    pub fn parse(opcode: u32, fixed: &'a [u8], rest: &'a [u8]) -> Result<Op<'a>, Errno> {
        Self::parse_inner(opcode, fixed, rest).unwrap_or(Err(Errno::EIO))
    }

    fn parse_inner(opcode: u32, fixed: &'a [u8], rest: &'a [u8]) -> Option<Result<Op<'a>, Errno>> {
        let mut r = Rd(fixed);
        let o = match opcode {
            op::LOOKUP => Op::Lookup { name: name(rest) },
            op::FORGET => Op::Forget { nlookup: r.u64()? },
            op::BATCH_FORGET => {
                let count = r.u32()? as usize;
                let nodes = rest.get(..count.checked_mul(16)?)?;
                Op::BatchForget { nodes }
            }
            op::GETATTR => {
                let (gflags, _dummy, fh) = (r.u32()?, r.u32()?, r.u64()?);
                Op::Getattr { fh: (gflags & abi::GETATTR_FH != 0).then_some(fh) }
            }
            op::SETATTR => {
                let (valid, _pad, fh, size, _lock_owner) = (r.u32()?, r.u32()?, r.u64()?, r.u64()?, r.u64()?);
                let (at, mt, ct) = (time(&mut r)?, time(&mut r)?, time(&mut r)?);
                let (atn, mtn, ctn) = (r.u32()?, r.u32()?, r.u32()?);
                let (mode, _u4, uid, gid) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
                Op::Setattr(SetattrIn {
                    valid,
                    fh,
                    size,
                    atime: (at as i64, atn),
                    mtime: (mt as i64, mtn),
                    ctime: (ct as i64, ctn),
                    mode,
                    uid,
                    gid,
                })
            }
            op::READLINK => Op::Readlink,
            op::SYMLINK => {
                let (name, target) = two_names(rest);
                Op::Symlink { name, target }
            }
            op::MKNOD => {
                let (mode, rdev, umask) = (r.u32()?, r.u32()?, r.u32()?);
                Op::Mknod { mode, rdev, umask, name: name(rest) }
            }
            op::MKDIR => Op::Mkdir { mode: r.u32()?, umask: r.u32()?, name: name(rest) },
            op::UNLINK => Op::Unlink { name: name(rest) },
            op::RMDIR => Op::Rmdir { name: name(rest) },
            op::RENAME | op::RENAME2 => {
                let newdir = r.u64()?;
                let flags = if opcode == op::RENAME2 { r.u32()? } else { 0 };
                let (name, newname) = two_names(rest);
                Op::Rename { newdir, flags, name, newname }
            }
            op::LINK => Op::Link { oldnode: r.u64()?, newname: name(rest) },
            op::OPEN => Op::Open { flags: r.u32()? },
            op::OPENDIR => Op::Opendir { flags: r.u32()? },
            op::READ => Op::Read(read_in(&mut r)?),
            op::READDIR => Op::Readdir(read_in(&mut r)?),
            op::READDIRPLUS => Op::Readdirplus(read_in(&mut r)?),
            op::WRITE => {
                let (fh, offset, size, write_flags, lock_owner, flags) =
                    (r.u64()?, r.u64()?, r.u32()?, r.u32()?, r.u64()?, r.u32()?);
                let Some(data) = rest.get(..size as usize) else { return Some(Err(Errno::EINVAL)) };
                Op::Write { fh, offset, write_flags, lock_owner, flags, data }
            }
            op::STATFS => Op::Statfs,
            op::RELEASE => Op::Release(release_in(&mut r)?),
            op::RELEASEDIR => Op::Releasedir(release_in(&mut r)?),
            op::FSYNC | op::FSYNCDIR => {
                let (fh, fl) = (r.u64()?, r.u32()?);
                let datasync = fl & abi::FSYNC_FDATASYNC != 0;
                if opcode == op::FSYNC { Op::Fsync { fh, datasync } } else { Op::Fsyncdir { fh, datasync } }
            }
            op::SETXATTR => {
                let (size, flags) = (r.u32()?, r.u32()?);
                let (n, value) = abi::cstr(rest);
                let Some(value) = value.get(..size as usize) else { return Some(Err(Errno::EINVAL)) };
                Op::Setxattr { flags, name: OsStr::from_bytes(n), value }
            }
            op::GETXATTR => Op::Getxattr { size: r.u32()?, name: name(rest) },
            op::LISTXATTR => Op::Listxattr { size: r.u32()? },
            op::REMOVEXATTR => Op::Removexattr { name: name(rest) },
            op::FLUSH => {
                let (fh, _unused, _pad, lock_owner) = (r.u64()?, r.u32()?, r.u32()?, r.u64()?);
                Op::Flush { fh, lock_owner }
            }
            op::INIT => match InitIn::decode(fixed) {
                Some(i) => Op::Init(i),
                None => return None,
            },
            op::GETLK => Op::Getlk(lk_in(&mut r)?),
            op::SETLK | op::SETLKW => Op::Setlk { lk: lk_in(&mut r)?, sleep: opcode == op::SETLKW },
            op::CREATE => {
                let (flags, mode, umask, _open_flags) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
                Op::Create { flags, mode, umask, name: name(rest) }
            }
            op::INTERRUPT => Op::Interrupt { unique: r.u64()? },
            op::DESTROY => Op::Destroy,
            op::IOCTL => {
                let (fh, flags, cmd, _arg, in_size, out_size) =
                    (r.u64()?, r.u32()?, r.u32()?, r.u64()?, r.u32()?, r.u32()?);
                let Some(in_data) = rest.get(..in_size as usize) else { return Some(Err(Errno::EINVAL)) };
                Op::Ioctl { fh, flags, cmd, in_data, out_size }
            }
            op::POLL => Op::Poll { fh: r.u64()?, kh: r.u64()?, flags: r.u32()?, events: r.u32()? },
            op::FALLOCATE => Op::Fallocate { fh: r.u64()?, offset: r.u64()?, length: r.u64()?, mode: r.u32()? },
            op::LSEEK => Op::Lseek { fh: r.u64()?, offset: r.i64()?, whence: r.u32()? },
            other => Op::Other(other),
        };
        Some(Ok(o))
    }
}

fn read_in(r: &mut Rd<'_>) -> Option<ReadIn> {
    Some(ReadIn {
        fh: r.u64()?,
        offset: r.u64()?,
        size: r.u32()?,
        read_flags: r.u32()?,
        lock_owner: r.u64()?,
        flags: r.u32()?,
    })
}

fn release_in(r: &mut Rd<'_>) -> Option<ReleaseIn> {
    Some(ReleaseIn { fh: r.u64()?, flags: r.u32()?, release_flags: r.u32()?, lock_owner: r.u64()? })
}

fn lk_in(r: &mut Rd<'_>) -> Option<LkIn> {
    let (fh, owner, start, end, typ, pid, lk_flags) =
        (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u32()?, r.u32()?, r.u32()?);
    Some(LkIn { fh, owner, start, end, typ, pid, lk_flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(opcode: u32, args: &[u8]) -> Vec<u8> {
        let h =
            InHeader { len: (InHeader::SIZE + args.len()) as u32, opcode, unique: 7, nodeid: 1, ..Default::default() };
        let mut v = h.encode().to_vec();
        v.extend_from_slice(args);
        v
    }

    #[test]
    fn lookup_and_rename() {
        let b = req(op::LOOKUP, b"name\0");
        let (h, f, r) = split(&b, false).unwrap();
        assert_eq!(h.unique, 7);
        assert!(matches!(Op::parse(h.opcode, f, r), Ok(Op::Lookup { name }) if name == "name"));
        let mut a = 5u64.to_ne_bytes().to_vec();
        a.extend_from_slice(b"a\0b\0");
        let b = req(op::RENAME, &a);
        let (h, f, r) = split(&b, false).unwrap();
        match Op::parse(h.opcode, f, r) {
            Ok(Op::Rename { newdir: 5, flags: 0, name, newname }) => {
                assert_eq!((name, newname), (OsStr::new("a"), OsStr::new("b")))
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn short_and_hostile_input_never_panics() {
        assert!(split(&[0u8; 10], false).is_err());
        // A header claiming more than the buffer holds.
        let mut b = req(op::WRITE, &[0u8; 40]);
        b[0] = 200;
        assert!(matches!(split(&b, false), Err(Some(_))));
        // Too short for the operation's structure.
        let b = req(op::SETATTR, &[0u8; 20]);
        assert!(split(&b, false).is_err());
        // Every opcode with truncated arguments parses to an error or an op, never a panic.
        for opcode in 0..60 {
            for n in 0..100 {
                let args = vec![0xffu8; n];
                let _ = Op::parse(
                    opcode,
                    &args[..n.min(fixed_size(opcode, false))],
                    &args[n.min(fixed_size(opcode, false))..],
                );
                let _ = Op::parse(opcode, &args, &[]);
            }
        }
        // WRITE whose size exceeds its data.
        let mut w = vec![0u8; 40];
        w[16..20].copy_from_slice(&100u32.to_ne_bytes());
        assert_eq!(Op::parse(op::WRITE, &w, b"short").unwrap_err(), Errno::EINVAL);
    }

    #[test]
    fn the_trace_shows_data_and_values_as_their_length() {
        let data = [0xabu8; 300];
        let w = Op::Write { fh: 3, offset: 8192, write_flags: 0, lock_owner: 0, flags: 0, data: &data };
        assert_eq!(format!("{:?}", Brief(&w)), "Write { fh: 3, offset: 8192, 300 bytes }");
        let x = Op::Setxattr { flags: 0, name: OsStr::new("user.k"), value: b"secret" };
        assert_eq!(format!("{:?}", Brief(&x)), "Setxattr { name: \"user.k\", 6 bytes }");
        let l = Op::Lookup { name: OsStr::new("f") };
        assert_eq!(format!("{:?}", Brief(&l)), format!("{l:?}"));
    }

    #[test]
    fn lock_flags() {
        let mut a = Vec::new();
        for v in [3u64, 9, 0, u64::MAX] {
            a.extend_from_slice(&v.to_ne_bytes());
        }
        for v in [libc::F_WRLCK as u32, 42, abi::LK_FLOCK, 0] {
            a.extend_from_slice(&v.to_ne_bytes());
        }
        match Op::parse(op::SETLKW, &a, &[]) {
            Ok(Op::Setlk { lk, sleep: true }) => {
                assert_eq!((lk.fh, lk.owner, lk.end, lk.pid, lk.lk_flags), (3, 9, u64::MAX, 42, abi::LK_FLOCK))
            }
            o => panic!("{o:?}"),
        }
    }
}
