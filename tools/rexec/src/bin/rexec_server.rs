//! `rexec_server [--whitelist F] [--socket PATH] [--grace SECS] [--eof-grace SECS]
//! [--allow-env NAME]...`: runs whitelisted commands for rexec clients (HOST side).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use qtfs_rexec::server::{self, Config, DEFAULT_SOCKET, DEFAULT_WHITELIST};

#[derive(Debug, Parser)]
#[command(
    name = "rexec_server",
    version,
    about = "Runs whitelisted binaries for rexec clients (HOST side of remote exec)",
    after_help = "Every command is logged (peer credentials, argv, cwd, pid, exit status). SIGHUP reloads the \
whitelist; SIGTERM stops the server and leaves running commands alone (use KillMode=process). The PATH search \
for a BINARY without '/' uses the server's own PATH. Logs go to stderr (REXEC_LOG_FILE=FILE: to that file; \
RUST_LOG sets the level)."
)]
struct Cli {
    /// Whitelist file: one binary per line, compared byte for byte with rexec's BINARY argument.
    #[arg(long, default_value = DEFAULT_WHITELIST)]
    whitelist: PathBuf,
    /// Unix socket to listen on (0600; the lock file sits beside it) [env REXEC_SOCKET; default
    /// /var/run/rexec/rexec_uds.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Seconds a detached session waits for its client to reattach before its process group is killed
    /// [env REXEC_GRACE; default 60].
    #[arg(long)]
    grace: Option<f64>,
    /// Seconds to wait for a reattach after EOF on a session's connection (0: EOF means the client died and the
    /// group is killed at once). Set it when the proxy's HOST side may restart (an engine restart closes sockets).
    #[arg(long, default_value_t = 0.0)]
    eof_grace: f64,
    /// Let this loader variable (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, other LD_*, GCONV_PATH) through to commands.
    #[arg(long = "allow-env", value_name = "NAME")]
    allow_env: Vec<String>,
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
    let cfg = Config {
        socket: socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        whitelist: cli.whitelist,
        grace: Duration::from_secs_f64(grace.max(0.0)),
        eof_grace: Duration::from_secs_f64(cli.eof_grace.max(0.0)),
        allow_env: cli.allow_env,
        window,
    };
    if let Err(e) = server::run(cfg) {
        tracing::error!("{e}");
        eprintln!("rexec_server: {e}");
        std::process::exit(255);
    }
}
