//! Command line and configuration of udsproxyd.

use std::path::PathBuf;

use clap::Parser;
use qtfs_proto::{Addr, Psk};

const AFTER_HELP: &str = "\
EXAMPLES
  DPU (or VM) side, engine on the HOST at vsock CID 2, libvirt's sockets proxied:
    udsproxyd --server vsock:2:12345 --psk-file /etc/qtfs/psk --udsconnect /var/lib/libvirt
    LD_PRELOAD=/usr/lib64/libudsproxy.so libvirtd

  A test set-up on loopback TCP without a key:
    udsproxyd --server tcp:127.0.0.1:12345 --insecure-test-mode --udsconnect /run/test

  The original's command line still works (the peer is the engine to connect to; the
  local address and port are no longer used):
    udsproxyd 1 10 12121 2 12345                       # vsock: local CID 10, HOST CID 2
    udsproxyd 1 192.168.10.11 12121 192.168.10.10 12345 --insecure-test-mode

  Reverse direction: HOST programs reach a DPU socket at a HOST path:
    udsproxyd --server vsock:2 --reverse /run/dpu/agent.sock=/run/agent.sock

  Change the whitelist at run time (takes effect for the next connect):
    qtcfg -w udsconnect -x /var/lib/libvirt        qtcfg -w udsconnect -y 0
    qtinfo -u                                       # channels, bytes each way, errors

HOW IT WORKS
  libudsproxy.so lets a program's connect() fail locally first; only when the path does
  not exist or refuses (ENOENT/ECONNREFUSED) does it ask udsproxyd, over --socket, for a
  channel. udsproxyd proxies only paths under a --udsconnect entry (none by default),
  asks the engine (which checks its own [Udsconnect] group and connects with the
  caller's uid/gid), and passes back an already connected socket. No files are created.

CPU AFFINITY OF HOST PROCESSES
  libudsproxy.so also sends sched_getaffinity()/sched_setaffinity() calls that name a HOST
  process or thread (a local rexec's pid, through the rexec pid map, or a HOST vCPU thread
  id) here; udsproxyd relays them to the engine (SCHED_GETAFFINITY/SCHED_SETAFFINITY, which
  the engine serves only with --allow-kill, for [Kill] names, to processes started through
  rexec_server). Only requesters running as root, as udsproxyd's own uid, or as a
  --process-control-uid are relayed; others are answered \"not asked\" (their call stays
  local).

SIGNALS
  SIGINT/SIGTERM: close every channel, remove the sockets, exit 0.";

/// udsproxyd: the DPU end of the unix-socket proxy. Programs that connect() to a HOST
/// socket path (through libudsproxy.so) get a socket relayed over the engine connection.
#[derive(Debug, Parser)]
#[command(name = "udsproxyd", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The engine: tcp:IP:PORT, vsock:CID[:PORT] or unix:PATH.
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,
    /// Pre-shared key file (one line of ≥ 32 hex characters, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub psk_file: Option<PathBuf>,
    /// Talk to an engine without a key over TCP. For tests on loopback only.
    #[arg(long)]
    pub insecure_test_mode: bool,
    /// Proxy sockets under this path prefix (repeatable; the udsconnect whitelist).
    #[arg(long, value_name = "PREFIX", action = clap::ArgAction::Append)]
    pub udsconnect: Vec<String>,
    /// Request socket for libudsproxy.so (mode 0666).
    #[arg(long, value_name = "PATH", default_value = "/var/run/qtfs/remote_uds.sock")]
    pub socket: PathBuf,
    /// Admin socket for qtcfg/qtinfo (mode 0600).
    #[arg(long, value_name = "PATH", default_value = "/var/run/qtfs/udsproxyd.sock")]
    pub admin_socket: PathBuf,
    /// Single-instance lock file.
    #[arg(long, value_name = "PATH", default_value = "/var/run/qtfs/uds.lock")]
    pub lock_file: PathBuf,
    /// Connections to the engine, each served by its own relay thread.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub connections: usize,
    /// HOST_PATH=DPU_PATH: the engine listens at HOST_PATH; each connection there is
    /// relayed to the DPU socket DPU_PATH (repeatable). Prefix `seqpacket:` for
    /// SOCK_SEQPACKET sockets.
    #[arg(long, value_name = "HOST=DPU", action = clap::ArgAction::Append)]
    pub reverse: Vec<String>,
    /// NONE, ERROR, WARN, INFO or DEBUG.
    #[arg(long, value_name = "LEVEL", default_value = "INFO")]
    pub log_level: String,
    /// Also relay CPU-affinity requests of HOST processes from this uid (repeatable; root
    /// and udsproxyd's own uid always may).
    #[arg(long, value_name = "UID", action = clap::ArgAction::Append)]
    pub process_control_uid: Vec<u32>,
    /// The original's positional form: threads local_addr local_port peer_addr peer_port.
    #[arg(hide = true, num_args = 0..)]
    pub legacy: Vec<String>,
}

