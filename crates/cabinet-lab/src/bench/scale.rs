//! `cabinet-lab bench scale`: `cabinet-lab fleet` at several sizes, each in its own process (so
//! its memory is its own), with the same command load; one table.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::Args;

/// Arguments of `cabinet-lab bench scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Fleet sizes to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    sizes: Vec<u32>,
    /// Commands per run.
    #[arg(long, default_value_t = 6_000)]
    commands: u32,
    /// Aggregate commands per second (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Also run each size unpaced, for the most it sustains.
    #[arg(long)]
    unpaced: bool,
    /// The `cabinet` binary to run (default: this one).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Print one JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

fn run_one(bin: &PathBuf, n: u32, commands: u32, rate: f64) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(bin)
        .args(["fleet", "--json", "--hostile", "0"])
        .args(["--cabinets", &n.to_string()])
        .args(["--commands", &commands.to_string()])
        .args(["--rate", &rate.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("fleet of {n} printed no report (exit {})", out.status))?;
    Ok(v)
}

/// Run the benchmark and print its figures.
pub fn bench_scale(a: ScaleArgs) -> anyhow::Result<ExitCode> {
    let bin = match a.binary {
        Some(b) => b,
        None => std::env::current_exe().context("cannot find this program's path")?,
    };
    let mut rates = vec![a.rate];
    if a.unpaced && a.rate != 0.0 {
        rates.push(0.0);
    }
    let mut rows = Vec::new();
    for &rate in &rates {
        for &n in &a.sizes {
            // A fleet needs stock for its commands: 20 slots x 1,000 items per cabinet.
            let commands = a.commands.min(n.saturating_mul(10_000));
            let v = run_one(&bin, n, commands, rate)?;
            if !a.json {
                print_row(&v, rows.is_empty());
            }
            rows.push(v);
        }
    }
    if a.json {
        println!("{}", serde_json::Value::Array(rows.clone()));
    }
    if rows.iter().any(|r| r["reconciled"] != true) {
        bail!("a fleet run did not reconcile (see its figures)");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_row(v: &serde_json::Value, header: bool) {
    if header {
        println!(
            "| cabinets | rate asked | sustained | p50 / p99 / max publish -> terminal | RSS per cabinet | all online | fleet CPU | broker CPU | resent | reconciled |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
    }
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let l = &v["terminal_latency"];
    let asked = f("rate_requested");
    println!(
        "| {} | {} | {:.0}/s | {:.2} / {:.2} / {:.2} ms | {:.0} KiB | {:.0} ms | {:.2} cores | {:.2} cores | {} | {} |",
        v["cabinets"],
        if asked > 0.0 {
            format!("{asked:.0}/s")
        } else {
            "unpaced".into()
        },
        f("rate_sustained"),
        l["p50_ms"].as_f64().unwrap_or(0.0),
        l["p99_ms"].as_f64().unwrap_or(0.0),
        l["max_ms"].as_f64().unwrap_or(0.0),
        f("rss_per_cabinet_kib"),
        f("all_online_s") * 1000.0,
        f("cpu_fleet_cores"),
        f("cpu_broker_cores"),
        v["resent"],
        if v["reconciled"] == true { "yes" } else { "NO" },
    );
}
