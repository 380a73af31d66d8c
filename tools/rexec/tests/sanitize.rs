//! The client is untrusted (a root client's commands run as root): its environment is cut
//! down to an allow-list, PATH is the server's, and a whitelisted path runs the file it
//! resolved to when the whitelist was loaded — like a setuid program's environment and
//! binary.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn out(mut c: Command) -> (i32, String, String) {
    let o = c.stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    (o.status.code().unwrap_or(-1), text(&o.stdout), text(&o.stderr))
}

/// A temporary directory for files the whitelist names (made before the server starts).
fn tools() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::Builder::new().prefix("rxs").tempdir_in("/tmp").unwrap();
    let p = d.path().canonicalize().unwrap();
    (d, p)
}

/// Makes directory `sub` in `dir` holding the script `name` (`body`); returns the directory.
fn dir_with_script(dir: &Path, sub: &str, name: &str, body: &str) -> PathBuf {
    let d = dir.join(sub);
    std::fs::create_dir(&d).unwrap();
    script(&d.join(name), body);
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sighup(srv: &Server, done: &str) {
    let before = srv.log.lock().unwrap().iter().filter(|l| l.contains(done)).count();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(srv.pid(), libc::SIGHUP) };
    assert!(wait_until(Duration::from_secs(5), || {
        srv.log.lock().unwrap().iter().filter(|l| l.contains(done)).count() > before
    }));
}

const FIXED_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn bash_env_and_the_client_path_do_not_reach_whitelisted_scripts() {
    let (_d, dir) = tools();
    let marker = dir.join("bash-env-ran");
    let evil = dir.join("evil.sh");
    script(&evil, &format!("touch {}\n", marker.display()));
    let fake = dir_with_script(&dir, "fakebin", "id", "#!/bin/sh\necho FAKE-ID\n");
    let tool = dir.join("tool.sh");
    script(&tool, "#!/bin/bash\necho \"id=$(id -u)\"\n");
    let srv = Server::start(&[s(&tool)], &[]);
    let hostile = |c: &mut Command| {
        c.env("BASH_ENV", &evil).env("ENV", &evil).env("PATH", format!("{}:/usr/bin:/bin", fake.display()));
    };
    // A whitelisted bash script, and bash -c: neither reads BASH_ENV, and `id` is the
    // HOST's, not the client's fake in front of its PATH.
    let mut c = srv.rexec(&[s(&tool)]);
    hostile(&mut c);
    let (rc, o, e) = out(c);
    assert_eq!((rc, o.as_str()), (0, "id=0\n"), "{e}");
    let mut c = srv.rexec(&["/bin/bash", "-c", "id -u; echo \"[$BASH_ENV][$ENV]\""]);
    hostile(&mut c);
    let (rc, o, e) = out(c);
    assert_eq!((rc, o.as_str()), (0, "0\n[][]\n"), "{e}");
    assert!(!marker.exists(), "BASH_ENV ran on the HOST");
}

#[test]
fn only_allowed_variables_with_sane_values_reach_the_remote() {
    let srv = Server::start(&["/usr/bin/env"], &[]);
    let secret = "v4lue-s3cret";
    let hostile = [
        "GLIBC_TUNABLES",
        "ENV",
        "BASH_ENV",
        "LOCPATH",
        "NLSPATH",
        "HOSTALIASES",
        "RESOLV_HOST_CONF",
        "PYTHONPATH",
        "PERL5OPT",
        "MALLOC_TRACE",
        "GCONV_PATH",
        "LD_AUDIT",
    ];
    let mut c = srv.rexec(&["/usr/bin/env"]);
    c.env_clear();
    for n in hostile {
        // A valid tunable: this environment is rexec's own too.
        let v = if n == "GLIBC_TUNABLES" { "glibc.malloc.perturb=0".to_string() } else { format!("/tmp/{secret}") };
        c.env(n, v);
    }
    c.env("REXEC_SOCKET", &srv.socket).env("REXEC_PIDS_DIR", &srv.pids);
    c.env("LC_ALL", "C").env("HOME", "/var/lib/libvirt/qemu/domain-1-vm").env("TZ", "UTC");
    c.env("XDG_CACHE_HOME", "/var/lib/libvirt/qemu/domain-1-vm/.cache").env("USER", "root");
    // Allowed names with values that are not allowed.
    c.env("TMPDIR", "relative/tmp").env("LANG", "../../tmp/locale").env("XDG_CONFIG_HOME", "/a/../../tmp");
    c.env("PATH", format!("/tmp/{secret}:/usr/bin"));
    let (rc, o, e) = out(c);
    assert_eq!(rc, 0, "{e}");
    let mut got: Vec<&str> = o.lines().collect();
    got.sort_unstable();
    let mut want = vec![
        "HOME=/var/lib/libvirt/qemu/domain-1-vm",
        "LC_ALL=C",
        "TZ=UTC",
        "USER=root",
        "XDG_CACHE_HOME=/var/lib/libvirt/qemu/domain-1-vm/.cache",
    ];
    let path = format!("PATH={FIXED_PATH}");
    want.push(&path);
    want.sort_unstable();
    assert_eq!(got, want);
    // The dropped names are logged once (debug), their values never.
    assert!(wait_until(Duration::from_secs(5), || srv.log_contains("environment variables dropped")));
    let log = srv.log.lock().unwrap().clone();
    let line = log.iter().find(|l| l.contains("environment variables dropped")).unwrap();
    for n in hostile {
        assert!(line.contains(&format!("\"{n}\"")), "{n} not in {line}");
    }
    assert!(line.contains("TMPDIR (bad value)") && line.contains("LANG (bad value)"), "{line}");
    assert!(!log.iter().any(|l| l.contains(secret)), "a value was logged");
}