/// A reverse listener: the engine listens at `host`, connections go to `dpu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reverse {
    pub host: Vec<u8>,
    pub dpu: Vec<u8>,
    /// `CHAN_STREAM` or `CHAN_SEQPACKET`.
    pub kind: u32,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: Addr,
    pub psk: Option<Psk>,
    pub insecure: bool,
    pub udsconnect: Vec<String>,
    pub socket: PathBuf,
    pub admin_socket: PathBuf,
    pub lock_file: Option<PathBuf>,
    pub connections: usize,
    pub reverse: Vec<Reverse>,
    pub log_level: u32,
    /// Uids, besides root and udsproxyd's own, whose affinity requests are relayed.
    pub process_control_uids: Vec<u32>,
}

impl Config {
    /// Whether a requester running as `uid` may have affinity requests relayed to the HOST.
    pub fn may_control_processes(&self, uid: u32) -> bool {
        // SAFETY: geteuid has no preconditions.
        uid == 0 || uid == unsafe { libc::geteuid() } || self.process_control_uids.contains(&uid)
    }
}

fn parse_reverse(s: &str) -> Result<Reverse, String> {
    let (kind, rest) = match s.strip_prefix("seqpacket:") {
        Some(r) => (qtfs_proto::consts::CHAN_SEQPACKET, r),
        None => (qtfs_proto::consts::CHAN_STREAM, s.strip_prefix("stream:").unwrap_or(s)),
    };
    let (h, d) = rest.split_once('=').ok_or_else(|| format!("--reverse {s:?}: expected HOST_PATH=DPU_PATH"))?;
    if !h.starts_with('/') || !d.starts_with('/') {
        return Err(format!("--reverse {s:?}: both paths must be absolute"));
    }
    Ok(Reverse { host: h.as_bytes().to_vec(), dpu: d.as_bytes().to_vec(), kind })
}

