//! Long records, end to end: a 10-minute recording of the simulated
//! backend (damo's intervals: 5 ms, 100 ms, 1 s; 10..1000 regions) is
//! written as it is made, then `report wss` and `report heatmap` read it,
//! each in a process of its own so its peak resident memory (`VmHWM`) is
//! its own, and damo's same reports run on the same file for the time
//! ratio.
//!
//! ```text
//! cargo bench -p damon-benches --bench record_stream [-- --minutes N --runs N]
//! ```
//!
//! Prints, per report, our peak RSS and median time, damo's median time and
//! the ratio. Needs `damo` on PATH for the comparison (skipped, by name,
//! without it). A bench, not a test: these machines are shared, so the
//! figures are to be read as ratios.

use damon_core::{AddrRange, Context, HotRange, Kdamond, SimOps, SimPattern, Target, VirtualClock};
use damon_damo::kdamonds::damo_default_attrs;
use damon_damo::{
    heatmap_of, wss_of, HeatmapOptions, RecordFile, RecordFormat, RecordWriter, Recorder,
    WssOptions,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn record(path: &Path, minutes: u64) -> u64 {
    let g = 1u64 << 30;
    let hot = |s: u64, e: u64, p: f64| HotRange {
        range: AddrRange::new(s, e),
        probability: p,
    };
    let pattern = SimPattern::with_hot(
        16 * g,
        vec![
            hot(g, g + (400 << 20), 0.8),
            hot(5 * g, 5 * g + (200 << 20), 0.5),
        ],
    );
    let mut ctx = Context::new();
    ctx.set_ops("sim", Box::new(SimOps::new(pattern).with_seed(1)));
    ctx.targets.push(Target::new(0));
    ctx.attrs = damo_default_attrs();
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx.seed = Some(1);
    let writer = RecordWriter::create(path, RecordFormat::JsonCompressed).expect("output");
    let rec = Recorder::new().with_writer(writer).install(&mut ctx);
    let steps = minutes * 60 * 1_000_000 / ctx.attrs.sample_interval;
    let mut kd = Kdamond::new(ctx).expect("context");
    kd.init().expect("init");
    for _ in 0..steps {
        if kd.step().is_some() {
            break;
        }
    }
    drop(kd.terminate());
    let summary = rec.lock().finish().expect("finish").expect("writer");
    summary.nr_snapshots
}

/// The child: one report, then its peak resident set (kB) on stdout.
fn child(report: &str, file: &Path) {
    let src = RecordFile::new(file);
    let text = match report {
        "wss" => wss_of(&src, &WssOptions::default())
            .expect("wss")
            .to_text(false),
        _ => heatmap_of(&src, &HeatmapOptions::default())
            .expect("heatmap")
            .to_ascii(),
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    println!("{} lines", text.lines().count());
    println!("VmHWM_kB={hwm}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median wall time of `runs` runs of `cmd`, and the last run's stdout.
fn time(runs: usize, mut cmd: impl FnMut() -> Command) -> (Duration, String) {
    let mut times = Vec::new();
    let mut out = String::new();
    for _ in 0..runs {
        let t = Instant::now();
        let o = cmd().output().expect("run");
        times.push(t.elapsed());
        assert!(
            o.status.success(),
            "{:?}",
            String::from_utf8_lossy(&o.stderr)
        );
        out = String::from_utf8_lossy(&o.stdout).into_owned();
    }
    (median(times), out)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    let opt = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let minutes = opt("--minutes", 10);
    let runs = opt("--runs", 3) as usize;
    let dir = std::env::temp_dir().join(format!("udamon-record-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file: PathBuf = dir.join("damon.data");
    let t = Instant::now();
    let n = record(&file, minutes);
    let size = std::fs::metadata(&file).map_or(0, |m| m.len());
    println!(
        "record: {minutes} min of the simulation, {n} snapshots, {:.1} MB compressed, written in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let me = std::env::current_exe().expect("exe");
    let damo = Command::new("damo").arg("version").output().is_ok();
    for report in ["wss", "heatmap"] {
        let (ours, out) = time(runs, || {
            let mut c = Command::new(&me);
            c.args(["--child", report]).arg(&file);
            c
        });
        let hwm_kb: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM_kB="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        print!(
            "report {report}: ours {:.3} s (median of {runs}), peak RSS {:.1} MB",
            ours.as_secs_f64(),
            hwm_kb as f64 / 1024.0
        );
        if damo {
            let (theirs, _) = time(runs, || {
                let mut c = Command::new("damo");
                c.args(["report", report, "--input"]).arg(&file);
                c
            });
            println!(
                "; damo {:.3} s; damo/ours = {:.1}x",
                theirs.as_secs_f64(),
                theirs.as_secs_f64() / ours.as_secs_f64().max(1e-9)
            );
        } else {
            println!("; skipped: record_stream damo comparison: damo is not on PATH");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
