//! `record`: monitors accesses and writes a damo record file, which
//! `damo report` (and the `report` example) can read.
//!
//! ```text
//! cargo run --release --example record -- --sim 16G:hot=1G-1.4G@0.8,5G-5.2G@0.5 --duration 5 --out damon.data
//! cargo run --release --example record -- --pid 1234 --format json --out damon.json
//! cargo run --release --example record -- paddr --duration 10 --out damon.data
//! cargo run --release --example record -- --kdamonds params.json --out damon.data
//! ```
//!
//! `--sim SIZE[:hot=START-END@P,...]` monitors a simulated address space
//! of SIZE bytes whose hot ranges are accessed with probability P per
//! sample (no root needed); `--pid` and `paddr` use the `vaddr` and `paddr`
//! backends, which need root and kernel support. `--kdamonds` takes the
//! first context of a damo kdamonds JSON (`damo args damon` output).

#![deny(unsafe_code)]

use clap::Parser;
use damon_core::{damon_select_ops, Context, Kdamond, RealClock, SimOps, Target, VirtualClock};
use damon_damo::footprint::{FootprintSnapshot, FootprintWriter};
use damon_damo::kdamonds::damo_default_attrs;
use damon_damo::{RecordFormat, RecordWriter, Recorder};
use damon_examples::cli::{self, check_pid, interrupt_flag, parse_sim};
use damon_examples::engine::{start_engine, Engine};
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Record data accesses into a damo record file.
#[derive(Parser, Debug)]
#[command(
    name = "record",
    after_help = "Modes (pick one): --sim SPEC, --pid PID, the keyword `paddr`, -- COMMAND [ARGS...],\n\
or --kdamonds FILE. A command is started, recorded until it exits (or --duration), then reaped.\n\
Real-time recordings also write damo's side file FILE.mem_footprint (for `report footprints`).\n\
SPEC is SIZE[:hot=START-END@P,...], e.g. 16G:hot=1G-1.4G@0.8,5G-5.2G@0.5\n\
(sizes take K/M/G/T suffixes and decimals; P is a per-sample access probability in [0, 1])."
)]
struct Args {
    /// `paddr` to monitor the physical address space.
    #[arg(value_name = "paddr")]
    target: Option<String>,
    /// A command to start and record; recording stops when it exits.
    #[arg(last = true, value_name = "COMMAND", conflicts_with_all = ["sim", "pid", "target", "kdamonds"])]
    command: Vec<String>,
    /// Monitor a simulated address space (no root needed).
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["pid", "target", "kdamonds"])]
    sim: Option<String>,
    /// Monitor the virtual address space of a process.
    #[arg(long, value_name = "PID", conflicts_with_all = ["target", "kdamonds"])]
    pid: Option<u32>,
    /// Take the first context of a damo kdamonds JSON file.
    #[arg(long, value_name = "FILE", conflicts_with = "target")]
    kdamonds: Option<std::path::PathBuf>,
    /// Keep one snapshot every DELAY seconds, COUNT of them, then stop
    /// (damo's --snapshot).
    #[arg(long, num_args = 2, value_names = ["DELAY", "COUNT"])]
    snapshot: Option<Vec<String>>,
    /// How long to record, in seconds [default: 10; with a command, until it exits].
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Output format: json, json_compressed (damo's default) or perf_script.
    #[arg(long, default_value = "json_compressed", value_name = "FORMAT")]
    format: String,
    /// Output file.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: std::path::PathBuf,
    #[command(flatten)]
    intervals: cli::IntervalArgs,
    /// RNG seed (simulated runs are then reproducible).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Simulated mode only: run on virtual time, as fast as possible.
    #[arg(long, requires = "sim")]
    virtual_time: bool,
    /// Which DAMON monitors: `user` (this library's engine), `kernel` (the
    /// kernel's DAMON through sysfs; the record is the same) or `auto` (the
    /// kernel's when it can run the context, else ours, saying why).
    #[arg(long, default_value = "user", value_parser = ["user", "kernel", "auto"])]
    engine: String,
}

