//! Every file operation against a real engine and real files.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use qtfs_client::{ClientError, Cred, SetAttr, SetTime};
use qtfs_proto::consts::{self, open};
use qtfs_testkit::*;

fn errno(r: Result<impl std::fmt::Debug, ClientError>) -> i32 {
    match r {
        Err(e) => e.errno(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// Two tests per line, both running the same body: the first on an export in the
/// temporary directory's file system, the second on a tmpfs export.
macro_rules! on_both_file_systems {
    ($($name:ident, $tmpfs:ident => $body:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            $body(&TestEngine::start(Opts::default()));
        }

        #[test]
        fn $tmpfs() {
            $body(&TestEngine::start(Opts { tmpfs: true, ..Default::default() }));
        }
    )*};
}

on_both_file_systems! {
    basic_file_lifecycle, basic_file_lifecycle_tmpfs => basic_file_lifecycle_on,
    directories_and_names, directories_and_names_tmpfs => directories_and_names_on,
    rename_flags, rename_flags_tmpfs => rename_flags_on,
    setattr_and_metadata, setattr_and_metadata_tmpfs => setattr_and_metadata_on,
    pipelined_thousand_requests, pipelined_thousand_requests_tmpfs => pipelined_thousand_requests_on,
}

fn basic_file_lifecycle_on(e: &TestEngine) {
    let (s, ex) = e.mounted(2);
    let root = Cred::root();
    assert_eq!(s.ping(b"hello").unwrap(), b"hello");
    let a = s.getattr(ex, b"", false, &root).unwrap();
    assert_eq!(a.mode & libc::S_IFMT, libc::S_IFDIR);

    let (h, attr) = s.create(ex, b"f.txt", open::RDWR, 0o644, 0o022, true, &root).unwrap();
    assert_eq!(attr.mode & 0o777, 0o644);
    assert_eq!(s.write(h, 0, b"hello world").unwrap(), 11);
    assert_eq!(s.read(h, 6, 100).unwrap(), b"world");
    assert_eq!(s.fgetattr(h).unwrap().size, 11);
    s.fsync(h, false).unwrap();
    s.close_handle(h).unwrap();
    assert_eq!(errno(s.read(h, 0, 1)), libc::EBADF, "closed handle");
    assert_eq!(std::fs::read(e.path("f.txt")).unwrap(), b"hello world");

    // Exclusive create of an existing name.
    assert_eq!(errno(s.create(ex, b"f.txt", open::RDWR | open::EXCL, 0o644, 0, true, &root)), libc::EEXIST);
    // Lookup / negative lookup.
    assert_eq!(s.lookup(ex, b"f.txt", &root).unwrap().size, 11);
    assert_eq!(errno(s.lookup(ex, b"nope", &root)), libc::ENOENT);

    // Append handles write at the end whatever the offset.
    let (h, _) = s.open(ex, b"f.txt", open::WRONLY | open::APPEND, 0, &root).unwrap();
    s.write(h, 0, b"!").unwrap();
    s.close_handle(h).unwrap();
    assert_eq!(std::fs::read(e.path("f.txt")).unwrap(), b"hello world!");

    // Truncate on open.
    let (h, a) = s.open(ex, b"f.txt", open::WRONLY | open::TRUNC, 0, &root).unwrap();
    assert_eq!(a.size, 0);
    s.close_handle(h).unwrap();
}

fn directories_and_names_on(e: &TestEngine) {
    let (s, ex) = e.mounted(1);
    let root = Cred::root();
    let a = s.mkdir(ex, b"d", 0o755, 0o022, &root).unwrap();
    assert_eq!(a.mode & libc::S_IFMT, libc::S_IFDIR);
    assert_eq!(errno(s.mkdir(ex, b"d", 0o755, 0, &root)), libc::EEXIST);
    for i in 0..1000 {
        s.create(ex, format!("d/f{i:04}").as_bytes(), open::WRONLY, 0o600, 0, false, &root).unwrap();
    }
    let all = s.readdir_all(ex, b"d", false, &root).unwrap();
    assert_eq!(all.len(), 1000);
    let mut names: Vec<_> = all.iter().map(|d| String::from_utf8(d.name.clone()).unwrap()).collect();
    names.sort();
    assert_eq!(names[0], "f0000");
    assert_eq!(names[999], "f0999");
    // Small pages resume at the cookie without losing entries.
    let mut cookie = 0;
    let mut n = 0;
    loop {
        let p = s.readdir(ex, b"d", cookie, 600, true, &root).unwrap();
        n += p.entries.len();
        assert!(p.entries.iter().all(|d| d.attr.is_some()));
        if let Some(l) = p.entries.last() {
            cookie = l.cookie;
        }
        if p.eof {
            break;
        }
        assert!(!p.entries.is_empty());
    }
    assert_eq!(n, 1000);
    assert_eq!(errno(s.rmdir(ex, b"d", &root)), libc::ENOTEMPTY);
    for i in 0..1000 {
        s.unlink(ex, format!("d/f{i:04}").as_bytes(), &root).unwrap();
    }
    s.rmdir(ex, b"d", &root).unwrap();
    assert!(!exists(&e.path("d")));

    // Symlinks and hard links.
    std::fs::write(e.path("t"), b"target").unwrap();
    let l = s.symlink(ex, b"l", b"t", &root).unwrap();
    assert_eq!(l.mode & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(s.readlink(ex, b"l", &root).unwrap(), b"t");
    assert_eq!(s.getattr(ex, b"l", true, &root).unwrap().size, 6, "followed");
    assert_eq!(s.getattr(ex, b"l", false, &root).unwrap().mode & libc::S_IFMT, libc::S_IFLNK);
    let h = s.link(ex, b"t", b"t2", &root).unwrap();
    assert_eq!(h.nlink, 2);
    assert_eq!(std::fs::metadata(e.path("t2")).unwrap().ino(), std::fs::metadata(e.path("t")).unwrap().ino());

    // FIFO via mknod.
    let f = s.mknod(ex, b"fifo", libc::S_IFIFO | 0o644, 0o022, 0, 0, &root).unwrap();
    assert_eq!(f.mode & libc::S_IFMT, libc::S_IFIFO);
}

fn rename_flags_on(e: &TestEngine) {
    let (s, ex) = e.mounted(1);
    let root = Cred::root();
    std::fs::write(e.path("a"), b"A").unwrap();
    std::fs::write(e.path("b"), b"B").unwrap();
    assert_eq!(errno(s.rename(ex, b"a", b"b", libc::RENAME_NOREPLACE, &root)), libc::EEXIST);
    s.rename(ex, b"a", b"b", libc::RENAME_EXCHANGE, &root).unwrap();
    assert_eq!(std::fs::read(e.path("a")).unwrap(), b"B");
    assert_eq!(std::fs::read(e.path("b")).unwrap(), b"A");
    std::fs::create_dir(e.path("sub")).unwrap();
    // A destination longer than the source (the original rejected these).
    s.rename(ex, b"a", b"sub/a-much-longer-destination-name", 0, &root).unwrap();
    assert!(exists(&e.path("sub/a-much-longer-destination-name")));
    assert_eq!(errno(s.rename(ex, b"b", b"c", 0x100, &root)), libc::EINVAL);
}

fn setattr_and_metadata_on(e: &TestEngine) {
    let (s, ex) = e.mounted(1);
    let root = Cred::root();
    std::fs::write(e.path("f"), b"0123456789").unwrap();
    let a = s
        .setattr(
            ex,
            b"f",
            &SetAttr {
                mode: Some(0o600),
                size: Some(4),
                uid: Some(1234),
                gid: Some(5678),
                atime: Some(SetTime::At(1_000_000, 5)),
                mtime: Some(SetTime::At(2_000_000, 7)),
            },
            &root,
        )
        .unwrap();
    assert_eq!(a.mode & 0o7777, 0o600);
    assert_eq!(a.size, 4);
    assert_eq!((a.uid, a.gid), (1234, 5678));
    assert_eq!((a.atime_sec, a.atime_nsec, a.mtime_sec, a.mtime_nsec), (1_000_000, 5, 2_000_000, 7));
    let m = std::fs::metadata(e.path("f")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.len(), m.uid(), m.mtime()), (0o600, 4, 1234, 2_000_000));
    // By handle.
    let (h, _) = s.open(ex, b"f", open::RDWR, 0, &root).unwrap();
    let a = s.fsetattr(h, &SetAttr { size: Some(100), ..Default::default() }, &root).unwrap();
    assert_eq!(a.size, 100);
    // SEEK_DATA/HOLE and fallocate.
    s.fallocate(h, 0, 0, 8192).unwrap();
    assert_eq!(s.llseek(h, 0, libc::SEEK_END as u32).unwrap(), 8192);
    assert_eq!(s.llseek(h, 0, libc::SEEK_DATA as u32).unwrap(), 0);
    s.close_handle(h).unwrap();
    // statfs
    let st = s.statfs(ex, b"", &root).unwrap();
    assert!(st.bsize > 0 && st.blocks > 0);
    // chmod of a symlink is refused without touching its target.
    std::os::unix::fs::symlink("f", e.path("lnk")).unwrap();
    assert_eq!(
        errno(s.setattr(ex, b"lnk", &SetAttr { mode: Some(0o777), ..Default::default() }, &root)),
        libc::EOPNOTSUPP
    );
    assert_eq!(std::fs::metadata(e.path("f")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn xattrs_exact_bytes() {
    let e = TestEngine::start(Opts::default());
    let (s, ex) = e.mounted(1);
    let root = Cred::root();
    std::fs::write(e.path("x"), b"").unwrap();
    let value = b"\x00\x01binary\xffvalue";
    // The export is a plain directory of the test's temp dir: user xattrs work on every
    // file system this suite runs on (ext4, xfs, btrfs, tmpfs >= 6.6); EOPNOTSUPP fails.
    s.xattr_set(ex, b"x", b"user.test", value, 0, &root).unwrap();
    let (n, _) = s.xattr_get(ex, b"x", b"user.test", 0, &root).unwrap();
    assert_eq!(n as usize, value.len(), "size query, no trailing NUL added");
    let (_, v) = s.xattr_get(ex, b"x", b"user.test", 64, &root).unwrap();
    assert_eq!(v, value);
    assert_eq!(errno(s.xattr_get(ex, b"x", b"user.test", 2, &root)), libc::ERANGE);
    let (_, names) = s.xattr_list(ex, b"x", 256, &root).unwrap();
    assert!(names.split(|&c| c == 0).any(|n| n == b"user.test"));
    assert_eq!(errno(s.xattr_set(ex, b"x", b"user.test", b"v", libc::XATTR_CREATE as u32, &root)), libc::EEXIST);
    s.xattr_remove(ex, b"x", b"user.test", &root).unwrap();
    assert_eq!(errno(s.xattr_get(ex, b"x", b"user.test", 64, &root)), libc::ENODATA, "really removed");
}

fn pipelined_thousand_requests_on(e: &TestEngine) {
    let (s, ex) = e.mounted(1);
    let root = Cred::root();
    let data: Vec<u8> = (0..65536u32).map(|i| i as u8).collect();
    std::fs::write(e.path("big"), &data).unwrap();
    let (h, _) = s.open(ex, b"big", open::RDONLY, 0, &root).unwrap();
    let mut pending = Vec::new();
    for i in 0..1000u64 {
        let off = (i * 61) % 60000;
        pending.push((
            off,
            s.submit_on(0, qtfs_proto::Op::READ, &qtfs_proto::ReadReq { handle: h, offset: off, len: 64 }).unwrap(),
        ));
    }
    for (off, p) in pending {
        let r = p.wait().unwrap();
        assert_eq!(r.payload, &data[off as usize..off as usize + 64]);
    }
}

#[test]
fn many_clients_on_several_cores() {
    let e = TestEngine::start(Opts { cores: 2, ..Default::default() });
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let cfg = e.config();
            let export = e.export.clone();
            std::thread::spawn(move || {
                let s = qtfs_client::Session::connect(cfg, 2).unwrap();
                let root = Cred::root();
                let (ex, _) = s.mount(export.to_str().unwrap(), &root).unwrap();
                for i in 0..100 {
                    let name = format!("t{t}-{i}");
                    let (h, _) = s.create(ex, name.as_bytes(), open::RDWR, 0o644, 0, true, &root).unwrap();
                    s.write(h, 0, name.as_bytes()).unwrap();
                    assert_eq!(s.read(h, 0, 64).unwrap(), name.as_bytes());
                    s.close_handle(h).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(std::fs::read_dir(&e.export).unwrap().count(), 800);
}

#[test]
fn handles_work_on_every_connection_of_the_session() {
    let e = TestEngine::start(Opts { cores: 2, ..Default::default() });
    let (s, _, h) = e.mounted_file(4, "shared");
    for i in 0..4 {
        let w = s
            .submit_on(
                i,
                qtfs_proto::Op::WRITE,
                &qtfs_proto::WriteReq {
                    handle: h,
                    offset: i as u64,
                    flags: 0,
                    data: qtfs_proto::Rest(&[b'a' + i as u8]),
                },
            )
            .unwrap();
        w.wait().unwrap();
    }
    assert_eq!(std::fs::read(e.path("shared")).unwrap(), b"abcd");
}

#[test]
fn unknown_export_and_handle() {
    let e = TestEngine::start(Opts::default());
    let (s, _) = e.mounted(1);
    assert_eq!(errno(s.getattr(99, b"", false, &Cred::root())), libc::ESTALE);
    assert_eq!(errno(s.read(0xdead_0000_0001, 0, 1)), libc::EBADF);
    assert_eq!(errno(s.mount("/etc", &Cred::root())), libc::EACCES, "not under [Mount]");
    assert_eq!(errno(s.mount("relative", &Cred::root())), libc::EINVAL);
    let _ = consts::READDIR_PLUS;
}

/// A READ whose range the HOST's page cache holds only in part answers the whole range:
/// the inline RWF_NOWAIT read stops at the first uncached page, and a short answer means
/// end of file to every client (FUSE shrinks the file's size to it: qemu's `fread` of a
/// kernel image failed this way).
#[test]
fn read_of_a_partly_cached_range_is_whole() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let e = TestEngine::start(Opts::default());
    let (s, ex) = e.mounted(1);
    let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = e.path("partly-cached");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
    let f = std::fs::File::open(&path).unwrap();
    // Drop the file's pages, then cache the first one only (no readahead on this fd).
    // SAFETY: fadvise/pread on a descriptor we own, into a buffer of its length.
    unsafe {
        assert_eq!(libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED), 0);
        assert_eq!(libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM), 0);
        let mut page = [0u8; 4096];
        assert_eq!(libc::pread(f.as_raw_fd(), page.as_mut_ptr().cast(), page.len(), 0), 4096);
    }
    let cached = resident_pages(&f, data.len());
    assert!(cached[0] && !cached[1], "the precondition (page 0 cached, page 1 not) does not hold: {cached:?}");
    let (h, _) = s.open(ex, b"partly-cached", open::RDONLY, 0, &Cred::root()).unwrap();
    let got = s.read(h, 0, 64 * 1024).unwrap();
    assert_eq!(got.len(), 64 * 1024, "a short READ inside the file");
    assert!(got == data[..64 * 1024], "wrong bytes");
    // At the end of the file a short answer is right.
    let tail = s.read(h, data.len() as u64 - 100, 4096).unwrap();
    assert_eq!(tail, data[data.len() - 100..]);
    s.close_handle(h).unwrap();
}

/// Which pages of `f` (`len` bytes) are in the page cache (mincore).
fn resident_pages(f: &std::fs::File, len: usize) -> Vec<bool> {
    use std::os::fd::AsRawFd;
    let pages = len.div_ceil(4096);
    let mut vec = vec![0u8; pages];
    // SAFETY: a shared read-only mapping of a file we own, unmapped below; mincore
    // writes one byte per page into `vec`, which has one per page.
    unsafe {
        let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0);
        assert_ne!(p, libc::MAP_FAILED);
        assert_eq!(libc::mincore(p, len, vec.as_mut_ptr()), 0);
        libc::munmap(p, len);
    }
    vec.iter().map(|b| b & 1 == 1).collect()
}

/// A session that asked for the opt-in `features` too (the engine must offer them), and
/// its export.
fn session_with(e: &TestEngine, features: u64) -> (qtfs_client::Session, u32) {
    let mut cfg = e.config();
    cfg.features = consts::feat::ALL | features;
    let s = qtfs_client::Session::connect(cfg, 1).unwrap();
    assert_eq!(s.features() & features, features, "the engine offers {features:#x}");
    let (ex, _) = s.mount(e.export.to_str().unwrap(), &Cred::root()).unwrap();
    (s, ex)
}

/// The typed operations on a session, keeping the directory attributes answers carry.
struct KeepDirs<'s> {
    s: &'s qtfs_client::Session,
    dirs: Vec<qtfs_proto::Attr>,
}

impl qtfs_client::Transport for KeepDirs<'_> {
    fn round_trip<R>(
        &mut self,
        req: qtfs_client::Request<'_>,
        f: impl FnOnce(&mut Vec<u8>) -> qtfs_client::Result<R>,
    ) -> qtfs_client::Result<R> {
        (&mut &*self.s).round_trip(req, f)
    }
    fn changed_dirs(&mut self, dirs: &[qtfs_proto::Attr]) {
        self.dirs.extend_from_slice(dirs);
    }
}

/// DIR_ATTR: each operation that changes a directory answers with that directory's
/// attributes as they are after the change (both parents for RENAME); OPEN, SETATTR and
/// failed operations carry none; a session that did not ask gets none.
#[test]
fn name_operations_answer_with_the_changed_directories_attributes() {
    use qtfs_client::Ops;
    let e = TestEngine::start(Opts::default());
    let (s, ex) = session_with(&e, consts::feat::DIR_ATTR);
    std::fs::create_dir_all(e.path("a")).unwrap();
    std::fs::create_dir_all(e.path("b")).unwrap();
    let c = Cred::root();
    let mut t = KeepDirs { s: &s, dirs: Vec::new() };
    // What the HOST says of `dirs` now, as (ino, nlink, mtime, ctime, size).
    let host = |dirs: &[&str]| -> Vec<(u64, u32, i64, i64, u64)> {
        dirs.iter()
            .map(|d| {
                let m = std::fs::metadata(e.path(d)).unwrap();
                (m.ino(), m.nlink() as u32, m.mtime(), m.ctime(), m.size())
            })
            .collect()
    };
    let got = |t: &mut KeepDirs| -> Vec<(u64, u32, i64, i64, u64)> {
        std::mem::take(&mut t.dirs).iter().map(|a| (a.ino, a.nlink, a.mtime_sec, a.ctime_sec, a.size)).collect()
    };
    t.mkdir(ex, b"a/sub", 0o755, 0, &c).unwrap();
    assert_eq!(got(&mut t), host(&["a"]), "MKDIR");
    let (h, _) = t.create(ex, b"a/f", open::RDWR, 0o644, 0, true, &c).unwrap();
    assert_eq!(got(&mut t), host(&["a"]), "CREATE");
    t.close_handle(h).unwrap();
    t.mknod(ex, b"a/fifo", libc::S_IFIFO | 0o644, 0, 0, 0, &c).unwrap();
    assert_eq!(got(&mut t), host(&["a"]), "MKNOD");
    t.symlink(ex, b"a/l", b"f", &c).unwrap();
    assert_eq!(got(&mut t), host(&["a"]), "SYMLINK");
    t.link(ex, b"a/f", b"b/g", &c).unwrap();
    assert_eq!(got(&mut t), host(&["b"]), "LINK: the new name's directory");
    t.rename(ex, b"a/sub", b"b/sub", 0, &c).unwrap();
    assert_eq!(got(&mut t), host(&["a", "b"]), "RENAME: the old, then the new parent");
    t.unlink(ex, b"a/l", &c).unwrap();
    assert_eq!(got(&mut t), host(&["a"]), "UNLINK");
    t.rmdir(ex, b"b/sub", &c).unwrap();
    assert_eq!(got(&mut t), host(&["b"]), "RMDIR");
    let (h, _) = t.open(ex, b"a/f", open::RDWR, 0, &c).unwrap();
    t.close_handle(h).unwrap();
    t.setattr(ex, b"a/f", &SetAttr { mode: Some(0o600), ..Default::default() }, &c).unwrap();
    assert!(errno(t.unlink(ex, b"a/missing", &c)) == libc::ENOENT);
    assert!(t.dirs.is_empty(), "OPEN, SETATTR or a failed UNLINK carried directory attributes: {:?}", t.dirs);
    // A session that did not ask.
    let plain = qtfs_client::Session::connect(e.config(), 1).unwrap();
    assert_eq!(plain.features() & consts::feat::DIR_ATTR, 0);
    let (px, _) = plain.mount(e.export.to_str().unwrap(), &c).unwrap();
    let mut t = KeepDirs { s: &plain, dirs: Vec::new() };
    t.mkdir(px, b"a/plain", 0o755, 0, &c).unwrap();
    t.unlink(px, b"a/f", &c).unwrap();
    assert!(t.dirs.is_empty(), "a session without DIR_ATTR got directory attributes");
}

/// LIST_ATTR: a listing that reaches the end of the directory carries the directory's
/// attributes as they are after it (the HOST's, atime included), plain or PLUS, in one
/// page or many; a page before the end carries none, nor does any page for a session
/// that did not ask.
#[test]
fn a_listing_to_the_end_answers_with_the_directorys_attributes() {
    use qtfs_client::Ops;
    let e = TestEngine::start(Opts::default());
    let (s, ex) = session_with(&e, consts::feat::LIST_ATTR);
    std::fs::create_dir_all(e.path("d")).unwrap();
    for i in 0..40 {
        std::fs::write(e.path(&format!("d/file-with-a-long-name-{i:03}")), b"x").unwrap();
    }
    let c = Cred::root();
    let host = || {
        let m = std::fs::metadata(e.path("d")).unwrap();
        (m.ino(), m.nlink() as u32, m.atime(), m.atime_nsec() as u32, m.mtime(), m.size())
    };
    let of = |a: &qtfs_proto::Attr| (a.ino, a.nlink, a.atime_sec, a.atime_nsec, a.mtime_sec, a.size);
    let mut t = KeepDirs { s: &s, dirs: Vec::new() };
    for plus in [false, true] {
        let all = t.readdir_all(ex, b"d", plus, &c).unwrap();
        assert_eq!(all.len(), 40);
        let dirs = std::mem::take(&mut t.dirs);
        assert_eq!(
            dirs.iter().map(of).collect::<Vec<_>>(),
            vec![host()],
            "plus {plus}: the directory after the listing"
        );
    }
    // Small pages: only the last one, which reaches the end, carries them.
    let first = t.readdir(ex, b"d", 0, 512, false, &c).unwrap();
    assert!(!first.eof && first.dir_attr.is_none(), "a page before the end carried the directory's attributes");
    let all = t.readdir_paged(ex, b"d", true, 512, &c).unwrap();
    assert_eq!(all.len(), 40, "records and attributes told apart on every page");
    assert_eq!(std::mem::take(&mut t.dirs).iter().map(of).collect::<Vec<_>>(), vec![host()]);
    // A session that did not ask.
    let plain = qtfs_client::Session::connect(e.config(), 1).unwrap();
    assert_eq!(plain.features() & consts::feat::LIST_ATTR, 0);
    let (px, _) = plain.mount(e.export.to_str().unwrap(), &c).unwrap();
    let mut t = KeepDirs { s: &plain, dirs: Vec::new() };
    let page = t.readdir(px, b"d", 0, 64 * 1024, true, &c).unwrap();
    assert!(page.eof && page.dir_attr.is_none() && page.entries.len() == 40);
    assert!(t.dirs.is_empty(), "a session without LIST_ATTR got the directory's attributes");
}

/// XATTR_NONE: OPEN and CREATE answers to root mark a file without any extended
/// attribute; one with an attribute (of any namespace) is not marked, nor is any file
/// opened by another caller (whose listing would not see every namespace), and a session
/// that did not ask never gets the mark.
#[test]
fn an_open_tells_whether_the_file_has_extended_attributes() {
    use qtfs_client::Ops;
    let e = TestEngine::start(Opts::default());
    let (s, ex) = session_with(&e, consts::feat::XATTR_NONE);
    let c = Cred::root();
    let marked = |a: &qtfs_proto::Attr| a.flags & consts::ATTR_F_NO_XATTRS != 0;
    std::fs::write(e.path("plain"), b"x").unwrap();
    std::fs::write(e.path("tagged"), b"x").unwrap();
    std::fs::write(e.path("trusted"), b"x").unwrap();
    std::fs::set_permissions(e.path("trusted"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let set = |p: &str, name: &std::ffi::CStr| {
        let f = std::ffi::CString::new(e.path(p).into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: NUL-terminated path and name, a one-byte value.
        assert_eq!(unsafe { libc::setxattr(f.as_ptr(), name.as_ptr(), b"v".as_ptr().cast(), 1, 0) }, 0);
    };
    set("tagged", c"user.tag");
    set("trusted", c"trusted.hidden");
    let mut t = KeepDirs { s: &s, dirs: Vec::new() };
    let (h, a) = t.open(ex, b"plain", open::RDONLY, 0, &c).unwrap();
    assert!(marked(&a), "a file without extended attributes is not marked");
    t.close_handle(h).unwrap();
    let (h, a) = t.open(ex, b"tagged", open::RDONLY, 0, &c).unwrap();
    assert!(!marked(&a), "a file with user.tag is marked as having none");
    t.close_handle(h).unwrap();
    let (h, a) = t.open(ex, b"trusted", open::RDONLY, 0, &c).unwrap();
    assert!(!marked(&a), "a file with a trusted. attribute is marked as having none");
    t.close_handle(h).unwrap();
    // Another caller, who cannot see trusted. names: nothing is marked for it.
    let user = Cred { uid: 1000, gid: 1000, groups: vec![] };
    for f in [&b"trusted"[..], b"plain"] {
        let (h, a) = t.open(ex, f, open::RDONLY, 0, &user).unwrap();
        assert!(!marked(&a), "{}: marked for a caller other than root", String::from_utf8_lossy(f));
        t.close_handle(h).unwrap();
    }
    let (h, a) = t.create(ex, b"new", open::RDWR, 0o644, 0, true, &c).unwrap();
    assert!(marked(&a), "a new file is not marked");
    t.close_handle(h).unwrap();
    // A session that did not ask.
    let plain = qtfs_client::Session::connect(e.config(), 1).unwrap();
    assert_eq!(plain.features() & consts::feat::XATTR_NONE, 0);
    let (px, _) = plain.mount(e.export.to_str().unwrap(), &c).unwrap();
    let mut t = KeepDirs { s: &plain, dirs: Vec::new() };
    let (h, a) = t.open(px, b"plain", open::RDONLY, 0, &c).unwrap();
    assert!(!marked(&a), "a session without XATTR_NONE got the mark");
    t.close_handle(h).unwrap();
}
