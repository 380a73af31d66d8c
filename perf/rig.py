"""perf/rig.py — what the side-by-side comparisons of perf/ share: starting the systems
they compare on one tmpfs export (the directory itself, bindfs, qtfs-fuse + engine over
TCP loopback with a PSK, qtfs-fuse -o writeback_cache, sshfs over a private loopback
sshd), and the machine/commit/summary fields of the qtfs-perf/1 schema (perf/README.md).

Used by perf/fio-compare and perf/workload-compare (they put perf/ on sys.path).
"""

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "perf", "results")
PREFIX = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "perf"


def log(*a):
    print(PREFIX + ":", *a, file=sys.stderr, flush=True)


def work_dir(name):
    """A fresh directory under perf/work (ignored by git) for one run."""
    import tempfile
    base = os.path.join(ROOT, "perf", "work")
    os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=name + "-", dir=base)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(l.split(" ")[4] == path for l in f)


def wait_mounted(path, proc=None, timeout=20):
    t = time.time() + timeout
    while time.time() < t:
        if is_mounted(path):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{path} did not get mounted")


class Rig:
    """Everything started for the comparison; torn down by stop()."""

    def __init__(self, work, args):
        self.work = work
        self.args = args
        self.procs = []
        self.mounts = []
        self.tmpfs = os.path.join(work, "tmpfs")
        self.export = os.path.join(self.tmpfs, "export")
        self.dirs = {}
        self.detail = {}
        self.engines = {}

    def start(self, systems, release):
        os.makedirs(self.tmpfs)
        run(["mount", "-t", "tmpfs", "-o", "size=3g", "tmpfs", self.tmpfs])
        self.mounts.append(self.tmpfs)
        os.makedirs(self.export)
        os.chmod(self.export, 0o777)
        for s in systems:
            getattr(self, "start_" + s.replace("-", "_").replace("+", "_"))(release)
        for s in systems:
            d = self.dirs[s]
            os.makedirs(d, exist_ok=True)

    def mnt(self, name):
        p = os.path.join(self.work, "mnt-" + name)
        os.makedirs(p, exist_ok=True)
        return p

    def start_local(self, release):
        self.dirs["local"] = os.path.join(self.export, "local")
        self.detail["local"] = "the tmpfs directory itself"

    def start_bindfs(self, release):
        m = self.mnt("bindfs")
        run(["bindfs", "--multithreaded", "-o", "big_writes", self.export, m])
        wait_mounted(m)
        self.mounts.append(m)
        self.dirs["bindfs"] = os.path.join(m, "bindfs")
        self.detail["bindfs"] = "bindfs --multithreaded -o big_writes (libfuse2)"

    def ensure_engine(self, release, binary=None, name="engine"):
        """Starts engine `name` (`binary`: another build, e.g. the previous commit's, beside the
        current one) once; returns its address. Each measured qtfs system has an engine of its
        own, with its own admin socket (engine.sock for qtfs-fuse, engine-base.sock, ...): on a
        shared one, each mount's changes would be echoed to the others' sessions for a while
        (an engine tells a session's own changes from another's only while one session makes
        changes, engine/src/notify), which no single deployment of either would see.

        Unpinned (`--no-pin`): here the engine shares two vCPUs with the DPU side and its
        load generator, which a HOST engine never does. Pinned, a connection accepted by the
        core whose CPU the load generator keeps busy (fio's io_uring job spins a CPU while its
        FUSE reads are out) stays there for the mount's life: 4k reads 16 deep measured
        29k IOPS on such a mount and 77k-89k on the others, the same build
        (perf/results/2026-12-07-vm-ring-batch.md)."""
        if name in self.engines:
            return self.engines[name]
        if not hasattr(self, "psk"):
            key = os.path.join(self.work, "psk")
            with open(key, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
            os.chmod(key, 0o600)
            self.psk = key
            wl = os.path.join(self.work, "whitelist")
            groups = "Open Write Read Readdir Mkdir Rmdir Create Unlink Rename Setattr Setxattr".split()
            with open(wl, "w") as f:
                f.write(f"[Mount]\nPath={self.export}\n")
                for g in groups:
                    f.write(f"[{g}]\nPath={self.export}\n")
            self.wl = wl
        port = free_port()
        eng = binary or os.path.join(release, "engine")
        cmd = [eng, "--cores", str(os.cpu_count() or 2), "--no-pin", "--listen", f"tcp:127.0.0.1:{port}", "--whitelist", self.wl,
               "--psk-file", self.psk, "--admin-socket", os.path.join(self.work, name + ".sock"),
               "--lock-file", os.path.join(self.work, name + ".lock"), "--log-level", "WARN"]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, name + ".log"), "w"))
        self.procs.append(p)
        t = time.time() + 10
        while time.time() < t:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        self.engines[name] = f"tcp:127.0.0.1:{port}"
        return self.engines[name]

    def qtfs_mount(self, name, release, opts, binary=None, engine=None, engine_name="engine"):
        addr = self.ensure_engine(release, engine, engine_name)
        m = self.mnt(name)
        cmd = [binary or os.path.join(release, "qtfs-fuse"), "-f", "--server", addr, "--psk-file", self.psk] + \
            sum([["-o", o] for o in opts], []) + [self.export, m]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.work, name + ".log"), "w"))
        self.procs.append(p)
        wait_mounted(m, p)
        self.mounts.append(m)
        self.dirs[name] = os.path.join(m, name)

    def start_qtfs_fuse(self, release):
        self.qtfs_mount("qtfs-fuse", release, [])
        self.detail["qtfs-fuse"] = (f"engine --cores {os.cpu_count()} --no-pin on TCP loopback with a PSK; qtfs-fuse defaults "
                                    "(attr/entry timeout 1 s, write-through, 32 threads, 1 MiB I/O)")

    def start_qtfs_fuse_base(self, release):
        # Another build of qtfs-fuse (args.base_fuse) and/or of the engine (args.base_engine),
        # e.g. the previous commit's: a before/after of a change measured in one run.
        # --base-opts: its mount options (e.g. io_uring=on, the before of a transport change).
        fuse, engine = self.args.base_fuse, getattr(self.args, "base_engine", None)
        opts = [o for o in (getattr(self.args, "base_opts", None) or "").split(",") if o]
        if "io_uring=on" in opts:
            self.enable_uring("qtfs-fuse-base")
        self.qtfs_mount("qtfs-fuse-base", release, opts, binary=fuse, engine=engine, engine_name="engine-base")
        self.detail["qtfs-fuse-base"] = (f"qtfs-fuse {fuse or '(this build)'} on engine {engine or '(this build)'}"
                                         f", {' '.join('-o ' + o for o in opts) or 'defaults'} (the before of a change)")

    def enable_uring(self, name):
        # FUSE over io_uring: the kernel offers it only while the fuse module's enable_uring
        # is Y, read at mount time; the old value is put back in stop().
        param = "/sys/module/fuse/parameters/enable_uring"
        if not os.path.exists(param):
            sys.exit(f"{name}: {param} is missing (kernel without CONFIG_FUSE_IO_URING)")
        if not getattr(self, "uring_param", None):
            self.uring_param = (param, open(param).read().strip())
        with open(param, "w") as f:
            f.write("Y")

    def start_qtfs_fuse_uring(self, release):
        self.enable_uring("qtfs-fuse+uring")
        self.qtfs_mount("qtfs-fuse+uring", release, ["io_uring=on"], engine_name="engine-uring")
        self.detail["qtfs-fuse+uring"] = "qtfs-fuse -o io_uring=on: FUSE over io_uring, one ring per possible CPU"

    def start_qtfs_fuse_devring(self, release):
        self.qtfs_mount("qtfs-fuse+devring", release, ["dev_ring=on"], engine_name="engine-devring")
        self.detail["qtfs-fuse+devring"] = ("qtfs-fuse -o dev_ring=on: /dev/fuse served by one ring thread per CPU "
                                            "(requests as tasks, many in flight per thread)")

    def start_qtfs_fuse_wb(self, release):
        self.qtfs_mount("qtfs-fuse+wb", release, ["writeback_cache"], engine_name="engine-wb")
        self.detail["qtfs-fuse+wb"] = ("qtfs-fuse -o writeback_cache: HOST-side size/mtime changes of cached files "
                                       "are not seen (see client-fuse docs); informative, not used for targets")

    def start_sshfs(self, release):
        d = os.path.join(self.work, "ssh")
        os.makedirs(d)
        os.makedirs("/run/sshd", exist_ok=True)
        hk = os.path.join(d, "host_key")
        uk = os.path.join(d, "user_key")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hk])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", uk])
        auth = os.path.join(d, "authorized_keys")
        shutil.copy(uk + ".pub", auth)
        os.chmod(auth, 0o600)
        port = free_port()
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {auth}\n"
                    f"PidFile {d}/sshd.pid\nPermitRootLogin yes\nUsePAM no\nStrictModes no\n"
                    "PasswordAuthentication no\nSubsystem sftp internal-sftp\n")
        p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", conf], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(d, "sshd.log"), "w"))
        self.procs.append(p)
        time.sleep(0.5)
        m = self.mnt("sshfs")
        run(["sshfs", f"root@127.0.0.1:{self.export}", m, "-p", str(port), "-o", f"IdentityFile={uk}",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "Compression=no",
             "-o", "Ciphers=aes128-gcm@openssh.com", "-o", "kernel_cache", "-o", "allow_other"])
        wait_mounted(m)
        self.mounts.append(m)
        self.dirs["sshfs"] = os.path.join(m, "sshfs")
        self.detail["sshfs"] = "sshfs -o Compression=no,Ciphers=aes128-gcm@openssh.com,kernel_cache, private sshd"

    def stop(self):
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        if getattr(self, "uring_param", None):
            param, old = self.uring_param
            with open(param, "w") as f:
                f.write(old)
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()


def machine():
    model = ""
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                model = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for l in open("/proc/meminfo"):
        if l.startswith("MemTotal"):
            mem = round(int(l.split()[1]) / 1024 / 1024)
    return {"hostname": platform.node(), "kernel": platform.release(), "cpus": len(os.sched_getaffinity(0)),
            "cpu_model": model, "mem_gib": mem}


def commit():
    r = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=False)
    c = r.stdout.strip() or "unknown"
    if run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], check=False).stdout.strip():
        c += "-dirty"
    return c


def summarise(values, higher):
    best = {s: (max(v) if higher else min(v)) for s, v in values.items() if v}
    spread = {s: round((max(v) - min(v)) / best[s] * 100, 1) if best[s] else 0.0 for s, v in values.items() if v}
    return best, spread
