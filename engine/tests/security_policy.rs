//! The operator's security policy against a DPU that holds the key and claims anything:
//! identity maps and allowed id ranges (file requests and channel connects), the opt-ins
//! for process control and its limit to processes started through rexec_server, which
//! listeners may run without a key, and a unix-socket connect that can never be raced
//! out of `[Udsconnect]`.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use qtfs_client::{ClientError, Cred, Session, SetAttr};
use qtfs_proto::consts::{self, open};
use qtfs_proto::*;
use qtfs_testkit::*;

fn errno<T: std::fmt::Debug>(r: Result<T, ClientError>) -> i32 {
    match r {
        Err(e) => e.errno(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn bytes(p: &FsPath) -> Vec<u8> {
    p.as_os_str().as_encoded_bytes().to_vec()
}

/// Lets other users reach the export (the harness's temporary directory is 0700).
fn open_up(e: &TestEngine) {
    std::fs::set_permissions(e.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&e.export, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// CHAN_OPEN of a stream channel with the given claimed identity; Ok(()) once accepted.
fn chan_open(s: &Session, id: u32, path: &[u8], uid: u32, gid: u32, groups: &[u32]) -> Result<(), i32> {
    let m = ChanOpenReq {
        kind: consts::CHAN_STREAM,
        credit: 65536,
        listener: 0,
        uid,
        gid,
        groups: Groups::Ids(groups),
        path: Path(path),
    };
    match s.submit_on_channel(0, Op::CHAN_OPEN, id, &m).unwrap().wait() {
        Ok(_) => Ok(()),
        Err(e) => Err(e.errno()),
    }
}

fn chan_close(s: &Session, id: u32) {
    let m = ChanClose { how: consts::CHAN_CLOSE_ALL, error: 0 };
    s.conn(0).send(FrameHeader::message(Op::CHAN_CLOSE, id, 0), &m.to_vec()).unwrap();
}

/// `SO_PEERCRED` of a connected unix socket: (uid, gid).
fn peer_cred(fd: &impl AsRawFd) -> (u32, u32) {
    // SAFETY: ucred is plain data.
    let mut c: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: c/len describe a writable ucred of the size passed.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut c as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    assert_eq!(r, 0, "SO_PEERCRED: {}", std::io::Error::last_os_error());
    (c.uid, c.gid)
}

/// A listening socket anyone may connect to.
fn world_listener(path: &FsPath) -> UnixListener {
    let l = UnixListener::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    l
}

// ------------------------------------------------------------------ identities

#[test]
fn ids_outside_the_allowed_ranges_are_refused_with_eperm() {
    let e = TestEngine::start(Opts {
        extra_args: ["--allow-uids", "1000-1999", "--allow-gids", "1000-1499,1600"].map(String::from).to_vec(),
        ..Default::default()
    });
    open_up(&e);
    let s = e.session(1);
    let export = e.export.to_str().unwrap();
    assert_eq!(errno(s.mount(export, &Cred::root())), libc::EPERM, "DPU root is outside the range");
    let ok = Cred::new(1500, 1200, vec![1300, 1600]);
    let (ex, _) = s.mount(export, &ok).unwrap();
    s.create(ex, b"mine", open::WRONLY, 0o644, 0, false, &ok).unwrap();
    assert_eq!(std::fs::metadata(e.path("mine")).unwrap().uid(), 1500);
    for bad in [
        Cred::root(),
        Cred::new(2000, 1200, vec![]),
        Cred::new(1500, 0, vec![]),
        Cred::new(1500, 1200, vec![1300, 0]),
        Cred::new(1500, 1500, vec![]),
    ] {
        assert_eq!(errno(s.getattr(ex, b"mine", false, &bad)), libc::EPERM, "{bad:?}");
        assert_eq!(errno(s.create(ex, b"theirs", open::WRONLY, 0o644, 0, false, &bad)), libc::EPERM, "{bad:?}");
    }
    assert!(!exists(&e.path("theirs")));
    // Channels: the same policy.
    let sock = e.path("srv.sock");
    let _l = world_listener(&sock);
    assert_eq!(chan_open(&s, 1, &bytes(&sock), 0, 0, &[]), Err(libc::EPERM));
    assert_eq!(chan_open(&s, 2, &bytes(&sock), 1500, 1200, &[7]), Err(libc::EPERM));
    chan_open(&s, 3, &bytes(&sock), 1500, 1200, &[]).unwrap();
}

#[test]
fn mapped_ids_apply_to_files_and_channel_connects() {
    let e = TestEngine::start(Opts {
        extra_args: ["--map-uid", "0=1234", "--map-gid", "0=2345", "--map-gid", "10=3456", "--map-uid", "5=6"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    });
    open_up(&e);
    let s = e.session(1);
    let root = Cred::new(0, 0, vec![10]);
    let (ex, _) = s.mount(e.export.to_str().unwrap(), &root).unwrap();
    let (_, a) = s.create(ex, b"f", open::WRONLY, 0o640, 0, false, &root).unwrap();
    let m = std::fs::metadata(e.path("f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 2345), "DPU root acts as HOST 1234:2345");
    assert_eq!((a.uid, a.gid), (1234, 2345));
    // Mapped supplementary group 10 → 3456 grants what 3456 may do, and nothing of root.
    std::fs::create_dir(e.path("g")).unwrap();
    std::os::unix::fs::chown(e.path("g"), Some(1), Some(3456)).unwrap();
    std::fs::set_permissions(e.path("g"), std::fs::Permissions::from_mode(0o770)).unwrap();
    s.create(ex, b"g/ok", open::WRONLY, 0o644, 0, false, &root).unwrap();
    assert_eq!(errno(s.create(ex, b"g/no", open::WRONLY, 0o644, 0, false, &Cred::new(0, 0, vec![]))), libc::EACCES);
    std::fs::write(e.path("secret"), b"root only").unwrap();
    std::fs::set_permissions(e.path("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(errno(s.open(ex, b"secret", open::RDONLY, 0, &root)), libc::EACCES, "no longer HOST root");
    // An unmapped id passes unchanged.
    s.create(ex, b"u", open::WRONLY, 0o644, 0, false, &Cred::new(77, 77, vec![])).unwrap();
    assert_eq!(std::fs::metadata(e.path("u")).unwrap().uid(), 77);
    // A channel connect: the HOST server sees the mapped ids.
    let sock = e.path("cred.sock");
    let l = world_listener(&sock);
    chan_open(&s, 1, &bytes(&sock), 0, 0, &[10]).unwrap();
    let (c, _) = l.accept().unwrap();
    assert_eq!(peer_cred(&c), (1234, 2345));
    chan_open(&s, 2, &bytes(&sock), 5, 10, &[]).unwrap();
    let (c, _) = l.accept().unwrap();
    assert_eq!(peer_cred(&c), (6, 3456));
}

#[test]
fn root_squash_applies_after_mapping() {
    let e = TestEngine::start(Opts {
        extra_args: ["--root-squash", "--map-uid", "7=0"].map(String::from).to_vec(),
        ..Default::default()
    });
    open_up(&e);
    let s = e.session(1);
    let c = Cred::new(7, 7, vec![]);
    let (ex, _) = s.mount(e.export.to_str().unwrap(), &c).unwrap();
    s.create(ex, b"f", open::WRONLY, 0o644, 0, false, &c).unwrap();
    let m = std::fs::metadata(e.path("f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534), "a map to 0 is squashed too");
}

fn assert_root() {
    // SAFETY: getter.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test acts as other users on the HOST: run it as root");
}

fn owner(p: &FsPath) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.uid(), m.gid())
}

/// `--export-policy` like /etc/exports: one session mounts `squashed` (root squashed, uids
/// 1000-1999 and nobody only), `open` (no policy: ids pass unchanged) and `mapped` (no
/// policy of its own: the engine-wide `--map-uid 0=1234`). Every request is translated by
/// the policy of the export it names, handle-based SETATTR by the export it was opened in.
#[test]
fn each_export_has_its_own_identity_policy() {
    assert_root();
    let t = tempfile::tempdir().unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let top = t.path().canonicalize().unwrap();
    for d in ["squashed", "squashed/sub", "open", "mapped"] {
        std::fs::create_dir(top.join(d)).unwrap();
        std::fs::set_permissions(top.join(d), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mut wl = format!("[Mount]\nPath={}\n", top.display());
    for g in ALL_GROUPS.iter().filter(|g| !matches!(**g, "Mount" | "Kill")) {
        wl.push_str(&format!("[{g}]\nPath={}\n", top.display()));
    }
    let squashed = top.join("squashed");
    let e = TestEngine::start(Opts {
        extra_args: vec![
            "--map-uid".into(),
            "0=1234".into(),
            "--map-gid".into(),
            "0=2345".into(),
            "--export-policy".into(),
            format!("{}:root-squash,allow-uids=1000-1999,65534,allow-gids=1000-1999,65534", squashed.display()),
            "--export-policy".into(),
            format!("{}/open/:none", top.display()),
        ],
        extra_wl: wl,
        ..Default::default()
    });
    let s = e.session(1);
    let root = Cred::root();
    let mount = |d: &str| s.mount(top.join(d).to_str().unwrap(), &root);
    let (sq, _) = mount("squashed").unwrap();
    let (op, _) = mount("open").unwrap();
    let (mp, _) = mount("mapped").unwrap();

    // Squashed: DPU root acts as nobody; ids outside the ranges are refused.
    s.create(sq, b"by_root", open::WRONLY, 0o666, 0, false, &root).unwrap();
    assert_eq!(owner(&squashed.join("by_root")), (65534, 65534), "root squashed on this export");
    let user = Cred::new(1500, 1500, vec![]);
    s.create(sq, b"by_user", open::WRONLY, 0o666, 0, false, &user).unwrap();
    assert_eq!(owner(&squashed.join("by_user")), (1500, 1500));
    let outsider = Cred::new(3000, 3000, vec![]);
    assert_eq!(errno(s.create(sq, b"by_3000", open::WRONLY, 0o644, 0, false, &outsider)), libc::EPERM);
    assert!(!exists(&squashed.join("by_3000")));
    // A handle of the squashed export keeps its policy, though SETATTR by handle names no
    // export: uid 3000 owns the file on the HOST, but may not act on this export at all.
    std::os::unix::fs::chown(squashed.join("by_user"), Some(3000), Some(3000)).unwrap();
    let (h, _) = s.open(sq, b"by_user", open::RDWR, 0, &user).unwrap();
    let chmod = SetAttr { mode: Some(0o600), ..Default::default() };
    assert_eq!(errno(s.fsetattr(h, &chmod, &outsider)), libc::EPERM, "handle SETATTR uses the export's policy");
    assert_eq!(std::fs::metadata(squashed.join("by_user")).unwrap().permissions().mode() & 0o777, 0o666);
    // A directory beneath a policy's path gets that policy.
    let (sub, _) = mount("squashed/sub").unwrap();
    s.create(sub, b"f", open::WRONLY, 0o644, 0, false, &root).unwrap();
    assert_eq!(owner(&squashed.join("sub/f")), (65534, 65534), "a subdirectory export is squashed too");

    // Open (policy none): ids as claimed, root included, in the same session.
    s.create(op, b"by_root", open::WRONLY, 0o644, 0, false, &root).unwrap();
    assert_eq!(owner(&top.join("open/by_root")), (0, 0), "no squash on this export");
    s.create(op, b"by_3000", open::WRONLY, 0o644, 0, false, &outsider).unwrap();
    assert_eq!(owner(&top.join("open/by_3000")), (3000, 3000), "no range on this export");
    // A handle opened there chowns as HOST root (the engine-wide map would make it 1234).
    let (h, _) = s.open(op, b"by_3000", open::RDWR, 0, &outsider).unwrap();
    s.fsetattr(h, &SetAttr { uid: Some(4321), ..Default::default() }, &root).unwrap();
    assert_eq!(owner(&top.join("open/by_3000")).0, 4321);

    // Mapped (no policy of its own): the engine-wide flags.
    s.create(mp, b"by_root", open::WRONLY, 0o644, 0, false, &root).unwrap();
    assert_eq!(owner(&top.join("mapped/by_root")), (1234, 2345), "engine-wide --map-uid/--map-gid");

    // The directory above them would reach both with the engine-wide policy: refused.
    assert_eq!(errno(s.mount(top.to_str().unwrap(), &root)), libc::EACCES);
    assert!(e.log_contains("holds an --export-policy directory"), "the refusal says why");
}

#[test]
fn help_documents_export_policies() {
    let out = Command::new(engine_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for f in ["--export-policy <PATH:OPTIONS>", "Per export, like /etc/exports", "root-squash", "allow-uids=RANGES"] {
        assert!(help.contains(f), "--help lacks {f}");
    }
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(engine_bin())
        .args(["--listen", "unix:/nonexistent-qtfs/x", "--export-policy", "/srv:squash", "--lock-file"])
        .arg(d.path().join("l"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad policy stops the engine");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option \"squash\""));
}

/// IOCTL carries no identity: it runs as the user who opened the handle, never with the
/// identity the engine's worker thread last acted as. FS_IOC_SETFLAGS needs the file's
/// owner (or CAP_FOWNER), so it tells who the ioctl ran as.
#[test]
fn ioctl_runs_as_the_handle_opener() {
    assert_root();
    const FS_NODUMP_FL: u32 = 0x40;
    let e = TestEngine::start(Opts::default());
    open_up(&e);
    let s = e.session(1);
    let root = Cred::root();
    let (ex, _) = s.mount(e.export.to_str().unwrap(), &root).unwrap();
    let f = e.path("theirs");
    std::fs::write(&f, b"x").unwrap();
    std::os::unix::fs::chown(&f, Some(2000), Some(2000)).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let flags_of = |h: u64| -> u32 {
        let b = s.ioctl(h, consts::ioc::FS_GETFLAGS, &[]).unwrap();
        u32::from_le_bytes(b.as_slice().try_into().unwrap())
    };
    let user = Cred::new(1000, 1000, vec![]);
    let (h_user, _) = s.open(ex, b"theirs", open::RDWR, 0, &user).unwrap();
    let flags = flags_of(h_user);
    assert_eq!(flags & FS_NODUMP_FL, 0);
    // A root request first: the worker thread is left acting as HOST root.
    s.getattr(ex, b"theirs", false, &root).unwrap();
    let set = |h: u64, v: u32| s.ioctl(h, consts::ioc::FS_SETFLAGS, &v.to_le_bytes());
    assert_eq!(errno(set(h_user, flags | FS_NODUMP_FL)), libc::EPERM, "uid 1000 does not own the file");
    assert_eq!(flags_of(h_user) & FS_NODUMP_FL, 0);
    // The owner's handle may.
    let own = Cred::new(2000, 2000, vec![]);
    let (h_own, _) = s.open(ex, b"theirs", open::RDONLY, 0, &own).unwrap();
    s.getattr(ex, b"theirs", false, &user).unwrap();
    set(h_own, flags | FS_NODUMP_FL).unwrap();
    assert_ne!(flags_of(h_own) & FS_NODUMP_FL, 0);
    // ...and after a request of the owner's, the other user's handle still may not.
    s.getattr(ex, b"theirs", false, &own).unwrap();
    assert_eq!(errno(set(h_user, flags)), libc::EPERM, "not with the owner's identity either");
    assert_ne!(flags_of(h_user) & FS_NODUMP_FL, 0);
    // A handle opened by root acts as root.
    let (h_root, _) = s.open(ex, b"theirs", open::RDONLY, 0, &root).unwrap();
    s.getattr(ex, b"theirs", false, &user).unwrap();
    set(h_root, flags).unwrap();
    assert_eq!(flags_of(h_root) & FS_NODUMP_FL, 0);
}

/// Runs `sh -c script path` locally as uid:gid 1000 (no supplementary groups): the
/// reference for what the same change through qtfs must do.
fn local_as_user(script: &str, path: &FsPath) {
    use std::os::unix::process::CommandExt;
    let st = Command::new("sh").args(["-c", script, "sh"]).arg(path).uid(1000).gid(1000).status().unwrap();
    assert!(st.success(), "local {script:?} as uid 1000");
}

/// Data operations on a handle act as whoever opened it, as IOCTL does: a WRITE or
/// FALLOCATE through a user's handle clears setuid/setgid as the same change made locally
/// by that user does (with the engine's CAP_FSETID they stayed: a DPU user could modify a
/// setuid-root program and keep it setuid), and through root's handle keeps them (root
/// has CAP_FSETID). Each change follows a request of the other identity, so the identity
/// the worker thread was left in cannot decide it.
fn handle_writes_act_as_the_opener(tmpfs: bool) {
    assert_root();
    let e = TestEngine::start(Opts { tmpfs, ..Default::default() });
    open_up(&e);
    let s = e.session(1);
    let root = Cred::root();
    let user = Cred::new(1000, 1000, vec![]);
    let (ex, _) = s.mount(e.export.to_str().unwrap(), &root).unwrap();
    let mode = |n: &str| std::fs::metadata(e.path(n)).unwrap().permissions().mode() & 0o7777;
    // A root-owned setuid/setgid file anyone may write.
    let setid = |n: &str| {
        std::fs::write(e.path(n), b"x").unwrap();
        std::fs::set_permissions(e.path(n), std::fs::Permissions::from_mode(0o6777)).unwrap();
        assert_eq!(mode(n), 0o6777);
    };
    setid("local_write");
    local_as_user("printf y >> \"$1\"", &e.path("local_write"));
    setid("local_fallocate");
    local_as_user("fallocate -l 8192 \"$1\"", &e.path("local_fallocate"));
    let (lw, lf) = (mode("local_write"), mode("local_fallocate"));
    assert_eq!((lw & 0o6000, lf & 0o6000), (0, 0), "locally, uid 1000 clears setuid and setgid");

    for (name, as_user, as_root) in [("write", &user, &root), ("fallocate", &user, &root)] {
        let change = |h: u64| match name {
            "write" => s.write(h, 1, b"y").map(|_| ()),
            _ => s.fallocate(h, 0, 0, 8192),
        };
        let f = format!("user_{name}");
        setid(&f);
        let (h, _) = s.open(ex, f.as_bytes(), open::WRONLY, 0, as_user).unwrap();
        s.getattr(ex, f.as_bytes(), false, as_root).unwrap();
        change(h).unwrap();
        let local = if name == "write" { lw } else { lf };
        assert_eq!(mode(&f), local, "{name} through uid 1000's handle (tmpfs {tmpfs}): as locally");
        let f = format!("root_{name}");
        setid(&f);
        let (h, _) = s.open(ex, f.as_bytes(), open::WRONLY, 0, as_root).unwrap();
        s.getattr(ex, f.as_bytes(), false, as_user).unwrap();
        change(h).unwrap();
        assert_eq!(mode(&f), 0o6777, "{name} through root's handle (tmpfs {tmpfs}) keeps setuid/setgid");
    }
    // The other handle operations work as the opener too.
    let (h, _) = s.open(ex, b"user_write", open::RDWR, 0, &user).unwrap();
    s.getattr(ex, b"user_write", false, &root).unwrap();
    assert_eq!(s.read(h, 0, 16).unwrap(), b"xy");
    s.fsync(h, false).unwrap();
    assert_eq!(s.llseek(h, 0, libc::SEEK_END as u32).unwrap(), 2);
}

#[test]
fn handle_writes_act_as_the_opener_ring() {
    handle_writes_act_as_the_opener(false);
}

#[test]
fn handle_writes_act_as_the_opener_tmpfs() {
    handle_writes_act_as_the_opener(true);
}

// ------------------------------------------------------------------ process control

/// Processes started by this test, killed when it ends: children, and grandchildren by
/// pid (a shell's background sleep would outlive the shell and hold the test's stdout).
struct Procs(Vec<Child>, Vec<i32>);

impl Drop for Procs {
    fn drop(&mut self) {
        for &pid in &self.1 {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `sleep` whose parent is named `rexec_server` (a shell started through a symlink of
/// that name, as rexec_server starts commands), and the shell; returns the sleep's pid.
fn sleep_under_rexec_server(dir: &FsPath, procs: &mut Procs) -> i32 {
    let fake = dir.join("rexec_server");
    if !exists(&fake) {
        std::os::unix::fs::symlink("/bin/sh", &fake).unwrap();
    }
    let (sh, line) =
        spawn_first_line(Command::new(&fake).args(["-c", "sleep 1000 & echo $!; wait"]).stdin(Stdio::null()));
    let pid: i32 = line.trim().parse().unwrap();
    procs.0.push(sh);
    procs.1.push(pid);
    assert!(
        wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        }),
        "the sleep did not start"
    );
    pid
}

/// A `sleep` started directly by the test (no rexec_server above it).
fn unrelated_sleep(procs: &mut Procs) -> i32 {
    let c = Command::new("sleep").arg("1000").stdin(Stdio::null()).spawn().unwrap();
    let pid = c.id() as i32;
    procs.0.push(c);
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    }));
    pid
}

fn alive(pid: i32) -> bool {
    // A zombie counts as dead (its parent, the shell or the test, has not reaped it yet).
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with('Z')))
}

fn kill_engine(extra: &[&str]) -> TestEngine {
    TestEngine::start(Opts {
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        extra_wl: "[Kill]\nPath=sleep\n".into(),
        ..Default::default()
    })
}

#[test]
fn process_control_needs_allow_kill() {
    let e = kill_engine(&[]);
    let mut procs = Procs(vec![], vec![]);
    let pid = sleep_under_rexec_server(e.dir.path(), &mut procs);
    let s = e.session(1);
    assert_eq!(errno(s.kill(pid, libc::SIGTERM)), libc::EPERM);
    assert_eq!(errno(s.sched_getaffinity(pid)), libc::EPERM);
    assert_eq!(errno(s.sched_setaffinity(pid, &[1])), libc::EPERM);
    assert!(alive(pid), "the process was signalled without --allow-kill");
    assert!(e.log_contains("--allow-kill"), "the refusal names the flag");
}

#[test]
fn process_control_reaches_only_processes_started_through_rexec() {
    let e = kill_engine(&["--allow-kill"]);
    let mut procs = Procs(vec![], vec![]);
    let ours = sleep_under_rexec_server(e.dir.path(), &mut procs);
    let other = unrelated_sleep(&mut procs);
    let s = e.session(1);
    // Not started through rexec_server: untouchable, though its name is in [Kill].
    assert_eq!(errno(s.kill(other, libc::SIGTERM)), libc::EPERM);
    assert_eq!(errno(s.sched_getaffinity(other)), libc::EPERM);
    assert_eq!(errno(s.sched_setaffinity(other, &[1])), libc::EPERM);
    assert!(alive(other));
    // The engine itself, and this test (neither named sleep nor rexec_server's).
    assert_eq!(errno(s.kill(e.pid() as i32, libc::SIGTERM)), libc::EPERM);
    assert_eq!(errno(s.kill(std::process::id() as i32, libc::SIGTERM)), libc::EPERM);
    // Started through rexec_server: served.
    assert!(!s.sched_getaffinity(ours).unwrap().is_empty());
    s.kill(ours, libc::SIGTERM).unwrap();
    assert!(wait_until(Duration::from_secs(10), || !alive(ours)), "SIGTERM reached it");
}

#[test]
fn kill_any_process_widens_to_every_whitelisted_name() {
    let e = kill_engine(&["--allow-kill", "--kill-any-process"]);
    let mut procs = Procs(vec![], vec![]);
    let other = unrelated_sleep(&mut procs);
    let s = e.session(1);
    assert!(!s.sched_getaffinity(other).unwrap().is_empty());
    s.kill(other, libc::SIGTERM).unwrap();
    assert!(wait_until(Duration::from_secs(10), || !alive(other)));
    // [Kill] still applies.
    assert_eq!(errno(s.kill(std::process::id() as i32, 0)), libc::EPERM);
}

// ------------------------------------------------------------------ listeners

/// Runs the engine binary until it exits or says it is ready; returns (exit status if it
/// exited, its stderr).
fn engine_outcome(args: &[&str]) -> (Option<i32>, String) {
    let d = tempfile::tempdir().unwrap();
    let wl = d.path().join("wl");
    std::fs::write(&wl, format!("[Mount]\nPath={}\n", d.path().display())).unwrap();
    let mut child = Command::new(engine_bin())
        .args(args)
        .arg("--whitelist")
        .arg(&wl)
        .arg("--admin-socket")
        .arg(d.path().join("admin.sock"))
        .arg("--lock-file")
        .arg(d.path().join("lock"))
        .args(["--cores", "1", "--no-pin"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut text = String::new();
    let mut line = String::new();
    // Reads until the engine is ready (then stops it) or closes stderr by exiting.
    while err.read_line(&mut line).unwrap_or(0) > 0 {
        text.push_str(&line);
        if line.contains("engine ready") {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = err.read_to_string(&mut text);
            let _ = child.wait();
            return (None, text);
        }
        line.clear();
    }
    (child.wait().unwrap().code(), text)
}

#[test]
fn keyless_listeners_only_on_loopback_and_unix_unless_allowed_loudly() {
    for a in ["tcp:0.0.0.0:0", "tcp:[::]:0"] {
        let (code, err) = engine_outcome(&["--listen", a, "--insecure-test-mode"]);
        assert_eq!(code, Some(2), "{a} must be refused: {err}");
        assert!(err.contains("not a loopback address") && err.contains("--psk-file"), "{err}");
    }
    for a in ["vsock:any:0", "vsock:2:0"] {
        let (code, err) = engine_outcome(&["--listen", a]);
        assert_eq!(code, Some(2), "{a} without a key must be refused: {err}");
        assert!(err.contains("vsock") && err.contains("--insecure-allow-remote"), "{err}");
        let (code, _) = engine_outcome(&["--listen", a, "--insecure-test-mode"]);
        assert_eq!(code, Some(2), "{a}: test mode alone does not allow vsock");
    }
    let (code, err) = engine_outcome(&["--listen", "tcp:127.0.0.1:0", "--insecure-test-mode"]);
    assert_eq!(code, None, "loopback test mode starts: {err}");
    assert!(err.contains("INSECURE TEST MODE"));
    let d = tempfile::tempdir().unwrap();
    let unix = format!("unix:{}", d.path().join("e.sock").display());
    let (code, err) = engine_outcome(&["--listen", &unix]);
    assert_eq!(code, None, "a unix listener needs no key: {err}");
    let (code, err) = engine_outcome(&["--listen", "tcp:0.0.0.0:0", "--insecure-allow-remote"]);
    assert_eq!(code, None, "explicitly allowed: {err}");
    assert!(err.contains("REACHABLE FROM OTHER MACHINES"), "announced loudly: {err}");
}

// ------------------------------------------------------------------ unix-socket connects

/// A listener that counts the connections it accepts (until the test ends).
fn counting_listener(path: &FsPath) -> Arc<AtomicUsize> {
    let l = UnixListener::bind(path).unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            if c.is_ok() {
                n2.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    n
}

fn rename_exchange(dir: &FsPath, a: &str, b: &str) {
    let ca = std::ffi::CString::new(bytes(&dir.join(a))).unwrap();
    let cb = std::ffi::CString::new(bytes(&dir.join(b))).unwrap();
    // SAFETY: NUL-terminated paths; renameat2 changes only the file system.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    assert_eq!(r, 0, "renameat2: {}", std::io::Error::last_os_error());
}

/// `T/allowed/d/` and `T/outside/` with the symlink `T/allowed/x` → `T/outside`, for a
/// swapper to flip `d` and `x`; returns (`T/allowed`, `T/outside`).
fn swap_dirs(t: &FsPath) -> (PathBuf, PathBuf) {
    let (allowed, outside) = (t.join("allowed"), t.join("outside"));
    std::fs::create_dir_all(allowed.join("d")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, allowed.join("x")).unwrap();
    (allowed, outside)
}

/// An engine of two cores whose `[Udsconnect]` holds `allowed` only.
fn udsconnect_engine(allowed: &FsPath) -> TestEngine {
    TestEngine::start(Opts {
        cores: 2,
        extra_wl: format!("[Udsconnect]\nPath={}\n", allowed.display()),
        ..Default::default()
    })
}

/// Exchanges `allowed/d` and `allowed/x` as fast as it can until `stop`; joins to the
/// number of swaps.
fn spawn_swapper(stop: &Arc<AtomicBool>, allowed: &FsPath) -> std::thread::JoinHandle<u64> {
    let (stop, allowed) = (stop.clone(), allowed.to_path_buf());
    std::thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            rename_exchange(&allowed, "d", "x");
            n += 1;
        }
        n
    })
}

/// Four clients, each on its own session, call `attempt(session, client, n)` with n = 1,
/// 2, … for three seconds; returns how many attempts succeeded and how many were refused.
fn race(e: &TestEngine, attempt: impl Fn(&Session, u32, u32) -> bool + Clone + Send + 'static) -> (u32, u32) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let clients: Vec<_> = (0..4u32)
        .map(|c| {
            let (s, attempt) = (e.session(1), attempt.clone());
            std::thread::spawn(move || {
                let (mut ok, mut refused, mut n) = (0u32, 0u32, 0u32);
                while Instant::now() < deadline {
                    n += 1;
                    if attempt(&s, c, n) {
                        ok += 1;
                    } else {
                        refused += 1;
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).fold((0, 0), |(a, b), (o, r)| (a + o, b + r))
}

/// `allowed/d` flips between a real directory holding `s.sock` and a symlink to
/// `outside/` (which holds another `s.sock`) as fast as it can, while clients connect to
/// `allowed/d/s.sock`. The whitelist holds only `allowed/`: the outside socket must never
/// see a connection. (Checking the path and then connecting by name reached it in about
/// a quarter of the attempts.)
#[test]
fn a_directory_swapped_for_a_symlink_never_reaches_a_socket_outside_the_whitelist() {
    let t = tempfile::tempdir().unwrap();
    let t: PathBuf = t.path().canonicalize().unwrap();
    let (allowed, outside_dir) = swap_dirs(&t);
    let inside = counting_listener(&allowed.join("d/s.sock"));
    let outside = counting_listener(&outside_dir.join("s.sock"));
    let e = udsconnect_engine(&allowed);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = spawn_swapper(&stop, &allowed);
    let target = bytes(&allowed.join("d/s.sock"));
    // Each client's ids are its own (one session each).
    let (ok, refused) = race(&e, move |s, _, id| {
        let connected = chan_open(s, id, &target, 0, 0, &[]).is_ok();
        if connected {
            chan_close(s, id);
        }
        connected
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!(
        "{} attempts: {ok} connected, {refused} refused, {swaps} swaps; accepted inside {}, outside {}",
        ok + refused,
        inside.load(Ordering::SeqCst),
        outside.load(Ordering::SeqCst)
    );
    assert!(ok > 100 && swaps > 1000, "the race was not exercised: {ok} connects, {swaps} swaps");
    assert_eq!(outside.load(Ordering::SeqCst), 0, "a connection reached the socket outside [Udsconnect]");
}

/// A symlink as the final component is refused even when it points at a whitelisted
/// socket: what is checked must be what is connected, and a name that is a symlink can
/// change target between the two.
#[test]
fn a_final_symlink_is_not_followed() {
    let e = TestEngine::start(Opts::default());
    let sock = e.path("real.sock");
    let _l = world_listener(&sock);
    std::os::unix::fs::symlink("real.sock", e.path("link.sock")).unwrap();
    let s = e.session(1);
    chan_open(&s, 1, &bytes(&sock), 0, 0, &[]).unwrap();
    assert_eq!(chan_open(&s, 2, &bytes(&e.path("link.sock")), 0, 0, &[]), Err(libc::ECONNREFUSED));
    // Symlinks in the directories above are followed (their real path is checked).
    std::os::unix::fs::symlink(".", e.path("here")).unwrap();
    chan_open(&s, 3, &bytes(&e.path("here/real.sock")), 0, 0, &[]).unwrap();
}

/// CHAN_LISTEN under the same attack: `allowed/d` flips between a directory and a
/// symlink to `outside/` while clients ask to listen at `allowed/d/lN.sock` (and stop
/// listening again). Nothing may ever be created in `outside/`.
#[test]
fn a_directory_swapped_for_a_symlink_never_gets_a_listener_outside_the_whitelist() {
    let t = tempfile::tempdir().unwrap();
    let t: PathBuf = t.path().canonicalize().unwrap();
    let (allowed, outside) = swap_dirs(&t);
    let e = udsconnect_engine(&allowed);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = spawn_swapper(&stop, &allowed);
    // Watches outside/ while the attack runs: anything that appears there, even briefly.
    let seen = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (stop, seen, outside) = (stop.clone(), seen.clone(), outside.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                seen.fetch_add(std::fs::read_dir(&outside).unwrap().count(), Ordering::SeqCst);
            }
        })
    };
    let dir = allowed.clone();
    let (ok, refused) = race(&e, move |s, c, n| {
        let path = bytes(&dir.join(format!("d/l{c}-{n}.sock")));
        let m = root_listen_req(&path, 0o600);
        let Ok(r) = s.call(Op::CHAN_LISTEN, &m) else { return false };
        let l = r.decode::<ChanListenRsp>().unwrap().listener;
        s.call(Op::CHAN_UNLISTEN, &ChanUnlistenReq { listener: l }).unwrap();
        true
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    watcher.join().unwrap();
    let left: Vec<_> = std::fs::read_dir(&outside).unwrap().map(|d| d.unwrap().file_name()).collect();
    eprintln!("{} listens: {ok} ok, {refused} refused, {swaps} swaps; outside now {left:?}", ok + refused);
    assert!(ok > 100 && swaps > 1000, "the race was not exercised: {ok} listens, {swaps} swaps");
    assert!(left.is_empty(), "files created outside [Udsconnect]: {left:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 0, "a file appeared outside [Udsconnect] during the attack");
}
