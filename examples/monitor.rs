//! `monitor`: a live view of memory access, then a heatmap and the working
//! set size when monitoring ends.
//!
//! ```text
//! cargo run --release --example monitor -- --sim 16G:hot=1G-1.4G@0.8,5G-5.2G@0.5 --virtual-time --duration 5
//! cargo run --release --example monitor -- --pid 1234
//! cargo run --release --example monitor -- paddr --numa-node 0 --duration 30
//! cargo run --release --example monitor -- --refresh-ms 500 -- ./my-program arg1 arg2
//! cargo run --release --example monitor -- --kdamonds params.json
//! ```
//!
//! What to monitor (pick one):
//!
//! * `--sim SPEC`: a simulated address space (no root, no kernel support;
//!   with `--virtual-time` it runs on virtual time, as fast as possible);
//! * `--pid PID`: a process's virtual address space (`vaddr`);
//! * `paddr`: physical memory (`paddr`): the largest System RAM block, as
//!   the kernel's DAMON modules do, every block with `--all-ram`, or one
//!   NUMA node's memory with `--numa-node N`;
//! * `-- COMMAND [ARGS...]`: starts the command and monitors it (`vaddr`);
//!   monitoring stops when it exits;
//! * `--kdamonds FILE`: the first context of a damo kdamonds JSON file
//!   (`damo args damon` output); its schemes are ignored;
//! * `--self-demo`: **writes** to a 64 MiB buffer of this process that a
//!   thread of its own keeps writing (a 16 MiB hot range moving through
//!   it), with the `vaddr-written` backend: no idle page tracking and no
//!   root needed (Linux 6.7+), but reads are not seen.
//!
//! `vaddr` and `paddr` need root and a kernel with idle page tracking
//! (`CONFIG_IDLE_PAGE_TRACKING`); without them `monitor` says which is
//! missing and exits with status 1.
//!
//! Monitoring attributes are damo's defaults (5 ms sampling, 100 ms
//! aggregation, mappings re-read every second, 10..1000 regions) unless
//! given with `--sample-us`, `--aggr-us`, `--ops-update-us`,
//! `--min-nr-regions`, `--max-nr-regions` or `--kdamonds`.
//!
//! Every `--refresh-ms` it prints, per target, the regions of the last
//! aggregation interval: start, end, size, access rate
//! (`nr_accesses * 100 / max_nr_accesses`) and age, limited to the
//! `--max-lines` hottest shown in address order, under a header with the
//! total size, the number of regions and the elapsed time. `--sort
//! temperature|size|age` orders the rows instead (damo's temperature:
//! access rate and age, cold regions negative), `--target-index N` shows
//! one target. On a terminal the view redraws in place and works like
//! `top`: `s` cycles the order, `t` the target (all, 0, 1, ...), `q` or
//! Ctrl-C quits; otherwise (a pipe, a serial console) the views follow each
//! other separated by blank lines.
//!
//! It runs until `--duration` seconds passed (10 s of virtual time with
//! `--virtual-time`), Ctrl-C (or SIGTERM), or every target exited; then it
//! prints damo's ASCII heatmap of time x address, the working set size
//! percentiles, and why it stopped. A second Ctrl-C exits at once.

#![deny(unsafe_code)]

