//! Pseudo file systems through qtfs-fuse (issue 13): the HOST's /proc, /sys and
//! /sys/fs/cgroup read and written without the page cache, and `-o proc`'s process
//! redirection, with qtfs-fuse in a pid namespace of its own (the "DPU") while the
//! engine and the test run in this machine's (the "HOST").

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const WL: &str = "[Mount]\nPath=/proc;/sys\n[Open]\nPath=/proc;/sys\n[Read]\nPath=/proc;/sys\n\
[Readdir]\nPath=/proc;/sys\n[Write]\nPath=/sys/fs/cgroup\n[Mkdir]\nPath=/sys/fs/cgroup\n\
[Rmdir]\nPath=/sys/fs/cgroup\n[Setattr]\nPath=/sys/fs/cgroup\n";

/// Runs `cmd` (qtfs-fuse, or a command that starts it in another namespace) mounting
/// HOST directory `remote` on `mnt` with the rig's arguments and `-o` each of `opts`.
fn spawn_fuse(mut cmd: Command, rig: &Rig, remote: &str, mnt: &Path, opts: &[&str]) -> Child {
    cmd.args(rig.fuse_args());
    for o in opts {
        cmd.args(["-o", o]);
    }
    cmd.arg(remote).arg(mnt).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

/// A qtfs-fuse mount of HOST directory `remote` on `mnt`, unmounted when dropped.
struct Mount {
    child: Child,
    mnt: PathBuf,
}

impl Mount {
    fn new(rig: &Rig, remote: &str, mnt: &Path, opts: &[&str]) -> Mount {
        std::fs::create_dir_all(mnt).unwrap();
        let mut child = spawn_fuse(Command::new(fuse_bin()), rig, remote, mnt, opts);
        let ok = wait_until(Duration::from_secs(20), || is_mounted(mnt) || child.try_wait().ok().flatten().is_some());
        assert!(ok && is_mounted(mnt), "qtfs-fuse did not mount {remote} on {}", mnt.display());
        Mount { child, mnt: mnt.to_path_buf() }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.mnt).status();
        if !wait_until(Duration::from_secs(5), || self.child.try_wait().ok().flatten().is_some()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// /proc/cpuinfo without the lines that change from one read to the next.
fn stable_cpuinfo(s: &str) -> String {
    s.lines().filter(|l| !l.starts_with("cpu MHz") && !l.starts_with("bogomips")).collect::<Vec<_>>().join("\n")
}

fn field(s: &str, key: &str) -> String {
    s.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in {s}")).to_string()
}

#[test]
fn proc_sys_and_cgroup_files_read_and_write_as_on_the_host() {
    let rig = Rig::engine_only(Opts::default(), WL);
    let proc = Mount::new(&rig, "/proc", &rig.dir.path().join("proc"), &[]);
    let sys = Mount::new(&rig, "/sys", &rig.dir.path().join("sys"), &[]);
    // Size 0 on the HOST, content through the mount (it was empty with the page cache).
    let cpuinfo = read(&proc.mnt.join("cpuinfo"));
    assert!(!cpuinfo.is_empty(), "/proc/cpuinfo is empty through the mount");
    assert_eq!(stable_cpuinfo(&cpuinfo), stable_cpuinfo(&read(Path::new("/proc/cpuinfo"))));
    let meminfo = read(&proc.mnt.join("meminfo"));
    assert_eq!(field(&meminfo, "MemTotal:"), field(&read(Path::new("/proc/meminfo")), "MemTotal:"));
    // sysfs reports 4096 for every attribute: the content, not 4096 bytes.
    let online = "devices/system/cpu/online";
    assert_eq!(read(&sys.mnt.join(online)), read(&Path::new("/sys").join(online)));
    // Read in small pieces at growing offsets (seq_file restarts where asked).
    use std::io::Read;
    let mut f = std::fs::File::open(proc.mnt.join("cpuinfo")).unwrap();
    let (mut got, mut buf) = (Vec::new(), [0u8; 100]);
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(stable_cpuinfo(&String::from_utf8(got).unwrap()), stable_cpuinfo(&cpuinfo));

    // A cgroup made and changed through a mount of /sys/fs/cgroup changes on the HOST.
    let cg = Mount::new(&rig, "/sys/fs/cgroup", &rig.dir.path().join("cgroup"), &[]);
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (sub, attr, value) = if v2 {
        let attr = if Path::new("/sys/fs/cgroup/cgroup.subtree_control").exists()
            && read(Path::new("/sys/fs/cgroup/cgroup.subtree_control")).contains("memory")
        {
            "memory.max"
        } else {
            "cgroup.max.descendants"
        };
        ("", attr, "12345678")
    } else {
        ("cpu/", "cpu.shares", "512")
    };
    let name = format!("{sub}qtfs-fuse-test-{}", std::process::id());
    let host_dir = Path::new("/sys/fs/cgroup").join(&name);
    std::fs::create_dir(cg.mnt.join(&name)).expect("mkdir of a cgroup through the mount");
    assert!(host_dir.is_dir(), "the cgroup was not made on the HOST");
    let wrote = std::fs::write(cg.mnt.join(&name).join(attr), value);
    let host_value = std::fs::read_to_string(host_dir.join(attr));
    let through = std::fs::read_to_string(cg.mnt.join(&name).join(attr));
    std::fs::remove_dir(&host_dir).unwrap();
    wrote.unwrap_or_else(|e| panic!("write {attr} through the mount: {e}"));
    let host_value = host_value.unwrap();
    // memory.max rounds down to pages.
    let want = if attr == "memory.max" { (12345678 / 4096 * 4096).to_string() } else { value.to_string() };
    assert_eq!(host_value.trim(), want, "{attr} on the HOST");
    assert_eq!(through.unwrap().trim(), want, "{attr} read back through the mount");
}

/// qtfs-fuse `-o proc` as PID 1 of a new pid and mount namespace (the DPU).
struct Dpu {
    unshare: Child,
    /// qtfs-fuse's pid in this (the HOST's) namespace.
    fuse_pid: u32,
    mnt: PathBuf,
}

/// An engine of the HOST's /proc and /sys with an empty rexec pid map directory.
fn rig_with_pidmap() -> (Rig, PathBuf) {
    let rig = Rig::engine_only(Opts::default(), WL);
    let pidmap = rig.dir.path().join("pids");
    std::fs::create_dir(&pidmap).unwrap();
    (rig, pidmap)
}

impl Dpu {
    fn start(rig: &Rig, pidmap: &Path) -> Dpu {
        let mnt = rig.dir.path().join("dpu-proc");
        std::fs::create_dir_all(&mnt).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"]).arg(fuse_bin());
        let unshare = spawn_fuse(cmd, rig, "/proc", &mnt, &[&format!("proc,pidmap={}", pidmap.display())]);
        let up = unshare.id();
        let mut fuse_pid = 0;
        let found = wait_until(Duration::from_secs(20), || {
            let kids = std::fs::read_to_string(format!("/proc/{up}/task/{up}/children")).unwrap_or_default();
            let Some(p) = kids.split_whitespace().next().and_then(|p| p.parse().ok()) else { return false };
            fuse_pid = p;
            let info = std::fs::read_to_string(format!("/proc/{p}/mountinfo")).unwrap_or_default();
            info.lines().any(|l| l.split(' ').nth(4) == mnt.to_str() && l.contains(" - fuse"))
        });
        let dpu = Dpu { unshare, fuse_pid, mnt };
        assert!(found, "qtfs-fuse -o proc did not mount in its namespace");
        dpu
    }

    /// `sh -c script` in the DPU's namespaces (MNT replaced by the mount point).
    fn sh(&self, script: &str) -> String {
        let script = script.replace("MNT", self.mnt.to_str().unwrap());
        let out = Command::new("nsenter")
            .args(["-t", &self.fuse_pid.to_string(), "-p", "-m", "sh", "-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Does the DPU's own /proc (not the mount) have `n`?
    fn local(&self, n: u32) -> bool {
        Path::new(&format!("/proc/{}/root/proc/{n}", self.fuse_pid)).exists()
    }
}

impl Drop for Dpu {
    fn drop(&mut self) {
        // SIGKILL of PID 1 ends the namespace; the mount goes with its mount namespace.
        // SAFETY: kill(2) of a process we started.
        unsafe { libc::kill(self.fuse_pid as i32, libc::SIGKILL) };
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn stat_of(s: &str) -> (u32, String) {
    let pid = s.split_whitespace().next().unwrap().parse().unwrap();
    let comm = s[s.find('(').unwrap() + 1..s.rfind(')').unwrap()].to_string();
    (pid, comm)
}

fn gettid() -> u32 {
    // SAFETY: gettid cannot fail.
    unsafe { libc::gettid() as u32 }
}

#[test]
fn proc_option_redirects_self_local_mapped_and_host_processes() {
    let (rig, pidmap) = rig_with_pidmap();
    let dpu = Dpu::start(&rig, &pidmap);

    // self and thread-self: the reader's own process and thread (a shell's builtin
    // `read`, so the reader is the shell whose $$ is printed).
    let out = dpu.sh("while read -r k v; do [ \"$k\" = Pid: ] && echo $v; done < MNT/self/status; echo $$");
    let v: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(v.len(), 2, "{out}");
    assert_eq!(v[0], v[1], "/proc/self/status through the mount names another process");
    let out = dpu.sh("read -r l < MNT/thread-self/stat; echo $l; echo $$");
    let (tid, comm) = stat_of(out.lines().next().unwrap());
    assert_eq!(tid.to_string(), out.lines().nth(1).unwrap(), "thread-self");
    assert_eq!(comm, "sh");
    // Two readers, two selves (nothing cached across them).
    let a = dpu.sh("readlink MNT/self; readlink MNT/self");
    let l: Vec<&str> = a.lines().collect();
    assert_ne!(l[0], l[1], "two readlink processes saw the same self");

    // The collision: 1 is a HOST pid and the DPU's (qtfs-fuse, PID 1 of its namespace).
    // Unmapped, the DPU's wins.
    let host1 = stat_of(&read(Path::new("/proc/1/stat")));
    assert_ne!(host1.1, "qtfs-fuse", "the HOST's pid 1 must differ for this test");
    let out = dpu.sh("read -r l < MNT/1/stat; echo $l");
    assert_eq!(stat_of(&out), (1, "qtfs-fuse".to_string()), "local pid 1 through the mount");
    let out = dpu.sh("ls MNT");
    assert!(out.lines().any(|l| l == "1") && out.lines().any(|l| l == "self"), "{out}");

    // A HOST process that is not a DPU number: the HOST's.
    let me = std::process::id();
    assert!(!dpu.local(me), "the test's pid is a DPU pid too");
    let out = dpu.sh(&format!("read -r l < MNT/{me}/stat; echo $l"));
    assert_eq!(stat_of(&out).0, me, "a HOST pid through the mount");

    // Mapped: local pid 1 stands for this test process on the HOST (a live, flock-held
    // rexec pid-map entry), so /proc/1 and /proc/1/task/<HOST tid> are ours.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        tx.send(gettid()).unwrap();
        let _ = stop_rx.recv();
    });
    let host_tid = rx.recv().unwrap();
    let entry = pidmap.join("1");
    std::fs::write(&entry, me.to_string()).unwrap();
    let held = std::fs::File::open(&entry).unwrap();
    // SAFETY: flock on a descriptor we own; it is dropped below to end the "rexec".
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let out = dpu.sh("read -r l < MNT/1/stat; echo $l");
    let mine = stat_of(&read(Path::new(&format!("/proc/{me}/stat"))));
    assert_eq!(stat_of(&out), mine, "mapped local pid 1 shows its HOST process");
    let out = dpu.sh(&format!("read -r l < MNT/1/task/{host_tid}/stat; echo $l"));
    assert_eq!(stat_of(&out).0, host_tid, "a HOST thread of the mapped process");
    let out = dpu.sh("ls MNT/1/task");
    assert!(out.lines().any(|l| l == host_tid.to_string()), "HOST tids under the mapped pid: {out}");
    // The rexec is gone (lock released, file left behind): the DPU's own pid 1 again.
    // Unlocked explicitly: a process another test forks at this moment shares the
    // descriptor (and its lock) until it execs.
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_UN) }, 0);
    drop(held);
    let out = dpu.sh("read -r l < MNT/1/stat; echo $l");
    assert_eq!(stat_of(&out), (1, "qtfs-fuse".to_string()), "a stale pid-map entry is ignored");
    stop_tx.send(()).unwrap();
    t.join().unwrap();

    // Another local process is seen as itself, its directory listed from the local /proc.
    // (Its comm is the forking shell's until it has exec'd sleep: wait for that.)
    let out = dpu.sh("sleep 30 & p=$!; until [ \"$(cat /proc/$p/comm)\" = sleep ]; do :; done; \
         read -r l < MNT/$p/stat; echo $l; echo $p; ls MNT/$p/fd; kill $p");
    let (pid, comm) = stat_of(out.lines().next().unwrap());
    assert_eq!(pid.to_string(), out.lines().nth(1).unwrap(), "{out}");
    assert_eq!(comm, "sleep");
    assert!(out.lines().skip(2).any(|l| l == "0"), "fd/ of the local process: {out}");
}

#[test]
fn cat_of_a_thousand_stat_files_through_the_mount_vs_locally() {
    // A figure, not a target: printed with --nocapture.
    let rig = Rig::engine_only(Opts::default(), WL);
    let proc = Mount::new(&rig, "/proc", &rig.dir.path().join("proc"), &[]);
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert!(!pids.is_empty());
    let run = |root: &Path| {
        let t = Instant::now();
        let mut n = 0;
        let mut i = 0;
        while n < 1000 {
            if std::fs::read(root.join(&pids[i % pids.len()]).join("stat")).is_ok() {
                n += 1;
            }
            i += 1;
        }
        t.elapsed()
    };
    let local = run(Path::new("/proc"));
    let mounted = run(&proc.mnt);
    eprintln!(
        "1000 /proc/<pid>/stat reads: local {:.1} ms, through qtfs-fuse {:.1} ms, ratio {:.1}",
        local.as_secs_f64() * 1e3,
        mounted.as_secs_f64() * 1e3,
        mounted.as_secs_f64() / local.as_secs_f64()
    );
}

/// The HOST's cgroup mounts as /proc/<pid>/mounts through `-o proc` shows them: (type,
/// HOST mount point, a controller it names or "") of each, named v1 hierarchies left out.
fn host_cgroup_mounts() -> Vec<(String, String, String)> {
    read(Path::new("/proc/self/mountinfo"))
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(" - ")?;
            let mut t = b.split(' ');
            let (ty, _, opts) = (t.next()?, t.next()?, t.next()?);
            let named = opts.split(',').any(|o| o.starts_with("name="));
            let ok = ty == "cgroup2" || (ty == "cgroup" && !named);
            let ctl = opts.split(',').find(|o| *o != "rw" && *o != "ro").unwrap_or("");
            ok.then(|| (ty.to_string(), a.split(' ').nth(4).unwrap().to_string(), ctl.to_string()))
        })
        .collect()
}

/// A HOST process (`sleep`) in this machine's pid namespace, killed and reaped when dropped.
struct HostProc(Child);

impl HostProc {
    fn start() -> HostProc {
        HostProc(Command::new("sleep").arg("300").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    /// Is it in the HOST cgroup whose path (below its hierarchy's root) is `cg`?
    fn in_cgroup(&self, cg: &str) -> bool {
        read(Path::new(&format!("/proc/{}/cgroup", self.pid()))).lines().any(|l| l.ends_with(&format!(":{cg}")))
    }
}

impl Drop for HostProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A HOST cgroup made by a test, removed when dropped (once its processes are gone).
struct CgDir(PathBuf);

impl Drop for CgDir {
    fn drop(&mut self) {
        wait_until(Duration::from_secs(10), || !self.0.exists() || std::fs::remove_dir(&self.0).is_ok());
    }
}

/// A live rexec pid-map entry `dir/<local>` = `host`: locked, then written (as rexec
/// does), held until dropped.
fn map_entry(dir: &Path, local: u32, host: u32) -> std::fs::File {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join(local.to_string())).unwrap();
    // SAFETY: flock on a descriptor we own; dropping the file ends the "rexec".
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    write!(f, "{host}").unwrap();
    f
}

#[test]
fn cgroup_mounts_shown_and_pids_written_into_host_cgroups_from_a_dpu_namespace() {
    let (rig, pidmap) = rig_with_pidmap();
    let dpu = Dpu::start(&rig, &pidmap);
    // The DPU's mount of the HOST's /sys/fs/cgroup (pid translation is on by default).
    let cgmnt = rig.dir.path().join("dpu-cgroup");
    std::fs::create_dir_all(&cgmnt).unwrap();
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &dpu.fuse_pid.to_string(), "-p", "-m", fuse_bin()]);
    let mut fuse = spawn_fuse(cmd, &rig, "/sys/fs/cgroup", &cgmnt, &[&format!("pidmap={}", pidmap.display())]);
    let mounted = wait_until(Duration::from_secs(20), || {
        let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", dpu.fuse_pid)).unwrap_or_default();
        info.lines().any(|l| l.split(' ').nth(4) == cgmnt.to_str() && l.contains(" - fuse"))
    });
    assert!(mounted, "qtfs-fuse of /sys/fs/cgroup did not mount in the DPU");

    // 1. The mount table through -o proc shows the HOST's cgroup file systems beneath
    //    the qtfs-fuse mount, with their HOST types (what libvirt detects cgroups by).
    let host = host_cgroup_mounts();
    assert!(!host.is_empty(), "this HOST has no cgroup mount");
    let mounts = dpu.sh("cat MNT/self/mounts");
    let info = dpu.sh("cat MNT/self/mountinfo");
    for (ty, mp, ctl) in &host {
        let Some(rest) = mp.strip_prefix("/sys/fs/cgroup") else { continue };
        let at = format!("{}{rest}", cgmnt.display());
        let line = mounts.lines().find(|l| l.split(' ').nth(1) == Some(&at) && l.split(' ').nth(2) == Some(ty));
        let line = line.unwrap_or_else(|| panic!("no {ty} line at {at} in the DPU's mounts:\n{mounts}"));
        assert!(line.split(' ').nth(3).unwrap().split(',').any(|o| o == ctl || ctl.is_empty()), "{line}");
        assert!(
            info.lines().any(|l| l.split(' ').nth(4) == Some(&at) && l.contains(&format!(" - {ty} "))),
            "no {ty} at {at} in the DPU's mountinfo:\n{info}"
        );
    }
    // The DPU's own /proc is untouched.
    let own = std::fs::read_to_string(format!("/proc/{}/mounts", dpu.fuse_pid)).unwrap();
    assert!(!own.lines().any(|l| l.split(' ').nth(1).is_some_and(|m| m.starts_with(&format!("{}/", cgmnt.display())))));

    // 2. Pid writes into a HOST test cgroup (v1: the cpu hierarchy; v2: the root).
    let v1 = host.iter().any(|(ty, mp, _)| ty == "cgroup" && mp == "/sys/fs/cgroup/cpu");
    let sub = if v1 { "cpu/" } else { "" };
    let name = format!("qtfs-fuse-pids-{}", std::process::id());
    let host_dir = PathBuf::from(format!("/sys/fs/cgroup/{sub}{name}"));
    std::fs::create_dir(&host_dir).unwrap();
    // Removed at the end, also after a failure (dropped after the processes in it).
    let _cg_dir = CgDir(host_dir.clone());
    let cg = format!("/{name}");
    let procs = format!("{}/{sub}{name}/cgroup.procs", cgmnt.display());
    let write =
        |n: &str| dpu.sh(&format!("if echo {n} > {procs}; then echo ok; else echo refused; fi")).trim().to_string();
    let (a, b) = (HostProc::start(), HostProc::start());

    // A DPU-only process (another program than the writer's): ESRCH, nothing moves.
    let out = dpu.sh(&format!(
        "sleep 30 & p=$!; if echo $p > {procs} 2>/dev/null; then echo ok; else echo refused; fi; kill $p"
    ));
    assert_eq!(out.trim(), "refused", "a DPU-only pid was accepted");
    // An unrelated HOST pid (not a thread of a mapped process): ESRCH.
    assert_eq!(write(&a.pid().to_string()), "refused", "an unmapped HOST pid was accepted");
    assert!(!a.in_cgroup(&cg));
    // A local process with a live pid-map entry: its HOST process is moved.
    let local: u32 = dpu.sh("sleep 300 >/dev/null 2>&1 & echo $!").trim().parse().unwrap();
    let entry = map_entry(&pidmap, local, a.pid());
    assert_eq!(write(&local.to_string()), "ok");
    assert!(a.in_cgroup(&cg), "the mapped process is not in the HOST cgroup");
    assert!(read(&host_dir.join("cgroup.procs")).lines().any(|l| l == a.pid().to_string()));
    // A HOST thread of a mapped process, written as the HOST number (as QMP's vCPU ids).
    let tid = a.pid();
    std::fs::write(format!("/sys/fs/cgroup/{sub}cgroup.procs"), tid.to_string()).unwrap();
    assert!(!a.in_cgroup(&cg));
    assert_eq!(write(&tid.to_string()), "ok", "a HOST thread of a mapped process was refused");
    assert!(a.in_cgroup(&cg));
    drop(entry);
    // Held back: a child the writer forked and that has not exec'd (libvirt's order),
    // moved once it runs on the HOST (its pid-map entry appears).
    let go = rig.dir.path().join("go");
    let out = dpu.sh(&format!(
        "( while [ ! -e {go} ]; do sleep 0.05; done ) >/dev/null 2>&1 & c=$!; \
         if echo $c > {procs}; then echo held $c; else echo refused $c; fi",
        go = go.display()
    ));
    let (verdict, child) = out.trim().split_once(' ').unwrap();
    assert_eq!(verdict, "held", "{out}");
    assert!(!b.in_cgroup(&cg));
    let entry = map_entry(&pidmap, child.parse().unwrap(), b.pid());
    assert!(wait_until(Duration::from_secs(10), || b.in_cgroup(&cg)), "the held-back move was not carried out");
    std::fs::write(&go, "").unwrap();
    drop(entry);

    // Reads list HOST pids as they are.
    let listed = dpu.sh(&format!("cat {procs}"));
    assert!(listed.lines().any(|l| l == b.pid().to_string()), "{listed}");

    drop((a, b));
    let _ = dpu.sh(&format!("kill {local}"));
    let removed = wait_until(Duration::from_secs(10), || std::fs::remove_dir(&host_dir).is_ok());
    assert!(removed, "the test cgroup {} could not be removed", host_dir.display());
    let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&cgmnt).status();
    let _ = fuse.kill();
    let _ = fuse.wait();
}
