//! CHAN_SCM records: descriptors that travel with the next CHAN_DATA
//! (`proto/PROTOCOL.md`, Channels: Descriptors).
//!
//! Building ([`ScmOut`]): a descriptor received from the local socket is described by
//! what it is: a regular file by path, flags and offset; a pipe or FIFO by a new relay
//! channel; a listening unix socket by a relay listener; anything else is refused.
//! Parsing ([`records`], [`item`]): at most [`MAX_SCM_FDS`] records, each checked before
//! anything is created for it; relay ids must be in the sender's id space and unused.

use qtfs_proto::consts::{self, errno};
use qtfs_proto::{ChanScm, Path, RecordIter, Rest, ScmRec, Wire};

use crate::{Kind, MAX_SCM_FDS, id_chosen_by, wire_errno};

/// What a local descriptor passed to us is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passed {
    File,
    /// A pipe or FIFO (`read_end`: opened for reading).
    Pipe {
        read_end: bool,
    },
    /// A listening unix socket.
    Listener,
    /// Cannot cross hosts (its file type, for [`refusal`]).
    Other(u32),
}

impl Passed {
    /// From the descriptor's `st_mode` and file status flags (`F_GETFL`);
    /// `listening_unix` is asked only for sockets.
    pub fn of(st_mode: u32, fl: i32, listening_unix: impl FnOnce() -> bool) -> Passed {
        match st_mode & libc::S_IFMT {
            libc::S_IFREG => Passed::File,
            libc::S_IFIFO => Passed::Pipe { read_end: fl & libc::O_ACCMODE == libc::O_RDONLY },
            libc::S_IFSOCK if listening_unix() => Passed::Listener,
            fmt => Passed::Other(fmt),
        }
    }
}

/// Why a descriptor of file type `fmt` cannot be passed (`EOPNOTSUPP`).
pub fn refusal(fmt: u32) -> (i32, String) {
    let what = match fmt {
        libc::S_IFSOCK => "a socket that is not a listening unix socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFDIR => "a directory",
        _ => "an anonymous descriptor (eventfd, memfd, ...)",
    };
    (errno::EOPNOTSUPP, format!("cannot pass {what} across hosts"))
}

/// The records of one CHAN_SCM being built, and the relay channels to grant credit on
/// once the peer has them.
#[derive(Debug, Default)]
pub struct ScmOut {
    pub recs: Vec<u8>,
    pub count: u32,
    /// Relay channels that take bytes from the peer (`PipeIn`): they get their window
    /// with a CHAN_CREDIT sent after the records.
    pub grants: Vec<u32>,
}

impl ScmOut {
    /// Whether one more record fits (a receive never returns more descriptors, but the
    /// bound is kept here rather than trusted).
    pub fn room(&self) -> Result<(), (i32, String)> {
        if self.count as usize >= MAX_SCM_FDS {
            return Err((wire_errno(libc::ETOOMANYREFS), "too many descriptors".into()));
        }
        Ok(())
    }

    /// A regular file: by its path (`nlink` 0 or no absolute path: deleted or anonymous,
    /// refused), its open flags (`O_*`, local numbering) and offset.
    pub fn file(&mut self, path: &[u8], nlink: u64, flags: i32, offset: u64) -> Result<(), (i32, String)> {
        self.room()?;
        if nlink == 0 || path.first() != Some(&b'/') {
            return Err((errno::EOPNOTSUPP, "cannot pass a file without a path (deleted or anonymous)".into()));
        }
        let flags = consts::open::from_linux(flags);
        self.push(ScmRec { kind: consts::SCM_FILE, flags, offset, channel: 0, path: Path(path) });
        Ok(())
    }

    /// A pipe relayed on the new channel `channel` (`read_end`: the read end was passed).
    pub fn pipe(&mut self, read_end: bool, channel: u32) {
        if Kind::pipe_relay(read_end) == Kind::PipeIn {
            self.grants.push(channel);
        }
        let kind = if read_end { consts::SCM_PIPE_READ } else { consts::SCM_PIPE_WRITE };
        self.push(ScmRec { kind, flags: 0, offset: 0, channel, path: Path(b"") });
    }

    /// A listening socket relayed by the listener `channel`.
    pub fn listener(&mut self, kind: Kind, channel: u32) {
        self.push(ScmRec { kind: consts::SCM_LISTENER, flags: kind.wire(), offset: 0, channel, path: Path(b"") });
    }

    fn push(&mut self, rec: ScmRec<'_>) {
        rec.encode(&mut self.recs);
        self.count += 1;
    }

    /// The CHAN_SCM message.
    pub fn msg(&self) -> ChanScm<'_> {
        ChanScm { count: self.count, records: Rest(&self.recs) }
    }
}

/// The records of a CHAN_SCM payload: `EPROTO` if it does not decode, `ETOOMANYREFS`
/// if it announces or holds more than [`MAX_SCM_FDS`].
pub fn records(payload: &[u8]) -> Result<Records<'_>, i32> {
    let m = ChanScm::decode(payload).map_err(|_| errno::EPROTO)?;
    if m.count as usize > MAX_SCM_FDS {
        return Err(wire_errno(libc::ETOOMANYREFS));
    }
    Ok(Records { it: RecordIter::new(m.records.0), seen: 0 })
}

