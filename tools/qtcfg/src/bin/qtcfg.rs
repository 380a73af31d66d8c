//! `qtcfg`: whitelist configuration (see `qtcfg --help`).

fn main() {
    std::process::exit(qtfs_qtcfg::main(qtfs_qtcfg::Mode::Qtcfg));
}
