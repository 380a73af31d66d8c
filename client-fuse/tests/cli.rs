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
