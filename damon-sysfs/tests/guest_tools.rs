//! The tools' `--engine kernel` on the guest kernel's DAMON: `record`
//! writes a damo record of the workload, `monitor` shows its hot range,
//! `reclaim` pages out its idle memory, each through a kdamond of ours.
//! The tools are the examples built static and put in the guest's `/bin`
//! (`DAMON_TOOLS_DIR`); on the host these are skipped, as the host's
//! DAMON tree belongs to the machine.

mod guest;

use guest::*;
use std::path::PathBuf;
use std::process::{Command, Output};

fn tool(name: &str) -> PathBuf {
    let dir = std::env::var("DAMON_TOOLS_DIR").expect("DAMON_TOOLS_DIR in the VM suite");
    PathBuf::from(dir).join(name)
}

fn run(name: &str, args: &[&str]) -> Output {
    let out = Command::new(tool(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "--- {name} {}: {}\n--- stdout (tail)\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout), 25),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn no_kdamond_left() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds")
        .is_ok_and(|n| n.trim() == "0")
}

#[test]
fn kernel_engine_record_tool_writes_a_damo_record() {
    const T: &str = "kernel_engine_record_tool_writes_a_damo_record";
    if !in_guest(T) {
        return;
    }
    let (child, pid, hot) = workload();
    let pid = pid.to_string();
    let out = "/tmp/kernel-engine.data";
    let r = run(
        "record",
        &[
            "--engine",
            "auto",
            "--pid",
            &pid,
            "--duration",
            "4",
            "-o",
            out,
        ],
    );
    drop(child);
    assert!(r.status.success());
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("engine: kernel"), "{stderr}");
    let records = damon_damo::parse_record(&std::fs::read(out).unwrap()).unwrap();
    assert_eq!(records.len(), 1, "one target");
    let snaps = &records[0].snapshots;
    assert!(snaps.len() >= 10, "{} aggregations in 4 s", snaps.len());
    let best = snaps
        .iter()
        .map(|s| {
            let found: u64 = s
                .regions
                .iter()
                .filter(|r| r.nr_accesses > 0)
                .map(|r| r.end.min(hot.end).saturating_sub(r.start.max(hot.start)))
                .sum();
            found * 100 / hot.len()
        })
        .max()
        .unwrap();
    assert!(best >= 80, "the hot range found by {best}% at best");
    assert!(no_kdamond_left(), "the kdamond of ours is removed");
}

#[test]
fn kernel_engine_monitor_tool_shows_the_hot_range() {
    const T: &str = "kernel_engine_monitor_tool_shows_the_hot_range";
    if !in_guest(T) {
        return;
    }
    let (child, pid, hot) = workload();
    let pid = pid.to_string();
    let r = run(
        "monitor",
        &[
            "--engine",
            "kernel",
            "--pid",
            &pid,
            "--duration",
            "4",
            "--refresh-ms",
            "1000",
        ],
    );
    drop(child);
    assert!(r.status.success());
    let stdout = String::from_utf8_lossy(&r.stdout);
    // rows: start end size access% age; some accessed row inside the hot range
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let hot_rows = stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = (hex(f.first()?)?, hex(f.get(1)?)?);
            let pct: u64 = f
                .iter()
                .position(|w| *w == "%")
                .and_then(|i| f[i - 1].parse().ok())?;
            Some((s, e, pct))
        })
        .filter(|&(s, e, pct)| pct > 0 && s < hot.end && e > hot.start)
        .count();
    assert!(hot_rows > 0, "no accessed row over the hot range {hot:?}");
    assert!(stdout.contains("# working set size"), "the summary");
    assert!(no_kdamond_left());
}

#[test]
fn kernel_engine_reclaim_tool_pages_out_idle_memory() {
    const T: &str = "kernel_engine_reclaim_tool_pages_out_idle_memory";
    if !in_guest(T) {
        return;
    }
    let (child, pid, _hot) = workload();
    let rss0 = rss_kib(pid);
    let pid_s = pid.to_string();
    // idle for 1 s is paged out; the watermarks let it act at any free memory
    let r = run(
        "reclaim",
        &[
            "--engine",
            "kernel",
            "--pid",
            &pid_s,
            "--min-age",
            "1000000",
            "--wmarks-high",
            "1000",
            "--wmarks-mid",
            "1000",
            "--wmarks-low",
            "0",
            "--duration",
            "10",
            "--interval-ms",
            "2000",
        ],
    );
    let rss = rss_kib(pid);
    drop(child);
    assert!(r.status.success());
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(stdout.contains("[on the kernel's kdamond]"), "{stdout}");
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.contains("sz_applied="))
        .expect("a statistics line");
    let applied: u64 = last
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sz_applied="))
        .and_then(|v| v.parse().ok())
        .expect("sz_applied");
    eprintln!("{T}: VmRSS {rss0} -> {rss} KiB; sz_applied {applied}");
    assert!(applied > 0, "{last}");
    assert!(
        rss + 16 * 1024 <= rss0,
        "VmRSS {rss0} -> {rss} KiB: the idle 48 MiB mostly paged out"
    );
    assert!(no_kdamond_left());
}

#[test]
fn kernel_engine_lru_sort_tool_tries_both_schemes() {
    const T: &str = "kernel_engine_lru_sort_tool_tries_both_schemes";
    if !in_guest(T) {
        return;
    }
    let (child, pid, _hot) = workload();
    let pid = pid.to_string();
    let r = run(
        "lru_sort",
        &[
            "--engine",
            "kernel",
            "--pid",
            &pid,
            "--cold-min-age",
            "1000000",
            // under emulation the workload sweeps its hot range slowly:
            // hot is "seen in 4 of 20 samples", not the default 10
            "--hot-thres-access-freq",
            "200",
            "--wmarks-high",
            "1000",
            "--wmarks-mid",
            "1000",
            "--wmarks-low",
            "0",
            "--duration",
            "6",
            "--interval-ms",
            "2000",
        ],
    );
    drop(child);
    assert!(r.status.success());
    let stdout = String::from_utf8_lossy(&r.stdout);
    // the final statistics: the hot range willneed, the idle rest cold
    let tried = |label: &str| -> u64 {
        stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("sz_tried="))?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    assert!(stdout.contains("[on the kernel's kdamond]"), "{stdout}");
    assert!(tried("hot: willneed") > 0, "hot scheme tried nothing");
    assert!(tried("cold: cold") > 0, "cold scheme tried nothing");
    assert!(no_kdamond_left());
}

fn rss_kib(pid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}