use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser};
use damon_core::{damon_select_ops, Clock, Context, RealClock, SimOps, Target, VirtualClock};
use damon_damo::kdamonds::damo_default_attrs;
use damon_damo::Recorder;
use damon_examples::cli::{
    self, check_pid, emit, interrupt_flag, parse_secs, parse_sim, present, render_summary,
    render_view, History, Runner, Stop,
};
use damon_ops_paddr::{PaddrOps, PaddrRegions};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Live view of memory access: which regions are hot, refreshed
/// periodically; a heatmap and working set sizes at the end.
#[derive(Parser, Debug)]
#[command(
    name = "monitor",
    after_help = format!("Targets (pick one): --sim SPEC, --pid PID, the keyword `paddr`, -- COMMAND [ARGS...], or --kdamonds FILE.\n{}", cli::SIM_SPEC_HELP)
)]
struct Args {
    /// `paddr` to monitor physical memory.
    #[arg(value_name = "paddr")]
    target: Option<String>,
    /// A command to start and monitor; monitoring stops when it exits.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    /// Monitor a simulated address space (no root needed).
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["pid", "target", "kdamonds", "command"])]
    sim: Option<String>,
    /// Monitor the virtual address space of a running process.
    #[arg(long, value_name = "PID", conflicts_with_all = ["target", "kdamonds", "command"])]
    pid: Option<u32>,
    /// Monitor the first context of a damo kdamonds JSON file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["target", "command"])]
    kdamonds: Option<PathBuf>,
    /// Monitor writes to a 64 MiB buffer of this process that a thread of
    /// its own keeps writing (a 16 MiB hot range that moves), with the
    /// vaddr-written backend: no idle page tracking, no root (Linux 6.7+).
    #[arg(long, conflicts_with_all = ["target", "command", "sim", "pid", "kdamonds"])]
    self_demo: bool,
    /// Print which access sources this machine offers (idle page
    /// tracking, written pages, soft-dirty, the kernel's DAMON) and exit.
    #[arg(long)]
    probe: bool,
    /// paddr: monitor only the memory of this NUMA node.
    #[arg(long, value_name = "N", conflicts_with = "all_ram")]
    numa_node: Option<u32>,
    /// paddr: monitor every System RAM block (default: the largest one).
    #[arg(long)]
    all_ram: bool,
    #[command(flatten)]
    intervals: cli::IntervalArgs,
    /// Stop after this many seconds (default: at Ctrl-C or when the target
    /// exits; 10 with --virtual-time).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<f64>,
    /// Time between two views (ms).
    #[arg(long, default_value_t = 1000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    refresh_ms: u64,
    /// Regions shown per target (the hottest).
    #[arg(long, default_value_t = 20, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_lines: u64,
    /// Heatmap resolution: time rows and address columns.
    #[arg(long, num_args = 2, value_names = ["TIME", "ADDR"], default_values_t = [40usize, 80])]
    heatmap_resol: Vec<usize>,
    /// Simulated mode only: run on virtual time, as fast as possible.
    #[arg(long, requires = "sim")]
    virtual_time: bool,
    /// RNG seed (simulated runs are then reproducible).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Row order of the live view (on a terminal, `s` cycles it).
    #[arg(long, value_enum, default_value = "address")]
    sort: cli::SortKey,
    /// Show only this target (its index; on a terminal, `t` cycles).
    #[arg(long, value_name = "INDEX")]
    target_index: Option<usize>,
    /// Which DAMON monitors: `user` (this library's engine), `kernel` (the
    /// kernel's DAMON through sysfs) or `auto` (the kernel's when it can
    /// run the context, else ours, saying why).
    #[arg(long, default_value = "user", value_parser = ["user", "kernel", "auto"])]
    engine: String,
}

/// What was set up to monitor.
struct Setup {
    ctx: Context,
    ops: String,
    title: String,
    labels: Vec<String>,
    command: Option<cli::Command>,
}

fn paddr_regions(args: &Args) -> (PaddrRegions, String) {
    match (args.numa_node, args.all_ram) {
        (Some(n), _) => (
            PaddrRegions::NumaNode(n),
            format!("physical memory of NUMA node {n}"),
        ),
        (None, true) => (PaddrRegions::AllSystemRam, "all System RAM".into()),
        (None, false) => (
            PaddrRegions::LargestSystemRam,
            "the largest System RAM block".into(),
        ),
    }
}

/// How a view names what its backend measures.
fn source_name(id: &str) -> String {
    if id == damon_ops_vaddr::softdirty::ID {
        format!("{id}: writes only")
    } else {
        id.to_string()
    }
}

