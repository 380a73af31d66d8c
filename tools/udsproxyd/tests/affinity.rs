//! `sched_getaffinity`/`sched_setaffinity` of HOST processes and threads, made by a DPU
//! program through the real `libudsproxy.so` → udsproxyd → engine (SCHED_* ops), with the
//! decision rule of `preload/src/lib.rs` checked case by case:
//!
//! - the HOST process is a multi-threaded python started through the real rexec /
//!   rexec_server (its threads named like qemu's vCPU threads, `CPU n/KVM`), so rexec's
//!   own pid map (`REXEC_PIDS_DIR`) maps the local rexec pid to it;
//! - (a) the mapped local pid acts on the HOST process's main thread, not on rexec;
//! - (b) a HOST thread id acts on that thread only;
//! - (c) the caller's own pid, 0 and its own thread ids stay local (the engine is not asked);
//! - (d) collisions, in a DPU pid namespace of its own (`unshare --pid --fork
//!   --mount-proc`, `ns_last_pid` to get chosen numbers): a DPU process whose pid equals a
//!   HOST vCPU thread id is left alone and the HOST thread is acted on (the engine vouches
//!   for the number); a DPU process whose pid equals a HOST process that was *not*
//!   started through rexec_server is acted on locally and the HOST process is untouched.
//!
//! The HOST shares this machine's pid namespace (as in `rexec.rs`), so the test reads
//! HOST affinities directly. The machine needs CPUs 0 and 1; masks are {0} and {1}.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use qtfs_proto::*;

/// The HOST "qemu": two threads named like vCPU threads; prints "pid tid0 tid1".
const HOST_PROG: &str = r#"
import ctypes, os, threading, time
libc = ctypes.CDLL(None)
tids = {}
def vcpu(i):
    libc.prctl(15, ("CPU %d/KVM" % i).encode(), 0, 0, 0)
    tids[i] = threading.get_native_id()
    time.sleep(600)
for i in range(2):
    threading.Thread(target=vcpu, args=(i,), daemon=True).start()
while len(tids) < 2:
    time.sleep(0.01)
print(os.getpid(), tids[0], tids[1], flush=True)
time.sleep(600)
"#;

/// Sets, then reads back, the affinity of argv[1] to {argv[2]}; prints the result or the
/// errno of the failing call.
const SET_AND_GET: &str = r#"
import os, sys
pid, cpu = int(sys.argv[1]), int(sys.argv[2])
try:
    os.sched_setaffinity(pid, {cpu})
    print("OK", *sorted(os.sched_getaffinity(pid)))
except OSError as e:
    print("ERR", e.errno)
"#;

/// The caller's own numbers: 0, its pid and one of its thread ids.
const OWN: &str = r#"
import os, threading
os.sched_setaffinity(0, {1}); a = sorted(os.sched_getaffinity(0))
os.sched_setaffinity(os.getpid(), {0}); b = sorted(os.sched_getaffinity(os.getpid()))
box = {}
ev = threading.Event()
def t():
    box["tid"] = threading.get_native_id()
    ev.wait()
th = threading.Thread(target=t); th.start()
while "tid" not in box:
    pass
os.sched_setaffinity(box["tid"], {1}); c = sorted(os.sched_getaffinity(box["tid"]))
ev.set(); th.join()
print("OWN", a, b, c)
"#;

/// Runs in a fresh pid namespace (as its pid 1, not preloaded): argv = T0 T1 U. Spawns
/// preloaded callers (env PRELOAD) and local `sleep`s at chosen pids.
const DPU_NS: &str = r#"
import os, subprocess, sys
t0, t1, u = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pre = dict(os.environ, LD_PRELOAD=os.environ["PRELOAD"])
def call(pid, cpu):
    out = subprocess.run([sys.executable, "-c", os.environ["SET_AND_GET"], str(pid), str(cpu)],
                         env=pre, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
def local_at(n):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(n - 1))
    p = subprocess.Popen(["sleep", "1000"])
    assert p.pid == n, (p.pid, n)
    return p
def aff(n):
    return " ".join(map(str, sorted(os.sched_getaffinity(n))))
assert not os.path.exists("/proc/%d" % t0), "the HOST thread is visible in the DPU namespace"
print("B", call(t0, 0), flush=True)
s1 = local_at(t1)
print("D1", call(t1, 1), "|", aff(t1), flush=True)
s2 = local_at(u)
print("D2", call(u, 1), "|", aff(u), flush=True)
for p in (s1, s2):
    p.kill(); p.wait()
"#;