/// Turns the command line into a configuration, with notes to log.
pub fn from_cli(cli: Cli) -> Result<(Config, Vec<String>), String> {
    let mut notes = Vec::new();
    let mut server = cli.server.clone();
    let mut connections = cli.connections;
    if !cli.legacy.is_empty() {
        if cli.legacy.len() != 5 {
            return Err(format!(
                "unexpected arguments {:?}: the original's form takes exactly five: \
                 udsproxyd <threads> <addr> <port> <peer_addr> <peer_port>",
                cli.legacy
            ));
        }
        let l = &cli.legacy;
        let threads: usize = l[0].parse().map_err(|_| format!("threads {:?} is not a number", l[0]))?;
        let addr = qtfs_daemon::cli::legacy_addr(&l[3], &l[4], false).map_err(|e| format!("peer {e}"))?;
        notes.push(format!(
            "legacy command line mapped to: --server {addr} --connections {} (local {}:{} is no longer used: \
             udsproxyd connects to the engine, which serves both directions)",
            threads.max(1),
            l[1],
            l[2]
        ));
        if server.is_some() {
            return Err("give either --server or the original's positional form, not both".into());
        }
        server = Some(addr);
        connections = threads;
    }
    let server = server.ok_or(
        "no engine address: e.g. --server vsock:2:12345 (production) or \
                               --server tcp:127.0.0.1:12345 --insecure-test-mode (tests)",
    )?;
    let server = Addr::parse(&server).map_err(|e| e.to_string())?;
    let psk = match &cli.psk_file {
        Some(p) => Some(Psk::load(p).map_err(|e| e.to_string())?),
        None => None,
    };
    if psk.is_none() && server.is_tcp() && !cli.insecure_test_mode {
        return Err("a TCP engine needs --psk-file (or --insecure-test-mode for a test on loopback)".into());
    }
    if connections == 0 || connections > 64 {
        return Err("--connections must be between 1 and 64".into());
    }
    let log_level = qtfs_daemon::cli::log_level(&cli.log_level)?;
    let reverse = cli.reverse.iter().map(|s| parse_reverse(s)).collect::<Result<Vec<_>, _>>()?;
    let mut probe = crate::wl::Whitelist::default();
    for u in &cli.udsconnect {
        probe.add(u.as_bytes()).map_err(|e| {
            format!(
                "--udsconnect {u:?}: {}",
                if e == libc::EINVAL { "not an absolute path without `..`" } else { "duplicate or too many entries" }
            )
        })?;
    }
    if cli.udsconnect.is_empty() {
        notes.push("no --udsconnect entry: nothing is proxied until `qtcfg -w udsconnect -x PATH` adds one".into());
    }
    Ok((
        Config {
            server,
            psk,
            insecure: cli.insecure_test_mode,
            udsconnect: cli.udsconnect,
            socket: cli.socket,
            admin_socket: cli.admin_socket,
            lock_file: Some(cli.lock_file),
            connections,
            reverse,
            log_level,
            process_control_uids: cli.process_control_uid,
        },
        notes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(Config, Vec<String>), String> {
        qtfs_daemon::cli::from_args("udsproxyd", args, from_cli)
    }

    #[test]
    fn legacy_and_long_forms() {
        let (c, notes) = parse(&["1", "10", "12121", "2", "12345"]).unwrap();
        assert_eq!(c.server.to_string(), "vsock:2:12345");
        assert_eq!(c.connections, 1);
        assert!(notes[0].contains("--server vsock:2:12345"));
        let (c, _) = parse(&["2", "192.168.10.11", "12121", "127.0.0.1", "7000", "--insecure-test-mode"]).unwrap();
        assert_eq!(c.server.to_string(), "tcp:127.0.0.1:7000");
        assert_eq!(c.connections, 2);
        assert!(parse(&["1", "10", "12121"]).is_err());
        assert!(parse(&["1", "x", "1", "host", "1"]).is_err());
        let e = parse(&["--server", "tcp:127.0.0.1:1"]).unwrap_err();
        assert!(e.contains("--psk-file"), "{e}");
        let (c, _) = parse(&[
            "--server",
            "unix:/run/e.sock",
            "--udsconnect",
            "/var/lib/libvirt/",
            "--udsconnect",
            "/run/x",
            "--reverse",
            "seqpacket:/h/a.sock=/d/a.sock",
        ])
        .unwrap();
        assert_eq!(c.udsconnect.len(), 2);
        assert_eq!(c.reverse[0].kind, qtfs_proto::consts::CHAN_SEQPACKET);
        assert!(parse(&["--server", "unix:/e", "--udsconnect", "relative"]).is_err());
        assert!(parse(&["--server", "unix:/e", "--reverse", "a=b"]).is_err());
        assert!(parse(&[]).unwrap_err().contains("--server"));
        let (c, _) = parse(&["--server", "unix:/e", "--process-control-uid", "107"]).unwrap();
        assert!(c.may_control_processes(0) && c.may_control_processes(107));
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        assert!(c.may_control_processes(me));
        assert!(!c.may_control_processes(4242) || me == 4242);
    }
}