fn build(args: &Args) -> Result<Setup, String> {
    let user = args.engine == "user";
    let paddr = match args.target.as_deref() {
        None => false,
        Some("paddr") => true,
        Some(other) => {
            return Err(format!(
                "unknown target {other:?}: use --sim SPEC, --pid PID, paddr, -- COMMAND or --kdamonds FILE"
            ))
        }
    };
    if !paddr && (args.numa_node.is_some() || args.all_ram) {
        return Err("--numa-node and --all-ram apply to the paddr target only".into());
    }
    let mut ctx = Context::new();
    let mut command = None;
    let mut ops = String::from("vaddr");
    if !user && (args.sim.is_some() || paddr) {
        return Err(format!(
            "--engine {}: the kernel engine monitors processes (--pid, -- COMMAND) and --kdamonds contexts; --sim and paddr run on the user engine",
            args.engine
        ));
    }
    if !user && args.self_demo {
        return Err(format!(
            "--engine {}: --self-demo runs on the user engine (the kernel's DAMON does not watch writes only)",
            args.engine
        ));
    }
    let (title, labels) = if args.self_demo {
        // the backend first: nothing starts when this kernel cannot
        damon_select_ops(&mut ctx, damon_ops_vaddr::written::ID)
            .map_err(|e| format!("cannot watch this process's writes: {e}"))?;
        ops = damon_ops_vaddr::written::ID.into();
        let range = cli::start_demo_buffer()?;
        ctx.targets
            .push(Target::with_ranges(u64::from(std::process::id()), &[range]));
        eprintln!(
            "monitor: showing WRITES (not reads) to a 64 MiB buffer of this process, written by a thread of its own.\n\
             monitor: vaddr-written write-protects each region's sampling page and asks PAGEMAP_SCAN whether it\n\
             monitor: was written: no idle page tracking and no root needed, but a page only read is not seen.\n\
             monitor: For every access, monitor another process (--pid, -- COMMAND) on a kernel with idle page\n\
             monitor: tracking, as root, or run `cargo xtask demo --guest` (a guest kernel that has it)."
        );
        (
            "monitor: writes to this process's 64 MiB demo buffer (vaddr-written: writes only)"
                .to_string(),
            vec!["demo buffer (writes)".to_string()],
        )
    } else if let Some(spec) = &args.sim {
        ops = "sim".into();
        let pattern = parse_sim(spec).map_err(|e| format!("--sim: {e}"))?;
        let total = pattern.space_bytes();
        let mut ops = SimOps::new(pattern);
        if let Some(seed) = args.seed {
            ops = ops.with_seed(seed);
        }
        ctx.set_ops("sim", Box::new(ops));
        ctx.targets.push(Target::new(0));
        (
            format!("monitor: simulated {}", cli::size(total)),
            vec![format!("sim ({spec})")],
        )
    } else if let Some(pid) = args.pid {
        check_pid(pid)?;
        let id = cli::select_process_ops(&mut ctx, user, "monitor")
            .map_err(|e| format!("cannot monitor pid {pid}: {e}"))?;
        ops = id.into();
        ctx.targets.push(Target::new(u64::from(pid)));
        (
            format!("monitor: pid {pid} ({})", source_name(id)),
            vec![format!("pid {pid}")],
        )
    } else if !args.command.is_empty() {
        // check the backend before starting anything
        let id = cli::select_process_ops(&mut ctx, user, "monitor")
            .map_err(|e| format!("cannot monitor {:?}: {e}", args.command.join(" ")))?;
        ops = id.into();
        let cmd = cli::Command::spawn(&args.command)?;
        let pid = cmd.pid();
        ctx.targets.push(Target::new(u64::from(pid)));
        let title = format!(
            "monitor: `{}` (pid {pid}, {})",
            cmd.display(),
            source_name(id)
        );
        command = Some(cmd);
        (title, vec![format!("pid {pid}")])
    } else if let Some(path) = &args.kdamonds {
        let (kd_ctx, params) = cli::kdamonds_context(path, "monitor")?;
        ctx = kd_ctx;
        for t in &params.targets {
            if let Some(pid) = t.pid.and_then(|p| u32::try_from(p).ok()) {
                if params.ops != "paddr" {
                    check_pid(pid)?;
                }
            }
        }
        ops = params.ops.clone();
        if user {
            damon_select_ops(&mut ctx, &params.ops)
                .map_err(|e| format!("cannot use the {} backend: {e}", params.ops))?;
        }
        let labels = params
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| match t.pid {
                Some(pid) if params.ops != "paddr" => format!("pid {pid}"),
                _ => format!("target {i}"),
            })
            .collect();
        (
            format!("monitor: {} ({})", path.display(), params.ops),
            labels,
        )
    } else if paddr {
        let (regions, what) = paddr_regions(args);
        let ops =
            PaddrOps::new(regions).map_err(|e| format!("cannot monitor physical memory: {e}"))?;
        ctx.set_ops("paddr", Box::new(ops));
        ctx.targets.push(Target::new(0));
        (format!("monitor: {what} (paddr)"), vec![what])
    } else {
        return Err(
            "nothing to monitor: use --sim SPEC, --pid PID, paddr, -- COMMAND, --kdamonds FILE or --self-demo (see --help)"
                .into(),
        );
    };
    if let Some(i) = args.target_index {
        if i >= labels.len() {
            return Err(format!(
                "--target-index {i}: there are {} target(s), indexed from 0",
                labels.len()
            ));
        }
    }
    if args.kdamonds.is_none() {
        // damo's defaults: as the kernel's, but the layout of a process is
        // re-read every second (not minute), so a command's new mappings show
        ctx.attrs = damo_default_attrs();
    }
    args.intervals.apply(&mut ctx.attrs);
    if args.seed.is_some() {
        ctx.seed = args.seed;
    }
    ctx.validate().map_err(|e| e.to_string())?;
    Ok(Setup {
        ctx,
        ops,
        title,
        labels,
        command,
    })
}