/// Selects our backend `ops` into `ctx` for the user engine; the kernel
/// engine (and `auto`, until it knows) runs the kernel's own.
fn select(ctx: &mut Context, ops: &str, user: bool, what: String) -> Result<(), String> {
    if user {
        damon_select_ops(ctx, ops).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(())
}

/// The context, the command it records (if any) and its operations set.
fn build_context(
    args: &Args,
    user: bool,
) -> Result<(Context, Option<cli::Command>, String), String> {
    let mut ctx;
    let mut command = None;
    let ops: String;
    if !args.command.is_empty() {
        ctx = Context::new();
        // check the backend before starting anything
        ops = cli::select_process_ops(&mut ctx, user, "record")
            .map_err(|e| format!("cannot record {:?}: {e}", args.command.join(" ")))?
            .into();
        let cmd = cli::Command::spawn(&args.command)?;
        ctx.targets.push(Target::new(u64::from(cmd.pid())));
        command = Some(cmd);
    } else if let Some(spec) = &args.sim {
        if !user {
            return Err("--sim runs on the user engine only (--engine user)".into());
        }
        ctx = Context::new();
        ops = "sim".into();
        let mut ops = SimOps::new(parse_sim(spec)?);
        if let Some(seed) = args.seed {
            ops = ops.with_seed(seed);
        }
        ctx.set_ops("sim", Box::new(ops));
        ctx.targets.push(Target::new(0));
    } else if let Some(pid) = args.pid {
        check_pid(pid)?;
        ctx = Context::new();
        ops = cli::select_process_ops(&mut ctx, user, "record")
            .map_err(|e| format!("cannot record pid {pid}: {e}"))?
            .into();
        ctx.targets.push(Target::new(u64::from(pid)));
    } else if let Some(path) = &args.kdamonds {
        let (kd_ctx, params) = cli::kdamonds_context(path, "record")?;
        ctx = kd_ctx;
        ops = params.ops.clone();
        select(
            &mut ctx,
            &params.ops,
            user,
            format!("cannot use the {} backend", params.ops),
        )?;
    } else {
        match args.target.as_deref() {
            Some("paddr") => {
                ctx = Context::new();
                ops = "paddr".into();
                select(&mut ctx, "paddr", user, "cannot use the paddr backend".into())?;
                ctx.targets.push(Target::new(0));
            }
            Some(other) => {
                return Err(format!(
                    "unknown target {other:?}: use --sim SPEC, --pid PID, paddr or --kdamonds FILE"
                ))
            }
            None => {
                return Err(
                    "nothing to monitor: use --sim SPEC, --pid PID, paddr or --kdamonds FILE (see --help)".into(),
                )
            }
        }
    }
    if args.kdamonds.is_none() {
        // damo's defaults (5 ms, 100 ms, 1 s, 10..1000 regions), not the
        // kernel sysfs' 60 s ops update: a process that maps its memory
        // after the start must get regions within a second.
        ctx.attrs = damo_default_attrs();
    }
    args.intervals.apply(&mut ctx.attrs);
    ctx.seed = args.seed;
    ctx.validate().map_err(|e| e.to_string())?;
    Ok((ctx, command, ops))
}

/// The `\r` progress line, on a terminal only (a log file gets none).
fn progress(done_s: f64, total_s: f64, snapshots: usize, regions: usize) {
    if std::io::stderr().is_terminal() {
        eprint!(
            "\rrecord: {done_s:6.1}/{total_s:.1} s, {snapshots} snapshots, {regions} regions   "
        );
    }
}

/// damo's side file of memory footprints: `<record>.mem_footprint`.
fn footprint_path(out: &std::path::Path) -> std::path::PathBuf {
    let mut p = out.as_os_str().to_owned();
    p.push(".mem_footprint");
    p.into()
}

/// `--snapshot DELAY COUNT`: seconds between snapshots and how many.
fn snapshot_args(v: &[String]) -> Result<(Duration, usize), String> {
    let [delay, count] = v else {
        return Err("--snapshot takes DELAY (seconds) and COUNT".into());
    };
    let delay = cli::parse_secs(delay).map_err(|e| format!("--snapshot DELAY: {e}"))?;
    let count: usize = count
        .parse()
        .ok()
        .filter(|&n| (1..=1_000_000).contains(&n))
        .ok_or_else(|| format!("--snapshot COUNT {count:?}: expected 1 to 1000000"))?;
    Ok((Duration::from_secs_f64(delay), count))
}

fn run(args: &Args) -> Result<(), String> {
    let format: RecordFormat = args.format.parse().map_err(|e| format!("--format: {e}"))?;
    let snapshot = args.snapshot.as_deref().map(snapshot_args).transpose()?;
    // with a command, or snapshots to count, and no --duration: until it
    // exits or they are taken (a year at most)
    let open_ended = !args.command.is_empty() || snapshot.is_some();
    let duration = args
        .duration
        .unwrap_or(if open_ended { 3.15e7 } else { 10.0 });
    if !(duration.is_finite() && duration > 0.0 && duration <= 3.2e7) {
        return Err(format!(
            "--duration {duration} must be a positive number of seconds"
        ));
    }
    // the simulated and the real backends register under their kernel ids
    damon_ops_vaddr::register();
    damon_ops_paddr::register();
    let duration_us = (duration * 1e6) as u64;
    // Fail now, not after the whole recording, if the output cannot be
    // made; snapshots are written as they are taken (memory for one).
    let writer = RecordWriter::create(&args.out, format)
        .map_err(|e| format!("cannot create the output {e}"))?;
    let engine: Engine = args.engine.parse()?;
    let (mut ctx, mut command, ops) = build_context(args, engine == Engine::User)?;
    // Ctrl-C, SIGTERM or SIGHUP end the recording early; what was recorded
    // is written as a complete record (a second signal aborts).
    let interrupt = interrupt_flag();

    let summary = if args.virtual_time {
        ctx.clock = Some(Arc::new(VirtualClock::new()));
        let mut recorder = Recorder::new().with_writer(writer);
        if let Some((delay, count)) = snapshot {
            recorder = recorder.with_snapshot_every(delay).with_limit(count);
        }
        let rec = recorder.install(&mut ctx);
        let wanted = snapshot.map_or(usize::MAX, |s| s.1);
        let si = ctx.attrs.sample_interval;
        let mut kd = Kdamond::new(ctx).map_err(|e| e.to_string())?;
        kd.init().map_err(|e| e.to_string())?;
        let steps = duration_us / si.max(1);
        let every = (steps / 20).max(1);
        for i in 0..steps {
            if interrupt.load(Ordering::SeqCst) {
                eprintln!("record: interrupted: writing what was recorded");
                break;
            }
            if let Some(reason) = kd.step() {
                eprintln!("\nrecord: monitoring ended early: {reason}");
                break;
            }
            if rec.lock().nr_snapshots() >= wanted {
                break;
            }
            if i % every == 0 {
                let r = rec.lock();
                progress(
                    i as f64 * si as f64 / 1e6,
                    duration,
                    r.nr_snapshots(),
                    kd.ctx().nr_regions(),
                );
            }
        }
        drop(kd.terminate());
        let mut r = rec.lock();
        r.finish()
    } else {
        let mut recorder = Recorder::new()
            .with_clock(Arc::new(RealClock::new()))
            .with_writer(writer);
        if let Some((delay, count)) = snapshot {
            recorder = recorder.with_snapshot_every(delay).with_limit(count);
        }
        let rec = recorder.install(&mut ctx);
        let wanted = snapshot.map_or(usize::MAX, |s| s.1);
        // damo's side file: the processes' and the system's memory, each second
        let pids: Vec<u64> = if matches!(ops.as_str(), "vaddr" | "fvaddr") {
            ctx.targets.iter().map(|t| t.id).collect()
        } else {
            Vec::new()
        };
        let fp_path = footprint_path(&args.out);
        let mut footprints = FootprintWriter::create(&fp_path)
            .map_err(|e| format!("cannot create the footprint file {e}"))?;
        let h = start_engine(engine, ctx, &ops)?;
        let start = Instant::now();
        let total = Duration::from_micros(duration_us);
        let mut next_fp = Duration::ZERO;
        while start.elapsed() < total
            && h.is_running()
            && !interrupt.load(Ordering::SeqCst)
            && rec.lock().nr_snapshots() < wanted
        {
            if start.elapsed() >= next_fp {
                footprints
                    .push(&FootprintSnapshot::take(&pids))
                    .map_err(|e| e.to_string())?;
                next_fp += Duration::from_secs(1);
            }
            std::thread::sleep(
                Duration::from_millis(200).min(total.saturating_sub(start.elapsed())),
            );
            let nr_regions = h.nr_regions();
            progress(
                start.elapsed().as_secs_f64(),
                duration,
                rec.lock().nr_snapshots(),
                nr_regions,
            );
        }
        if interrupt.load(Ordering::SeqCst) {
            eprintln!("record: interrupted: writing what was recorded");
        }
        match (h.exit_reason(), command.as_mut()) {
            (Some(_), Some(cmd)) => {
                let (status, _) = cmd.finish(Duration::from_secs(1));
                eprintln!(
                    "\nrecord: `{}` exited ({})",
                    cmd.display(),
                    status.map_or("unknown status".into(), |s| s.to_string())
                );
            }
            (Some(reason), None) => eprintln!("\nrecord: monitoring ended early: {reason}"),
            (None, _) => {}
        }
        h.stop();
        // a command still running when the recording ends is stopped
        drop(command);
        let n = footprints.finish().map_err(|e| e.to_string())?;
        eprintln!(
            "record: wrote {n} memory footprints to {}",
            fp_path.display()
        );
        let mut r = rec.lock();
        r.finish()
    };
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let summary = summary
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?
        .ok_or("the recorder had no writer")?;
    if summary.nr_snapshots == 0 {
        let _ = std::fs::remove_file(&args.out);
        return Err(
            "no snapshot was taken (is the duration shorter than one aggregation interval?)".into(),
        );
    }
    eprintln!(
        "record: wrote {} snapshots of {} target(s) to {} ({format})",
        summary.nr_snapshots,
        summary.nr_records,
        args.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("record: {e}");
            ExitCode::from(1)
        }
    }
}
