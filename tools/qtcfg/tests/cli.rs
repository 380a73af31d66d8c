//! qtcfg and qtinfo against a real engine: round trips for every whitelist type, the
//! effect on real operations, persistence across a restart, exit codes, counters.

use std::process::{Command, Output};

use qtfs_client::Cred;
use qtfs_proto::consts::{WlType, open};
use qtfs_testkit::*;

fn qtcfg(e: &TestEngine, args: &[&str]) -> Output {
    let t = format!("engine:{}", e.admin.display());
    Command::new(env!("CARGO_BIN_EXE_qtcfg")).args(["--target", &t]).args(args).output().unwrap()
}

fn qtinfo(e: &TestEngine, args: &[&str]) -> Output {
    let t = format!("engine:{}", e.admin.display());
    Command::new(env!("CARGO_BIN_EXE_qtinfo")).args(["--target", &t]).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn add_list_delete_every_type() {
    let e = TestEngine::start(Opts { groups: Some(vec![]), ..Default::default() });
    for t in WlType::ALL {
        let name = t.section().to_lowercase();
        let entry = if t == WlType::Kill { "qemu-kvm".to_string() } else { format!("/srv/{name}") };
        let o = qtcfg(&e, &["-w", &name, "-x", &entry]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let o = qtcfg(&e, &[&format!("-z{name}")]);
        let out = text(&o);
        assert!(out.contains(&format!("Get qtfs {} white list:", t.section())), "{out}");
        let idx = if t == WlType::Mount { 1 } else { 0 };
        assert!(out.contains(&format!("  [index:{idx}][path:{entry}]")), "{name}: {out}");
        let o = qtcfg(&e, &["-w", &name, "-y", &idx.to_string()]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(!text(&qtcfg(&e, &[&format!("-z{name}")])).contains(&entry));
    }
    // -z alone lists every group.
    let all = text(&qtcfg(&e, &["-z"]));
    assert_eq!(all.matches("white list:").count(), 14);
    // JSON for machines.
    let j: serde_json::Value = serde_json::from_slice(&qtcfg(&e, &["-zmount", "--json"]).stdout).unwrap();
    assert_eq!(j["type"], "Mount");
    assert_eq!(j["entries"][0]["index"], 0);
}

#[test]
fn changes_take_effect_on_real_operations() {
    let e = TestEngine::start(Opts { groups: Some(vec!["Read"]), ..Default::default() });
    std::fs::write(e.path("f"), b"x").unwrap();
    let (s, ex) = e.mounted(2);
    let r = Cred::root();
    assert_eq!(s.open(ex, b"f", open::RDONLY, 0, &r).unwrap_err().errno(), libc::EACCES);
    let p = e.export.display().to_string();
    assert!(qtcfg(&e, &["-w", "open", "-x", &p]).status.success());
    s.open(ex, b"f", open::RDONLY, 0, &r).expect("allowed after -x");
    assert!(qtcfg(&e, &["-w", "open", "-y", "0"]).status.success());
    assert_eq!(s.open(ex, b"f", open::RDONLY, 0, &r).unwrap_err().errno(), libc::EACCES, "denied again after -y");
}

#[test]
fn a_symlinked_entry_allows_its_target_and_lists_as_written() {
    let e = TestEngine::start(Opts { groups: Some(vec!["Read"]), ..Default::default() });
    std::fs::write(e.path("f"), b"x").unwrap();
    // Like /var/run -> /run: the entry names the export through a symlink.
    let link = e.link_to_export("link");
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    let l = link.display().to_string();
    let o = qtcfg(&e, &["-w", "open", "-x", &l, "--persist"]);
    assert!(o.status.success(), "{}", text(&o));
    s.open(ex, b"f", open::RDONLY, 0, &r).expect("allowed through the symlinked entry");
    let out = text(&qtcfg(&e, &["-zopen"]));
    assert!(out.contains(&format!("  [index:0][path:{l}]")), "{out}");
    let file = std::fs::read_to_string(&e.whitelist).unwrap();
    assert!(file.contains(&format!("[Open]\nPath={l}\n")), "{file}");
}

#[test]
fn persist_survives_a_restart() {
    let mut e = TestEngine::start(Opts { groups: Some(vec!["Read"]), ..Default::default() });
    let p = e.export.display().to_string();
    assert!(qtcfg(&e, &["-w", "open", "-x", &p, "--persist"]).status.success());
    let file = std::fs::read_to_string(&e.whitelist).unwrap();
    assert!(file.starts_with("# test whitelist"), "comments kept:\n{file}");
    assert!(file.contains(&format!("[Open]\nPath={p}")), "{file}");
    assert_eq!(e.stop(), Some(0));
    // A new engine on the same file allows the open.
    let mut cmd = Command::new(engine_bin());
    cmd.args(["--listen", "tcp:127.0.0.1:0", "--insecure-test-mode", "--whitelist"])
        .arg(&e.whitelist)
        .arg("--admin-socket")
        .arg(e.dir.path().join("again.sock"))
        .arg("--lock-file")
        .arg(e.dir.path().join("again.lock"));
    let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let sock = e.dir.path().join("again.sock");
    // Ready once it says so: the socket file exists from bind(), before listen().
    let log = LogTail::new(child.stderr.take().unwrap(), "engine", "QTFS_TEST_LOG");
    assert!(log.wait_for("engine ready", std::time::Duration::from_secs(20)).is_some(), "{log:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_qtcfg"))
        .args(["--target", &format!("engine:{}", sock.display()), "-zopen"])
        .output()
        .unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(text(&out).contains(&format!("[index:0][path:{p}]")), "{}", text(&out));
}

#[test]
fn bad_arguments_and_exit_codes() {
    let e = TestEngine::start(Opts::default());
    let o = qtcfg(&e, &["-x", "/var/lib/libvirt/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("qtcfg -w udsconnect -x /var/lib/libvirt"), "{}", text(&o));
    assert_eq!(qtcfg(&e, &["-w", "bogus", "-x", "/a"]).status.code(), Some(2));
    let long = format!("/{}", "a".repeat(4100));
    assert_eq!(qtcfg(&e, &["-w", "open", "-x", &long]).status.code(), Some(2));
    let o = qtcfg(&e, &["-w", "open", "-y", "99"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no such entry"), "{}", text(&o));
    let p = e.export.display().to_string();
    let o = qtcfg(&e, &["-w", "open", "-x", &p]);
    assert_eq!(o.status.code(), Some(1), "duplicate: {}", text(&o));
    assert_eq!(qtcfg(&e, &["-w", "open", "-x", "relative/path"]).status.code(), Some(1));
    // Unreachable target.
    let o = Command::new(env!("CARGO_BIN_EXE_qtcfg"))
        .args(["--target", "engine:/nonexistent/x.sock", "-z"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o).contains("is it running"), "{}", text(&o));
    // No arguments: usage on stdout, status 2; --help: status 0.
    assert_eq!(Command::new(env!("CARGO_BIN_EXE_qtcfg")).output().unwrap().status.code(), Some(2));
    let h = Command::new(env!("CARGO_BIN_EXE_qtinfo")).arg("--help").output().unwrap();
    assert!(h.status.success());
    assert!(text(&h).contains("EXIT STATUS") && text(&h).contains("-a"));
}

#[test]
fn qtinfo_counters_move_after_a_workload() {
    let e = TestEngine::start(Opts::default());
    let (s, ex) = e.mounted(1);
    let r = Cred::root();
    assert!(qtinfo(&e, &["-c"]).status.success());
    let (h, _) = s.create(ex, b"w", open::RDWR, 0o644, 0, true, &r).unwrap();
    for _ in 0..25 {
        s.write(h, 0, &[7u8; 1000]).unwrap();
    }
    let o = qtinfo(&e, &["-a"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let line = out.lines().find(|l| l.starts_with("WRITE ")).unwrap_or_else(|| panic!("no WRITE line:\n{out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[1], "25", "{line}");
    assert!(out.contains("ACTIVE"), "connection listed:\n{out}");
    let j: serde_json::Value = serde_json::from_slice(&qtinfo(&e, &["-a", "--json"]).stdout).unwrap();
    let w = j["counters"].as_array().unwrap().iter().find(|c| c["op"] == "WRITE").unwrap();
    assert_eq!(w["requests"], 25);
    assert!(w["bytes_in"].as_u64().unwrap() >= 25_000);
    assert!(qtinfo(&e, &["-c"]).status.success());
    let j: serde_json::Value = serde_json::from_slice(&qtinfo(&e, &["-a", "--json"]).stdout).unwrap();
    assert!(j["counters"].as_array().unwrap().iter().all(|c| c["op"] != "WRITE"));
    // Log level round trip and message sizes.
    let o = qtinfo(&e, &["-l", "DEBUG"]);
    assert!(text(&o).contains("DEBUG"), "{}", text(&o));
    let sizes = text(&qtinfo(&e, &["-t"]));
    assert!(sizes.contains("OpenReq") && sizes.contains("fixed"), "{sizes}");
}