fn run(args: &Args) -> Result<(), String> {
    let interrupt = interrupt_flag();
    damon_ops_vaddr::register();
    damon_ops_paddr::register();
    let Setup {
        mut ctx,
        ops,
        title,
        labels,
        mut command,
    } = build(args)?;
    let stepped = args.virtual_time;
    let clock: Arc<dyn Clock> = if stepped {
        Arc::new(VirtualClock::new())
    } else {
        Arc::new(RealClock::new())
    };
    ctx.clock = Some(clock.clone());
    let recorder = Recorder::new().with_clock(clock).install(&mut ctx);
    let engine: damon_examples::engine::Engine = args.engine.parse()?;
    let mut runner = if engine == damon_examples::engine::Engine::User {
        Runner::start(ctx, stepped)
    } else {
        Runner::start_on(engine, ctx, &ops)
    }
    .map_err(|e| format!("cannot start monitoring: {e}"))?;

    let duration_us = args
        .duration
        .or(stepped.then_some(10.0))
        .map(|s| (s * 1e6) as u64);
    let refresh_us = args.refresh_ms * 1000;
    let tty = std::io::stdout().is_terminal();
    let max_lines = usize::try_from(args.max_lines).unwrap_or(usize::MAX);
    let mut history = History::new(1024);
    let mut next = refresh_us;
    let mut output_closed = false;
    let mut keys = cli::Keys::enable();
    let mut view = cli::View {
        sort: args.sort,
        target: args.target_index,
        interactive: keys.is_some(),
    };
    let stop = loop {
        let until = duration_us.map_or(next, |d| next.min(d));
        let stop = runner.run_until(until, interrupt);
        history.absorb(recorder.lock().take_records());
        let elapsed = runner.elapsed_us();
        let mut quit = false;
        loop {
            let frame = render_view(&title, elapsed, history.records(), &labels, max_lines, view);
            let frame = match keys {
                Some(_) => cli::Keys::raw_frame(&present(&frame, tty)),
                None => present(&frame, tty),
            };
            if !emit(&frame) {
                output_closed = true;
                break;
            }
            let actions = keys.as_mut().map(cli::Keys::poll).unwrap_or_default();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    cli::KeyAction::Sort => view.sort = view.sort.next(),
                    cli::KeyAction::Target => {
                        view.target = view.next_target(history.records().len())
                    }
                    cli::KeyAction::Quit => quit = true,
                }
            }
            if quit {
                break;
            }
        }
        if output_closed {
            break Stop::Interrupted;
        }
        if quit {
            break Stop::Interrupted;
        }
        if let Some(s) = stop {
            break s;
        }
        if duration_us.is_some_and(|d| elapsed >= d) {
            break Stop::Duration;
        }
        while next <= elapsed {
            next += refresh_us;
        }
    };
    // the terminal back to normal before the summary
    drop(keys);
    let elapsed = runner.elapsed_us();
    drop(runner.finish());
    history.absorb(recorder.lock().take_records());

    let mut ended = format!("monitor: stopped after {}: {stop}", cli::time_us(elapsed));
    if let Some(cmd) = command.as_mut() {
        ended.push_str(&cli::end_command(cmd, &stop));
    }
    if output_closed {
        return Ok(());
    }
    let resolution = (
        args.heatmap_resol.first().copied().unwrap_or(40).max(1),
        args.heatmap_resol.get(1).copied().unwrap_or(80).max(1),
    );
    let mut summary = render_summary(history.records(), resolution);
    summary.push_str(&ended);
    summary.push('\n');
    emit(&summary);
    match stop.failure() {
        Some(r) => Err(format!("monitoring failed: {r}")),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    if args.probe {
        println!("{}", damon_ops_common::probe::ProbeReport::run());
        return ExitCode::SUCCESS;
    }
    // clap drops `requires` when a conflicting argument is given
    if args.sim.is_none() && args.virtual_time {
        Args::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--virtual-time needs --sim",
            )
            .exit();
    }
    if (args.numa_node.is_some() || args.all_ram) && args.target.as_deref() != Some("paddr") {
        Args::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--numa-node and --all-ram apply to the paddr target only",
            )
            .exit();
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monitor: {e}");
            ExitCode::from(1)
        }
    }
}
