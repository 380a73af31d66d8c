//! The command line of `qtfs-fuse` and its `-o` mount options, turned into one
//! [`MountConfig`]. Owns parsing and validation only.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use qtfs_proto::Addr;

use crate::error::FuseError;
use crate::fs::FsConfig;
use crate::kernel::UringMode;
use crate::procfs::ProcConfig;

const AFTER_HELP: &str = "\
MOUNT OPTIONS (-o, comma separated, repeatable)
  attr_timeout=SEC      how long the kernel trusts file attributes (default 1); a change made
                        on the HOST is seen by this client at most this late
  entry_timeout=SEC     how long the kernel trusts a name -> file mapping (default 1)
  negative_timeout=SEC  how long the kernel remembers that a name does not exist (default:
                        entry_timeout, whose promise invalidations keep; 0 with noinval)
  writeback_cache       let the kernel buffer writes and send them in big batches; data reaches
                        the HOST on fsync, close and memory pressure, and size/mtime changes
                        made on the HOST to a file this client has cached are NOT seen until
                        the file is dropped from the cache (see the crate docs); off by default
  noinval               do not ask the engine for invalidations: changes made on the HOST or
                        through another client are seen only after attr_timeout/entry_timeout
                        (for tests and comparisons; `inval`, the default, asks for them)
  readahead_kb=KB       kernel readahead for this mount (default 1024)
  threads=N             FUSE worker threads (default 32): the most requests in flight over
                        /dev/fuse; over io_uring the pool for requests that may block (locks)
  io_uring=auto|on|off  how requests reach qtfs-fuse: FUSE over io_uring (one ring per possible
                        CPU, Linux 6.14+, only while /sys/module/fuse/parameters/enable_uring is
                        Y) or /dev/fuse. off (default: io_uring measured 2.5x /dev/fuse
                        for 4k reads 16 deep but 0.82-0.95x for single requests here, see
                        the README); auto: io_uring when the kernel offers it; on: the mount fails
                        when it does not. The log says which (`transport:` at --log-level info)
  dev_ring=on|off       without io_uring, /dev/fuse served by one ring thread per CPU: requests
                        that wait only for the engine run there, many in flight on one engine
                        connection each (locks and relays go to the `threads` pool): 1.8x
                        the workers for 4k reads 16 deep, 0.82-0.96x for one request at a time
                        here (see the README); off (default): one blocking worker per request
                        in flight
  reconnect_timeout=SEC how long requests wait for a restarted engine (default 30); then, and
                        at once while it stays away longer, they fail with ETIMEDOUT
  proc                  for a mount of the HOST's /proc: files are read without page cache (as
                        for every procfs/sysfs/cgroupfs file), and process numbers are
                        redirected by this rule, applied to the first name under the mount:
                          self, thread-self  the reader's own process and thread (from the
                                             pid the kernel reports for the FUSE request)
                          N, a process or thread in the local /proc (qtfs-fuse's pid namespace)
                                             that local process (its files served from the
                                             local /proc), unless the rexec pid map has a
                                             live (flock-held) entry DIR/N: then the HOST
                                             process whose pid that file holds
                          anything else      the HOST's (HOST pids and tids, cpuinfo, sys/ ...)
                        so a number that is both a DPU pid and a HOST pid is the DPU's
  relay                 HOST character devices and FIFOs (a VM's console pty under the HOST's
                        /dev/pts) show as regular files of size 0 whose opens, reads, writes
                        and poll/epoll readiness are relayed to the HOST object (the engine's
                        --allow-devices decides which devices open); terminal ioctls are
                        accepted and ignored, the real type is in the xattr user.qtfs.relay
                        (libudsproxy.so's fstat reports it). A blocked read or write holds
                        one of the `threads` workers. Without it such files are the DPU's
                        own devices and pipes, as with any FUSE mount
  cgroup_pids=translate|verbatim
                        process numbers written into cgroup.procs, tasks or cgroup.threads of
                        a HOST cgroup file system (translate, the default): a local process
                        with a live pid-map entry -> its HOST pid; a local process running
                        the writer's own program (forked, not exec'd yet) -> held back and
                        moved once it runs on the HOST through rexec; a HOST thread of a
                        mapped process -> as it is; anything else -> ESRCH. verbatim: as
                        written (when qtfs-fuse shares the HOST's pid namespace)
  pidmap=DIR            the rexec pid map for -o proc and cgroup_pids (default
                        /var/run/rexec/pids)
  proc_local=DIR        the local procfs for -o proc and cgroup_pids (default /proc)
  server=ADDR, psk_file=F, insecure, connections=N
                        the same as the long options (for mount -t fuse.qtfs-fuse / fstab)
  ro, nosuid, nodev, noexec, noatime, allow_other, default_permissions
                        the usual FUSE/mount meanings (allow_other and default_permissions are
                        on by default when run as root)

EXAMPLES
  # An engine on the HOST over vsock (the default), key in /etc/qtfs/psk:
  qtfs-fuse --psk-file /etc/qtfs/psk /home/VMs /mnt/vms
  # A test engine on TCP loopback without a key, in the foreground:
  qtfs-fuse -f --server tcp:127.0.0.1:12345 --insecure-test-mode /srv/export /mnt/x
  # The HOST's /proc with the DPU's own processes (libvirt on the DPU, qemu on the HOST):
  qtfs-fuse --psk-file /etc/qtfs/psk -o proc /proc /root/new_root/proc
  # As a mount helper (qtfs-fuse in PATH):
  mount -t fuse.qtfs-fuse /srv/export /mnt/x -o server=tcp:127.0.0.1:12345,psk_file=/etc/qtfs/psk
  # Unmount:
  fusermount3 -u /mnt/x     (or umount /mnt/x, or SIGTERM/SIGINT to qtfs-fuse)";

/// Mounts a directory exported by a qtfs engine (the user-space twin of
/// `mount -t qtfs REMOTE_PATH MOUNTPOINT`).
#[derive(Debug, Parser)]
#[command(name = "qtfs-fuse", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Where the engine listens: tcp:IP:PORT, vsock:CID:PORT or unix:PATH.
    #[arg(long, short = 's', value_name = "ADDR")]
    pub server: Option<String>,
    /// Pre-shared key file (one line of hex, mode 0600), the engine's --psk-file.
    #[arg(long, value_name = "FILE")]
    pub psk_file: Option<PathBuf>,
    /// Talk to an engine without authentication (tests only; TCP requires a key otherwise).
    #[arg(long)]
    pub insecure_test_mode: bool,
    /// Connections of the shared engine session (MOUNT, CLOSE, re-mounts after an engine
    /// restart); each FUSE worker thread also attaches its own connection to the same
    /// session for its requests, so requests spread over the engine's cores either way.
    #[arg(long, short = 'c', value_name = "N")]
    pub connections: Option<usize>,
    /// Mount options, see below.
    #[arg(short = 'o', value_name = "OPTS", action = clap::ArgAction::Append)]
    pub options: Vec<String>,
    /// Stay in the foreground (default: detach once mounted).
    #[arg(long, short = 'f')]
    pub foreground: bool,
    /// Log level: error, warn, info, debug, trace (every FUSE request: its node, caller pid
    /// and arguments) (or RUST_LOG).
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub log_level: String,
    /// The directory on the HOST (absolute; must be in the engine's [Mount] whitelist).
    pub remote_path: String,
    /// Where to mount it here.
    pub mountpoint: PathBuf,
}

/// Everything the daemon needs, validated.
#[derive(Debug, Clone)]
pub struct MountConfig {
    pub server: Addr,
    pub psk_file: Option<PathBuf>,
    pub insecure: bool,
    pub connections: usize,
    pub foreground: bool,
    pub log_level: String,
    pub remote_path: String,
    pub mountpoint: PathBuf,
    /// What the file system does with what it serves: caching, permissions, redirections.
    pub fs: FsConfig,
    /// Ask the engine for invalidations (`feat::INVAL`); `-o noinval` turns it off.
    pub inval: bool,
    pub readahead_kb: u32,
    pub threads: usize,
    /// `-o io_uring=`: FUSE over io_uring or `/dev/fuse`.
    pub io_uring: UringMode,
    /// `-o dev_ring=`: `/dev/fuse` served by ring threads.
    pub dev_ring: bool,
    pub reconnect_timeout: Duration,
    pub allow_other: bool,
    /// Plain mount flags passed to the kernel (nosuid, nodev, …).
    pub flags: Vec<String>,
}

/// The default engine address: the HOST (vsock CID 2) on the qtfs port.
pub const DEFAULT_SERVER: &str = "vsock:2:12345";

fn secs(key: &str, v: &str) -> Result<Duration, FuseError> {
    let f: f64 = v.parse().map_err(|_| FuseError::Usage(format!("-o {key}={v}: not a number of seconds")))?;
    if !(0.0..=86400.0).contains(&f) {
        return Err(FuseError::Usage(format!("-o {key}={v}: out of range (0..86400)")));
    }
    Ok(Duration::from_secs_f64(f))
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, FuseError> {
    v.parse().map_err(|_| FuseError::Usage(format!("-o {key}={v}: not a number")))
}

impl MountConfig {
    pub fn from_cli(cli: Cli) -> Result<MountConfig, FuseError> {
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let mut server = cli.server;
        let mut psk_file = cli.psk_file;
        let mut insecure = cli.insecure_test_mode;
        let mut connections = cli.connections;
        let mut c = MountConfig {
            server: Addr::parse(DEFAULT_SERVER).expect("default address"),
            psk_file: None,
            insecure: false,
            connections: 2,
            foreground: cli.foreground,
            log_level: cli.log_level,
            remote_path: cli.remote_path,
            mountpoint: cli.mountpoint,
            fs: FsConfig {
                attr_ttl: Duration::from_secs(1),
                entry_ttl: Duration::from_secs(1),
                negative_ttl: Duration::ZERO,
                negative_only_watched: true,
                writeback_cache: false,
                read_only: false,
                default_permissions: true,
                proc: None,
                cgroup_pids: None,
                relay: false,
            },
            inval: true,
            readahead_kb: 1024,
            threads: 32,
            io_uring: UringMode::Off,
            dev_ring: false,
            reconnect_timeout: Duration::from_secs(30),
            allow_other: root,
            flags: Vec::new(),
        };
        let mut negative_timeout = None;
        let mut cgroup_pids = true;
        let (mut proc, mut pidmap, mut proc_local) = (false, None, None);
        for opt in cli.options.iter().flat_map(|o| o.split(',')).filter(|o| !o.is_empty()) {
            let (k, v) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            let val = || v.ok_or_else(|| FuseError::Usage(format!("-o {k} needs a value ({k}=...)")));
            match k {
                "attr_timeout" => c.fs.attr_ttl = secs(k, val()?)?,
                "entry_timeout" => c.fs.entry_ttl = secs(k, val()?)?,
                "negative_timeout" => negative_timeout = Some(secs(k, val()?)?),
                "reconnect_timeout" => c.reconnect_timeout = secs(k, val()?)?,
                "writeback_cache" => c.fs.writeback_cache = true,
                "proc" => proc = true,
                "relay" => c.fs.relay = true,
                "cgroup_pids" => {
                    cgroup_pids = match val()? {
                        "translate" => true,
                        "verbatim" => false,
                        v => return Err(FuseError::Usage(format!("-o cgroup_pids={v}: translate or verbatim"))),
                    }
                }
                "pidmap" => pidmap = Some(PathBuf::from(val()?)),
                "proc_local" => proc_local = Some(PathBuf::from(val()?)),
                "no_writeback_cache" => c.fs.writeback_cache = false,
                "inval" => c.inval = true,
                "noinval" => c.inval = false,
                "readahead_kb" => c.readahead_kb = num(k, val()?)?,
                "threads" => c.threads = num(k, val()?)?,
                "io_uring" => {
                    c.io_uring = match val()? {
                        "auto" => UringMode::Auto,
                        "on" => UringMode::On,
                        "off" => UringMode::Off,
                        v => return Err(FuseError::Usage(format!("-o io_uring={v}: auto, on or off"))),
                    }
                }
                "dev_ring" => {
                    c.dev_ring = match val()? {
                        "on" => true,
                        "off" => false,
                        v => return Err(FuseError::Usage(format!("-o dev_ring={v}: on or off"))),
                    }
                }
                "server" => server = Some(val()?.to_string()),
                "psk_file" => psk_file = Some(PathBuf::from(val()?)),
                "insecure" | "insecure_test_mode" => insecure = true,
                "connections" => connections = Some(num(k, val()?)?),
                "ro" => c.fs.read_only = true,
                "rw" => c.fs.read_only = false,
                "allow_other" => c.allow_other = true,
                "noallow_other" => c.allow_other = false,
                "default_permissions" => c.fs.default_permissions = true,
                "nodefault_permissions" => c.fs.default_permissions = false,
                "nosuid" | "nodev" | "noexec" | "noatime" | "suid" | "dev" | "exec" | "atime" | "sync" | "async"
                | "dirsync" => c.flags.push(k.to_string()),
                // What mount(8) and fstab pass along and FUSE has no use for.
                "_netdev" | "auto" | "noauto" | "user" | "nouser" | "users" | "nofail" | "defaults" | "relatime"
                | "norelatime" | "strictatime" => {}
                _ => return Err(FuseError::Usage(format!("unknown mount option -o {opt} (see --help)"))),
            }
        }
        let mut pc = ProcConfig::default();
        if let Some(d) = pidmap {
            pc.pidmap = d;
        }
        if let Some(d) = proc_local {
            pc.local = d;
        }
        c.fs.cgroup_pids = cgroup_pids.then(|| pc.clone());
        if proc {
            c.fs.proc = Some(pc);
        }
        // How long the kernel may remember that a name does not exist. With invalidations
        // a name made on the HOST or by another client drops the kernel's negative entry
        // within milliseconds (an INVAL `entry`, as for names that exist), so absence is
        // cached as long as names are: `git` and compilers ask for many names that do not
        // exist. Without them (`noinval`) nothing would drop it early: not cached unless
        // asked. An explicit value holds everywhere; the default only where INVAL reaches.
        c.fs.negative_ttl = negative_timeout.unwrap_or(if c.inval { c.fs.entry_ttl } else { Duration::ZERO });
        c.fs.negative_only_watched = negative_timeout.is_none();
        if let Some(s) = server {
            c.server = Addr::parse(&s).map_err(|e| FuseError::Usage(format!("--server {s}: {e}")))?;
        }
        c.psk_file = psk_file;
        c.insecure = insecure;
        if let Some(n) = connections {
            if n == 0 || n > 64 {
                return Err(FuseError::Usage("--connections must be 1..64".into()));
            }
            c.connections = n;
        }
        if c.threads == 0 || c.threads > 1024 {
            return Err(FuseError::Usage("-o threads must be 1..1024".into()));
        }
        if c.readahead_kb == 0 || c.readahead_kb > 65536 {
            return Err(FuseError::Usage("-o readahead_kb must be 1..65536".into()));
        }
        if !c.remote_path.starts_with('/') {
            return Err(FuseError::Usage(format!("REMOTE_PATH {} must be an absolute HOST path", c.remote_path)));
        }
        if c.psk_file.is_some() && c.insecure {
            return Err(FuseError::Usage("--psk-file and --insecure-test-mode exclude each other".into()));
        }
        if c.psk_file.is_none() && !c.insecure && c.server.is_tcp() {
            return Err(FuseError::Usage(
                "TCP needs a key: pass --psk-file FILE (or --insecure-test-mode against a test engine)".into(),
            ));
        }
        let md = std::fs::metadata(&c.mountpoint)
            .map_err(|e| FuseError::Usage(format!("mount point {}: {e}", c.mountpoint.display())))?;
        if !md.is_dir() {
            return Err(FuseError::Usage(format!("mount point {} is not a directory", c.mountpoint.display())));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<MountConfig, FuseError> {
        let mut v = vec!["qtfs-fuse"];
        v.extend_from_slice(args);
        MountConfig::from_cli(Cli::try_parse_from(v).map_err(|e| FuseError::Usage(e.to_string()))?)
    }

    #[test]
    fn options_parse_and_validate() {
        let c = parse(&[
            "--server",
            "tcp:127.0.0.1:9",
            "--insecure-test-mode",
            "-o",
            "attr_timeout=0.5,entry_timeout=2,writeback_cache",
            "-o",
            "threads=8,nosuid",
            "/srv/x",
            "/tmp",
        ])
        .unwrap();
        assert_eq!(c.fs.attr_ttl, Duration::from_millis(500));
        assert_eq!(c.fs.entry_ttl, Duration::from_secs(2));
        assert!(c.fs.writeback_cache);
        assert!(c.inval, "invalidations by default");
        assert!(!parse(&["--insecure-test-mode", "-o", "noinval", "/srv/x", "/tmp"]).unwrap().inval);
        // Negative entries: as long as names with invalidations, none without, or as asked.
        let ttl = |o: &[&str]| {
            let mut a = vec!["--insecure-test-mode"];
            for x in o {
                a.extend(["-o", x]);
            }
            a.extend(["/srv/x", "/tmp"]);
            parse(&a).unwrap().fs.negative_ttl
        };
        assert_eq!(ttl(&["entry_timeout=5"]), Duration::from_secs(5));
        assert_eq!(ttl(&["noinval"]), Duration::ZERO);
        assert_eq!(ttl(&["noinval", "negative_timeout=2"]), Duration::from_secs(2));
        assert_eq!(ttl(&["negative_timeout=0"]), Duration::ZERO);
        assert_eq!(c.threads, 8);
        assert_eq!(c.flags, vec!["nosuid".to_string()]);
        assert!(parse(&["--server", "tcp:127.0.0.1:9", "/srv/x", "/tmp"]).is_err(), "TCP without a key");
        assert!(parse(&["-o", "bogus", "/srv/x", "/tmp"]).is_err());
        assert!(parse(&["-o", "attr_timeout=x", "/srv/x", "/tmp"]).is_err());
        assert!(parse(&["relative", "/tmp"]).is_err());
        let m = parse(&["-o", "server=unix:/run/e.sock,connections=2", "/srv/x", "/tmp"]).unwrap();
        assert_eq!(m.server, Addr::Unix("/run/e.sock".into()));
        assert_eq!(m.connections, 2);
        assert!(m.fs.proc.is_none());
        let p = parse(&["--insecure-test-mode", "-o", "proc,pidmap=/run/x", "/proc", "/tmp"]).unwrap();
        assert_eq!(p.fs.proc.as_ref().unwrap().pidmap, PathBuf::from("/run/x"));
        assert_eq!(p.fs.proc.as_ref().unwrap().local, PathBuf::from("/proc"));
        // pidmap= alone is for the cgroup pid translation (on by default).
        let g = parse(&["--insecure-test-mode", "-o", "pidmap=/run/x", "/sys", "/tmp"]).unwrap();
        assert!(g.fs.proc.is_none());
        assert_eq!(g.fs.cgroup_pids.as_ref().unwrap().pidmap, PathBuf::from("/run/x"));
        let v = parse(&["--insecure-test-mode", "-o", "cgroup_pids=verbatim", "/sys", "/tmp"]).unwrap();
        assert!(v.fs.cgroup_pids.is_none());
        assert!(parse(&["--insecure-test-mode", "-o", "cgroup_pids=x", "/sys", "/tmp"]).is_err());
        assert_eq!(c.io_uring, UringMode::Off);
        let u = |v: &str| parse(&["--insecure-test-mode", "-o", v, "/srv/x", "/tmp"]).map(|c| c.io_uring);
        assert_eq!(u("io_uring=on").unwrap(), UringMode::On);
        assert_eq!(u("io_uring=off").unwrap(), UringMode::Off);
        assert_eq!(u("io_uring=auto").unwrap(), UringMode::Auto);
        assert!(u("io_uring=yes").is_err());
        assert!(u("io_uring").is_err());
        let d = |v: &str| parse(&["--insecure-test-mode", "-o", v, "/srv/x", "/tmp"]).map(|c| c.dev_ring);
        assert!(!c.dev_ring);
        assert!(d("dev_ring=on").unwrap());
        assert!(!d("io_uring=off,dev_ring=off").unwrap());
        assert!(d("dev_ring=yes").is_err());
    }
}
