//! `rexec BINARY [ARGS...]`: run BINARY on the HOST (see `rexec --help`).

fn main() {
    // Before anything of our own is opened: these are the descriptors to pass on.
    let inherited = qtfs_rexec::sys::open_fds();
    let cmd = match qtfs_rexec::client::parse_args(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rexec: {e}");
            std::process::exit(qtfs_rexec::client::EXIT_LOCAL);
        }
    };
    let code = match cmd {
        qtfs_rexec::client::Cmd::Help => {
            print!("{}", qtfs_rexec::client::HELP);
            0
        }
        qtfs_rexec::client::Cmd::Version => {
            println!("rexec {}", env!("CARGO_PKG_VERSION"));
            0
        }
        qtfs_rexec::client::Cmd::Run(opts) => {
            qtfs_rexec::init_logging(false);
            qtfs_rexec::client::run(opts, &inherited)
        }
    };
    std::process::exit(code);
}
