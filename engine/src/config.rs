//! Command line and configuration of the engine.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use qtfs_proto::{Addr, Psk};

use std::sync::Arc;

use crate::creds::{ExportIds, IdPolicy, IdRange};

const AFTER_HELP: &str = "\
EXAMPLES
  Production, HOST serving a DPU or VM over vsock (the key also lives in the DPU's keyring):
    engine --cores 4 --listen vsock:2:12345 --psk-file /etc/qtfs/psk --whitelist /etc/qtfs/whitelist

  A test set-up on loopback TCP without a key (announced loudly; never on a network):
    engine --cores 2 --listen tcp:127.0.0.1:12345 --insecure-test-mode --whitelist ./whitelist

  DPU users 1000-1999 only, DPU root acting as HOST user 1500 (like NFS's anonuid):
    engine --listen vsock:2:12345 --psk-file /etc/qtfs/psk --map-uid 0=1500 --map-gid 0=1500 \
           --allow-uids 1000-1999 --allow-gids 1000-1999

  Letting the DPU signal and pin the processes it started through rexec (qemu):
    engine --listen vsock:2:12345 --psk-file /etc/qtfs/psk --allow-kill   # plus [Kill] Path=qemu-kvm

  The original's command line still works (the peer arguments are no longer needed):
    engine 16 1 192.168.10.10 12121 192.168.10.11 12121

WHITELIST (/etc/qtfs/whitelist, INI)
    [Mount]
    Path=/var/lib/libvirt;/home/VMs
    [Open]
    Path=/var/lib/libvirt;/home/VMs
  Groups: Open Write Read Readdir Mkdir Rmdir Create Unlink Rename Setattr Setxattr Mount
  Kill Udsconnect. A missing group denies its operations; at least one [Mount] entry is
  required. Change it at run time with `qtcfg -w TYPE -x PATH`. Entries may name symlinks
  (/var/run -> /run): they are resolved when loaded or added and match what they named
  then (logged at INFO); lists and --persist keep them as written.
  A hard link (LINK) is refused with EACCES unless every group that allows the new name
  also allows the existing one: requests on the new name are checked against its path, so
  a link may not make a read-only file writable, chmod-able or removable (Mount and Kill
  aside, every group counts). The same holds for the tree a SYSMOUNT bind or move places.

DEVICES AND MOUNTS
  Device nodes in exports behave as on a nodev mount: OPEN (or CREATE of an existing name,
  or a SETATTR of the size) of a character or block device is refused with EACCES unless an
  --allow-devices PREFIX:KIND:MAJOR:MINOR rule names it: PREFIX a HOST path the node's real
  path is under, or * for anywhere; KIND c or b; MINOR a number or *. E.g.
    --allow-devices /dev/pts:c:136:*   (pty slaves)   --allow-devices /dev/pts:c:5:2   (ptmx)
    --allow-devices '*:c:1:3'          (/dev/null nodes anywhere)
  MKNOD makes FIFOs, sockets and regular files; device nodes only with --allow-mknod-devices.
  SYSMOUNT/SYSUMOUNT are refused (EPERM) unless --allow-sysmount is given; then, for uid 0,
  with target and source in [Mount]: new mounts of proc, sysfs, cgroup2, tmpfs, devpts,
  mqueue or hugetlbfs only (the source is ignored; always nosuid, noexec and, except devpts,
  nodev); MS_BIND from a path beneath the same export (never a HOST path); MS_MOVE,
  MS_REMOUNT, propagation changes (not recursive) and SYSUMOUNT only of mounts this engine
  made. Note: the kernel applies a cgroup2 mount's options (nsdelegate, …) to the HOST's
  one cgroup2 hierarchy.

IDENTITIES
  Requests run with the ids the DPU claims, translated in this order: --map-uid/--map-gid
  (DPU=HOST, repeatable; supplementary groups too; ids not listed pass unchanged), then
  --root-squash (a uid that is 0 after mapping runs as nobody 65534:65534, no groups), then
  --allow-uids/--allow-gids check the resulting HOST uid, gid and every supplementary group
  (ranges like 0-65535 or 1000,1005-1010, repeatable; default any): a request outside is
  refused with EPERM. The same applies to file requests, unix-socket connects and listens.
  Per export, like /etc/exports: --export-policy PATH:OPTIONS (repeatable) gives every
  export whose root is PATH or beneath it its own policy, which replaces the engine-wide
  flags for it (the longest PATH wins; PATH is resolved like a whitelist entry). OPTIONS,
  comma-separated: root-squash, map-uid=DPU=HOST, map-gid=DPU=HOST, allow-uids=RANGES,
  allow-gids=RANGES (a bare number or range continues the option before it), or none (pass
  ids through unchanged). Every request on the export uses it, handle operations included.
  MOUNT of a directory holding a PATH with a different policy is refused with EACCES
  (mount that directory itself). Unix-socket channels belong to no export: engine-wide.
  IOCTL carries no ids: it runs as the user who opened the handle.
  E.g. root squashed everywhere, except in libvirt's directory, and the VM images for
  users 1000-1999 only (and nobody, squashed root):
    --root-squash --export-policy /var/lib/libvirt:none
    --export-policy '/home/VMs:root-squash,allow-uids=1000-1999,65534,allow-gids=1000-1999,65534'

PROCESS CONTROL (KILL, SCHED_GETAFFINITY, SCHED_SETAFFINITY)
  These carry no identity and act with the engine's authority, so they are refused unless
  --allow-kill is given AND the target's name is in [Kill] AND the target descends from a
  process named rexec_server (i.e. it was started through rexec). A thread id stands for
  its process: the process's name and ancestry are checked; SCHED_* act on the thread.
  --kill-any-process drops the last condition.

LISTENERS AND KEYS
  Without --psk-file: unix: listeners are allowed (the socket file is mode 0600); TCP needs
  --insecure-test-mode and a loopback address (127.0.0.0/8, ::1); a non-loopback TCP or a
  vsock listener is refused unless --insecure-allow-remote is given too (then anyone who
  reaches the port has the DPU's full power; announced loudly). Refusals exit with status 2.

LIMITS (one authenticated peer must not exhaust the HOST)
  Descriptors: RLIMIT_NOFILE is raised to its hard limit at start; a session holds at most
  --max-handles handles (default a quarter of the limit), a peer (IP address or vsock CID)
  at most --max-sessions-per-peer sessions (128), and handles of all sessions stop with
  EMFILE while fewer than 1/16 of the limit (at least 256) descriptors remain.
  Channels: --max-channels per session (4096: one udsproxyd session carries every
  proxied socket of a DPU); their queued bytes are bounded by --channel-buffer-budget per
  session (64MiB): beyond it the engine withholds credit and stops reading that
  session's connections until the local sockets drain (so a peer that ignores credit,
  or fills many windows at once, queues at most about the budget), and CHAN_OPEN fails
  with ENOBUFS. Each core's io_uring worker pool is bounded, and one session may keep at
  most half of it busy with blocking operations; the rest of its requests wait their
  turn in the engine.
  Disk: --min-free 10GiB (or 5%) refuses growth (FALLOCATE, WRITE past the end of a file,
  SETATTR to a larger size) with ENOSPC while an export's file system has less free.
  Blocking: FIFOs and devices are opened with O_NONBLOCK (never in an io_uring worker);
  blocking opens, reads and writes of FIFOs are emulated with ring timers and polls; an
  open waiting for the FIFO's other end gives up after 60 s (EAGAIN for a read end,
  ENXIO for a write end).

SIGNALS
  SIGINT/SIGTERM: stop accepting, finish in-flight requests (5 s at most), close, exit 0.";

/// The qtfs HOST engine: serves remote file operations and unix-socket channels to DPU
/// clients over vsock, TCP or unix sockets, one io_uring thread per core.
#[derive(Debug, Parser)]
#[command(name = "engine", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Worker threads, one io_uring each, pinned to CPUs (default: CPUs available).
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// Where to listen (repeatable): tcp:IP[:PORT], vsock:CID[:PORT] (CID `any` for all),
    /// unix:PATH. Port defaults to 12345.
    #[arg(long, value_name = "ADDR", num_args = 1.., action = clap::ArgAction::Append)]
    pub listen: Vec<String>,
    /// Whitelist file (INI, see below).
    #[arg(long, value_name = "FILE", default_value = "/etc/qtfs/whitelist")]
    pub whitelist: PathBuf,
    /// Pre-shared key file: one line of ≥ 32 hex characters, mode 0600. Clients must prove
    /// it on every transport.
    #[arg(long, value_name = "FILE")]
    pub psk_file: Option<PathBuf>,
    /// Allow TCP clients without a key, on loopback addresses only. For tests.
    #[arg(long)]
    pub insecure_test_mode: bool,
    /// Also allow keyless listeners other machines reach: TCP on non-loopback addresses,
    /// vsock. Implies --insecure-test-mode. Never in production.
    #[arg(long)]
    pub insecure_allow_remote: bool,
    /// Admin socket for qtcfg/qtinfo (mode 0600).
    #[arg(long, value_name = "PATH", default_value = "/var/run/qtfs/engine.sock")]
    pub admin_socket: PathBuf,
    /// Single-instance lock file.
    #[arg(long, value_name = "PATH", default_value = "/var/run/qtfs/engine.lock")]
    pub lock_file: PathBuf,
    /// NONE, ERROR, WARN, INFO or DEBUG.
    #[arg(long, value_name = "LEVEL", default_value = "INFO")]
    pub log_level: String,
    /// Seconds a session without connections keeps its open files for a reconnect.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub session_grace: f64,
    /// Requests in flight per connection before the engine stops reading from it.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_inflight: u32,
    /// Open handles per session (default: a quarter of RLIMIT_NOFILE, which the engine
    /// raises to its hard limit at start). Whatever the value, handles of all sessions
    /// together stop (EMFILE) while fewer than 1/16 of the limit (at least 256)
    /// descriptors remain, a reserve for connections, channels and other clients.
    #[arg(long, value_name = "N")]
    pub max_handles: Option<usize>,
    /// Sessions one peer (IP address or vsock CID) may hold; ATTACH of one more is
    /// refused with EMFILE, unless one of them has no connection (it then ends before its
    /// grace period). (A DPU is usually one peer for all its clients.)
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_sessions_per_peer: usize,
    /// Unix-socket channels per session (and so per connection); CHAN_OPEN and accepted
    /// connections beyond it are refused with EMFILE.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub max_channels: usize,
    /// Bytes the channels of one session may hold queued (data from the peer not yet
    /// written to its socket, partial messages): beyond it the engine stops reading that
    /// peer's connections (back-pressure) and CHAN_OPEN fails with ENOBUFS. SIZE like
    /// 64MiB, 512KiB, 1GiB or a number of bytes.
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    pub channel_buffer_budget: String,
    /// Free space to keep on every export's file system: requests that grow files
    /// (FALLOCATE, a WRITE past the end, SETATTR/truncate to a larger size, CREATE with
    /// data) fail with ENOSPC while statvfs shows less available. SIZE (e.g. 10GiB) or a
    /// percentage of the file system (e.g. 5%). Default 0 (no floor).
    #[arg(long, value_name = "SIZE|PCT", default_value = "0")]
    pub min_free: String,
    /// Treat requests whose uid is 0 (after --map-uid) as coming from nobody (65534).
    #[arg(long)]
    pub root_squash: bool,
    /// HOST uids requests may run as (after mapping): ranges such as 0-65535 or
    /// 1000,1005-1010; repeatable; default any. Others are refused with EPERM.
    #[arg(long, value_name = "RANGES", action = clap::ArgAction::Append)]
    pub allow_uids: Vec<String>,
    /// HOST gids (primary and supplementary, after mapping) requests may carry; like
    /// --allow-uids.
    #[arg(long, value_name = "RANGES", action = clap::ArgAction::Append)]
    pub allow_gids: Vec<String>,
    /// Run requests claiming uid DPU as HOST uid HOST (repeatable).
    #[arg(long, value_name = "DPU=HOST", action = clap::ArgAction::Append)]
    pub map_uid: Vec<String>,
    /// Run requests claiming gid (or supplementary group) DPU with HOST gid HOST (repeatable).
    #[arg(long, value_name = "DPU=HOST", action = clap::ArgAction::Append)]
    pub map_gid: Vec<String>,
    /// The identity policy of the exports at or beneath PATH, instead of the flags above
    /// (repeatable): PATH:OPTIONS, OPTIONS comma-separated root-squash, map-uid=DPU=HOST,
    /// map-gid=DPU=HOST, allow-uids=RANGES, allow-gids=RANGES, or none; see IDENTITIES.
    #[arg(long, value_name = "PATH:OPTIONS", action = clap::ArgAction::Append)]
    pub export_policy: Vec<String>,
    /// Serve KILL and SCHED_GETAFFINITY/SCHED_SETAFFINITY (still limited by [Kill] and to
    /// processes started through rexec_server).
    #[arg(long)]
    pub allow_kill: bool,
    /// With --allow-kill: any process whose name is in [Kill], not only those descending
    /// from rexec_server.
    #[arg(long)]
    pub kill_any_process: bool,
    /// Serve SYSMOUNT/SYSUMOUNT (limited as DEVICES AND MOUNTS below says; with [Mount]).
    #[arg(long)]
    pub allow_sysmount: bool,
    /// Let MKNOD create character and block device nodes (opening them still needs
    /// --allow-devices).
    #[arg(long)]
    pub allow_mknod_devices: bool,
    /// Device nodes OPEN may open, PREFIX:KIND:MAJOR:MINOR (repeatable), e.g.
    /// /dev/pts:c:136:* or '*:c:1:3'; see DEVICES AND MOUNTS below. Default none.
    #[arg(long, value_name = "SPEC", action = clap::ArgAction::Append)]
    pub allow_devices: Vec<String>,
    /// Do not pin worker threads to CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// The original's positional form: threads uds_threads addr port peer_addr peer_port.
    #[arg(hide = true, num_args = 0..)]
    pub legacy: Vec<String>,
}