fn affinity(pid: i32) -> BTreeSet<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is writable for its size.
    let r = unsafe { libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(r, 0, "sched_getaffinity({pid}): {}", std::io::Error::last_os_error());
    // SAFETY: CPU_ISSET reads the set.
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

fn cpus(v: &[usize]) -> BTreeSet<usize> {
    v.iter().copied().collect()
}

/// Requests and errors of an engine operation.
fn engine_count(rig: &Rig, op: Op) -> (u64, u64) {
    let mut a = rig.engine_admin();
    let c = a.call(Op::ADMIN_COUNTERS, &CountersReq { flags: 0 }).unwrap();
    let c = c.decode::<CountersRsp>().unwrap();
    c.records
        .0
        .chunks(OpCounter::DESC.size)
        .map(<OpCounter as qtfs_proto::wire::Fixed>::get)
        .find(|r| r.op == op as u16)
        .map_or((0, 0), |r| (r.requests, r.errors))
}

fn sched_total(rig: &Rig) -> u64 {
    let (g, _) = engine_count(rig, Op::SCHED_GETAFFINITY);
    let (s, _) = engine_count(rig, Op::SCHED_SETAFFINITY);
    g + s
}

/// The name the kernel gives a process exec'd from `path` (rexec_server runs the resolved
/// file): its file name, cut to 15 bytes.
fn comm_of(path: &str) -> String {
    let real = std::fs::canonicalize(path).unwrap();
    let name = real.file_name().unwrap().to_string_lossy().into_owned();
    name.chars().take(15).collect()
}

struct Host {
    rig: Rig,
    pids: PathBuf,
    _server: Proc,
    rexec: Child,
    /// The HOST process and its two vCPU-like threads.
    h: i32,
    t0: i32,
    t1: i32,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.rexec.kill();
        let _ = self.rexec.wait();
    }
}

fn start() -> Host {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root (namespaces, ns_last_pid)");
    let mine = affinity(0);
    assert!(mine.contains(&0) && mine.contains(&1), "CPUs 0 and 1 are needed, this test may use {mine:?}");
    let py = comm_of("/usr/bin/python3");
    let rig = Rig::start(RigOpts {
        extra_engine: vec!["--allow-kill".into()],
        extra_wl: format!("[Kill]\nPath={py};sleep\n"),
        ..Default::default()
    });
    let (server, socket) = start_rexec_server(&rig, "/usr/bin/python3\n");
    let pids = rig.dpu.join("pids");
    let mut c = Command::new(qtfs_testkit::workspace_bin("qtfs-rexec", "rexec"));
    use std::os::unix::process::CommandExt;
    // SAFETY: close_range is async-signal-safe; nothing else runs in the child.
    unsafe {
        c.pre_exec(|| {
            libc::close_range(3, u32::MAX, 0);
            Ok(())
        });
    }
    c.args(["/usr/bin/python3", "-c", HOST_PROG])
        .env("REXEC_SOCKET", &socket)
        .env("REXEC_PIDS_DIR", &pids)
        .env("UDSPROXY_SOCKET", rig.request_socket())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut rexec = c.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(rexec.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let v: Vec<i32> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert_eq!(v.len(), 3, "HOST program said {line:?}");
    let (h, t0, t1) = (v[0], v[1], v[2]);
    // rexec's own pid map: its local pid → the HOST pid.
    let entry = pids.join(rexec.id().to_string());
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&entry)
            .is_ok_and(|s| s.trim() == h.to_string())),
        "no pid map entry {} holding {h}",
        entry.display()
    );
    for t in [t0, t1] {
        let comm = std::fs::read_to_string(format!("/proc/{h}/task/{t}/comm")).unwrap();
        assert!(comm.starts_with("CPU ") && comm.trim_end().ends_with("/KVM"), "thread {t} is named {comm:?}");
    }
    let all = affinity(h);
    for p in [h, t0, t1, rexec.id() as i32] {
        assert_eq!(affinity(p), all, "{p} starts with the common affinity");
    }
    Host { rig, pids, _server: server, rexec, h, t0, t1 }
}