#[test]
fn the_operator_allows_more_names_and_sets_path() {
    let (_d, dir) = tools();
    let bin = dir_with_script(&dir, "bin", "mytool", "#!/bin/sh\necho \"$PATH|$FOO|$BAR|$MY_X|$QUX\"\n");
    let allow = dir.join("env-allow");
    std::fs::write(&allow, "# names\nBAR\n  MY_*  \n").unwrap();
    std::fs::set_permissions(&allow, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Only in the client's PATH: never found.
    let theirs = dir_with_script(&dir, "theirs", "histool", "#!/bin/sh\necho ran\n");
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let srv =
        Server::start(&["mytool", "histool"], &["--env-allow", "FOO", "--env-allow-file", s(&allow), "--path", &path]);
    let run = || {
        let mut c = srv.rexec(&["mytool"]);
        c.env("FOO", "1").env("BAR", "2").env("MY_X", "3").env("QUX", "4").env("PATH", s(&theirs));
        out(c)
    };
    let (rc, o, e) = run();
    assert_eq!((rc, o), (0, format!("{path}|1|2|3|\n")), "{e}");
    let mut c = srv.rexec(&["histool"]);
    c.env("PATH", s(&theirs));
    let (rc, _, e) = out(c);
    assert_eq!(rc, 127, "{e}");
    // SIGHUP re-reads the file.
    std::fs::write(&allow, "BAR\nMY_*\nQUX\n").unwrap();
    sighup(&srv, "environment allow-list reloaded");
    assert_eq!(run().1, format!("{path}|1|2|3|4\n"));

    // Refused at start: PATH, a match-all pattern, a file others may write, a relative --path.
    let start = |args: &[&str]| {
        let o = Command::new(SERVER)
            .args(["--whitelist", s(&srv.dir.path().join("whitelist")), "--socket", s(&dir.join("x.sock"))])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (o.status.code(), text(&o.stderr))
    };
    let (rc, e) = start(&["--env-allow", "PATH"]);
    assert!(rc == Some(255) && e.contains("PATH cannot be allowed"), "{e}");
    let (rc, e) = start(&["--env-allow", "*"]);
    assert!(rc == Some(255) && e.contains("must name a variable"), "{e}");
    std::fs::set_permissions(&allow, std::fs::Permissions::from_mode(0o620)).unwrap();
    let (rc, e) = start(&["--env-allow-file", s(&allow)]);
    assert!(rc == Some(255) && e.contains("writable by group or others"), "{e}");
    let (rc, e) = start(&["--path", "bin:/usr/bin"]);
    assert!(rc == Some(255) && e.contains("not an absolute directory"), "{e}");
}

#[test]
fn a_whitelisted_symlink_runs_its_target_and_other_spellings_are_refused() {
    let (_d, dir) = tools();
    let link = dir.join("envlink");
    std::os::unix::fs::symlink("/usr/bin/env", &link).unwrap();
    // The attacker's own link to a whitelisted binary (or its plain path): not an entry.
    let theirs = dir.join("theirs");
    std::os::unix::fs::symlink("/usr/bin/env", &theirs).unwrap();
    let srv = Server::start(&[s(&link)], &[]);
    let target = std::fs::canonicalize("/usr/bin/env").unwrap();
    let (rc, o, e) = out(srv.rexec(&[s(&link)]));
    assert_eq!(rc, 0, "{e}");
    assert!(o.contains(&format!("PATH={FIXED_PATH}\n")), "{o}");
    // Both spellings are logged.
    assert!(srv.log_contains(&format!("resolved={}", target.display())), "load");
    let started = format!("exe={}", target.display());
    assert!(wait_until(Duration::from_secs(5), || srv.log_contains(&started)), "start");
    for other in [s(&theirs), s(&target)] {
        let (rc, o, e) = out(srv.rexec(&[other]));
        assert_eq!((rc, o.as_str()), (126, ""), "{other}");
        assert!(e.contains("is not in the whitelist"), "{e}");
    }
    // The process is named after the file run ("dash" for /bin/sh -> dash), not after a
    // descriptor number.
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    let comm: String = sh.file_name().unwrap().to_str().unwrap().chars().take(15).collect();
    let (rc, o, e) = out(srv.rexec(&["/bin/sh", "-c", "cat /proc/$$/comm"]));
    assert_eq!((rc, o), (0, format!("{comm}\n")), "{e}");
}

#[test]
fn a_whitelisted_symlink_repointed_after_load_runs_its_old_target_until_sighup() {
    let (_d, dir) = tools();
    script(&dir.join("a.sh"), "#!/bin/sh\necho A \"$@\"\n");
    script(&dir.join("b.sh"), "#!/bin/sh\necho B \"$@\"\n");
    let tool = dir.join("tool");
    std::os::unix::fs::symlink(dir.join("a.sh"), &tool).unwrap();
    let srv = Server::start(&[s(&tool)], &[]);
    assert_eq!(out(srv.rexec(&[s(&tool), "x"])).1, "A x\n");
    let tmp = dir.join("tool.new");
    std::os::unix::fs::symlink(dir.join("b.sh"), &tmp).unwrap();
    std::fs::rename(&tmp, &tool).unwrap();
    let (rc, o, e) = out(srv.rexec(&[s(&tool), "y"]));
    assert_eq!((rc, o.as_str()), (0, "A y\n"), "{e}");
    assert!(wait_until(Duration::from_secs(5), || srv.log_contains("resolves elsewhere than at load")));
    sighup(&srv, "whitelist reloaded");
    assert_eq!(out(srv.rexec(&[s(&tool), "z"])).1, "B z\n");
}

#[test]
fn a_directory_swapped_for_a_symlink_after_load_is_not_followed() {
    let (_d, dir) = tools();
    let real = dir_with_script(&dir, "real", "tool", "#!/bin/sh\necho real\n");
    let evil = dir_with_script(&dir, "evil", "tool", "#!/bin/sh\necho evil\n");
    let tool = real.join("tool");
    let srv = Server::start(&[s(&tool)], &[]);
    assert_eq!(out(srv.rexec(&[s(&tool)])).1, "real\n");
    std::fs::rename(&real, dir.join("moved")).unwrap();
    std::os::unix::fs::symlink(&evil, &real).unwrap();
    let (rc, o, e) = out(srv.rexec(&[s(&tool)]));
    assert_eq!((rc, o.as_str()), (126, ""), "{e}");
    assert!(e.contains("Too many levels of symbolic links"), "{e}");
}

#[test]
fn a_user_runs_a_whitelisted_file_only_through_directories_it_may_search() {
    // dir (0700) / sub (0755) / tool: only the directory above the binary's is closed.
    let (_d, dir) = tools();
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A binary, not a script (a script is run by its path: see spawn.rs).
    let tool = sub.join("tool");
    std::fs::copy("/usr/bin/id", &tool).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let group = if groups.lines().any(|l| l.starts_with("nogroup:x:65534:")) { "nogroup" } else { "65534" };
    let srv = Server::start(&[s(&tool)], &["--allow-group", group]);
    let as_nobody = || {
        use std::os::unix::process::CommandExt;
        let mut c = srv.rexec(&[s(&tool), "-u"]);
        c.uid(65534).gid(65534).current_dir("/");
        out(c)
    };
    // The binary's directory is opened with the caller's rights, not rexec_server's.
    let (rc, o, e) = as_nobody();
    assert_eq!((rc, o.as_str()), (126, ""), "{e}");
    assert!(e.contains("Permission denied"), "{e}");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (rc, o, e) = as_nobody();
    assert_eq!((rc, o.as_str()), (0, "65534\n"), "{e}");
}