/// The engine's validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub cores: usize,
    pub listen: Vec<Addr>,
    pub whitelist: PathBuf,
    pub psk: Option<Psk>,
    pub insecure: bool,
    /// Keyless listeners reachable from other machines were explicitly allowed.
    pub insecure_remote: bool,
    pub admin_socket: Option<PathBuf>,
    pub lock_file: Option<PathBuf>,
    pub log_level: u32,
    pub session_grace: Duration,
    pub max_inflight: u32,
    /// Handles per session; 0 = a quarter of RLIMIT_NOFILE.
    pub max_handles: usize,
    pub max_sessions_per_peer: usize,
    pub max_channels: usize,
    pub channel_buffer_budget: usize,
    /// `--min-free`: the floor of available space on an export's file system.
    pub min_free: MinFree,
    /// How claimed ids become HOST ids (root squash, maps, allowed ranges).
    pub ids: IdPolicy,
    /// `--export-policy`: exports with their own policy instead of `ids`.
    pub export_ids: Vec<ExportIds>,
    /// KILL and SCHED_* are served (`--allow-kill`).
    pub allow_kill: bool,
    /// ... for any process in [Kill], not only rexec_server's descendants.
    pub kill_any_process: bool,
    /// SYSMOUNT/SYSUMOUNT are served (`--allow-sysmount`).
    pub allow_sysmount: bool,
    /// MKNOD may create device nodes (`--allow-mknod-devices`).
    pub allow_mknod_devices: bool,
    /// Device nodes that may be opened (`--allow-devices`).
    pub allow_devices: Vec<crate::devices::DevRule>,
    pub pin: bool,
}

