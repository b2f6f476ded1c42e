//! Runs the `monitor`, `record`, `reclaim` and `lru_sort` example programs
//! and checks what they print and how they exit.
//!
//! The programs are built once per run with `cargo build --release` (the
//! release profile's own lock, so the `cargo test` running this does not
//! block it; under `cargo test --release` a separate target directory is
//! used for the same reason). Simulated runs use virtual time, so they take
//! milliseconds.

use rustix::process::{kill_process, Pid, Signal};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const PROGRAMS: [&str; 6] = [
    "monitor",
    "record",
    "report",
    "reclaim",
    "lru_sort",
    "custom_ops",
];

/// The directory holding the release example binaries, built on first use.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // this test is <target>/<profile>/deps/<name>
        let exe = std::env::current_exe().expect("the test's path");
        let mut target = exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .expect("a cargo target directory")
            .to_path_buf();
        if !cfg!(debug_assertions) {
            // the running `cargo test --release` holds the release lock
            target = target.join("nested-examples");
        }
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--release", "-p", "damon-examples"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", &target);
        for p in PROGRAMS {
            cmd.args(["--example", p]);
        }
        let out = cmd.output().expect("running cargo");
        assert!(
            out.status.success(),
            "building the examples failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("release").join("examples")
    })
}

