//! SVG charts of a run (plotters with its SVG backend only: text is written as SVG
//! `<text>`, sized by plotters' own estimate, so no font files or image libraries are
//! needed). [`draw_all`] draws every chart of one results file; the benchmark binaries
//! call it after a run and `perf-report` calls it on files written earlier (also those of
//! the python harnesses), so each chart is drawn by one piece of code.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::results::{CaseResult, Results};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type ChartResult = Result<(), Box<dyn std::error::Error>>;

/// One named row of values, one value per category (or per x).
pub type Series = (String, Vec<f64>);

fn y_max(series: &[Series]) -> f64 {
    series.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0f64, f64::max).max(1e-9) * 1.15
}

/// Grouped bars: one group per category, one bar per series.
pub fn grouped_bars(path: &Path, title: &str, y_label: &str, categories: &[String], series: &[Series]) -> ChartResult {
    let width = (240 + categories.len() as u32 * 34 * series.len().max(1) as u32).clamp(640, 1600);
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = categories.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..y_max(series))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            categories.get(i).cloned().unwrap_or_default()
        })
        .y_desc(y_label)
        .draw()?;
    let k = series.len().max(1) as f64;
    for (si, (name, vals)) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        chart
            .draw_series(vals.iter().enumerate().map(|(ci, &v)| {
                let x0 = ci as f64 + 0.1 + 0.8 * si as f64 / k;
                let x1 = x0 + 0.8 / k;
                Rectangle::new([(x0, 0.0), (x1, v)], color.filled())
            }))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}

