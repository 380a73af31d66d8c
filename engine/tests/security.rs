//! Hostile clients: paths that try to leave the export through every path operation,
//! every whitelist denial, credentials, and authentication.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use qtfs_client::{ClientConfig, ClientError, Cred, Session, SetAttr};
use qtfs_proto::Psk;
use qtfs_proto::consts::open;
use qtfs_testkit::*;

fn errno<T: std::fmt::Debug>(r: Result<T, ClientError>) -> i32 {
    match r {
        Err(e) => e.errno(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// An export with traps: `up` → `..`, `root` → `/`, `abs` → the secret file (absolute),
/// `loop1`/`loop2` point at each other, `d/esc` → `../../secret`.
fn trapped(tmpfs: bool) -> (TestEngine, std::path::PathBuf) {
    let e = TestEngine::start(Opts { tmpfs, ..Default::default() });
    let secret = e.dir.path().join("secret");
    std::fs::write(&secret, b"top secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink("..", e.path("up")).unwrap();
    std::os::unix::fs::symlink("/", e.path("root")).unwrap();
    std::os::unix::fs::symlink(&secret, e.path("abs")).unwrap();
    std::os::unix::fs::symlink("loop2", e.path("loop1")).unwrap();
    std::os::unix::fs::symlink("loop1", e.path("loop2")).unwrap();
    std::fs::create_dir(e.path("d")).unwrap();
    std::os::unix::fs::symlink("../../secret", e.path("d/esc")).unwrap();
    (e, secret)
}

#[test]
fn dotdot_and_absolute_paths_are_rejected() {
    let (e, _) = trapped(false);
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    for p in [&b"../secret"[..], b"d/../../secret", b"/etc/passwd", b"d//x", b"./d"] {
        assert_eq!(errno(s.getattr(ex, p, true, &r)), libc::EINVAL, "{}", String::from_utf8_lossy(p));
        assert_eq!(errno(s.open(ex, p, open::RDONLY, 0, &r)), libc::EINVAL);
        assert_eq!(errno(s.unlink(ex, p, &r)), libc::EINVAL);
    }
}

#[test]
fn symlinks_never_leave_the_export() {
    symlinks_never_leave_the_export_on(false);
}

#[test]
fn symlinks_never_leave_the_export_tmpfs() {
    symlinks_never_leave_the_export_on(true);
}

fn symlinks_never_leave_the_export_on(tmpfs: bool) {
    let (e, secret) = trapped(tmpfs);
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    let escapes: &[&[u8]] = &[b"up/secret", b"root/etc/passwd", b"abs", b"d/esc", b"up/export/f"];
    for p in escapes {
        let name = String::from_utf8_lossy(p);
        // Reading, following, opening, listing through the trap all fail.
        assert!(s.getattr(ex, p, true, &r).is_err(), "getattr follow {name}");
        assert!(s.open(ex, p, open::RDONLY, 0, &r).is_err(), "open {name}");
        assert!(s.open(ex, p, open::WRONLY | open::TRUNC, 0, &r).is_err(), "open trunc {name}");
        assert!(s.readdir(ex, p, 0, 4096, false, &r).is_err(), "readdir {name}");
        // statfs of a final symlink reports the export's own file system (never the target's).
        if let Ok(st) = s.statfs(ex, p, &r) {
            assert_eq!(st.fsid, s.statfs(ex, b"", &r).unwrap().fsid, "statfs {name}");
        }
    }
    // A symlink as the final component is itself, never its target.
    assert_eq!(s.lookup(ex, b"abs", &r).unwrap().mode & libc::S_IFMT, libc::S_IFLNK);
    assert_eq!(
        errno(s.setattr(ex, b"abs", &SetAttr { mode: Some(0o777), ..Default::default() }, &r)),
        libc::EOPNOTSUPP
    );
    assert!(s.setattr(ex, b"abs", &SetAttr { size: Some(0), ..Default::default() }, &r).is_err());
    let _ = s.setattr(ex, b"abs", &SetAttr { uid: Some(4321), ..Default::default() }, &r);
    assert!(s.xattr_set(ex, b"abs", b"user.x", b"1", 0, &r).is_err(), "user xattrs on a symlink");
    // Paths whose *parent* is a trap.
    assert!(s.create(ex, b"up/created", open::WRONLY, 0o644, 0, true, &r).is_err());
    assert!(s.mkdir(ex, b"root/tmp/qtfs-escape", 0o755, 0, &r).is_err());
    assert!(s.unlink(ex, b"up/secret", &r).is_err());
    assert!(s.rmdir(ex, b"root/tmp", &r).is_err());
    assert!(s.symlink(ex, b"up/s", b"x", &r).is_err());
    assert!(s.mknod(ex, b"up/n", libc::S_IFIFO | 0o644, 0, 0, 0, &r).is_err());
    assert!(s.readlink(ex, b"up/secret", &r).is_err());
    assert!(s.xattr_list(ex, b"up/secret", 100, &r).is_err());
    // Rename and link out of (or into) the export through traps.
    std::fs::write(e.path("mine"), b"mine").unwrap();
    assert!(s.rename(ex, b"mine", b"up/stolen", 0, &r).is_err());
    assert!(s.rename(ex, b"up/secret", b"got", 0, &r).is_err());
    assert!(s.link(ex, b"mine", b"up/linked", &r).is_err());
    if let Ok(a) = s.link(ex, b"abs", b"hard", &r) {
        assert_eq!(a.mode & libc::S_IFMT, libc::S_IFLNK, "a hard link to the symlink itself, never its target");
    }
    assert!(s.link(ex, b"up/secret", b"hard2", &r).is_err());
    // Loops.
    assert_eq!(errno(s.open(ex, b"loop1", open::RDONLY, 0, &r)), libc::ELOOP);
    // Nothing outside moved or changed.
    let m = std::fs::metadata(&secret).unwrap();
    assert_eq!(std::fs::read(&secret).unwrap(), b"top secret");
    assert_eq!((m.mode() & 0o777, m.uid()), (0o644, 0));
    assert!(!exists(&e.dir.path().join("stolen")) && !exists(&e.dir.path().join("linked")));
    assert!(!exists(&e.dir.path().join("created")));
    assert!(!exists(std::path::Path::new("/tmp/qtfs-escape")));
    // Inside the export, relative symlinks work.
    std::fs::write(e.path("d/real"), b"r").unwrap();
    std::os::unix::fs::symlink("real", e.path("d/ok")).unwrap();
    assert_eq!(s.getattr(ex, b"d/ok", true, &r).unwrap().size, 1);
}

#[test]
fn every_whitelist_group_is_enforced() {
    // One engine per missing group: the operations it gates fail with EACCES.
    type Check = fn(&Session, u32, &TestEngine) -> Result<(), ClientError>;
    let root = Cred::root();
    let cases: &[(&str, Check)] = &[
        ("Open", |s, ex, _| s.open(ex, b"f", open::RDONLY, 0, &Cred::root()).map(|_| ())),
        ("Read", |s, ex, _| s.open(ex, b"f", open::RDONLY, 0, &Cred::root()).map(|_| ())),
        ("Write", |s, ex, _| s.open(ex, b"f", open::WRONLY, 0, &Cred::root()).map(|_| ())),
        ("Readdir", |s, ex, _| s.readdir(ex, b"", 0, 4096, false, &Cred::root()).map(|_| ())),
        ("Mkdir", |s, ex, _| s.mkdir(ex, b"nd", 0o755, 0, &Cred::root()).map(|_| ())),
        ("Rmdir", |s, ex, _| s.rmdir(ex, b"dir", &Cred::root())),
        ("Create", |s, ex, _| s.create(ex, b"new", open::WRONLY, 0o644, 0, true, &Cred::root()).map(|_| ())),
        ("Create", |s, ex, _| s.symlink(ex, b"sl", b"f", &Cred::root()).map(|_| ())),
        ("Create", |s, ex, _| s.mknod(ex, b"fifo", libc::S_IFIFO | 0o600, 0, 0, 0, &Cred::root()).map(|_| ())),
        ("Create", |s, ex, _| s.link(ex, b"f", b"hl", &Cred::root()).map(|_| ())),
        ("Unlink", |s, ex, _| s.unlink(ex, b"f", &Cred::root())),
        ("Rename", |s, ex, _| s.rename(ex, b"f", b"g", 0, &Cred::root())),
        ("Setattr", |s, ex, _| {
            s.setattr(ex, b"f", &SetAttr { mode: Some(0o600), ..Default::default() }, &Cred::root()).map(|_| ())
        }),
        ("Setattr", |s, ex, _| s.open(ex, b"f", open::WRONLY | open::TRUNC, 0, &Cred::root()).map(|_| ())),
        ("Setxattr", |s, ex, _| s.xattr_set(ex, b"f", b"user.a", b"1", 0, &Cred::root())),
        ("Setxattr", |s, ex, _| s.xattr_remove(ex, b"f", b"user.a", &Cred::root())),
    ];
    for (missing, check) in cases {
        let groups: Vec<&'static str> = ALL_GROUPS.iter().copied().filter(|g| g != missing).collect();
        let e = TestEngine::start(Opts { cores: 1, groups: Some(groups), ..Default::default() });
        std::fs::write(e.path("f"), b"x").unwrap();
        std::fs::create_dir(e.path("dir")).unwrap();
        let (s, ex) = e.mounted(1);
        assert_eq!(errno(check(&s, ex, &e)), libc::EACCES, "without [{missing}]");
        assert!(wait_until(std::time::Duration::from_secs(5), || e.log_contains("denied by whitelist")));
        // The same request succeeds (or fails differently) with every group present.
        drop(s);
    }
    let _ = root;
}

#[test]
fn whitelist_follows_the_real_path_not_the_spelling() {
    // [Open] covers only export/pub; a symlink in pub pointing into export/priv must not
    // open priv's files.
    let e = TestEngine::start(Opts { groups: Some(vec!["Read", "Readdir"]), ..Default::default() });
    std::fs::create_dir(e.path("pub")).unwrap();
    std::fs::create_dir(e.path("priv")).unwrap();
    std::fs::write(e.path("priv/key"), b"k").unwrap();
    std::fs::write(e.path("pub/ok"), b"o").unwrap();
    std::os::unix::fs::symlink("../priv/key", e.path("pub/link")).unwrap();
    // Allow [Open] on pub only, at run time through the admin socket.
    let mut a = qtfs_client::AdminClient::connect(&e.admin).unwrap();
    let p = format!("{}/pub", e.export.display());
    a.call(
        qtfs_proto::Op::ADMIN_WL_ADD,
        &qtfs_proto::WlAddReq { wl_type: 0, flags: 0, path: qtfs_proto::Path(p.as_bytes()) },
    )
    .unwrap();
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    s.open(ex, b"pub/ok", open::RDONLY, 0, &r).unwrap();
    assert_eq!(errno(s.open(ex, b"pub/link", open::RDONLY, 0, &r)), libc::EACCES);
    assert_eq!(errno(s.open(ex, b"priv/key", open::RDONLY, 0, &r)), libc::EACCES);
}

/// Whitelist entries that name symlinks (`/var/run` → `/run` on Debian and openEuler)
/// match what they resolve to at load time: `t/mnt → t/top`, `link → real`,
/// `away → other`; `third` is in no entry.
#[test]
fn whitelist_entries_naming_symlinks_match_their_targets() {
    let t = tempfile::tempdir().unwrap();
    let t = t.path().canonicalize().unwrap();
    let top = t.join("top");
    for d in ["real", "other", "third"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
        std::fs::write(top.join(d).join("file"), d).unwrap();
    }
    std::os::unix::fs::symlink(&top, t.join("mnt")).unwrap();
    std::os::unix::fs::symlink("real", top.join("link")).unwrap();
    std::os::unix::fs::symlink(top.join("other"), top.join("away")).unwrap();
    let m = format!("{}/mnt", t.display());
    let e = TestEngine::start(Opts {
        groups: Some(vec![]),
        extra_wl: format!("[Mount]\nPath={m}\n[Read]\nPath={m}/\n[Open]\nPath={m}/link;{m}/away\n"),
        ..Default::default()
    });
    assert!(
        e.log_contains(&format!("whitelist [Open] {m}/link resolves to {}/real", top.display())),
        "{:?}",
        e.log.lock().unwrap()
    );
    // Mounted through the symlink that [Mount] names.
    let s = e.session(1);
    let r = Cred::root();
    let (ex, _) = s.mount(&m, &r).expect("[Mount] names the export through a symlink");
    assert_eq!(s.read(s.open(ex, b"real/file", open::RDONLY, 0, &r).unwrap().0, 0, 16).unwrap(), b"real");
    s.open(ex, b"other/file", open::RDONLY, 0, &r).unwrap();
    // A symlinked entry naming another directory does not cover this one.
    assert_eq!(errno(s.open(ex, b"third/file", open::RDONLY, 0, &r)), libc::EACCES);
    // Re-pointing a symlink after the load reaches nothing new: the entry keeps naming
    // the directory it resolved to.
    std::fs::remove_file(top.join("away")).unwrap();
    std::os::unix::fs::symlink("third", top.join("away")).unwrap();
    assert_eq!(errno(s.open(ex, b"third/file", open::RDONLY, 0, &r)), libc::EACCES);
    assert_eq!(errno(s.open(ex, b"away/file", open::RDONLY, 0, &r)), libc::EACCES);
    s.open(ex, b"other/file", open::RDONLY, 0, &r).unwrap();
}

#[test]
fn requests_run_with_the_callers_identity() {
    // SAFETY: getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: identity switching cannot be tested");
        return;
    }
    let e = TestEngine::start(Opts::default());
    std::fs::set_permissions(&e.export, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (s, ex) = e.mounted(1);
    let alice = Cred::new(1000, 1000, vec![]);
    let bob = Cred::new(1001, 1001, vec![2000]);
    let (h, a) = s.create(ex, b"alice.txt", open::RDWR, 0o640, 0o022, true, &alice).unwrap();
    assert_eq!((a.uid, a.gid), (1000, 1000), "created with the caller's owner");
    s.close_handle(h).unwrap();
    let m = std::fs::metadata(e.path("alice.txt")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (1000, 1000, 0o640));
    // Bob may not read alice's 0640 file, nor chmod it, nor delete it from a sticky dir.
    assert_eq!(errno(s.open(ex, b"alice.txt", open::RDONLY, 0, &bob)), libc::EACCES);
    assert_eq!(
        errno(s.setattr(ex, b"alice.txt", &SetAttr { mode: Some(0o777), ..Default::default() }, &bob)),
        libc::EPERM
    );
    // Group access through supplementary groups.
    std::fs::write(e.path("g.txt"), b"g").unwrap();
    std::os::unix::fs::chown(e.path("g.txt"), Some(0), Some(2000)).unwrap();
    std::fs::set_permissions(e.path("g.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    s.open(ex, b"g.txt", open::RDONLY, 0, &bob).unwrap();
    assert_eq!(errno(s.open(ex, b"g.txt", open::RDONLY, 0, &alice)), libc::EACCES);
    // Root-only file: non-root callers cannot read it even though the engine is root.
    std::fs::write(e.path("root.txt"), b"r").unwrap();
    std::fs::set_permissions(e.path("root.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(errno(s.open(ex, b"root.txt", open::RDONLY, 0, &alice)), libc::EACCES);
    assert!(s.getattr(ex, b"root.txt", false, &alice).is_ok(), "stat needs no read permission");
    std::fs::create_dir(e.path("rootdir")).unwrap();
    std::fs::write(e.path("rootdir/f"), b"").unwrap();
    assert_eq!(errno(s.unlink(ex, b"rootdir/f", &alice)), libc::EACCES, "no write permission on the directory");
    s.open(ex, b"root.txt", open::RDONLY, 0, &Cred::root()).unwrap();
    // A non-root caller cannot set trusted.* xattrs (capabilities are dropped too).
    assert!(s.xattr_set(ex, b"alice.txt", b"trusted.x", b"1", 0, &alice).is_err());
    // mkdir/symlink ownership
    assert_eq!(s.mkdir(ex, b"ad", 0o755, 0, &alice).unwrap().uid, 1000);
    assert_eq!(s.symlink(ex, b"as", b"x", &alice).unwrap().uid, 1000);
}

#[test]
fn authentication() {
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let e = TestEngine::start(Opts { psk: Some(key.into()), insecure: false, ..Default::default() });
    // Right key.
    let (s, ex) = e.mounted(1);
    assert!(s.getattr(ex, b"", false, &Cred::root()).is_ok());
    // Wrong key.
    let bad = ClientConfig::new(e.addr.clone()).with_psk(Psk::parse(&key.replace('0', "1")).unwrap());
    let err = Session::connect(bad, 1).unwrap_err().to_string();
    assert!(err.contains("key"), "{err}");
    assert!(wait_until(std::time::Duration::from_secs(2), || e.log_contains("authentication failed")));
    // No key.
    let err = Session::connect(ClientConfig::new(e.addr.clone()).insecure(), 1).unwrap_err().to_string();
    assert!(err.contains("pre-shared key"), "{err}");
}

#[test]
fn tcp_without_key_needs_the_explicit_test_mode() {
    let d = tempfile::tempdir().unwrap();
    let wl = d.path().join("wl");
    std::fs::write(&wl, "[Mount]\nPath=/tmp\n").unwrap();
    let out = std::process::Command::new(engine_bin())
        .args(["--listen", "tcp:127.0.0.1:0", "--whitelist"])
        .arg(&wl)
        .args(["--lock-file"])
        .arg(d.path().join("l"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--psk-file"));
    // And a client refuses an unauthenticated server unless it opts in too.
    let e = TestEngine::start(Opts::default());
    let err = Session::connect(ClientConfig::new(e.addr.clone()), 1).unwrap_err().to_string();
    assert!(err.contains("unauthenticated"), "{err}");
}
