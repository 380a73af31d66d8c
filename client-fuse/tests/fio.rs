//! fio through a real qtfs-fuse mount (short jobs), with the written data verified
//! through the mount and again on the HOST side after unmounting; and the engine killed
//! (SIGKILL) and restarted in the middle of a verified fio write.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

fn fio(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("fio")
        .arg(format!("--directory={}", dir.display()))
        // No verify-state files (fio writes them into its working directory: the
        // source tree under cargo test); nothing here loads them.
        .args(["--output-format=json", "--group_reporting=0", "--verify_state_save=0"])
        .args(args)
        .output()
        .expect("fio (scripts/setup.sh test installs it)");
    if std::env::var("QTFS_TEST_LOG").is_ok() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    // fio may print notes before the JSON document.
    let start =
        text.find('{').unwrap_or_else(|| panic!("no fio JSON: {text} {}", String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(&text[start..]).expect("fio JSON")
}

/// Sum of `key` over all jobs for `dir` ("read"/"write").
fn total(j: &serde_json::Value, dir: &str, key: &str) -> u64 {
    j["jobs"].as_array().unwrap().iter().map(|x| x[dir][key].as_u64().unwrap_or(0)).sum()
}

fn errors(j: &serde_json::Value) -> u64 {
    j["jobs"].as_array().unwrap().iter().map(|x| x["error"].as_u64().unwrap_or(0)).sum()
}

/// The two verified write jobs; the same definitions verify on the HOST later.
const SEQ: &[&str] = &["--name=seq", "--filename=seq.dat", "--rw=write", "--bs=1M", "--size=48M", "--verify=crc32c"];
const RAND: &[&str] =
    &["--name=rand", "--filename=rand.dat", "--rw=randwrite", "--bs=4k", "--size=8M", "--verify=crc32c"];

#[test]
fn fio_jobs_through_the_mount_and_verified_on_the_host() {
    let mut rig = Rig::start(Opts::default());
    // Writes, each verified by reading back through the mount.
    let mut args = vec!["--ioengine=psync", "--do_verify=1", "--stonewall"];
    args.extend_from_slice(SEQ);
    args.extend_from_slice(RAND);
    let out = fio(&rig.mnt, &args);
    let j = json(&out);
    assert!(out.status.success(), "fio write+verify failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(errors(&j), 0);
    assert_eq!(total(&j, "write", "io_bytes"), (48 + 8) << 20, "every byte written");
    // Reads: 1M sequential, 4k random at QD16 with io_uring, both short.
    let out = fio(
        &rig.mnt,
        &[
            "--stonewall",
            "--name=seqread",
            "--filename=seq.dat",
            "--rw=read",
            "--bs=1M",
            "--size=48M",
            "--ioengine=psync",
            "--name=randread",
            "--filename=rand.dat",
            "--rw=randread",
            "--bs=4k",
            "--size=8M",
            "--ioengine=io_uring",
            "--iodepth=16",
            "--time_based",
            "--runtime=2",
        ],
    );
    let j = json(&out);
    assert!(out.status.success(), "fio reads failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(errors(&j), 0);
    assert!(total(&j, "read", "io_bytes") >= 48 << 20);
    assert_eq!(rig.unmount(), Some(0), "qtfs-fuse exits cleanly on unmount");
    // On the HOST: the same job definitions, verify only.
    for job in [SEQ, RAND] {
        let mut args = vec!["--verify_only", "--ioengine=psync"];
        args.extend_from_slice(job);
        let out = fio(&rig.export, &args);
        let j = json(&out);
        assert!(out.status.success() && errors(&j) == 0, "HOST-side verify of {job:?} failed");
    }
    // The check can fail: corrupt one block on the HOST and verify again.
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new().write(true).open(rig.h("seq.dat")).unwrap().write_all_at(b"garbage", 5 << 20).unwrap();
    let mut args = vec!["--verify_only", "--ioengine=psync"];
    args.extend_from_slice(SEQ);
    let out = fio(&rig.export, &args);
    assert!(!out.status.success() || errors(&json(&out)) != 0, "a corrupted block must fail verification");
}

#[test]
fn engine_killed_and_restarted_during_a_verified_fio_write() {
    let mut rig = Rig::start(Opts { mount_opts: vec!["reconnect_timeout=30".into()], ..Default::default() });
    let job: &[&str] = &[
        "--name=crash",
        "--filename=crash.dat",
        "--rw=write",
        "--bs=64k",
        "--size=64M",
        "--rate=16m",
        "--fallocate=none",
        "--ioengine=psync",
        "--verify=crc32c",
        "--do_verify=1",
    ];
    let mnt = rig.mnt.clone();
    let job_owned: Vec<String> = job.iter().map(|s| s.to_string()).collect();
    let runner = std::thread::spawn(move || {
        let args: Vec<&str> = job_owned.iter().map(|s| s.as_str()).collect();
        fio(&mnt, &args)
    });
    // Let it write for a while (about a quarter of the file), crash the engine, bring it
    // back on the same port.
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(20), || std::fs::metadata(rig.h("crash.dat")).is_ok_and(|m| m.len() > 12 << 20))
    );
    assert!(std::fs::metadata(rig.h("crash.dat")).unwrap().len() < 48 << 20, "fio wrote too fast to crash it midway");
    let port = rig.kill_engine();
    std::thread::sleep(Duration::from_millis(700));
    rig.start_engine(port);
    let out = runner.join().unwrap();
    let j = json(&out);
    let written = total(&j, "write", "io_bytes");
    assert!(t0.elapsed() > Duration::from_secs(2), "the kill must have happened during the run");
    let log = rig.fuse_log.lock().unwrap().join("\n");
    assert!(log.contains("engine session renewed"), "the client must have noticed the restart: {log}");
    if out.status.success() && errors(&j) == 0 {
        // fio completed: everything written and verified through the mount.
        assert_eq!(written, 64 << 20);
        assert!(log.contains("re-opened after an engine restart"), "the open file was re-opened: {log}");
    } else {
        // fio reported an error: what it reported as written must be intact.
        eprintln!("fio reported an error after the restart (allowed): {}", String::from_utf8_lossy(&out.stderr));
        assert!(written > 0);
    }
    assert_eq!(rig.unmount(), Some(0));
    // On the HOST: verify the bytes fio reported as written (whole blocks).
    let size = format!("--size={}", written / (64 << 10) * (64 << 10));
    let mut args: Vec<&str> =
        job.iter().copied().filter(|a| !a.starts_with("--size") && !a.starts_with("--rate")).collect();
    args.push(&size);
    args.push("--verify_only");
    let out = fio(&rig.export, &args);
    let j = json(&out);
    assert!(out.status.success() && errors(&j) == 0, "HOST-side verify after the crash failed: {j}");
}