/// Lines: x values shared, one line per series.
pub fn lines(path: &Path, title: &str, x_label: &str, y_label: &str, xs: &[f64], series: &[Series]) -> ChartResult {
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let xmax = xs.iter().copied().fold(0.0f64, f64::max).max(1.0);
    let xmin = xs.iter().copied().fold(f64::MAX, f64::min).min(xmax);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(xmin..xmax, 0f64..y_max(series))?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
    for (si, (name, vals)) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        chart
            .draw_series(LineSeries::new(xs.iter().copied().zip(vals.iter().copied()), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
        chart.draw_series(xs.iter().copied().zip(vals.iter().copied()).map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}

/// Collects the charts that were drawn (a chart that fails is left out with a warning).
struct Drawn {
    stem: PathBuf,
    paths: Vec<PathBuf>,
}

impl Drawn {
    fn path(&self, suffix: &str) -> PathBuf {
        PathBuf::from(format!("{}{suffix}.svg", self.stem.display()))
    }

    fn bars(&mut self, suffix: &str, title: &str, y_label: &str, cats: &[String], series: &[Series]) {
        if cats.is_empty() || series.is_empty() {
            return;
        }
        let p = self.path(suffix);
        self.keep(p.clone(), grouped_bars(&p, title, y_label, cats, series));
    }

    fn keep(&mut self, p: PathBuf, r: ChartResult) {
        match r {
            Ok(()) => self.paths.push(p),
            Err(e) => eprintln!("chart {}: {e}", p.display()),
        }
    }
}

/// Every chart of `r`, written as `STEM[-what].svg`: the ratio chart of every suite
/// (`-ratios`) and the suite's own charts (loadgen: `-ratio`, `-qd`, `-latency`; rexec:
/// `-latency`, `-stream`; fio-compare: `STEM.svg`, each system as a fraction of the
/// local directory). Returns the files drawn, the ratio chart first.
pub fn draw_all(r: &Results, stem: &Path) -> Vec<PathBuf> {
    let mut d = Drawn { stem: stem.to_path_buf(), paths: Vec::new() };
    ratio_chart(r, &mut d);
    match r.suite.as_str() {
        "loadgen" => loadgen_charts(r, &mut d),
        "rexec" => {
            let lat: Vec<&CaseResult> = r.results.iter().filter(|c| c.unit == "ms").collect();
            let series = best_by_system(r, &lat);
            d.bars("-latency", "running /bin/true (ms, lower is better)", "ms", &case_names(&lat), &series);
            let st: Vec<&CaseResult> = r.results.iter().filter(|c| c.unit == "MiB/s").collect();
            let series = best_by_system(r, &st);
            d.bars("-stream", "cat BIGFILE through a pipe (MiB/s)", "MiB/s", &case_names(&st), &series);
        }
        "fio-compare" => fio_chart(r, &mut d),
        _ => {}
    }
    d.paths
}

fn case_names(cases: &[&CaseResult]) -> Vec<String> {
    cases.iter().map(|c| c.case.clone()).collect()
}

/// One series per system of the run (in the run's order) that has a value in `cases`.
fn best_by_system(r: &Results, cases: &[&CaseResult]) -> Vec<Series> {
    r.systems
        .iter()
        .filter(|s| cases.iter().any(|c| c.best.contains_key(&s.name)))
        .map(|s| (s.name.clone(), cases.iter().map(|c| c.best.get(&s.name).copied().unwrap_or(0.0)).collect()))
        .collect()
}

/// Every ratio of every case that has one (⚠ marks a noisy case).
fn ratio_chart(r: &Results, d: &mut Drawn) {
    let cases: Vec<&CaseResult> = r.results.iter().filter(|c| !c.ratios.is_empty()).collect();
    let mut keys: Vec<&String> = Vec::new();
    for k in cases.iter().flat_map(|c| c.ratios.keys()) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let cats: Vec<String> = cases.iter().map(|c| format!("{}{}", c.case, if c.noisy { " ⚠" } else { "" })).collect();
    let series: Vec<Series> = keys
        .iter()
        .map(|k| ((*k).clone(), cases.iter().map(|c| c.ratios.get(*k).copied().unwrap_or(0.0)).collect()))
        .collect();
    let title = format!("{}: ratios measured in the same run ({})", r.suite, r.date);
    d.bars("-ratios", &title, "ratio", &cats, &series);
}

fn loadgen_charts(r: &Results, d: &mut Drawn) {
    let main: Vec<&CaseResult> = r.results.iter().filter(|c| c.ratios.contains_key("engine/echo")).collect();
    let ratio = vec![("engine/echo".to_string(), main.iter().map(|c| c.ratios["engine/echo"]).collect())];
    d.bars("-ratio", "engine / transport limit (ops/s ratio, same run)", "ratio", &case_names(&main), &ratio);

    // Cases are named WORKLOAD-qdN-cC; the throughput lines are those of one connection.
    let one_conn: Vec<(&str, usize, &CaseResult)> = r
        .results
        .iter()
        .filter_map(|c| {
            let (w, qd) = c.case.strip_suffix("-c1")?.rsplit_once("-qd")?;
            Some((w, qd.parse().ok()?, c))
        })
        .collect();
    let mut qds: Vec<usize> = one_conn.iter().map(|(_, q, _)| *q).collect();
    qds.sort_unstable();
    qds.dedup();
    let mut qd_series = Vec::new();
    for w in ["getattr", "read4k"].into_iter().filter(|w| one_conn.iter().any(|(x, _, _)| x == w)) {
        for sys in ["engine", "echo"] {
            let at =
                |qd: usize| one_conn.iter().find(|(x, q, _)| *x == w && *q == qd).and_then(|(_, _, c)| c.best.get(sys));
            qd_series.push((format!("{w} {sys}"), qds.iter().map(|&qd| at(qd).copied().unwrap_or(0.0)).collect()));
        }
    }
    if qds.len() > 1 {
        let p = d.path("-qd");
        let xs: Vec<f64> = qds.iter().map(|&q| q as f64).collect();
        let title = "throughput by queue depth (1 connection)";
        d.keep(p.clone(), lines(&p, title, "queue depth", "ops/s", &xs, &qd_series));
    }

    let lat: Vec<&CaseResult> = one_conn.iter().filter(|(_, q, _)| *q == 1).map(|(_, _, c)| *c).collect();
    let cats: Vec<String> = lat.iter().map(|c| c.case.trim_end_matches("-qd1-c1").to_string()).collect();
    let mut series = Vec::new();
    for sys in ["engine", "echo"] {
        for q in ["p50_us", "p99_us"] {
            let v = lat.iter().map(|c| c.extra.get(sys).and_then(|m| m.get(q)).copied().unwrap_or(0.0)).collect();
            series.push((format!("{sys} {q}"), v));
        }
    }
    d.bars("-latency", "latency at queue depth 1 (µs)", "µs", &cats, &series);
}

/// fio-compare: every system but the directory itself, as a fraction of it (best rounds).
fn fio_chart(r: &Results, d: &mut Drawn) {
    let cases: Vec<&CaseResult> = r.results.iter().collect();
    let series: Vec<Series> = r
        .systems
        .iter()
        .filter(|s| s.name != "local")
        .map(|s| {
            let frac = |c: &&CaseResult| match (c.best.get(&s.name), c.best.get("local")) {
                (Some(b), Some(l)) if *l != 0.0 => b / l,
                _ => 0.0,
            };
            (s.name.clone(), cases.iter().map(frac).collect())
        })
        .collect();
    let title = format!("fio-compare {} {} ({})", &r.date[..r.date.len().min(10)], r.machine.hostname, r.commit);
    d.bars("", &title, "fraction of the local tmpfs directory (best round)", &case_names(&cases), &series);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The charts of runs kept in `perf/results`, one of each suite that has its own.
    #[test]
    fn every_suite_gets_its_charts() {
        let dir = std::env::temp_dir().join(format!("qtfs-perf-charts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
        for (run, charts) in [
            ("2026-12-03-vm-loadgen", &["-ratios", "-ratio", "-qd", "-latency"][..]),
            ("2026-12-03-vm-rexec", &["-ratios", "-latency", "-stream"]),
            ("2026-11-25-vm-fio", &["-ratios", ""]),
            ("2026-12-03-vm-uds", &["-ratios"]),
        ] {
            let text = std::fs::read_to_string(kept.join(format!("{run}.json"))).unwrap();
            let r: Results = serde_json::from_str(&text).unwrap();
            let stem = dir.join(run);
            let drawn = draw_all(&r, &stem);
            let want: Vec<PathBuf> =
                charts.iter().map(|c| PathBuf::from(format!("{}{c}.svg", stem.display()))).collect();
            assert_eq!(drawn, want, "{run}");
            for p in &drawn {
                let svg = std::fs::read_to_string(p).unwrap();
                assert!(svg.starts_with("<svg") && svg.contains("<rect") && svg.contains("<text"), "{}", p.display());
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
