//! Command line and configuration of the engine.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use qtfs_proto::{Addr, Psk};

const AFTER_HELP: &str = "\
EXAMPLES
  Production, HOST serving a DPU or VM over vsock (the key also lives in the DPU's keyring):
    engine --cores 4 --listen vsock:2:12345 --psk-file /etc/qtfs/psk --whitelist /etc/qtfs/whitelist

  A test set-up on loopback TCP without a key (announced loudly; never on a network):
    engine --cores 2 --listen tcp:127.0.0.1:12345 --insecure-test-mode --whitelist ./whitelist

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
    /// Allow TCP clients without a key. For tests on loopback only.
    #[arg(long)]
    pub insecure_test_mode: bool,
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
    /// Open handles per session.
    #[arg(long, value_name = "N", default_value_t = 65536)]
    pub max_handles: usize,
    /// Treat requests from uid 0 as coming from nobody (65534).
    #[arg(long)]
    pub root_squash: bool,
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
    pub admin_socket: Option<PathBuf>,
    pub lock_file: Option<PathBuf>,
    pub log_level: u32,
    pub session_grace: Duration,
    pub max_inflight: u32,
    pub max_handles: usize,
    pub root_squash: bool,
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
            admin_socket: None,
            lock_file: None,
            log_level: qtfs_proto::consts::LOG_INFO,
            session_grace: Duration::from_secs(60),
            max_inflight: 256,
            max_handles: 65536,
            root_squash: false,
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
        let port: u16 = l[3].parse().map_err(|_| format!("port {:?} is not a number", l[3]))?;
        let addr = if l[2].parse::<std::net::IpAddr>().is_ok() {
            format!("tcp:{}:{port}", l[2])
        } else if l[2] == "-1" || l[2].parse::<u32>().is_ok() {
            format!("vsock:{}:{port}", l[2])
        } else {
            return Err(format!("address {:?} is neither an IP address nor a vsock CID", l[2]));
        };
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
    if psk.is_some() && cli.insecure_test_mode {
        notes.push("--insecure-test-mode has no effect with --psk-file: every client must prove the key".into());
    }
    if psk.is_none() && listen.iter().any(Addr::is_tcp) && !cli.insecure_test_mode {
        return Err("TCP listeners need --psk-file (or --insecure-test-mode for a test on loopback)".into());
    }
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
    let log_level = qtfs_proto::consts::parse_log_level(&cli.log_level)
        .ok_or_else(|| format!("--log-level {:?}: use NONE, ERROR, WARN, INFO or DEBUG", cli.log_level))?;
    if !(cli.session_grace.is_finite() && cli.session_grace >= 0.0) {
        return Err("--session-grace must be a number of seconds".into());
    }
    Ok((
        Config {
            cores,
            listen,
            whitelist: cli.whitelist,
            psk,
            insecure: cli.insecure_test_mode,
            admin_socket: Some(cli.admin_socket),
            lock_file: Some(cli.lock_file),
            log_level,
            session_grace: Duration::from_secs_f64(cli.session_grace),
            max_inflight: cli.max_inflight.max(1),
            max_handles: cli.max_handles.max(1),
            root_squash: cli.root_squash,
            pin: !cli.no_pin,
        },
        notes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(Config, Vec<String>), String> {
        let cli =
            Cli::try_parse_from(std::iter::once("engine").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        from_cli(cli)
    }

    #[test]
    fn legacy_form_is_mapped() {
        let (c, notes) =
            parse(&["2", "1", "127.0.0.1", "12121", "127.0.0.2", "12121", "--insecure-test-mode"]).unwrap();
        assert_eq!(c.cores, 2);
        assert_eq!(c.listen[0].to_string(), "tcp:127.0.0.1:12121");
        assert!(notes[0].contains("--cores 2 --listen tcp:127.0.0.1:12121"));
        let (c, _) = parse(&["4", "1", "2", "12121", "10", "12121"]).unwrap();
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
    fn more_cores_than_cpus_warns() {
        let (c, notes) = parse(&["--listen", "unix:/x", "--cores", "64"]).unwrap();
        assert_eq!(c.cores, 64);
        assert!(notes.iter().any(|n| n.contains("share CPUs")) || crate::sys::allowed_cpus().len() >= 64);
    }
}
