//! The figures over the runs: medians and ranges per binary, per process name, the app's
//! difference to the empty window, and the runs that had the machine alone; printed as
//! text or one JSON object.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::host::Machine;
use super::model::{Run, Which, WindowArgs};
use super::tree::Mem;

pub(super) fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// Median, min, max.
#[derive(Debug, Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(mut v: Vec<f64>) -> Spread {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    Spread {
        median,
        min: v.first().copied().unwrap_or(0.0),
        max: v.last().copied().unwrap_or(0.0),
    }
}

impl Spread {
    fn json(self) -> serde_json::Value {
        serde_json::json!({"median": self.median, "min": self.min, "max": self.max})
    }
}

/// Memory and CPU of one process name (or the tree) over the runs, in MB and % of a core.
#[derive(Debug, Clone, Copy)]
struct Figures {
    rss_mb: Spread,
    pss_mb: Spread,
    uss_mb: Spread,
    cpu_pct: Spread,
    /// Median number of processes.
    count: f64,
}

impl Figures {
    fn of(runs: &[&Run], mem: &dyn Fn(&Run) -> Mem) -> Figures {
        let col = |f: &dyn Fn(Mem) -> f64| spread(runs.iter().map(|r| f(mem(r))).collect());
        Figures {
            rss_mb: col(&|m| mb(m.rss_kb)),
            pss_mb: col(&|m| mb(m.pss_kb)),
            uss_mb: col(&|m| mb(m.uss_kb)),
            cpu_pct: col(&|m| m.cpu_pct),
            count: col(&|m| f64::from(m.count)).median,
        }
    }

    fn json(self) -> serde_json::Value {
        serde_json::json!({
            "rss_mb": self.rss_mb.json(),
            "pss_mb": self.pss_mb.json(),
            "uss_mb": self.uss_mb.json(),
            "idle_cpu_pct_of_one_core": self.cpu_pct.json(),
            "processes": self.count,
        })
    }
}

/// The figures of one binary over its runs.
#[derive(Debug)]
struct Summary {
    runs: usize,
    paint_harness_ms: Spread,
    paint_own_ms: Spread,
    total: Figures,
    /// By process name (`app` for the process the harness started).
    by_name: BTreeMap<String, Figures>,
}

fn summarize(runs: &[&Run]) -> Summary {
    let mut names: Vec<&String> = runs.iter().flat_map(|r| r.by_name.keys()).collect();
    names.sort();
    names.dedup();
    let by_name = names
        .into_iter()
        .map(|name| {
            let mem = |r: &Run| r.by_name.get(name).copied().unwrap_or_default();
            (name.clone(), Figures::of(runs, &mem))
        })
        .collect();
    Summary {
        runs: runs.len(),
        paint_harness_ms: spread(runs.iter().map(|r| r.paint_harness_ms).collect()),
        paint_own_ms: spread(runs.iter().map(|r| r.paint_own_ms as f64).collect()),
        total: Figures::of(runs, &|r| r.total),
        by_name,
    }
}

/// What the report prints besides the runs.
#[derive(Debug)]
pub(super) struct Setup {
    pub(super) app: PathBuf,
    pub(super) empty: PathBuf,
    pub(super) app_args: Vec<String>,
    /// What the kiosk ran on: its demo, or the field's config (names, orders served).
    pub(super) kiosk: String,
    pub(super) env: BTreeMap<String, String>,
    /// The display, as [`super::host::Display::label`] names it.
    pub(super) display: String,
    pub(super) machine: Machine,
    /// Load average before and after.
    pub(super) load: (String, String),
}