impl Host {
    /// `python3 -c PROG ARGS` with the preload library and the pid map, in this namespace.
    fn preloaded(&self, prog: &str, args: &[String]) -> String {
        let out = self
            .rig
            .preloaded("python3")
            .arg("-c")
            .arg(prog)
            .args(args)
            .env("REXEC_PIDS_DIR", &self.pids)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[test]
fn mapped_pid_thread_ids_and_own_numbers_follow_the_rule() {
    let host = start();
    let all = affinity(host.h);
    let rexec_pid = host.rexec.id() as i32;
    let before = sched_total(&host.rig);

    // (a) The local rexec pid, through the pid map: the HOST process's main thread.
    let out = host.preloaded(SET_AND_GET, &[rexec_pid.to_string(), "1".into()]);
    assert_eq!(out, "OK 1", "get through the map reads the HOST's mask");
    assert_eq!(affinity(host.h), cpus(&[1]), "the HOST process was not changed");
    assert_eq!(affinity(rexec_pid), all, "the local rexec was changed");
    assert_eq!(affinity(host.t0), all, "a thread other than the main one changed");
    assert_eq!(sched_total(&host.rig), before + 2, "one SET and one GET reached the engine");

    // (b) A HOST thread id: that thread only.
    let out = host.preloaded(SET_AND_GET, &[host.t0.to_string(), "0".into()]);
    assert_eq!(out, "OK 0");
    assert_eq!(affinity(host.t0), cpus(&[0]));
    assert_eq!(affinity(host.t1), all, "the other thread changed");
    assert_eq!(affinity(host.h), cpus(&[1]), "the main thread changed");
    assert_eq!(sched_total(&host.rig), before + 4);

    // (c) The caller's own pid, 0 and its own thread: local, the engine is not asked.
    let out = host.preloaded(OWN, &[]);
    assert_eq!(out, "OWN [1] [0] [1]");
    assert_eq!(sched_total(&host.rig), before + 4, "the caller's own numbers went to the HOST");

    // An empty pid map: no rexec runs, nothing is asked of the HOST (here the thread is
    // this machine's, so the local call reaches it).
    let empty = host.rig.dpu.join("no-pids");
    std::fs::create_dir_all(&empty).unwrap();
    let out = host
        .rig
        .preloaded("python3")
        .args(["-c", SET_AND_GET, &host.t1.to_string(), "1"])
        .env("REXEC_PIDS_DIR", &empty)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK 1");
    assert_eq!(sched_total(&host.rig), before + 4, "asked the HOST with an empty pid map");

    // A HOST error other than "no such process" is the caller's: an impossible mask.
    let out = host.preloaded(SET_AND_GET, &[rexec_pid.to_string(), "63".into()]);
    assert_eq!(out, format!("ERR {}", libc::EINVAL));
    assert_eq!(affinity(host.h), cpus(&[1]));
}

#[test]
fn collisions_in_a_dpu_pid_namespace_follow_the_rule() {
    let host = start();
    let all = affinity(host.h);
    // A HOST process with a name in [Kill], not started through rexec_server.
    let mut unrelated = Command::new("sleep").arg("1000").stdin(Stdio::null()).spawn().unwrap();
    let u = unrelated.id() as i32;
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{u}/comm")).is_ok_and(|c| c.trim() == "sleep")
    }));
    let (_, so) = artifacts();
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "python3", "-c", DPU_NS])
        .args([host.t0.to_string(), host.t1.to_string(), u.to_string()])
        .env("PRELOAD", so)
        .env("SET_AND_GET", SET_AND_GET)
        .env("UDSPROXY_SOCKET", host.rig.request_socket())
        .env("REXEC_PIDS_DIR", &host.pids)
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let unrelated_aff = affinity(u);
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "DPU namespace script: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |tag: &str| {
        text.lines().find_map(|l| l.strip_prefix(&format!("{tag} "))).unwrap_or_else(|| panic!("no {tag}: {text}"))
    };
    let all_s = all.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(" ");
    // (b) in the DPU namespace, where the thread id names nothing local: the HOST thread.
    assert_eq!(line("B"), "OK 0");
    assert_eq!(affinity(host.t0), cpus(&[0]));
    // (d1) A DPU process whose pid equals a HOST vCPU thread id of a rexec'd process: the
    // HOST thread is acted on (rule 3), the DPU process is left alone.
    assert_eq!(line("D1"), format!("OK 1 | {all_s}"));
    assert_eq!(affinity(host.t1), cpus(&[1]));
    assert_eq!(affinity(host.h), all, "the HOST main thread changed");
    // (d2) A DPU process whose pid equals a HOST process not started through rexec_server:
    // the engine refuses (EPERM), the call is local; the HOST process is untouched.
    assert_eq!(line("D2"), "OK 1 | 1");
    assert_eq!(unrelated_aff, all, "the HOST process not started through rexec_server changed");
    let (_, errors) = engine_count(&host.rig, Op::SCHED_SETAFFINITY);
    assert_eq!(errors, 1, "the engine was asked about the unrelated process once, and refused");
}
