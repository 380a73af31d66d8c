//! `perf-report`: reads results files of the `qtfs-perf/1` schema, draws a ratio chart
//! for each (PNG, plotters) and writes one summary report of the whole run.
//!
//! Usage: `perf-report [--summary OUT.md] [--title T] RESULTS.json...`

use std::path::{Path, PathBuf};

use qtfs_perf::Results;
use qtfs_perf::chart;

fn ratio_chart(r: &Results, json: &Path) -> Option<PathBuf> {
    let stem = json.with_extension("");
    let png = PathBuf::from(format!("{}-ratios.png", stem.display()));
    let mut keys: Vec<String> = Vec::new();
    for c in &r.results {
        for k in c.ratios.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let cases: Vec<&qtfs_perf::CaseResult> = r.results.iter().filter(|c| !c.ratios.is_empty()).collect();
    if cases.is_empty() {
        return None;
    }
    let cats: Vec<String> = cases.iter().map(|c| format!("{}{}", c.case, if c.noisy { " ⚠" } else { "" })).collect();
    let series: Vec<(String, Vec<f64>)> = keys
        .iter()
        .map(|k| (k.clone(), cases.iter().map(|c| c.ratios.get(k).copied().unwrap_or(0.0)).collect()))
        .collect();
    let title = format!("{}: ratios measured in the same run ({})", r.suite, r.date);
    chart::grouped_bars(&png, &title, "ratio", &cats, &series).ok()?;
    Some(png)
}

fn main() {
    let mut summary: Option<PathBuf> = None;
    let mut title = "qtfs-rs performance".to_string();
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--summary" => summary = args.next().map(PathBuf::from),
            "--title" => title = args.next().unwrap_or(title),
            "-h" | "--help" => {
                println!("perf-report [--summary OUT.md] [--title T] RESULTS.json...");
                return;
            }
            _ => files.push(PathBuf::from(a)),
        }
    }
    let mut md = format!("# {title}\n\n");
    let mut ok = 0;
    for f in &files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("perf-report: {}: {e}", f.display());
                continue;
            }
        };
        let r: Results = match serde_json::from_str(&text) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("perf-report: {}: not a qtfs-perf/1 results file: {e}", f.display());
                continue;
            }
        };
        ok += 1;
        let chart = ratio_chart(&r, f);
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
        if let Some(c) = chart {
            let name = c.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
            md.push_str(&format!("![{name}]({name})\n\n"));
        }
    }
    md.push_str("⚠ = rounds differ by more than 15 %: treat that ratio with care.\n");
    if let Some(out) = summary {
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
