//! Reading a process's CPU time and memory from `/proc`, for the benchmarks and the fleet.

use std::process::Command;
use std::sync::OnceLock;

/// The fields of `/proc/<pid>/stat` the benchmarks use.
#[derive(Debug)]
pub struct Stat {
    /// Parent process id.
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// `/proc/<pid>/stat`, if the process exists.
pub fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `pid (comm) state ppid … utime stime …`; comm may hold spaces and parentheses.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        cpu_ticks: f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    })
}

/// Clock ticks per second for `/proc/<pid>/stat` (100 on every Linux we ship to); asked
/// of `getconf` once.
pub fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system) a process has used so far, seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    read_stat(pid).map(|s| s.cpu_ticks as f64 / clk_tck())
}

/// `Rss:`, `Pss:` and `Private_Clean:` + `Private_Dirty:` of a `smaps_rollup`, in kB.
pub fn parse_rollup(text: &str) -> (u64, u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        field("Rss:"),
        field("Pss:"),
        field("Private_Clean:") + field("Private_Dirty:"),
    )
}

/// A numeric field of `/proc/<pid>/status` (`VmRSS`, `Threads`, `RssAnon`, …; a `kB`
/// unit is dropped).
pub fn status_field(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident set size, KiB (`None` if the process is gone).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_comm_with_spaces_and_parens() {
        let text = "4242 (Web Content (x)) S 17 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 31 0 0 20 0 12 0 900 1000 200 18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.ppid, 17);
        assert_eq!(s.cpu_ticks, 281);
    }

    #[test]
    fn rollup_fields() {
        let text = "55d0-7ff [rollup]\nRss:              433024 kB\nPss:              \
                    251904 kB\nPss_Anon:          1 kB\nShared_Clean:     9 kB\n\
                    Private_Clean:     2000 kB\nPrivate_Dirty:    100000 kB\n";
        assert_eq!(parse_rollup(text), (433_024, 251_904, 102_000));
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(cpu_seconds(me).is_some());
        assert!(status_field(me, "Threads").is_some_and(|t| t >= 1));
    }
}