pub(super) fn report(a: &WindowArgs, setup: &Setup, runs: &[Run]) {
    let Setup {
        app,
        empty,
        app_args,
        kiosk,
        env,
        display,
        machine: m,
        load,
    } = setup;
    let pick = |w: Which| runs.iter().filter(|r| r.which == w).collect::<Vec<_>>();
    let s_app = summarize(&pick(Which::App));
    let s_empty = summarize(&pick(Which::Empty));
    let diff = |f: fn(&Summary) -> Spread| f(&s_app).median - f(&s_empty).median;
    let d_paint = diff(|s| s.paint_harness_ms);
    let d_rss = diff(|s| s.total.rss_mb);
    let d_pss = diff(|s| s.total.pss_mb);
    let d_uss = diff(|s| s.total.uss_mb);
    // PSS and private memory fall when another WebKit process on the machine shares our
    // library pages: also give the figures over the runs that had the machine alone.
    let crowded = runs.iter().filter(|r| r.others > 0).count();
    let alone = |w: Which| {
        let v: Vec<&Run> = runs
            .iter()
            .filter(|r| r.which == w && r.others == 0)
            .collect();
        (!v.is_empty()).then(|| summarize(&v))
    };
    let alone = match (alone(Which::App), alone(Which::Empty)) {
        (Some(app), Some(empty)) if crowded > 0 => Some((app, empty)),
        _ => None,
    };
    if a.json {
        let side = |s: &Summary| {
            serde_json::json!({
                "first_paint_harness_ms": s.paint_harness_ms.json(),
                "first_paint_own_ms": s.paint_own_ms.json(),
                "total": s.total.json(),
                "by_process": s.by_name.iter()
                    .map(|(n, f)| (n.clone(), f.json()))
                    .collect::<serde_json::Map<_, _>>(),
            })
        };
        let each: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "binary": r.which.label(),
                    "first_paint_harness_ms": r.paint_harness_ms,
                    "first_paint_own_ms": r.paint_own_ms,
                    "rss_kb": r.total.rss_kb,
                    "pss_kb": r.total.pss_kb,
                    "uss_kb": r.total.uss_kb,
                    "idle_cpu_pct": r.total.cpu_pct,
                    "processes": r.total.count,
                    "other_webkit_processes": r.others,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "bench": "window_first_paint_and_footprint",
                "app": app.display().to_string(),
                "app_args": app_args,
                "kiosk": kiosk,
                "empty": empty.display().to_string(),
                "webkit_env": env,
                "display": display,
                "runs_each": a.runs,
                "settle_s": a.settle_secs,
                "machine": {
                    "cpu": m.cpu, "cores": m.cores, "mem_total_mb": m.mem_total_mb,
                    "kernel": m.kernel, "os": m.os, "webkitgtk": m.webkitgtk,
                    "loadavg_before": load.0, "loadavg_after": load.1,
                },
                "app_window": side(&s_app),
                "empty_window": side(&s_empty),
                "app_minus_empty_median": {
                    "first_paint_harness_ms": d_paint,
                    "rss_mb": d_rss, "pss_mb": d_pss, "uss_mb": d_uss,
                },
                "runs_with_other_webkit_processes": crowded,
                "runs_alone": alone.as_ref().map(|(app, empty)| serde_json::json!({
                    "app": {"runs": app.runs, "total": app.total.json()},
                    "empty": {"runs": empty.runs, "total": empty.total.json()},
                    "app_minus_empty_median": {
                        "pss_mb": app.total.pss_mb.median - empty.total.pss_mb.median,
                        "uss_mb": app.total.uss_mb.median - empty.total.uss_mb.median,
                    },
                })),
                "runs": each,
            })
        );
        return;
    }
    let range = |s: Spread, unit: &str, prec: usize| {
        format!(
            "{:>8.prec$} {unit}  ({:.prec$} – {:.prec$})",
            s.median, s.min, s.max
        )
    };
    println!("Window: first paint and idle footprint, kiosk vs an empty Tauri 2 window");
    println!("  app      {} {}", app.display(), app_args.join(" "));
    println!("  kiosk    {kiosk}");
    println!("  empty    {}", empty.display());
    println!(
        "  runs     {} each, alternating; settle {} s; {display}; env {}",
        a.runs,
        a.settle_secs,
        if env.is_empty() {
            "as inherited".to_owned()
        } else {
            env.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
    );
    println!(
        "  machine  {} × {} cores, {:.1} GiB, {}, Linux {}, WebKitGTK {}",
        m.cpu,
        m.cores,
        m.mem_total_mb / 1024.0,
        m.os,
        m.kernel,
        m.webkitgtk
    );
    println!("  load     {} before, {} after", load.0, load.1);
    println!("  medians (min – max); USS = private memory (Private_Clean + Private_Dirty)");
    for (label, s) in [("app", &s_app), ("empty", &s_empty)] {
        let t = s.total;
        println!("  {label}");
        println!(
            "    first paint (harness)  {}",
            range(s.paint_harness_ms, "ms", 0)
        );
        println!(
            "    first paint (own)      {}",
            range(s.paint_own_ms, "ms", 0)
        );
        println!("    RSS total              {}", range(t.rss_mb, "MB", 1));
        println!("    PSS total              {}", range(t.pss_mb, "MB", 1));
        println!("    USS total              {}", range(t.uss_mb, "MB", 1));
        println!(
            "    idle CPU (tree)        {}",
            range(t.cpu_pct, "% of a core", 2)
        );
        for (name, f) in &s.by_name {
            println!(
                "      {name:<21} ×{:<2.0} RSS {:6.1}  PSS {:6.1}  USS {:6.1} MB  CPU {:5.2} %",
                f.count, f.rss_mb.median, f.pss_mb.median, f.uss_mb.median, f.cpu_pct.median
            );
        }
    }
    println!("  app − empty (medians)");
    println!("    first paint            {d_paint:>+8.0} ms");
    println!("    RSS                    {d_rss:>+8.1} MB");
    println!("    PSS                    {d_pss:>+8.1} MB");
    println!("    USS                    {d_uss:>+8.1} MB");
    if crowded > 0 {
        println!(
            "  {crowded} of {} runs had other WebKit processes on the machine: they share library \
             pages with ours, so those runs show lower PSS and USS (RSS is unaffected)",
            runs.len()
        );
    }
    if let Some((app, empty)) = &alone {
        println!(
            "  runs alone on the machine (app {}, empty {}): medians (min – max)",
            app.runs, empty.runs
        );
        for (label, s) in [("app", app), ("empty", empty)] {
            println!("    {label:<5} PSS {}", range(s.total.pss_mb, "MB", 1));
            println!("    {label:<5} USS {}", range(s.total.uss_mb, "MB", 1));
        }
        println!(
            "    app − empty  PSS {:+.1} MB, USS {:+.1} MB",
            app.total.pss_mb.median - empty.total.pss_mb.median,
            app.total.uss_mb.median - empty.total.uss_mb.median
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle() {
        let s = spread(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(spread(vec![4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }
}
