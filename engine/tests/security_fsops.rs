//! A client holding the key and claiming uid 0 gets no more than the exports and the
//! whitelist give it: SYSMOUNT stays inside exports and touches only its own mounts,
//! device nodes are not opened (nodev) nor made, hard links and handles gain no
//! whitelist rights. (Tests run as root: they mount and make device nodes.)

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use qtfs_client::MountSource as Src;
use qtfs_client::{ClientError, Cred, SetAttr, SetTime};
use qtfs_proto::consts::{self, WlType, open};
use qtfs_testkit::*;

const MS_BIND: u64 = libc::MS_BIND;
const MS_REC: u64 = libc::MS_REC;
const MS_MOVE: u64 = libc::MS_MOVE;
const MS_REMOUNT: u64 = libc::MS_REMOUNT;
const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_SHARED: u64 = libc::MS_SHARED;
const MS_PRIVATE: u64 = libc::MS_PRIVATE;

fn errno<T: std::fmt::Debug>(r: Result<T, ClientError>) -> i32 {
    match r {
        Err(e) => e.errno(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// These tests mount and make device nodes: without root they fail, never pass silently.
fn require_root() {
    // SAFETY: getter.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "security_fsops tests need root (mounts, device nodes); run them as root");
}

/// `/proc/self/mountinfo` unescaped: (mount point, per-mount options), in mount order.
fn mounts() -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let unescape = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\'
                && i + 3 < b.len()
                && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
            {
                out.push(v);
                i += 4;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        PathBuf::from(String::from_utf8(out).unwrap())
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            Some((unescape(f.get(4)?), f.get(5)?.to_string()))
        })
        .collect()
}

/// The options of the topmost mount at `p`, if something is mounted there.
fn mount_at(p: &Path) -> Option<String> {
    mounts().into_iter().rev().find(|(m, _)| m == p).map(|(_, o)| o)
}

fn has_opt(opts: &str, o: &str) -> bool {
    opts.split(',').any(|x| x == o)
}

/// Lazily unmounts everything beneath a directory when dropped (deepest first), before
/// the temporary directory is removed: never remove files through a mount. Declare it
/// after the engine so that it drops first.
struct Unmounts(PathBuf);

impl Drop for Unmounts {
    fn drop(&mut self) {
        let mut under: Vec<PathBuf> = mounts().into_iter().map(|(m, _)| m).filter(|m| m.starts_with(&self.0)).collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in under {
            let c = CString::new(m.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn engine(args: &[&str]) -> (TestEngine, Unmounts) {
    let e = TestEngine::start(Opts { extra_args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() });
    let g = Unmounts(e.dir.path().to_path_buf());
    (e, g)
}

fn mknod_here(p: &Path, mode: u32, major: u32, minor: u32) {
    let c = CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) };
    assert_eq!(r, 0, "mknod {}: {}", p.display(), std::io::Error::last_os_error());
}

// ------------------------------------------------------------------ SYSMOUNT

#[test]
fn sysmount_is_refused_without_allow_sysmount() {
    require_root();
    let (e, _g) = engine(&[]);
    std::fs::create_dir(e.path("t")).unwrap();
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    assert_eq!(errno(s.sysmount(ex, b"t", Src::Literal(b"tmpfs"), b"tmpfs", 0, b"", &r)), libc::EPERM);
    assert!(mount_at(&e.path("t")).is_none());
    assert_eq!(errno(s.sysumount(ex, b"t", 0, &r)), libc::EPERM);
    assert!(wait_until(std::time::Duration::from_secs(5), || e.log_contains("--allow-sysmount")));
}

#[test]
fn sysmount_never_binds_a_host_path() {
    require_root();
    let (e, _g) = engine(&["--allow-sysmount"]);
    let outside = e.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"host secret").unwrap();
    std::fs::create_dir(e.path("m")).unwrap();
    std::fs::create_dir(e.path("inner")).unwrap();
    std::fs::write(e.path("inner/f"), b"inner").unwrap();
    std::os::unix::fs::symlink(&outside, e.path("out")).unwrap();
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    let host = outside.as_os_str().as_encoded_bytes();
    // A literal HOST path as the source of a bind or move.
    for flags in [MS_BIND, MS_BIND | MS_REC, MS_MOVE] {
        assert_eq!(errno(s.sysmount(ex, b"m", Src::Literal(host), b"", flags, b"", &r)), libc::EPERM, "{flags:#x}");
    }
    // A path source that leaves the export.
    assert_eq!(errno(s.sysmount(ex, b"m", Src::Path(b"../outside"), b"", MS_BIND, b"", &r)), libc::EINVAL);
    assert!(s.sysmount(ex, b"m", Src::Path(b"out"), b"", MS_BIND, b"", &r).is_err(), "symlink to the HOST path");
    // A literal HOST path as the source of a file system that takes a device.
    assert_eq!(errno(s.sysmount(ex, b"m", Src::Literal(host), b"ext4", 0, b"", &r)), libc::EPERM);
    assert!(mount_at(&e.path("m")).is_none(), "nothing mounted");
    assert_eq!(errno(s.open(ex, b"m/secret", open::RDONLY, 0, &r)), libc::ENOENT);
    // Inside the export, a bind works and can be undone.
    s.sysmount(ex, b"m", Src::Path(b"inner"), b"", MS_BIND, b"", &r).unwrap();
    let (h, _) = s.open(ex, b"m/f", open::RDONLY, 0, &r).unwrap();
    assert_eq!(s.read(h, 0, 16).unwrap(), b"inner");
    s.close_handle(h).unwrap();
    s.sysumount(ex, b"m", 0, &r).unwrap();
    assert!(mount_at(&e.path("m")).is_none());
}

#[test]
fn sysmount_special_file_systems_get_safe_flags() {
    require_root();
    let (e, _g) = engine(&["--allow-sysmount"]);
    for d in ["t", "pts", "x"] {
        std::fs::create_dir(e.path(d)).unwrap();
    }
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    s.sysmount(ex, b"t", Src::Literal(b"whatever"), b"tmpfs", 0, b"size=1m,mode=0755", &r).unwrap();
    let o = mount_at(&e.path("t")).expect("tmpfs mounted");
    for f in ["nosuid", "nodev", "noexec"] {
        assert!(has_opt(&o, f), "tmpfs without {f}: {o}");
    }
    // A bind-style remount cannot drop them.
    s.sysmount(ex, b"t", Src::Literal(b""), b"", MS_REMOUNT | MS_BIND, b"", &r).unwrap();
    let o = mount_at(&e.path("t")).unwrap();
    assert!(has_opt(&o, "nosuid") && has_opt(&o, "nodev") && has_opt(&o, "noexec"), "after remount: {o}");
    s.sysmount(ex, b"pts", Src::Literal(b"devpts"), b"devpts", 0, b"", &r).unwrap();
    let o = mount_at(&e.path("pts")).expect("devpts mounted");
    assert!(has_opt(&o, "nosuid") && has_opt(&o, "noexec") && !has_opt(&o, "nodev"), "devpts: {o}");
    // Other file system types, and options that would pick a source.
    assert_eq!(errno(s.sysmount(ex, b"x", Src::Literal(b""), b"bpf", 0, b"", &r)), libc::EPERM);
    assert_eq!(errno(s.sysmount(ex, b"x", Src::Literal(b""), b"ramfs", 0, b"", &r)), libc::EPERM);
    assert_eq!(errno(s.sysmount(ex, b"x", Src::Literal(b""), b"tmpfs", 0, b"source=/etc", &r)), libc::EINVAL);
    assert!(mount_at(&e.path("x")).is_none());
    s.sysumount(ex, b"pts", 0, &r).unwrap();
    s.sysumount(ex, b"t", libc::MNT_DETACH as u32, &r).unwrap();
    assert!(mount_at(&e.path("t")).is_none() && mount_at(&e.path("pts")).is_none());
}

#[test]
fn sysmount_changes_only_mounts_it_made() {
    require_root();
    let (e, _g) = engine(&["--allow-sysmount"]);
    for d in ["host", "q", "m2", "inner", "b"] {
        std::fs::create_dir(e.path(d)).unwrap();
    }
    // A HOST mount inside the export, made by the HOST (here: the test).
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "hosttmp"])
        .arg(e.path("host"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(e.path("host/keep"), b"k").unwrap();
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    assert_eq!(errno(s.sysumount(ex, b"host", 0, &r)), libc::EPERM);
    assert_eq!(errno(s.sysumount(ex, b"host", libc::MNT_DETACH as u32, &r)), libc::EPERM);
    assert_eq!(errno(s.sysmount(ex, b"host", Src::Literal(b""), b"", MS_REMOUNT | MS_RDONLY, b"", &r)), libc::EPERM);
    assert_eq!(
        errno(s.sysmount(ex, b"host", Src::Literal(b""), b"", MS_REMOUNT | MS_BIND | MS_RDONLY, b"", &r)),
        libc::EPERM
    );
    assert_eq!(errno(s.sysmount(ex, b"host", Src::Literal(b""), b"", MS_SHARED, b"", &r)), libc::EPERM);
    assert_eq!(errno(s.sysmount(ex, b"m2", Src::Path(b"host"), b"", MS_MOVE, b"", &r)), libc::EPERM);
    // The export root is a HOST mount point's directory too (or on one): untouched.
    assert_eq!(errno(s.sysmount(ex, b"", Src::Literal(b""), b"", MS_REMOUNT | MS_RDONLY, b"", &r)), libc::EPERM);
    let o = mount_at(&e.path("host")).expect("HOST mount still there");
    assert!(has_opt(&o, "rw"), "{o}");
    assert_eq!(std::fs::read(e.path("host/keep")).unwrap(), b"k");
    // Its own mounts: propagation (not recursive), move, unmount.
    s.sysmount(ex, b"q", Src::Literal(b""), b"tmpfs", 0, b"", &r).unwrap();
    s.sysmount(ex, b"q", Src::Literal(b""), b"", MS_PRIVATE, b"", &r).unwrap();
    assert_eq!(errno(s.sysmount(ex, b"q", Src::Literal(b""), b"", MS_SHARED | MS_REC, b"", &r)), libc::EPERM);
    s.sysmount(ex, b"m2", Src::Path(b"q"), b"", MS_MOVE, b"", &r).unwrap();
    assert!(mount_at(&e.path("q")).is_none() && mount_at(&e.path("m2")).is_some());
    s.sysumount(ex, b"m2", 0, &r).unwrap();
    assert!(mount_at(&e.path("m2")).is_none());
    // A bind mount's superblock is the HOST's: per-mount remounts only.
    s.sysmount(ex, b"b", Src::Path(b"inner"), b"", MS_BIND, b"", &r).unwrap();
    assert_eq!(errno(s.sysmount(ex, b"b", Src::Literal(b""), b"", MS_REMOUNT | MS_RDONLY, b"", &r)), libc::EPERM);
    s.sysmount(ex, b"b", Src::Literal(b""), b"", MS_REMOUNT | MS_BIND | MS_RDONLY, b"", &r).unwrap();
    assert!(has_opt(&mount_at(&e.path("b")).unwrap(), "ro"));
    s.sysumount(ex, b"b", 0, &r).unwrap();
    assert!(mount_at(&e.path("host")).is_some(), "the HOST mount outlived everything");
}

#[test]
fn sysmount_bind_gains_no_whitelist_rights() {
    require_root();
    let e = TestEngine::start(Opts {
        groups: Some(vec!["Open", "Read", "Readdir"]),
        extra_args: vec!["--allow-sysmount".into()],
        ..Default::default()
    });
    let _g = Unmounts(e.dir.path().to_path_buf());
    let rw = format!("{}/rw", e.export.display());
    let mut a = qtfs_client::AdminClient::connect(&e.admin).unwrap();
    for t in [WlType::Write, WlType::Create, WlType::Setattr] {
        a.call(
            qtfs_proto::Op::ADMIN_WL_ADD,
            &qtfs_proto::WlAddReq { wl_type: t as u32, flags: 0, path: qtfs_proto::Path(rw.as_bytes()) },
        )
        .unwrap();
    }
    std::fs::create_dir_all(e.path("ro")).unwrap();
    std::fs::write(e.path("ro/f"), b"ro").unwrap();
    std::fs::create_dir_all(e.path("rw/m")).unwrap();
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    assert_eq!(errno(s.sysmount(ex, b"rw/m", Src::Path(b"ro"), b"", MS_BIND, b"", &r)), libc::EACCES);
    assert!(mount_at(&e.path("rw/m")).is_none());
    assert!(wait_until(std::time::Duration::from_secs(5), || e.log_contains("denied by whitelist")));
}

// ------------------------------------------------------------------ devices

#[test]
fn mknod_makes_fifos_and_sockets_not_devices() {
    require_root();
    let (e, _g) = engine(&[]);
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    assert_eq!(errno(s.mknod(ex, b"kmsg", libc::S_IFCHR | 0o666, 0, 1, 11, &r)), libc::EPERM);
    assert_eq!(errno(s.mknod(ex, b"disk", libc::S_IFBLK | 0o666, 0, 8, 0, &r)), libc::EPERM);
    assert!(!exists(&e.path("kmsg")) && !exists(&e.path("disk")));
    // What libvirt and qtfs-fuse need.
    assert_eq!(s.mknod(ex, b"fifo", libc::S_IFIFO | 0o600, 0, 0, 0, &r).unwrap().mode & libc::S_IFMT, libc::S_IFIFO);
    assert_eq!(s.mknod(ex, b"sock", libc::S_IFSOCK | 0o600, 0, 0, 0, &r).unwrap().mode & libc::S_IFMT, libc::S_IFSOCK);
    assert_eq!(s.mknod(ex, b"reg", libc::S_IFREG | 0o600, 0, 0, 0, &r).unwrap().mode & libc::S_IFMT, libc::S_IFREG);
    let (h, _) = s.open(ex, b"fifo", open::RDWR | open::NONBLOCK, 0, &r).unwrap();
    s.close_handle(h).unwrap();
    // The operator may allow making nodes; opening them is another matter.
    let (e2, _g2) = engine(&["--allow-mknod-devices"]);
    let (s2, ex2) = e2.mounted(1);
    s2.mknod(ex2, b"zero", libc::S_IFCHR | 0o666, 0, 1, 5, &r).unwrap();
    assert_eq!(errno(s2.open(ex2, b"zero", open::RDONLY, 0, &r)), libc::EACCES);
}

#[test]
fn device_nodes_in_an_export_are_not_opened() {
    require_root();
    let (e, _g) = engine(&[]);
    mknod_here(&e.path("zero"), libc::S_IFCHR | 0o666, 1, 5);
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    let user = Cred::new(1000, 1000, vec![]);
    for c in [&r, &user] {
        assert_eq!(errno(s.open(ex, b"zero", open::RDONLY, 0, c)), libc::EACCES);
        assert_eq!(errno(s.open(ex, b"zero", open::RDWR, 0, c)), libc::EACCES);
        assert_eq!(errno(s.create(ex, b"zero", open::RDONLY, 0o644, 0, true, c)), libc::EACCES, "CREATE of it");
    }
    assert_eq!(errno(s.create(ex, b"zero", open::WRONLY | open::EXCL, 0o644, 0, true, &r)), libc::EEXIST);
    assert_eq!(errno(s.setattr(ex, b"zero", &SetAttr { size: Some(0), ..Default::default() }, &r)), libc::EACCES);
    // Through a symlink too.
    std::os::unix::fs::symlink("zero", e.path("z")).unwrap();
    assert_eq!(errno(s.open(ex, b"z", open::RDONLY, 0, &r)), libc::EACCES);
    // Looking at it is fine.
    assert_eq!(s.getattr(ex, b"zero", false, &r).unwrap().mode & libc::S_IFMT, libc::S_IFCHR);
    assert!(wait_until(std::time::Duration::from_secs(5), || e.log_contains("--allow-devices")));
}

#[test]
fn allow_devices_names_what_may_be_opened() {
    require_root();
    // The export path is not known before start: allow null anywhere, and zero only
    // beneath a prefix that does not hold it.
    let (e, _g) = engine(&["--allow-devices", "*:c:1:3", "--allow-devices", "/nonexistent-qtfs:c:1:5"]);
    mknod_here(&e.path("null"), libc::S_IFCHR | 0o666, 1, 3);
    mknod_here(&e.path("zero"), libc::S_IFCHR | 0o666, 1, 5);
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    let (h, _) = s.open(ex, b"null", open::RDWR, 0, &r).unwrap();
    assert_eq!(s.write(h, 0, b"x").unwrap(), 1);
    assert!(s.read(h, 0, 16).unwrap().is_empty());
    s.close_handle(h).unwrap();
    assert_eq!(errno(s.open(ex, b"zero", open::RDONLY, 0, &r)), libc::EACCES);
    // Block devices are a different kind.
    mknod_here(&e.path("blk"), libc::S_IFBLK | 0o600, 1, 3);
    assert_eq!(errno(s.open(ex, b"blk", open::RDONLY, 0, &r)), libc::EACCES);
}

#[test]
fn allow_devices_prefix_is_a_path_prefix() {
    require_root();
    // A directory outside the harness's temporary directory whose path is known first.
    let base = tempfile::tempdir().unwrap();
    let base_path = base.path().canonicalize().unwrap();
    let okdir = base_path.join("ok");
    std::fs::create_dir(&okdir).unwrap();
    std::fs::create_dir(base_path.join("no")).unwrap();
    mknod_here(&okdir.join("null"), libc::S_IFCHR | 0o666, 1, 3);
    mknod_here(&base_path.join("no/null"), libc::S_IFCHR | 0o666, 1, 3);
    let spec = format!("{}:c:1:3", okdir.display());
    let e = TestEngine::start(Opts {
        extra_args: vec!["--allow-devices".into(), spec],
        extra_wl: format!(
            "[Mount]\nPath={b}\n[Open]\nPath={b}\n[Read]\nPath={b}\n[Write]\nPath={b}\n",
            b = base_path.display()
        ),
        ..Default::default()
    });
    let s = e.session(1);
    let r = Cred::root();
    let (ex, _) = s.mount(base_path.to_str().unwrap(), &r).unwrap();
    let (h, _) = s.open(ex, b"ok/null", open::RDONLY, 0, &r).unwrap();
    s.close_handle(h).unwrap();
    assert_eq!(errno(s.open(ex, b"no/null", open::RDONLY, 0, &r)), libc::EACCES);
}

// ------------------------------------------------------------------ links and handles

/// An engine whose export has a read-only area (`ro`: Open, Read, Readdir) and a
/// writable one (`rw`: every group).
fn ro_rw() -> TestEngine {
    let e = TestEngine::start(Opts { groups: Some(vec!["Open", "Read", "Readdir"]), ..Default::default() });
    let rw = format!("{}/rw", e.export.display());
    let mut a = qtfs_client::AdminClient::connect(&e.admin).unwrap();
    // Every file-system group but the three the whole export has (not Mount, Kill, Udsconnect).
    let fs_groups = WlType::ALL.into_iter().take_while(|t| *t != WlType::Mount);
    for t in fs_groups.filter(|t| !matches!(t, WlType::Open | WlType::Read | WlType::Readdir)) {
        a.call(
            qtfs_proto::Op::ADMIN_WL_ADD,
            &qtfs_proto::WlAddReq { wl_type: t as u32, flags: 0, path: qtfs_proto::Path(rw.as_bytes()) },
        )
        .unwrap();
    }
    std::fs::create_dir(e.path("ro")).unwrap();
    std::fs::create_dir(e.path("rw")).unwrap();
    std::fs::write(e.path("ro/f"), b"read only").unwrap();
    std::fs::set_permissions(e.path("ro/f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(e.path("rw/g"), b"writable").unwrap();
    e
}

#[test]
fn hard_links_gain_no_whitelist_rights() {
    let e = ro_rw();
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    assert_eq!(errno(s.open(ex, b"ro/f", open::WRONLY, 0, &r)), libc::EACCES);
    assert_eq!(errno(s.link(ex, b"ro/f", b"rw/l", &r)), libc::EACCES);
    assert!(!exists(&e.path("rw/l")));
    assert!(wait_until(std::time::Duration::from_secs(5), || e.log_contains("LINK denied by whitelist")));
    // Had it worked, this would have written the read-only file.
    assert!(s.open(ex, b"rw/l", open::WRONLY, 0, &r).is_err());
    assert_eq!(std::fs::read(e.path("ro/f")).unwrap(), b"read only");
    // Within one area, links work as before.
    s.link(ex, b"rw/g", b"rw/g2", &r).unwrap();
    assert_eq!(std::fs::metadata(e.path("rw/g")).unwrap().nlink(), 2);
}

#[test]
fn handle_setattr_needs_setattr() {
    let e = ro_rw();
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    let before = std::fs::metadata(e.path("ro/f")).unwrap();
    let (h, _) = s.open(ex, b"ro/f", open::RDONLY, 0, &r).unwrap();
    let sets = [
        SetAttr { mode: Some(0o777), ..Default::default() },
        SetAttr { uid: Some(4321), gid: Some(4321), ..Default::default() },
        SetAttr { mtime: Some(SetTime::At(1_000_000, 0)), atime: Some(SetTime::Now), ..Default::default() },
        SetAttr { size: Some(0), ..Default::default() },
    ];
    for set in &sets {
        assert_eq!(errno(s.fsetattr(h, set, &r)), libc::EACCES, "{set:?}");
    }
    // chattr through a handle is attribute setting too.
    assert_eq!(errno(s.ioctl(h, consts::ioc::FS_SETFLAGS, &0u32.to_le_bytes())), libc::EACCES);
    let after = std::fs::metadata(e.path("ro/f")).unwrap();
    assert_eq!(
        (after.mode(), after.uid(), after.gid(), after.mtime(), after.len()),
        (before.mode(), before.uid(), before.gid(), before.mtime(), before.len())
    );
    // Where [Setattr] allows it, the handle form works.
    let (h2, _) = s.open(ex, b"rw/g", open::RDONLY, 0, &r).unwrap();
    assert_eq!(s.fsetattr(h2, &sets[0], &r).unwrap().mode & 0o7777, 0o777);
}

#[test]
fn handle_operations_follow_the_whitelist_now() {
    // A handle opened for writing keeps no right the whitelist has since withdrawn.
    let e = TestEngine::start(Opts::default());
    std::fs::write(e.path("f"), b"0123456789").unwrap();
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    let (h, _) = s.open(ex, b"f", open::RDWR, 0, &r).unwrap();
    s.fallocate(h, 0, 0, 4096).unwrap();
    s.fsetattr(h, &SetAttr { mode: Some(0o600), ..Default::default() }, &r).unwrap();
    let mut a = qtfs_client::AdminClient::connect(&e.admin).unwrap();
    for t in [WlType::Write, WlType::Setattr] {
        a.call(qtfs_proto::Op::ADMIN_WL_DEL, &qtfs_proto::WlDelReq { wl_type: t as u32, index: 0, flags: 0 }).unwrap();
    }
    assert!(wait_until(std::time::Duration::from_secs(5), || {
        s.fallocate(h, 0, 0, 8192).err().map(|e| e.errno()) == Some(libc::EACCES)
    }));
    assert_eq!(errno(s.fsetattr(h, &SetAttr { mode: Some(0o666), ..Default::default() }, &r)), libc::EACCES);
    assert_eq!(errno(s.write(h, 0, b"x")), libc::EACCES);
    assert_eq!(s.read(h, 0, 4).unwrap(), b"0123", "[Read] still allows reading");
    assert_eq!(std::fs::metadata(e.path("f")).unwrap().len(), 4096);
    assert_eq!(std::fs::metadata(e.path("f")).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn create_of_existing_names_opens_them_as_open_does() {
    let e = ro_rw();
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    // An existing regular file: opened (no O_EXCL), refused with it.
    let (h, _) = s.create(ex, b"rw/g", open::RDWR, 0o644, 0, true, &r).unwrap();
    assert_eq!(s.read(h, 0, 8).unwrap(), b"writable");
    assert_eq!(errno(s.create(ex, b"rw/g", open::RDWR | open::EXCL, 0o644, 0, true, &r)), libc::EEXIST);
    // Without open: its attributes.
    assert_eq!(s.create(ex, b"rw/g", open::WRONLY, 0o644, 0, false, &r).unwrap().1.size, 8);
    // A symlink in the writable area to a read-only file gives no write access.
    std::os::unix::fs::symlink("../ro/f", e.path("rw/lnk")).unwrap();
    assert_eq!(errno(s.create(ex, b"rw/lnk", open::WRONLY, 0o644, 0, true, &r)), libc::EACCES);
    assert_eq!(std::fs::read(e.path("ro/f")).unwrap(), b"read only");
    // An existing FIFO (libvirt's): opened.
    s.mknod(ex, b"rw/fifo", libc::S_IFIFO | 0o600, 0, 0, 0, &r).unwrap();
    let (h, a) = s.create(ex, b"rw/fifo", open::RDWR | open::NONBLOCK, 0o600, 0, true, &r).unwrap();
    assert_eq!(a.mode & libc::S_IFMT, libc::S_IFIFO);
    s.close_handle(h).unwrap();
    // New files as before.
    let (h, a) = s.create(ex, b"rw/new", open::WRONLY, 0o640, 0, true, &r).unwrap();
    assert_eq!(a.mode & 0o777, 0o640);
    assert_eq!(s.write(h, 0, b"n").unwrap(), 1);
}

#[test]
fn help_documents_the_new_flags() {
    let out = std::process::Command::new(engine_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for f in ["--allow-sysmount", "--allow-mknod-devices", "--allow-devices <SPEC>", "DEVICES AND MOUNTS", "hard link"]
    {
        assert!(help.contains(f), "--help lacks {f}");
    }
    let d = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(engine_bin())
        .args(["--listen", "unix:/nonexistent-qtfs/x", "--allow-devices", "c:1:3", "--lock-file"])
        .arg(d.path().join("l"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PREFIX:KIND:MAJOR:MINOR"));
}
