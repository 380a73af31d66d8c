//! `qtfs-fuse`: mounts a qtfs engine export through FUSE. See `qtfs-fuse --help` and the
//! crate documentation (`src/lib.rs`) for the design.

use std::process::ExitCode;

use clap::Parser;
use qtfs_client_fuse::daemon;
use qtfs_client_fuse::options::{Cli, MountConfig};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match MountConfig::from_cli(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("qtfs-fuse: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&cfg.log_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(std::io::stderr).init();
    match daemon::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("qtfs-fuse: {e}");
            ExitCode::from(1)
        }
    }
}