/// A started example program with captured output.
fn start(name: &str, args: &[&str]) -> std::process::Child {
    Command::new(examples_dir().join(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {name}: {e}"))
}

/// Waits for `child` at most `timeout`; kills it and fails past that.
fn wait(child: std::process::Child, timeout: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("waiting for the program"),
        Err(_) => {
            signal(pid, Signal::KILL);
            panic!("the program did not finish within {timeout:?}");
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    let p = Pid::from_raw(pid as i32).expect("a child's pid is positive");
    kill_process(p, sig).unwrap_or_else(|e| panic!("kill({pid}, {sig:?}): {e}"));
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(name: &str, args: &[&str]) -> Run {
    let out = wait(start(name, args), Duration::from_secs(120));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn has_page_idle() -> bool {
    Path::new("/sys/kernel/mm/page_idle/bitmap").exists()
}

/// `key=N` of the last line of `out` that contains `what`.
fn stat(out: &str, what: &str, key: &str) -> u64 {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with {what:?} in\n{out}"));
    let at = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key} is not a number in {line}"))
}

#[test]
fn monitor_shows_tables_then_a_heatmap_and_wss_percentiles() {
    let r = run(
        "monitor",
        &[
            "--sim",
            "1G:hot=0-128M@0.9,512M-576M@0.3",
            "--virtual-time",
            "--duration",
            "1",
            "--refresh-ms",
            "250",
            "--seed",
            "3",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let out = &r.stdout;
    assert!(!out.contains('\x1b'), "no terminal escapes into a pipe");
    // one view per refresh, separated by blank lines
    let views: Vec<&str> = out
        .split("\n\n")
        .filter(|b| b.starts_with("monitor: simulated"))
        .collect();
    assert_eq!(views.len(), 4, "{r:?}");
    let last = views[3];
    assert!(
        last.starts_with("monitor: simulated 1024.000 MiB | elapsed 1 s | total 1024.000 MiB in "),
        "{last}"
    );
    assert!(last.lines().nth(2).unwrap().contains("access"), "{last}");
    let rows: Vec<&str> = last.lines().filter(|l| l.contains(" % ")).collect();
    assert!(!rows.is_empty() && rows.len() <= 20, "{last}");
    assert!(
        rows.iter()
            .any(|l| l.trim_start().starts_with("0x") && !l.contains("  0 %")),
        "some region is hot: {last}"
    );
    assert!(out.contains("# access_frequency: 0123456789"), "{r:?}");
    assert!(out.contains("# <percentile> <wss>"), "{r:?}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("50 ")),
        "{r:?}"
    );
    assert!(
        out.trim_end()
            .ends_with("monitor: stopped after 1 s: the requested duration passed"),
        "{r:?}"
    );
}

#[test]
fn monitor_stops_when_the_target_exits_and_says_why() {
    let r = run(
        "monitor",
        &[
            "--sim",
            "256M:hot=0-16M@1:exit=0.5",
            "--virtual-time",
            "--duration",
            "60",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let last = r.stdout.trim_end().lines().last().unwrap();
    assert!(
        last.contains("every target exited (simulated targets exited after"),
        "{r:?}"
    );
    assert!(r.stdout.contains("# access_frequency"), "{r:?}");
}

#[test]
fn monitor_on_real_time_ends_cleanly_on_ctrl_c() {
    let child = start(
        "monitor",
        &["--sim", "256M:hot=0-16M@1", "--refresh-ms", "100"],
    );
    std::thread::sleep(Duration::from_millis(1200));
    signal(child.id(), Signal::INT);
    let out = wait(child, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("# access_frequency"), "{stdout}");
    assert!(stdout.trim_end().ends_with(": interrupted"), "{stdout}");
    assert!(
        stdout.matches("monitor: simulated").count() >= 3,
        "{stdout}"
    );
}

#[test]
fn monitor_refuses_bad_targets_and_options_without_panicking() {
    let r = run("monitor", &["--pid", "2147483646"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr.trim(), "monitor: no process with pid 2147483646");

    let r = run("monitor", &["--sim", "1G", "--bogus"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("unexpected argument '--bogus'"), "{r:?}");

    let r = run("monitor", &["--sim", "1G", "--duration", "-3"]);
    assert_eq!(r.code, Some(2), "{r:?}");

    let r = run("monitor", &["--sim", "1G:hot=2G-3G@1"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("--sim: hot range"), "{r:?}");

    let r = run("monitor", &[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("nothing to monitor"), "{r:?}");

    // a target that does not exist is refused before monitoring, not an
    // empty view
    let r = run(
        "monitor",
        &["--sim", "1G", "--virtual-time", "--target-index", "1"],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr.trim(),
        "monitor: --target-index 1: there are 1 target(s), indexed from 0"
    );

    let r = run("monitor", &["--help"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    for opt in [
        "--pid",
        "--numa-node",
        "--all-ram",
        "--refresh-ms",
        "--kdamonds",
        "[-- <COMMAND>...]",
    ] {
        assert!(r.stdout.contains(opt), "{opt}: {r:?}");
    }
    assert!(!r.stderr.contains("panicked"));
}

#[test]
fn monitor_names_the_missing_kernel_feature_and_starts_nothing() {
    if has_page_idle() {
        eprintln!("skipped: this kernel has idle page tracking");
        return;
    }
    let marker = std::env::temp_dir().join(format!("damon-monitor-test-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let m = marker.display().to_string();
    let r = run("monitor", &["--", "touch", &m]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("CONFIG_IDLE_PAGE_TRACKING"), "{r:?}");
    assert!(!marker.exists(), "the command must not be started");

    let me = std::process::id().to_string();
    for args in [
        vec!["--pid", me.as_str()],
        vec!["paddr", "--numa-node", "0"],
    ] {
        let r = run("monitor", &args);
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert!(r.stderr.contains("CONFIG_IDLE_PAGE_TRACKING"), "{r:?}");
    }
}

fn preset_sim(name: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "--sim",
        "1G:hot=0-128M@0.9",
        "--virtual-time",
        "--duration",
        "2",
        "--interval-ms",
        "500",
        "--seed",
        "5",
    ];
    args.extend_from_slice(extra);
    let r = run(name, &args);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.contains(&format!("{name}: final statistics")),
        "{r:?}"
    );
    r
}

#[test]
fn reclaim_pages_out_idle_memory_inside_the_watermarks_only() {
    let r = preset_sim(
        "reclaim",
        &["--min-age", "200000", "--free-mem-rate", "300"],
    );
    assert!(r.stdout.contains("free_mem_rate=300 per mille"), "{r:?}");
    assert!(
        r.stdout.matches("pageout [active]").count() >= 4,
        "a report per 500 ms: {r:?}"
    );
    assert!(stat(&r.stdout, "pageout [", "nr_tried") > 0, "{r:?}");
    assert!(stat(&r.stdout, "pageout [", "sz_applied") > 0, "{r:?}");
    assert!(stat(&r.stdout, "pageout [", "effective_quota") > 0, "{r:?}");
    assert!(
        r.stdout
            .trim_end()
            .ends_with("the requested duration passed"),
        "{r:?}"
    );

    // above the high watermark (500 per mille) nothing is done
    let r = preset_sim(
        "reclaim",
        &["--min-age", "200000", "--free-mem-rate", "600"],
    );
    assert!(
        r.stdout.contains("pageout [inactive (watermarks)]"),
        "{r:?}"
    );
    assert_eq!(stat(&r.stdout, "pageout [", "nr_tried"), 0, "{r:?}");
    assert_eq!(stat(&r.stdout, "pageout [", "sz_applied"), 0, "{r:?}");

    // the default rate sits between the low and middle watermarks
    let r = preset_sim("reclaim", &["--min-age", "200000", "--quota-sz", "4M"]);
    assert!(r.stdout.contains("free_mem_rate=300 per mille"), "{r:?}");
    let applied = stat(&r.stdout, "pageout [", "sz_applied");
    assert!(
        applied > 0 && applied <= 3 * (4 << 20),
        "size quota per second: {r:?}"
    );
}

#[test]
fn lru_sort_marks_hot_and_cold_memory_inside_the_watermarks_only() {
    let r = preset_sim(
        "lru_sort",
        &["--cold-min-age", "200000", "--hot-thres-access-freq", "500"],
    );
    assert!(r.stdout.contains("free_mem_rate=100 per mille"), "{r:?}");
    for scheme in ["hot: willneed [", "cold: cold ["] {
        assert!(stat(&r.stdout, scheme, "nr_tried") > 0, "{scheme}: {r:?}");
        assert!(stat(&r.stdout, scheme, "sz_applied") > 0, "{scheme}: {r:?}");
    }
    // above the high watermark (200 per mille)
    let r = preset_sim(
        "lru_sort",
        &["--cold-min-age", "200000", "--free-mem-rate", "250"],
    );
    for scheme in ["hot: willneed [", "cold: cold ["] {
        assert_eq!(stat(&r.stdout, scheme, "nr_tried"), 0, "{scheme}: {r:?}");
        assert_eq!(stat(&r.stdout, scheme, "sz_applied"), 0, "{scheme}: {r:?}");
    }
}

#[test]
fn presets_refuse_bad_targets_and_options() {
    for name in ["reclaim", "lru_sort"] {
        let r = run(name, &["--pid", "2147483646"]);
        assert_eq!(r.code, Some(1), "{r:?}");
        assert_eq!(
            r.stderr.trim(),
            format!("{name}: no process with pid 2147483646")
        );

        let r = run(name, &[]);
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(r.stderr.contains("no process given"), "{r:?}");

        let r = run(name, &["--sim", "1G", "--wmarks-high", "abc"]);
        assert_eq!(r.code, Some(2), "{r:?}");
        assert!(r.stderr.contains("invalid value 'abc'"), "{r:?}");

        // --free-mem-rate is for simulations only
        let r = run(name, &["--pid", "1", "--free-mem-rate", "300"]);
        assert_eq!(r.code, Some(2), "{r:?}");

        // watermarks out of order are refused before anything starts
        let r = run(name, &["--sim", "1G", "--wmarks-low", "900"]);
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(r.stderr.contains("wmarks"), "{r:?}");

        if !has_page_idle() {
            let me = std::process::id().to_string();
            let r = run(name, &["--pid", &me]);
            assert_eq!(r.code, Some(1), "{r:?}");
            assert!(r.stderr.contains("CONFIG_IDLE_PAGE_TRACKING"), "{r:?}");
        }
    }
    let r = run("reclaim", &["--help"]);
    for opt in [
        "--min-age",
        "--quota-ms",
        "--quota-sz",
        "--quota-reset-interval-ms",
        "--quota-mem-pressure-us",
        "--quota-autotune-feedback",
        "--wmarks-interval",
        "--wmarks-high",
        "--wmarks-mid",
        "--wmarks-low",
        "--sample-interval",
        "--aggr-interval",
        "--min-nr-regions",
        "--max-nr-regions",
        "--skip-anon",
        "--autotune-monitoring-intervals",
        "--interval-ms",
        "--free-mem-rate",
    ] {
        assert!(r.stdout.contains(opt), "{opt}: {r:?}");
    }
    let r = run("lru_sort", &["--help"]);
    for opt in [
        "--hot-thres-access-freq",
        "--cold-min-age",
        "--quota-ms",
        "--quota-reset-interval-ms",
        "--active-mem-bp",
        "--filter-young-pages",
        "--autotune-monitoring-intervals",
        "--wmarks-high",
    ] {
        assert!(r.stdout.contains(opt), "{opt}: {r:?}");
    }
}

#[test]
fn lru_sort_refuses_young_filters_naming_them_as_its_docs_say() {
    let r = run(
        "lru_sort",
        &[
            "--sim",
            "1G:hot=0-128M@0.9",
            "--virtual-time",
            "--duration",
            "1",
            "--filter-young-pages",
        ],
    );
    assert_ne!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("young"), "{r:?}");
}

fn tmp_out(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("udamon-programs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn record_writes_a_valid_record_when_interrupted() {
    let out = tmp_out("interrupted.data");
    let path = out.to_str().expect("utf-8 temp path");
    // real time, far longer than the test: only the signal ends it
    let mut child = start(
        "record",
        &[
            "--sim",
            "256M:hot=0-16M@1",
            "--duration",
            "3600",
            "-o",
            path,
        ],
    );
    // wait until at least one aggregation could have been recorded
    std::thread::sleep(Duration::from_millis(1500));
    signal(child.id(), Signal::TERM);
    let stderr = child.stderr.take();
    let outp = wait(child, Duration::from_secs(60));
    drop(stderr);
    assert_eq!(outp.status.code(), Some(0), "{outp:?}");
    let records = damon_damo::read_record_file(&out).expect("a complete, valid record");
    assert!(!records[0].snapshots.is_empty(), "snapshots were kept");
}

#[test]
fn record_refuses_an_output_it_cannot_create_before_recording() {
    // an hour of recording: if the output were checked only at the end,
    // this would run into the test's timeout
    let r = run(
        "record",
        &[
            "--sim",
            "256M",
            "--duration",
            "3600",
            "-o",
            "/nonexistent/dir/z.data",
        ],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("cannot create the output /nonexistent/dir/z.data"),
        "{r:?}"
    );
}

#[test]
fn record_of_a_pid_that_does_not_exist_says_so() {
    let out = tmp_out("nopid.data");
    let r = run(
        "record",
        &["--pid", "2147483646", "-o", out.to_str().expect("utf-8")],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr.trim(), "record: no process with pid 2147483646");
}

#[test]
fn custom_ops_refuses_bad_options_with_a_non_zero_exit() {
    // before: a failed 800 GB allocation aborted the process, unknown
    // options were ignored and errors exited 0
    let r = run("custom_ops", &["--objects", "99999999999"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--objects"), "{r:?}");
    let r = run("custom_ops", &["--bogus"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--bogus"), "{r:?}");
    let r = run("custom_ops", &["--objects", "12"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let r = run("custom_ops", &["--seconds", "0"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    // damo's interval options, in every example that monitors
    for prog in ["custom_ops", "monitor", "record", "reclaim", "lru_sort"] {
        let r = run(prog, &["--help"]);
        for opt in ["--sample", "--aggr", "--minr", "--maxr"] {
            assert!(r.stdout.contains(opt), "{prog} {opt}: {r:?}");
        }
    }
    // aggregation shorter than sampling: refused before anything runs
    let r = run(
        "custom_ops",
        &["--sample", "10ms", "--aggr", "5ms", "--seconds", "1"],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("aggr"), "{r:?}");
}

#[test]
fn reclaim_and_lru_sort_refuse_out_of_range_options_naming_them() {
    for (prog, opt, value) in [
        ("reclaim", "--wmarks-high", "5000"),
        ("reclaim", "--quota-reset-interval-ms", "0"),
        ("lru_sort", "--hot-thres-access-freq", "5000"),
        ("lru_sort", "--wmarks-low", "1001"),
        ("lru_sort", "--active-mem-bp", "10001"),
        ("lru_sort", "--quota-reset-interval-ms", "0"),
    ] {
        let r = run(prog, &["--sim", "1G", "--virtual-time", opt, value]);
        assert_eq!(r.code, Some(2), "{prog} {opt} {value}: {r:?}");
        assert!(r.stderr.contains(opt), "{prog} {opt} {value}: {r:?}");
    }
}

#[test]
fn record_and_report_take_damos_options_and_time_forms() {
    let out = tmp_out("damo-options.data");
    let path = out.to_str().expect("utf-8 temp path");
    let r = run(
        "record",
        &[
            "--sim",
            "1G:hot=0-128M@0.9",
            "--virtual-time",
            "--duration",
            "3",
            "-o",
            path,
            "--sample",
            "10ms",
            "--aggr",
            "0.2s",
            "--updr",
            "2s",
            "--minr",
            "5",
            "--maxr",
            "50",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let records = damon_damo::read_record_file(&out).expect("a valid record");
    let iv = records[0].intervals.expect("intervals");
    assert_eq!(
        (iv.sample_us, iv.aggr_us, iv.ops_update_us),
        (10_000, 200_000, 2_000_000)
    );
    assert_eq!(records[0].snapshots.len(), 15, "3 s of 0.2 s aggregations");
    assert!(records[0].snapshots.iter().all(|s| s.regions.len() <= 50));

    // damo's spellings of the report options
    let r = run(
        "report",
        &[
            "wss",
            "--input",
            path,
            "--raw_number",
            "--exclude_samples",
            "0",
            "--range",
            "0",
            "101",
            "50",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.len(), 3, "percentiles 0, 50, 100: {r:?}");
    assert!(
        lines.iter().all(|l| l
            .split_whitespace()
            .nth(1)
            .is_some_and(|v| v.parse::<u64>().is_ok())),
        "{r:?}"
    );
    let r = run(
        "report",
        &["heatmap", "-i", path, "--address_range", "0", "1073741824"],
    );
    assert_eq!(r.code, Some(0), "{r:?}");

    // damo's access styles, record filters and times
    let r = run(
        "report",
        &[
            "access",
            "-i",
            path,
            "--style",
            "recency-percentiles",
            "--snapshot_idx",
            "2",
            "3",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout.matches("# total recency percentiles").count(),
        2,
        "{r:?}"
    );
    assert!(
        r.stdout
            .ends_with("record DAMON intervals: sample 10 ms, aggr 200 ms\n"),
        "{r:?}"
    );
    // damo's range() form with two values: percentiles 0 to 49, step 1
    let r = run(
        "report",
        &[
            "access",
            "-i",
            path,
            "--style",
            "temperature-percentiles",
            "--snapshot",
            "1",
            "--percentiles_range",
            "0",
            "50",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout.lines().filter(|l| l.ends_with('|')).count(),
        50,
        "{r:?}"
    );
    let r = run(
        "report",
        &["access", "-i", path, "--json", "--snapshot", "4"],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let back = damon_damo::parse_record(r.stdout.as_bytes()).expect("--json is a damo record");
    assert_eq!(back[0].snapshots, vec![records[0].snapshots[4].clone()]);
    let r = run(
        "report",
        &["holistic", path, "--perf_path", "/nonexistent/perf"],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout
            .starts_with("# Heatmap\n# target 0, address range "),
        "{r:?}"
    );
    assert!(r.stdout.contains("\n       wss "), "{r:?}");
    assert!(r.stderr.contains("rss, vsz and sys_used left out"), "{r:?}");
    assert!(r.stderr.contains("hotspots left out"), "{r:?}");
    let r = run("report", &["times", path, "--access_rate", "0", "max"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout, "0.000000-3.000000\n# (seconds)\n", "{r:?}");
    for (args, why) in [
        (
            vec!["access", "-i", path, "--style", "detailed"],
            "--style \"detailed\"",
        ),
        (
            vec![
                "access",
                "-i",
                path,
                "--snapshot",
                "1",
                "--snapshot_idx",
                "1",
                "2",
            ],
            "select snapshots twice",
        ),
        (
            vec!["times", path, "--access_rate", "lots", "max"],
            "--access_rate",
        ),
        (
            vec![
                "access",
                "-i",
                path,
                "--style",
                "recency-percentiles",
                "--percentiles_range",
                "50",
                "50",
            ],
            "--percentiles_range [50, 50]: no percentile in that range",
        ),
        (
            vec![
                "access",
                "-i",
                path,
                "--style",
                "recency-percentiles",
                "--percentiles_range",
                "0",
                "200",
                "50",
            ],
            "percentiles go up to 100",
        ),
        (
            vec!["times", path, "--address", "9", "3"],
            "the start is after the end",
        ),
    ] {
        let r = run("report", &args);
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert!(r.stderr.contains(why), "{args:?}: {r:?}");
    }

    // a time damo would not take is refused, naming the option
    let r = run(
        "record",
        &[
            "--sim",
            "1G",
            "--virtual-time",
            "--sample",
            "soon",
            "-o",
            path,
        ],
    );
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(
        r.stderr.contains("--sample") && r.stderr.contains("not a time"),
        "{r:?}"
    );
    let r = run(
        "record",
        &["--sim", "1G", "--virtual-time", "--aggr", "0ms", "-o", path],
    );
    assert_eq!(r.code, Some(2), "{r:?}");
}

#[test]
fn record_of_a_command_checks_the_backend_before_starting_it() {
    let out = tmp_out("command.data");
    let marker = tmp_out("command-ran");
    let _ = std::fs::remove_file(&marker);
    let r = run(
        "record",
        &[
            "-o",
            out.to_str().expect("utf-8"),
            "--",
            "sh",
            "-c",
            &format!("touch {} && sleep 1", marker.display()),
        ],
    );
    if has_page_idle() {
        // the command ran, was recorded until it exited, and was reaped
        assert_eq!(r.code, Some(0), "{r:?}");
        assert!(marker.exists(), "{r:?}");
        return;
    }
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("cannot record \"sh -c") && r.stderr.contains("idle page tracking"),
        "{r:?}"
    );
    assert!(
        !marker.exists(),
        "the command must not start without a backend"
    );
}

#[test]
fn a_real_time_recording_writes_damos_footprint_side_file() {
    let out = tmp_out("side.data");
    let path = out.to_str().expect("utf-8");
    let r = run(
        "record",
        &["--sim", "256M", "--duration", "1.5", "-o", path],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let side = format!("{path}.mem_footprint");
    let snaps = damon_damo::footprint::read_footprints(std::path::Path::new(&side))
        .expect("a valid footprint file");
    assert!(!snaps.is_empty(), "{r:?}");
    assert!(snaps.iter().all(|s| s.sys().is_some_and(|f| f.total > 0)));
    let r = run(
        "report",
        &["footprints", "sys_used", "-i", &side, "--raw_number"],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.starts_with("# <percentile> <sys_used>\n# avr:\t"),
        "{r:?}"
    );
}

#[test]
fn reports_plot_their_distributions() {
    let out = tmp_out("plot.data");
    let path = out.to_str().expect("utf-8");
    let r = run(
        "record",
        &[
            "--sim",
            "1G:hot=0-128M@0.9",
            "--virtual-time",
            "--duration",
            "5",
            "-o",
            path,
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    for (verb, name) in [("wss", "wss.png"), ("nr-regions", "nr.png")] {
        let png = tmp_out(name);
        let r = run(
            "report",
            &[verb, "-i", path, "--plot", png.to_str().unwrap()],
        );
        assert_eq!(r.code, Some(0), "{r:?}");
        let data = std::fs::read(&png).expect("the plot");
        assert_eq!(&data[1..4], b"PNG", "{verb}");
    }
}

#[test]
fn record_snapshot_takes_count_snapshots_delay_apart() {
    let out = tmp_out("snapshots.data");
    let path = out.to_str().expect("utf-8");
    let r = run(
        "record",
        &[
            "--sim",
            "1G:hot=0-128M@0.9",
            "--virtual-time",
            "--snapshot",
            "0.5",
            "4",
            "-o",
            path,
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let records = damon_damo::read_record_file(&out).expect("a valid record");
    let ends: Vec<u64> = records[0].snapshots.iter().map(|s| s.end_time).collect();
    assert_eq!(ends.len(), 4, "{ends:?}");
    assert!(
        ends.windows(2).all(|w| w[1] - w[0] == 500_000_000),
        "{ends:?}"
    );
    let r = run(
        "record",
        &[
            "--sim",
            "1G",
            "--virtual-time",
            "--snapshot",
            "0.5",
            "0",
            "-o",
            path,
        ],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("--snapshot COUNT"), "{r:?}");
}

#[test]
fn monitor_view_sorts_and_picks_a_target() {
    let r = run(
        "monitor",
        &[
            "--sim",
            "4G:hot=1G-1.2G@0.9",
            "--virtual-time",
            "--duration",
            "2",
            "--sort",
            "size",
            "--target-index",
            "0",
            "--max-lines",
            "5",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("sort: size | target 0"), "{r:?}");
    // the last frame's rows: sizes never grow down the table
    let last = r.stdout.rsplit("sort: size").next().unwrap_or_default();
    let sizes: Vec<u64> = last
        .lines()
        .filter(|l| l.trim_start().starts_with("0x"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, e) = (f[0].trim_start_matches("0x"), f[1].trim_start_matches("0x"));
            u64::from_str_radix(e, 16).unwrap() - u64::from_str_radix(s, 16).unwrap()
        })
        .collect();
    assert!(!sizes.is_empty() && sizes.len() <= 5, "{r:?}");
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    let r = run(
        "monitor",
        &["--sim", "1G", "--virtual-time", "--sort", "bogus"],
    );
    assert_eq!(r.code, Some(2), "{r:?}");
}

#[test]
fn monitor_keys_change_the_view_on_a_terminal() {
    // a real pseudo-terminal (util-linux `script`), the keys typed at once
    let have_script = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_script {
        eprintln!(
            "skipped: monitor_keys_change_the_view_on_a_terminal: script(1) is not installed"
        );
        return;
    }
    let monitor = examples_dir().join("monitor");
    let cmd = format!(
        "{} --sim 1G:hot=0-64M@0.9 --refresh-ms 200 --duration 2 --max-lines 3",
        monitor.display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    // stdin stays open until the run ends (EOF would hang up the terminal)
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, b"st").expect("keys");
    let out = wait(child, Duration::from_secs(60));
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keys: s sort, t target, q quit"), "{text}");
    assert!(text.contains("sort: temperature | target 0"), "{text}");
    assert!(text.contains("stopped after"), "{text}");
}

/// The machine's kdamond, if one runs (read only: the tree is the machine's).
fn foreign_kdamond_pid() -> Option<String> {
    let admin = "/sys/kernel/mm/damon/admin/kdamonds";
    let n: usize = std::fs::read_to_string(format!("{admin}/nr_kdamonds"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (0..n).find_map(|k| {
        let on = std::fs::read_to_string(format!("{admin}/{k}/state")).ok()?;
        (on.trim() == "on")
            .then(|| std::fs::read_to_string(format!("{admin}/{k}/pid")).ok())
            .flatten()
            .map(|p| p.trim().to_string())
    })
}

#[test]
fn record_engine_kernel_leaves_a_kdamond_of_others_alone() {
    const T: &str = "record_engine_kernel_leaves_a_kdamond_of_others_alone";
    // Only where a kdamond of the machine's runs: then the kernel engine
    // must refuse before writing anything (the guest suite runs it for real).
    let Some(pid) = foreign_kdamond_pid() else {
        println!("skipped: {T}: no running kdamond of the machine's to be refused by");
        return;
    };
    let me = std::process::id().to_string();
    let out = std::env::temp_dir().join(format!("engine-{me}.data"));
    let out = out.to_str().unwrap();
    let r = run(
        "record",
        &[
            "--engine",
            "kernel",
            "--pid",
            &me,
            "--duration",
            "1",
            "-o",
            out,
        ],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("the kernel engine cannot run it")
            && r.stderr.contains(&format!("pid {pid}")),
        "{r:?}"
    );
    assert_eq!(
        foreign_kdamond_pid().as_deref(),
        Some(pid.as_str()),
        "still running"
    );
    // auto says why it falls back to ours
    let r = run(
        "record",
        &[
            "--engine",
            "auto",
            "--pid",
            &me,
            "--duration",
            "1",
            "-o",
            out,
        ],
    );
    // (ours needs idle page tracking for vaddr, so both are said)
    assert!(
        r.stderr
            .contains("engine: user (the kernel's DAMON cannot:")
            || r.stderr
                .contains("the kernel's DAMON cannot run it: kdamond 0"),
        "{r:?}"
    );
    let r = run(
        "monitor",
        &["--engine", "kernel", "--pid", &me, "--duration", "1"],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains(&format!("pid {pid}")), "{r:?}");
    let r = run("monitor", &["--engine", "kernel", "--sim", "1G"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("run on the user engine"), "{r:?}");
    let r = run("record", &["--engine", "kernel", "--sim", "1G", "-o", out]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("--sim runs on the user engine only"),
        "{r:?}"
    );
    let _ = std::fs::remove_file(out);
    // the DAMOS daemons: refused before anything is written, naming it
    for daemon in ["reclaim", "lru_sort"] {
        let r = run(
            daemon,
            &["--engine", "kernel", "--pid", &me, "--duration", "1"],
        );
        assert_eq!(r.code, Some(1), "{daemon}: {r:?}");
        assert!(r.stderr.contains(&format!("pid {pid}")), "{daemon}: {r:?}");
        let r = run(
            daemon,
            &["--engine", "kernel", "--sim", "1G", "--duration", "1"],
        );
        assert_eq!(r.code, Some(1), "{daemon}: {r:?}");
        assert!(
            r.stderr.contains("--sim runs on the user engine only"),
            "{daemon}: {r:?}"
        );
    }
    assert_eq!(
        foreign_kdamond_pid().as_deref(),
        Some(pid.as_str()),
        "still running"
    );
}

#[test]
fn daemons_on_auto_fall_back_to_ours_for_a_simulation() {
    // --sim is a user-space backend: auto runs it on ours, saying why
    let r = run(
        "reclaim",
        &[
            "--engine",
            "auto",
            "--sim",
            "1G:hot=0-128M@0.9",
            "--min-age",
            "1000000",
            "--duration",
            "1",
            "--interval-ms",
            "500",
        ],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stderr
            .contains("engine: user (the kernel's DAMON cannot:")
            && r.stderr.contains("user-space backend"),
        "{r:?}"
    );
    assert!(r.stdout.contains("pageout [active]"), "{r:?}");
}

#[test]
fn monitor_self_demo_shows_the_writes_of_its_own_buffer() {
    const T: &str = "monitor_self_demo_shows_the_writes_of_its_own_buffer";
    let r = run(
        "monitor",
        &["--self-demo", "--duration", "3", "--refresh-ms", "1000"],
    );
    if r.code == Some(1) && r.stderr.contains("cannot watch this process's writes") {
        println!("skipped: {T}: {}", r.stderr.trim());
        return;
    }
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("showing WRITES (not reads)"), "{r:?}");
    assert!(r.stdout.contains("vaddr-written: writes only"), "{r:?}");
    // the first phase writes 16 MiB: a view has written rows, and the
    // working set is about that
    let avr = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("# avr:"))
        .map(str::trim)
        .unwrap_or("");
    assert!(avr.ends_with("MiB"), "working set {avr:?}: {r:?}");
    let mib: f64 = avr.trim_end_matches("MiB").trim().parse().unwrap();
    assert!((8.0..=24.0).contains(&mib), "working set {mib} MiB: {r:?}");
    // the kernel engine does not watch writes only
    let r = run("monitor", &["--self-demo", "--engine", "kernel"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("--self-demo runs on the user engine"),
        "{r:?}"
    );
}

#[test]
fn monitor_names_every_access_source_a_process_lacks() {
    const T: &str = "monitor_names_every_access_source_a_process_lacks";
    let probe = damon_ops_common::probe::ProbeReport::run();
    if probe.require_vaddr().is_ok() || probe.soft_dirty {
        println!("skipped: {T}: this machine has an access source for other processes");
        return;
    }
    let me = std::process::id().to_string();
    let out = std::env::temp_dir().join(format!("sources-{me}.data"));
    let out = out.to_str().unwrap();
    for (tool, extra) in [("monitor", vec![]), ("record", vec!["-o", out])] {
        let mut args = vec!["--pid", me.as_str(), "--duration", "1"];
        args.extend(extra);
        let r = run(tool, &args);
        assert_eq!(r.code, Some(1), "{tool}: {r:?}");
        assert!(
            r.stderr.contains("vaddr: unsupported")
                && r.stderr
                    .contains("vaddr-softdirty: unsupported: soft-dirty bits")
                && r.stderr.contains("CONFIG_MEM_SOFT_DIRTY")
                && r.stderr.contains("--self-demo"),
            "{tool}: {r:?}"
        );
    }
}

#[test]
fn monitor_probe_lists_the_access_sources() {
    let r = run("monitor", &["--probe"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    for source in [
        "page_idle bitmap",
        "written pages of this process",
        "soft-dirty bits in pagemap",
        "the kernel's DAMON",
    ] {
        assert!(r.stdout.contains(source), "{source}: {r:?}");
    }
}
