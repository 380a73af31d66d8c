//! `perf-report`: reads results files of the `qtfs-perf/1` schema, draws every chart of
//! each (SVG, [`qtfs_perf::chart::draw_all`]) beside it and writes one summary report of
//! the whole run.

use std::path::PathBuf;

use clap::Parser;
use qtfs_perf::{Results, chart};

#[derive(Debug, Parser)]
#[command(
    name = "perf-report",
    about = "Draws the charts of qtfs-perf/1 results files and writes one summary of them",
    after_help = "For each RESULTS.json (any suite: loadgen, fio-compare, uds, rexec, …) the charts are written \
beside it as RESULTS-ratios.svg plus the suite's own charts, and its summary table is printed. \
A file that cannot be read is reported and skipped; the exit status is 1 when none could be read."
)]
struct Cli {
    /// Write a markdown summary (every table and ratio chart) to this file.
    #[arg(long, value_name = "OUT.md")]
    summary: Option<PathBuf>,
    /// Title of the summary.
    #[arg(long, value_name = "T", default_value = "qtfs-rs performance")]
    title: String,
    /// Results files of the qtfs-perf/1 schema.
    #[arg(value_name = "RESULTS.json")]
    files: Vec<PathBuf>,
}

fn read(f: &std::path::Path) -> Option<Results> {
    let text = std::fs::read_to_string(f).map_err(|e| eprintln!("perf-report: {}: {e}", f.display())).ok()?;
    serde_json::from_str(&text)
        .map_err(|e| eprintln!("perf-report: {}: not a qtfs-perf/1 results file: {e}", f.display()))
        .ok()
}

fn main() {
    let cli = Cli::parse();
    let mut md = format!("# {}\n\n", cli.title);
    let mut ok = 0;
    for f in &cli.files {
        let Some(r) = read(f) else { continue };
        ok += 1;
        let charts = chart::draw_all(&r, &f.with_extension(""));
        let table = r.summary_table();
        println!("\n## {} ({}, commit {})\n\n{table}", r.suite, r.date, r.commit);
        md.push_str(&format!(
            "## {}\n\n{} · commit `{}` · {} ({} CPUs) · {} round(s), {} s per case · [details]({})\n\n{table}\n",
            r.suite,
            r.date,
            r.commit,
            r.machine.hostname,
            r.machine.cpus,
            r.method.rounds,
            r.method.duration_s,
            f.with_extension("md").file_name().and_then(|n| n.to_str()).unwrap_or("")
        ));
        if let Some(name) =
            charts.iter().find(|c| c.to_string_lossy().ends_with("-ratios.svg")).and_then(|c| c.file_name())
        {
            let name = name.to_string_lossy();
            md.push_str(&format!("![{name}]({name})\n\n"));
        }
        for c in &charts {
            println!("chart: {}", c.display());
        }
    }
    md.push_str("⚠ = rounds differ by more than 15 %: treat that ratio with care.\n");
    if let Some(out) = cli.summary {
        if let Err(e) = std::fs::write(&out, md) {
            eprintln!("perf-report: {}: {e}", out.display());
            std::process::exit(1);
        }
        println!("\nsummary: {}", out.display());
    }
    if ok == 0 {
        std::process::exit(1);
    }
}
