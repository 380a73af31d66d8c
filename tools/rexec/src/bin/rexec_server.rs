//! `rexec_server [--whitelist F] [--socket PATH] [--allow-group GROUP] [--grace SECS]
//! [--eof-grace SECS] [--env-allow NAME]... [--env-allow-file F] [--path DIRS]`: runs
//! whitelisted commands for rexec clients (HOST side), each with its caller's identity,
//! the allowed part of its environment and a fixed PATH.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use qtfs_rexec::server::{self, Config, DEFAULT_SOCKET, DEFAULT_WHITELIST, env};

#[derive(Debug, Parser)]
#[command(
    name = "rexec_server",
    version,
    about = "Runs whitelisted binaries for rexec clients (HOST side of remote exec)",
    after_help = "Every command runs with the identity of the process that connected (SO_PEERCRED, \
SO_PEERGROUPS; through udsproxyd the DPU caller's): a root caller as root, anyone else as their own uid, gid and \
groups, without capabilities; files named by the caller are reopened with that identity, and only the caller's \
uid may reattach to a session. Commands start with default signal dispositions and an empty signal mask. Every \
command is logged (peer credentials, identity used, argv, the file run, cwd, pid, exit status). \
The caller is treated like the user of a setuid program. Its environment is cut down to an allow-list: LANG, \
LANGUAGE, LC_*, TZ, TERM, HOME, USER, LOGNAME, SHELL, TMPDIR, XDG_RUNTIME_DIR, XDG_DATA_HOME, XDG_CONFIG_HOME, \
XDG_CACHE_HOME, XDG_STATE_HOME, QEMU_AUDIO_DRV, SDL_AUDIODRIVER, and the names given with --env-allow and \
--env-allow-file (HOME, TMPDIR, SHELL and XDG_* must be absolute paths without '..'; LANG, LANGUAGE, LC_* and TERM \
must not contain '/'; TZ names no file outside /usr/share/zoneinfo and /etc/localtime). The names of dropped variables are \
logged at debug level, never their values. PATH is always --path. A whitelist entry names the file it resolves to \
when the whitelist is loaded (symbolic links followed; a bare name looked up in --path): that file runs, \
whatever the entry's links point to later, and a spelling that is not an entry is refused even if it resolves to \
a whitelisted file. SIGHUP reloads (and re-resolves) the whitelist and re-reads --env-allow-file; SIGTERM stops \
the server and leaves running commands alone (use KillMode=process). Logs go to stderr (REXEC_LOG_FILE=FILE: to \
that file; RUST_LOG sets the level)."
)]
struct Cli {
    /// Whitelist file: one binary per line, compared byte for byte with rexec's BINARY argument.
    #[arg(long, default_value = DEFAULT_WHITELIST)]
    whitelist: PathBuf,
    /// Unix socket to listen on (0600, or 0660 with --allow-group; the lock file sits beside it) [env REXEC_SOCKET; default
    /// /var/run/rexec/rexec_uds.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Let the members of GROUP (name or number) connect too: the socket becomes 0660 root:GROUP and
    /// its directory traversable by them (a directory created here is 0710 root:GROUP; an existing one
    /// of ours gets g+x, or o+x when it has another group). Their commands run as themselves, never as root.
    #[arg(long, value_name = "GROUP")]
    allow_group: Option<String>,
    /// Seconds a detached session waits for its client to reattach before its process group is killed
    /// [env REXEC_GRACE; default 60].
    #[arg(long)]
    grace: Option<f64>,
    /// Seconds to wait for a reattach after EOF on a session's connection (0: EOF means the client died and the
    /// group is killed at once). Set it when the proxy's HOST side may restart (an engine restart closes sockets).
    #[arg(long, default_value_t = 0.0)]
    eof_grace: f64,
    /// Let this environment variable through to commands too (repeatable); NAME* lets every name with that
    /// prefix through. Each one lets a caller steer what commands that may run as root do: add only what a
    /// whitelisted program needs and cannot be abused (never LD_*, GCONV_PATH, BASH_ENV, ENV, GLIBC_TUNABLES,
    /// PYTHON*, PERL5*). PATH cannot be allowed (see --path). The old name --allow-env (once only for LD_* and
    /// GCONV_PATH) still works.
    #[arg(long = "env-allow", visible_alias = "allow-env", value_name = "NAME")]
    env_allow: Vec<String>,
    /// A file of more --env-allow names, one per line ('#' comments); not writable by group or others; re-read on
    /// SIGHUP.
    #[arg(long, value_name = "FILE")]
    env_allow_file: Option<PathBuf>,
    /// The PATH of every command, and where whitelist entries without '/' are looked up: absolute directories,
    /// colon-separated. The caller's PATH is never used.
    #[arg(long, value_name = "DIRS", default_value = env::DEFAULT_PATH)]
    path: String,
    /// Receive window per stream in bytes.
    #[arg(long, default_value_t = qtfs_rexec::relay::DEFAULT_WINDOW)]
    window: u32,
}

fn main() {
    let cli = Cli::parse();
    qtfs_rexec::init_logging(true);
    let window = cli.window.clamp(qtfs_proto::consts::rexec::MIN_WINDOW, qtfs_proto::consts::rexec::MAX_WINDOW);
    let socket = cli.socket.or_else(|| std::env::var_os("REXEC_SOCKET").map(PathBuf::from));
    let grace = cli.grace.or_else(|| std::env::var("REXEC_GRACE").ok().and_then(|g| g.parse().ok())).unwrap_or(60.0);
    let allow_group = match cli.allow_group.as_deref().map(qtfs_rexec::sys::group_id) {
        None => None,
        Some(Ok(Some(g))) => Some(g),
        Some(Ok(None)) => {
            eprintln!("rexec_server: --allow-group: no group {:?}", cli.allow_group.unwrap_or_default());
            std::process::exit(255);
        }
        Some(Err(e)) => {
            eprintln!("rexec_server: --allow-group: {e}");
            std::process::exit(255);
        }
    };
    let cfg = Config {
        allow_group,
        socket: socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        whitelist: cli.whitelist,
        grace: Duration::from_secs_f64(grace.max(0.0)),
        eof_grace: Duration::from_secs_f64(cli.eof_grace.max(0.0)),
        env_allow: cli.env_allow,
        env_allow_file: cli.env_allow_file,
        path: cli.path,
        window,
    };
    if let Err(e) = server::run(cfg) {
        tracing::error!("{e}");
        eprintln!("rexec_server: {e}");
        std::process::exit(255);
    }
}
