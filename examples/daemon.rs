//! What the `reclaim` and `lru_sort` examples share: the target options,
//! Ctrl-C handling and the run loop around a preset's schemes.

use crate::cli::{self, emit, interrupt_flag, parse_secs};
use crate::engine::Engine;
use clap::error::ErrorKind;
use damon_core::damos::Scheme;
use damon_core::Attrs;
use damon_schemes::{ProcMetrics, SimMetrics, SystemMetrics};
use std::process::ExitCode;

/// Targets and run options of a DAMOS daemon example.
#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// A process to act on (repeatable).
    #[arg(long, value_name = "PID", conflicts_with = "sim")]
    pub pid: Vec<u32>,
    /// A command to start and act on; the daemon stops when every target exited.
    #[arg(last = true, value_name = "COMMAND", conflicts_with = "sim")]
    pub command: Vec<String>,
    /// Act on a simulated address space with scripted metrics (no root needed).
    #[arg(long, value_name = "SPEC")]
    pub sim: Option<String>,
    /// Simulation: free memory rate (per mille) the watermarks see
    /// [default: halfway between --wmarks-low and --wmarks-mid].
    #[arg(long, value_name = "PERMIL", requires = "sim",
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub free_mem_rate: Option<u64>,
    /// Simulation: run on virtual time, as fast as possible.
    #[arg(long, requires = "sim")]
    pub virtual_time: bool,
    /// RNG seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Which DAMON runs the scheme: `user` (this library's engine),
    /// `kernel` (the kernel's DAMON through sysfs, which evaluates the
    /// watermarks and quota goals itself) or `auto` (the kernel's when it
    /// can run it, else ours, saying why).
    #[arg(long, default_value = "user", value_parser = ["user", "kernel", "auto"])]
    pub engine: String,
    /// Time between two statistics reports (ms).
    #[arg(long, default_value_t = 1000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub interval_ms: u64,
    /// Stop after this many seconds (default: at Ctrl-C or when every target
    /// exited; 10 with --virtual-time).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<f64>,
}

/// What a preset contributes to a run.
pub struct Preset {
    /// Program name, for messages.
    pub name: &'static str,
    /// One label per scheme, for the statistics lines.
    pub labels: &'static [&'static str],
    /// Monitoring attributes.
    pub attrs: Attrs,
    /// The schemes.
    pub schemes: Vec<Scheme>,
    /// The low and middle watermarks (the simulated free memory rate
    /// defaults to halfway between them, where the schemes act).
    pub wmarks_low_mid: (u64, u64),
    /// The first line printed, given a description of the targets.
    pub banner: Box<dyn FnOnce(&str) -> String>,
}

fn run(args: &DaemonArgs, preset: Preset) -> Result<(), String> {
    let engine: Engine = args.engine.parse()?;
    if engine == Engine::Kernel && args.sim.is_some() {
        return Err(
            "--sim runs on the user engine only: the kernel's DAMON monitors real memory (--engine user)"
                .into(),
        );
    }
    let interrupt = interrupt_flag();
    // check the parameters before starting anything
    let mut check = damon_core::Context::new();
    check.attrs = preset.attrs;
    check.schemes = preset.schemes;
    check.validate().map_err(|e| e.to_string())?;
    let (mut ctx, mut command, what) = match &args.sim {
        Some(spec) => {
            let (ctx, what) = cli::sim_context(spec, args.seed)?;
            (ctx, None, what)
        }
        None => cli::process_context_on(engine, &args.pid, &args.command)?,
    };
    ctx.attrs = check.attrs;
    ctx.schemes = check.schemes;
    if args.sim.is_none() {
        ctx.seed = args.seed;
    }
    let stepped = args.virtual_time;
    if stepped {
        ctx.clock = Some(std::sync::Arc::new(damon_core::VirtualClock::new()));
    }
    let (control, free_mem_rate): (_, Box<dyn FnMut() -> Option<u64>>) = if args.sim.is_some() {
        let (low, mid) = preset.wmarks_low_mid;
        let rate = args
            .free_mem_rate
            .unwrap_or_else(|| cli::default_sim_free_rate(low, mid));
        let metrics = SimMetrics::new();
        metrics.set(|v| v.free_mem_rate = rate);
        let control = damon_schemes::install(&mut ctx, metrics.clone());
        let mut m = metrics;
        (control, Box::new(move || m.free_mem_rate().ok()))
    } else {
        let control = damon_schemes::install(&mut ctx, ProcMetrics);
        (control, Box::new(|| ProcMetrics.free_mem_rate().ok()))
    };
    emit(&format!("{}\n", (preset.banner)(&what)));
    let status_control = control.clone();
    let opts = cli::SchemesRun {
        name: preset.name,
        labels: preset.labels,
        stepped,
        engine,
        ops: if args.sim.is_some() { "sim" } else { "vaddr" },
        interval_us: args.interval_ms * 1000,
        duration_us: args
            .duration
            .or(stepped.then_some(10.0))
            .map(|s| (s * 1e6) as u64),
        interrupt,
        status: Box::new(move || {
            status_control
                .status()
                .iter()
                .map(|s| (s.esz, s.activated))
                .collect()
        }),
        free_mem_rate,
    };
    let (stop, elapsed) = cli::run_schemes(ctx, opts, &mut emit)?;
    let mut ended = format!(
        "{}: stopped after {}: {stop}",
        preset.name,
        cli::time_us(elapsed)
    );
    if let Some(cmd) = command.as_mut() {
        ended.push_str(&cli::end_command(cmd, &stop));
    }
    emit(&format!("{ended}\n"));
    match stop.failure() {
        Some(r) => Err(format!("failed: {r}")),
        None => Ok(()),
    }
}

/// Checks what clap cannot, runs the preset and turns the outcome into the
/// exit status (1 with a one-line message on error).
pub fn main(mut command: clap::Command, args: &DaemonArgs, preset: Preset) -> ExitCode {
    // clap drops `requires` when a conflicting argument is given
    if args.sim.is_none() && (args.free_mem_rate.is_some() || args.virtual_time) {
        command
            .error(
                ErrorKind::MissingRequiredArgument,
                "--free-mem-rate and --virtual-time need --sim",
            )
            .exit();
    }
    let name = preset.name;
    match run(args, preset) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::from(1)
        }
    }
}