impl Config {
    /// A configuration for tests and embedding: loopback-friendly defaults, no lock file.
    pub fn new(listen: Vec<Addr>, whitelist: PathBuf) -> Config {
        Config {
            cores: 1,
            listen,
            whitelist,
            psk: None,
            insecure: false,
            insecure_remote: false,
            admin_socket: None,
            lock_file: None,
            log_level: qtfs_proto::consts::LOG_INFO,
            session_grace: Duration::from_secs(60),
            max_inflight: 256,
            max_handles: 0,
            max_sessions_per_peer: 128,
            max_channels: 4096,
            channel_buffer_budget: 64 << 20,
            min_free: MinFree::None,
            ids: IdPolicy::default(),
            export_ids: Vec::new(),
            allow_kill: false,
            kill_any_process: false,
            allow_sysmount: false,
            allow_mknod_devices: false,
            allow_devices: Vec::new(),
            pin: false,
        }
    }
}

/// Turns the command line into a configuration; returns notes to print (legacy mapping,
/// warnings) alongside.
pub fn from_cli(cli: Cli) -> Result<(Config, Vec<String>), String> {
    let mut notes = Vec::new();
    let mut cores = cli.cores;
    let mut listen = cli.listen.clone();
    if !cli.legacy.is_empty() {
        if cli.legacy.len() != 6 {
            return Err(format!(
                "unexpected arguments {:?}: the original's form takes exactly six: \
                 engine <threads> <uds_threads> <addr> <port> <peer_addr> <peer_port>",
                cli.legacy
            ));
        }
        let l = &cli.legacy;
        let threads: usize = l[0].parse().map_err(|_| format!("threads {:?} is not a number", l[0]))?;
        let addr = qtfs_daemon::cli::legacy_addr(&l[2], &l[3], true)?;
        notes.push(format!(
            "legacy command line mapped to: --cores {threads} --listen {addr} (uds_threads {} and peer {}:{} are no longer needed: \
             file requests and socket channels share one listener)",
            l[1], l[4], l[5]
        ));
        cores = Some(threads);
        listen.push(addr);
    }
    if listen.is_empty() {
        return Err("no --listen address: e.g. --listen vsock:2:12345 (production) or \
                    --listen tcp:127.0.0.1:12345 --insecure-test-mode (tests)"
            .into());
    }
    let listen = listen.iter().map(|s| Addr::parse(s).map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
    let psk = match &cli.psk_file {
        Some(p) => Some(Psk::load(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let insecure = cli.insecure_test_mode || cli.insecure_allow_remote;
    let insecure_remote = psk.is_none() && cli.insecure_allow_remote;
    if psk.is_some() && insecure {
        notes.push(
            "--insecure-test-mode/--insecure-allow-remote have no effect with --psk-file: every client must prove the key"
                .into(),
        );
    }
    if psk.is_none() {
        check_keyless_listeners(&listen, cli.insecure_test_mode, cli.insecure_allow_remote)?;
    }
    if cli.kill_any_process && !cli.allow_kill {
        return Err("--kill-any-process only widens --allow-kill: give both, or neither".into());
    }
    let ids = IdPolicy {
        root_squash: cli.root_squash,
        uid_map: parse_map("--map-uid", &cli.map_uid)?,
        gid_map: parse_map("--map-gid", &cli.map_gid)?,
        allow_uids: parse_ranges("--allow-uids", &cli.allow_uids)?,
        allow_gids: parse_ranges("--allow-gids", &cli.allow_gids)?,
    };
    let export_ids = parse_export_policies(&cli.export_policy)?;
    let allow_devices =
        cli.allow_devices.iter().map(|s| crate::devices::DevRule::parse(s)).collect::<Result<Vec<_>, _>>()?;
    let avail = crate::sys::allowed_cpus().len().max(1);
    let cores = match cores {
        Some(0) => return Err("--cores must be at least 1".into()),
        Some(n) => {
            if n > avail {
                notes.push(format!("--cores {n} but only {avail} CPUs are available: threads share CPUs"));
            }
            n
        }
        None => avail,
    };
    let log_level = qtfs_daemon::cli::log_level(&cli.log_level)?;
    if !(cli.session_grace.is_finite() && cli.session_grace >= 0.0) {
        return Err("--session-grace must be a number of seconds".into());
    }
    Ok((
        Config {
            cores,
            listen,
            whitelist: cli.whitelist,
            psk,
            insecure,
            insecure_remote,
            admin_socket: Some(cli.admin_socket),
            lock_file: Some(cli.lock_file),
            log_level,
            session_grace: Duration::from_secs_f64(cli.session_grace),
            max_inflight: cli.max_inflight.max(1),
            max_handles: cli.max_handles.map_or(0, |n| n.max(1)),
            max_sessions_per_peer: cli.max_sessions_per_peer.max(1),
            max_channels: cli.max_channels.max(1),
            channel_buffer_budget: parse_size("--channel-buffer-budget", &cli.channel_buffer_budget)?
                .max(qtfs_chan::WINDOW as u64) as usize,
            min_free: MinFree::parse(&cli.min_free)?,
            ids,
            export_ids,
            allow_kill: cli.allow_kill,
            kill_any_process: cli.kill_any_process,
            allow_sysmount: cli.allow_sysmount,
            allow_mknod_devices: cli.allow_mknod_devices,
            allow_devices,
            pin: !cli.no_pin,
        },
        notes,
    ))
}

/// `--min-free`: free space an export's file system keeps; growth is refused below it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFree {
    None,
    Bytes(u64),
    /// A percentage of the file system's size.
    Percent(f64),
}

impl MinFree {
    pub fn parse(s: &str) -> Result<MinFree, String> {
        let t = s.trim();
        if let Some(p) = t.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(if v == 0.0 { MinFree::None } else { MinFree::Percent(v) }),
                _ => Err(format!("--min-free {s:?}: a percentage is 0% to 100%")),
            };
        }
        match parse_size("--min-free", t)? {
            0 => Ok(MinFree::None),
            n => Ok(MinFree::Bytes(n)),
        }
    }

    /// The floor in bytes for a file system of `total` bytes.
    pub fn floor(&self, total: u64) -> u64 {
        match *self {
            MinFree::None => 0,
            MinFree::Bytes(n) => n,
            MinFree::Percent(p) => (total as f64 * p / 100.0) as u64,
        }
    }
}

/// A size: a number of bytes, optionally followed by K/KiB/KB, M/MiB/MB, G/GiB/GB, T/TiB/TB
/// (all binary: 1K = 1024).
pub fn parse_size(flag: &str, s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{flag} {s:?}: expected a size such as 64MiB or 1048576"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{flag} {s:?}: unknown unit (use K, M, G or T; binary)")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("{flag} {s:?}: too large"))
}