/// Iterator over the records of a CHAN_SCM (see [`records`]); a record that does not
/// decode is `EPROTO`.
pub struct Records<'a> {
    it: RecordIter<'a, ScmRec<'a>>,
    seen: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<ScmRec<'a>, i32>;
    fn next(&mut self) -> Option<Self::Item> {
        let r = self.it.next()?;
        self.seen += 1;
        if self.seen > MAX_SCM_FDS {
            return Some(Err(wire_errno(libc::ETOOMANYREFS)));
        }
        Some(r.map_err(|_| errno::EPROTO))
    }
}

/// What the peer passed, checked.
#[derive(Debug, PartialEq, Eq)]
pub enum ScmItem<'a> {
    /// A regular file to reopen (see [`crate::reopen`]).
    File(ScmRec<'a>),
    /// A pipe: the local program gets one end of a new pipe, the relay channel `channel`
    /// of kind `relay` the other (`PipeIn`: we write the peer's bytes into it).
    Pipe { channel: u32, relay: Kind },
    /// A listening socket: the local program gets one of ours; connections to it open
    /// channels naming listener `channel` on the peer.
    Listener { channel: u32, kind: Kind },
}

/// Checks one record from the peer. `from_server`: the peer is the engine (it picks
/// relay ids with `CHAN_ID_PEER`); `taken`: whether a channel or listener id is in use.
pub fn item<'a>(rec: ScmRec<'a>, from_server: bool, taken: impl FnOnce(u32) -> bool) -> Result<ScmItem<'a>, i32> {
    match rec.kind {
        consts::SCM_FILE => Ok(ScmItem::File(rec)),
        consts::SCM_PIPE_READ | consts::SCM_PIPE_WRITE | consts::SCM_LISTENER => {
            let channel = rec.channel;
            if !id_chosen_by(channel, from_server) || taken(channel) {
                return Err(errno::EPROTO);
            }
            Ok(match rec.kind {
                consts::SCM_LISTENER => {
                    let kind = Kind::listener_from_wire(rec.flags).ok_or(errno::EOPNOTSUPP)?;
                    ScmItem::Listener { channel, kind }
                }
                consts::SCM_PIPE_READ => ScmItem::Pipe { channel, relay: Kind::PipeIn },
                _ => ScmItem::Pipe { channel, relay: Kind::PipeOut },
            })
        }
        _ => Err(errno::EOPNOTSUPP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qtfs_proto::consts::CHAN_ID_PEER;

    fn payload(count: u32, recs: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        ChanScm { count, records: Rest(recs) }.encode(&mut v);
        v
    }

    fn all(p: &[u8], from_server: bool) -> Result<Vec<ScmItem<'_>>, i32> {
        records(p)?.map(|r| r.and_then(|rec| item(rec, from_server, |_| false))).collect()
    }

    #[test]
    fn built_records_parse_back() {
        let mut out = ScmOut::default();
        out.file(b"/etc/hosts", 1, libc::O_RDWR | libc::O_APPEND, 7).unwrap();
        out.pipe(true, 5);
        out.pipe(false, 6);
        out.listener(Kind::Seqpacket, 7);
        assert_eq!(out.count, 4);
        assert_eq!(out.grants, vec![6], "only the relay that takes the peer's bytes");
        let mut p = Vec::new();
        out.msg().encode(&mut p);
        let items = all(&p, false).unwrap();
        match &items[0] {
            ScmItem::File(r) => {
                assert_eq!((r.path.0, r.offset), (&b"/etc/hosts"[..], 7));
                assert_eq!(consts::open::to_linux(r.flags), Some(libc::O_RDWR | libc::O_APPEND));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(items[1], ScmItem::Pipe { channel: 5, relay: Kind::PipeIn });
        assert_eq!(items[2], ScmItem::Pipe { channel: 6, relay: Kind::PipeOut });
        assert_eq!(items[3], ScmItem::Listener { channel: 7, kind: Kind::Seqpacket });
        // The same ids from the engine's side must carry CHAN_ID_PEER.
        assert_eq!(all(&p, true).map(|_| ()), Err(errno::EPROTO));
    }

    #[test]
    fn files_without_a_path_are_refused() {
        let mut out = ScmOut::default();
        assert_eq!(out.file(b"/x", 0, 0, 0).unwrap_err().0, errno::EOPNOTSUPP, "deleted");
        assert_eq!(out.file(b"anon_inode:[memfd]", 1, 0, 0).unwrap_err().0, errno::EOPNOTSUPP);
        assert_eq!(out.file(b"", 1, 0, 0).unwrap_err().0, errno::EOPNOTSUPP);
        assert_eq!(out.count, 0);
        assert!(out.recs.is_empty());
        assert_eq!(refusal(libc::S_IFCHR).0, errno::EOPNOTSUPP);
        assert!(refusal(libc::S_IFDIR).1.contains("directory"));
        assert_eq!(Passed::of(libc::S_IFSOCK | 0o777, 0, || false), Passed::Other(libc::S_IFSOCK));
        assert_eq!(Passed::of(libc::S_IFSOCK, 0, || true), Passed::Listener);
        assert_eq!(Passed::of(libc::S_IFREG | 0o644, 0, || unreachable!()), Passed::File);
        assert_eq!(Passed::of(libc::S_IFIFO, libc::O_RDONLY, || false), Passed::Pipe { read_end: true });
        assert_eq!(Passed::of(libc::S_IFIFO, libc::O_WRONLY, || false), Passed::Pipe { read_end: false });
    }

    #[test]
    fn building_is_bounded() {
        let mut out = ScmOut::default();
        for i in 0..MAX_SCM_FDS as u32 {
            out.room().unwrap();
            out.pipe(true, i + 1);
        }
        assert!(out.room().is_err());
        assert!(out.file(b"/f", 1, 0, 0).is_err());
    }

    #[test]
    fn hostile_payloads_are_refused() {
        // Not a ChanScm at all.
        assert_eq!(records(&[1, 2]).err(), Some(errno::EPROTO));
        // Announces more descriptors than a message can carry.
        assert_eq!(records(&payload(254, &[])).err(), Some(wire_errno(libc::ETOOMANYREFS)));
        // Holds more records than that, whatever it announces.
        let mut recs = Vec::new();
        for _ in 0..=MAX_SCM_FDS {
            ScmRec { kind: consts::SCM_FILE, flags: 0, offset: 0, channel: 0, path: Path(b"/f") }.encode(&mut recs);
        }
        let p = payload(1, &recs);
        let r: Result<Vec<_>, _> = records(&p).unwrap().collect();
        assert_eq!(r.err(), Some(wire_errno(libc::ETOOMANYREFS)));
        // A truncated record.
        let mut one = Vec::new();
        ScmRec { kind: consts::SCM_FILE, flags: 0, offset: 0, channel: 0, path: Path(b"/f") }.encode(&mut one);
        one.truncate(one.len() - 1);
        assert_eq!(all(&payload(1, &one), false).err(), Some(errno::EPROTO));
        // A path length beyond the record.
        let mut lying = Vec::new();
        ScmRec { kind: consts::SCM_FILE, flags: 0, offset: 0, channel: 0, path: Path(b"") }.encode(&mut lying);
        lying[20] = 0xff;
        assert_eq!(all(&payload(1, &lying), false).err(), Some(errno::EPROTO));
    }

    #[test]
    fn relay_ids_and_kinds_are_checked() {
        let rec = |kind, channel, flags| ScmRec { kind, flags, offset: 0, channel, path: Path(b"") };
        let none = |_| false;
        // Ids outside the sender's space, or zero.
        assert_eq!(item(rec(consts::SCM_PIPE_READ, 0, 0), false, none), Err(errno::EPROTO));
        assert_eq!(item(rec(consts::SCM_PIPE_READ, CHAN_ID_PEER | 3, 0), false, none), Err(errno::EPROTO));
        assert_eq!(item(rec(consts::SCM_PIPE_WRITE, 3, 0), true, none), Err(errno::EPROTO));
        assert_eq!(item(rec(consts::SCM_LISTENER, 0, consts::CHAN_STREAM), true, none), Err(errno::EPROTO));
        // An id in use (a live channel, a listener, or an earlier record).
        assert_eq!(item(rec(consts::SCM_PIPE_READ, 3, 0), false, |id| id == 3), Err(errno::EPROTO));
        // Listener kinds: streams and seqpackets only; the id is checked first.
        assert_eq!(item(rec(consts::SCM_LISTENER, 3, consts::CHAN_DGRAM), false, none), Err(errno::EOPNOTSUPP));
        assert_eq!(item(rec(consts::SCM_LISTENER, 3, 77), false, |_| true), Err(errno::EPROTO));
        // Unknown record kinds.
        assert_eq!(item(rec(0, 3, 0), false, none), Err(errno::EOPNOTSUPP));
        assert_eq!(item(rec(99, 3, 0), false, none), Err(errno::EOPNOTSUPP));
        assert_eq!(
            item(rec(consts::SCM_PIPE_WRITE, CHAN_ID_PEER | 1, 0), true, none),
            Ok(ScmItem::Pipe { channel: CHAN_ID_PEER | 1, relay: Kind::PipeOut })
        );
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes arrive, parsing ends, never panics and yields at most
        /// MAX_SCM_FDS records.
        #[test]
        fn arbitrary_payloads_parse_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            if let Ok(it) = records(&bytes) {
                let mut n = 0usize;
                for r in it {
                    n += 1;
                    prop_assert!(n <= MAX_SCM_FDS + 1);
                    if let Ok(rec) = r {
                        let _ = item(rec, n.is_multiple_of(2), |_| false);
                    }
                }
            }
        }
    }
}
