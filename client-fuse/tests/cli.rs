//! The `qtfs-fuse` command line: clear errors for a refused mount, a wrong key and an
//! unreachable engine; daemon mode; unmount on SIGTERM; --help.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn run(args: &[String]) -> (i32, String) {
    let out = Command::new(fuse_bin()).args(args).stdin(Stdio::null()).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

fn spare_dir(rig: &Rig, name: &str) -> std::path::PathBuf {
    let d = rig.dir.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn refused_mount_wrong_key_and_unreachable_server_fail_clearly() {
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let rig = Rig::start(Opts { psk: Some(key.into()), ..Default::default() });
    let mp = spare_dir(&rig, "mp");
    let keyfile = rig.psk_path().display().to_string();
    // A directory that is not in the [Mount] whitelist.
    let (code, err) = run(&[
        "-f".into(),
        "--server".into(),
        rig.server(),
        "--psk-file".into(),
        keyfile.clone(),
        rig.local.display().to_string(),
        mp.display().to_string(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused to export") && err.contains("[Mount] whitelist"), "{err}");
    // A wrong key.
    let wrong = rig.dir.path().join("wrong.psk");
    std::fs::write(&wrong, "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, err) = run(&[
        "-f".into(),
        "--server".into(),
        rig.server(),
        "--psk-file".into(),
        wrong.display().to_string(),
        rig.export.display().to_string(),
        mp.display().to_string(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("handshake") && err.contains("key"), "{err}");
    // No key against a server that requires one.
    let (code, err) = run(&[
        "-f".into(),
        "--server".into(),
        rig.server(),
        "--insecure-test-mode".into(),
        rig.export.display().to_string(),
        mp.display().to_string(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("handshake"), "{err}");
    // Nothing listening.
    let (code, err) = run(&[
        "-f".into(),
        "--server".into(),
        "tcp:127.0.0.1:1".into(),
        "--insecure-test-mode".into(),
        rig.export.display().to_string(),
        mp.display().to_string(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot reach the engine"), "{err}");
    // Usage errors exit with 2.
    let (code, err) = run(&["-o".into(), "bogus".into(), rig.export.display().to_string(), mp.display().to_string()]);
    assert_eq!(code, 2, "{err}");
    assert!(!is_mounted(&mp));
    // The right key mounts (the rig itself did), and the mount works.
    std::fs::write(rig.m("hello"), b"hi").unwrap();
    assert_eq!(std::fs::read(rig.h("hello")).unwrap(), b"hi");
}

#[test]
fn daemon_mode_sigterm_and_help() {
    let rig = Rig::start(Opts::default());
    // Daemon mode: returns once mounted, keeps serving after the parent exits.
    let mp = spare_dir(&rig, "daemon");
    let mut args: Vec<String> = rig.fuse_args().into_iter().filter(|a| a != "-f").collect();
    args.push(rig.export.display().to_string());
    args.push(mp.display().to_string());
    let (code, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    assert!(is_mounted(&mp), "mounted when the parent returns");
    std::fs::write(mp.join("via-daemon"), b"d").unwrap();
    assert_eq!(std::fs::read(rig.h("via-daemon")).unwrap(), b"d");
    assert!(Command::new("fusermount3").arg("-u").arg(&mp).status().unwrap().success());
    assert!(!is_mounted(&mp));
    // Foreground, then SIGTERM: unmounts and exits 0.
    let mp2 = spare_dir(&rig, "fg");
    let mut child = Command::new(fuse_bin())
        .args(rig.fuse_args())
        .arg(&rig.export)
        .arg(&mp2)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || is_mounted(&mp2)));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    assert!(!is_mounted(&mp2), "SIGTERM unmounts");
    // --help explains the flags with examples.
    let out = Command::new(fuse_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--server",
        "--psk-file",
        "--insecure-test-mode",
        "--connections",
        "attr_timeout",
        "writeback_cache",
        "EXAMPLES",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
}

/// Runs `cmd` as uid and gid 65534 (nobody), no supplementary groups.
fn as_nobody(cmd: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", cmd]);
    c
}

#[test]
fn a_user_mounts_through_fusermount3() {
    // Not root: qtfs-fuse cannot mount(2) itself and goes through the set-uid fusermount3
    // (its _FUSE_COMMFD protocol); without allow_other only that user may use the mount.
    let rig = Rig::start(Opts::default());
    std::fs::write(rig.h("for-nobody"), b"via fusermount3").unwrap();
    let top = tempfile::tempdir().unwrap();
    let mp = top.path().join("mp");
    std::fs::create_dir(&mp).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&mp, Some(65534), Some(65534)).unwrap();
    let mut child =
        as_nobody(fuse_bin()).args(rig.fuse_args()).arg(&rig.export).arg(&mp).stderr(Stdio::piped()).spawn().unwrap();
    let log = qtfs_testkit::LogTail::new(child.stderr.take().unwrap(), "qtfs-fuse", "QTFS_TEST_LOG");
    assert!(wait_until(Duration::from_secs(20), || is_mounted(&mp)), "not mounted: {log:?}");
    let canon = mp.canonicalize().unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info.lines().find(|l| l.split(' ').nth(4) == canon.to_str()).unwrap().to_string();
    assert!(line.contains(" - fuse.qtfs ") && line.contains("user_id=65534"), "{line}");
    let out = as_nobody("cat").arg(mp.join("for-nobody")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via fusermount3", "{}", String::from_utf8_lossy(&out.stderr));
    // Another user (root included) is kept out without allow_other.
    let e = std::fs::read(mp.join("for-nobody")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES), "{e}");
    // The user unmounts it; qtfs-fuse then ends on its own, with status 0.
    let st = as_nobody("fusermount3").arg("-u").arg(&mp).status().unwrap();
    assert!(st.success());
    let mut code = None;
    assert!(wait_until(Duration::from_secs(10), || {
        code = child.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    }));
    assert_eq!(code.flatten(), Some(0), "{log:?}");
}