/// Whether a listener is reachable only from this machine: unix sockets (a file, mode
/// 0600) and TCP on a loopback address. vsock is reachable from guests and DPUs.
pub fn is_local_only(a: &Addr) -> bool {
    match a {
        Addr::Unix(_) => true,
        Addr::Tcp(sa) => sa.ip().to_canonical().is_loopback(),
        Addr::Vsock { .. } => false,
    }
}

/// The rules for listeners without a key (see LISTENERS AND KEYS in --help).
fn check_keyless_listeners(listen: &[Addr], test_mode: bool, allow_remote: bool) -> Result<(), String> {
    for a in listen {
        let remote = !is_local_only(a);
        if remote && !allow_remote {
            return Err(if a.is_tcp() {
                format!(
                    "refusing to listen on {a} without a key: it is not a loopback address, so other machines could \
                     connect unauthenticated. Use --psk-file, or a loopback address (tcp:127.0.0.1:PORT) with \
                     --insecure-test-mode, or (never in production) add --insecure-allow-remote"
                )
            } else {
                format!(
                    "refusing to listen on {a} without a key: a vsock listener is reachable from every guest/DPU. \
                     Use --psk-file, or (never in production) --insecure-allow-remote"
                )
            });
        }
        if a.is_tcp() && !remote && !test_mode && !allow_remote {
            return Err(format!("TCP listener {a} needs --psk-file (or --insecure-test-mode for a test on loopback)"));
        }
    }
    Ok(())
}

/// `--map-uid`/`--map-gid` values: `DPU=HOST`, sorted by DPU id; a DPU id twice is an error.
fn parse_map(flag: &str, vals: &[String]) -> Result<Vec<(u32, u32)>, String> {
    let mut map = Vec::new();
    for v in vals {
        let (a, b) = v.split_once('=').ok_or_else(|| format!("{flag} {v:?}: expected DPU=HOST, e.g. 0=1500"))?;
        map.push((parse_id(flag, a)?, parse_id(flag, b)?));
    }
    map.sort_unstable();
    if let Some(w) = map.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("{flag}: DPU id {} is mapped twice", w[0].0));
    }
    Ok(map)
}

/// `--allow-uids`/`--allow-gids` values: comma-separated ids and `LO-HI` ranges.
fn parse_ranges(flag: &str, vals: &[String]) -> Result<Vec<IdRange>, String> {
    let mut out = Vec::new();
    for part in vals.iter().flat_map(|v| v.split(',')) {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (parse_id(flag, lo)?, parse_id(flag, hi)?),
            None => {
                let id = parse_id(flag, part)?;
                (id, id)
            }
        };
        if lo > hi {
            return Err(format!("{flag} {part:?}: the range is empty (low end above high end)"));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

/// `--export-policy PATH:OPTIONS` values (see IDENTITIES in --help); a PATH twice is an
/// error.
fn parse_export_policies(vals: &[String]) -> Result<Vec<ExportIds>, String> {
    let mut out: Vec<ExportIds> = Vec::new();
    for v in vals {
        let e = parse_export_policy(v)?;
        if out.iter().any(|o| o.path == e.path) {
            return Err(format!("--export-policy {v:?}: {} has a policy already", String::from_utf8_lossy(&e.path)));
        }
        out.push(e);
    }
    Ok(out)
}

fn parse_export_policy(v: &str) -> Result<ExportIds, String> {
    const FLAG: &str = "--export-policy";
    let bad = |why: &str| format!("{FLAG} {v:?}: {why}");
    // From the right: a path may contain ':', options never do.
    let (path, opts) = v.rsplit_once(':').ok_or_else(|| bad("expected PATH:OPTIONS, e.g. /srv/vm:root-squash"))?;
    let lexical = crate::whitelist::lexical(path).ok_or_else(|| bad("PATH must be an absolute path without .."))?;
    const LISTS: [&str; 4] = ["map-uid", "map-gid", "allow-uids", "allow-gids"];
    let (mut squash, mut none) = (false, false);
    let mut lists: [Vec<String>; 4] = Default::default();
    // The list the last `key=value` went to: a bare number or range continues it, so
    // `allow-uids=1000-1999,65534` reads as --allow-uids does.
    let mut last: Option<usize> = None;
    for tok in opts.split(',').map(str::trim) {
        let (key, val) = match tok.split_once('=') {
            Some((k, val)) => (k, Some(val)),
            None => (tok, None),
        };
        let list = match (key, val) {
            ("root-squash", None) => {
                squash = true;
                None
            }
            ("none", None) => {
                none = true;
                None
            }
            (k, Some(x)) => LISTS.iter().position(|&l| l == k).map(|i| (i, x)),
            (k, None) if k.starts_with(|c: char| c.is_ascii_digit()) => match last {
                Some(i) => Some((i, k)),
                None => return Err(bad(&format!("{k:?} follows no option"))),
            },
            _ => None,
        };
        if list.is_none() && !matches!(tok, "root-squash" | "none") {
            return Err(bad(&format!(
                "unknown option {key:?} (root-squash, map-uid=, map-gid=, allow-uids=, allow-gids=, none)"
            )));
        }
        last = list.map(|(i, _)| i);
        if let Some((i, x)) = list
            && let Some(l) = lists.get_mut(i)
        {
            l.push(x.to_string());
        }
    }
    let [uid_map, gid_map, uids, gids] = lists;
    let ids = IdPolicy {
        root_squash: squash,
        uid_map: parse_map(FLAG, &uid_map)?,
        gid_map: parse_map(FLAG, &gid_map)?,
        allow_uids: parse_ranges(FLAG, &uids)?,
        allow_gids: parse_ranges(FLAG, &gids)?,
    };
    if none != ids.is_identity() {
        return Err(bad("give either none or at least one other option"));
    }
    Ok(ExportIds { path: crate::whitelist::resolve(&lexical), ids: Arc::new(ids) })
}

/// One uid or gid; 4294967295 (-1, "unchanged" to the kernel) is not an id.
fn parse_id(flag: &str, s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(id) if id != u32::MAX => Ok(id),
        _ => Err(format!("{flag}: {s:?} is not a uid/gid (0..4294967294)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(Config, Vec<String>), String> {
        qtfs_daemon::cli::from_args("engine", args, from_cli)
    }

    #[test]
    fn legacy_form_is_mapped() {
        let (c, notes) =
            parse(&["2", "1", "127.0.0.1", "12121", "127.0.0.2", "12121", "--insecure-test-mode"]).unwrap();
        assert_eq!(c.cores, 2);
        assert_eq!(c.listen[0].to_string(), "tcp:127.0.0.1:12121");
        assert!(notes[0].contains("--cores 2 --listen tcp:127.0.0.1:12121"));
        let (c, _) = parse(&["4", "1", "2", "12121", "10", "12121", "--insecure-allow-remote"]).unwrap();
        assert_eq!(c.listen[0].to_string(), "vsock:2:12121");
        assert!(parse(&["4", "1", "2"]).is_err());
    }

    #[test]
    fn tcp_needs_key_or_insecure() {
        let e = parse(&["--listen", "tcp:127.0.0.1:1"]).unwrap_err();
        assert!(e.contains("--psk-file"), "{e}");
        assert!(parse(&["--listen", "tcp:127.0.0.1:1", "--insecure-test-mode"]).is_ok());
        assert!(parse(&["--listen", "unix:/tmp/x"]).is_ok(), "unix without key is allowed");
        assert!(parse(&[]).unwrap_err().contains("--listen"));
        assert!(parse(&["--listen", "unix:/x", "--cores", "0"]).is_err());
        assert!(parse(&["--listen", "unix:/x", "--log-level", "LOUD"]).is_err());
    }

    #[test]
    fn keyless_listeners_only_where_no_one_else_reaches() {
        assert!(parse(&["--listen", "tcp:127.0.0.2:1", "--insecure-test-mode"]).is_ok());
        assert!(parse(&["--listen", "tcp:[::1]:1", "--insecure-test-mode"]).is_ok());
        for a in ["tcp:0.0.0.0:1", "tcp:10.0.0.1:1", "tcp:[::]:1"] {
            let e = parse(&["--listen", a, "--insecure-test-mode"]).unwrap_err();
            assert!(e.contains("not a loopback address"), "{a}: {e}");
            let (c, _) = parse(&["--listen", a, "--insecure-allow-remote"]).unwrap();
            assert!(c.insecure && c.insecure_remote);
        }
        let e = parse(&["--listen", "vsock:2:1"]).unwrap_err();
        assert!(e.contains("vsock") && e.contains("--psk-file"), "{e}");
        assert!(parse(&["--listen", "vsock:any:1", "--insecure-test-mode"]).is_err());
        assert!(parse(&["--listen", "vsock:2:1", "--insecure-allow-remote"]).is_ok());
        assert!(parse(&["--listen", "unix:/x", "--listen", "vsock:2:1"]).is_err(), "every listener counts");
    }

    #[test]
    fn identity_flags() {
        let (c, _) = parse(&[
            "--listen",
            "unix:/x",
            "--allow-uids",
            "0-99,1000",
            "--allow-uids",
            "5000-5009",
            "--map-uid",
            "7=70",
            "--map-uid",
            "0=1500",
            "--map-gid",
            "0=1500",
        ])
        .unwrap();
        assert_eq!(c.ids.allow_uids, vec![(0, 99), (1000, 1000), (5000, 5009)]);
        assert_eq!(c.ids.uid_map, vec![(0, 1500), (7, 70)]);
        assert_eq!(c.ids.gid_map, vec![(0, 1500)]);
        assert!(c.ids.allow_gids.is_empty());
        for bad in [
            &["--allow-uids", "9-1"][..],
            &["--allow-uids", "x"],
            &["--allow-gids", "4294967295"],
            &["--map-uid", "0"],
            &["--map-uid", "0=1", "--map-uid", "0=2"],
            &["--kill-any-process"],
        ] {
            let mut a = vec!["--listen", "unix:/x"];
            a.extend_from_slice(bad);
            assert!(parse(&a).is_err(), "{bad:?}");
        }
        let (c, _) = parse(&["--listen", "unix:/x", "--allow-kill", "--kill-any-process"]).unwrap();
        assert!(c.allow_kill && c.kill_any_process);
    }

    #[test]
    fn export_policy_flag() {
        let (c, _) = parse(&[
            "--listen",
            "unix:/x",
            "--root-squash",
            "--export-policy",
            "/nonexistent-qtfs/a/:root-squash,allow-uids=1000-1999,65534,map-uid=0=1500,allow-gids=1000-1999",
            "--export-policy",
            "/nonexistent-qtfs//b:none",
        ])
        .unwrap();
        assert!(c.ids.root_squash, "the engine-wide policy stays the default");
        let a = c.export_ids.first().unwrap();
        assert_eq!(a.path, b"/nonexistent-qtfs/a");
        assert_eq!(
            *a.ids,
            IdPolicy {
                root_squash: true,
                uid_map: vec![(0, 1500)],
                gid_map: vec![],
                allow_uids: vec![(1000, 1999), (65534, 65534)],
                allow_gids: vec![(1000, 1999)],
            }
        );
        let b = c.export_ids.get(1).unwrap();
        assert_eq!((b.path.as_slice(), b.ids.is_identity()), (&b"/nonexistent-qtfs/b"[..], true));
        for bad in [
            "/a",
            "a:none",
            "/a/../b:none",
            "/a:",
            "/a:squash",
            "/a:none,root-squash",
            "/a:1000",
            "/a:root-squash,1000",
            "/a:allow-uids=9-1",
            "/a:root-squash=1",
        ] {
            assert!(parse(&["--listen", "unix:/x", "--export-policy", bad]).is_err(), "{bad}");
        }
        let e = parse(&["--listen", "unix:/x", "--export-policy", "/a:none", "--export-policy", "/a/:root-squash"]);
        assert!(e.unwrap_err().contains("has a policy already"));
    }

    #[test]
    fn limit_flags() {
        let (c, _) = parse(&["--listen", "unix:/x"]).unwrap();
        assert_eq!((c.max_handles, c.max_sessions_per_peer, c.max_channels), (0, 128, 4096));
        assert_eq!(c.channel_buffer_budget, 64 << 20);
        assert_eq!(c.min_free, MinFree::None);
        let (c, _) = parse(&[
            "--listen",
            "unix:/x",
            "--max-handles",
            "10",
            "--channel-buffer-budget",
            "8MiB",
            "--min-free",
            "5%",
        ])
        .unwrap();
        assert_eq!(c.max_handles, 10);
        assert_eq!(c.channel_buffer_budget, 8 << 20);
        assert_eq!(c.min_free.floor(1000), 50);
        assert_eq!(MinFree::parse("2G").unwrap(), MinFree::Bytes(2 << 30));
        for bad in ["101%", "x", "5Q", "-1"] {
            assert!(MinFree::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn more_cores_than_cpus_warns() {
        let (c, notes) = parse(&["--listen", "unix:/x", "--cores", "64"]).unwrap();
        assert_eq!(c.cores, 64);
        assert!(notes.iter().any(|n| n.contains("share CPUs")) || crate::sys::allowed_cpus().len() >= 64);
    }
}
