//! `reclaim`: DAMON_RECLAIM on a set of processes — pages out memory that
//! has not been accessed for `--min-age`, within quotas, while free memory
//! is between the watermarks.
//!
//! ```text
//! cargo run --release --example reclaim -- --pid 1234 --pid 5678 --min-age 30000000
//! cargo run --release --example reclaim -- --quota-ms 20 --quota-sz 256M -- ./my-program arg
//! cargo run --release --example reclaim -- --sim 4G:hot=0-512M@0.9 --min-age 1000000 --virtual-time --duration 10
//! ```
//!
//! Every parameter of the kernel module
//! (`/sys/module/damon_reclaim/parameters/`) is an option of the same name
//! with dashes, with the module's default and unit: `--min-age` (µs),
//! `--quota-ms`, `--quota-sz` (bytes; `K`/`M`/`G` suffixes accepted),
//! `--quota-reset-interval-ms`, `--quota-mem-pressure-us`,
//! `--quota-autotune-feedback`, `--wmarks-interval` (µs), `--wmarks-high`,
//! `--wmarks-mid`, `--wmarks-low` (free memory per mille),
//! `--sample-interval`, `--aggr-interval` (µs), `--min-nr-regions`,
//! `--max-nr-regions`, `--skip-anon` and `--autotune-monitoring-intervals`.
//! Watermarks and quota goals read this machine's `/proc/meminfo` and
//! `/proc/pressure/memory`.
//!
//! Every `--interval-ms` it prints the free memory rate and the scheme's
//! statistics under the kernel's names (`nr_tried`, `sz_tried`,
//! `nr_applied`, `sz_applied`, `qt_exceeds`) with the effective size
//! quota of the current window; at the end the final statistics and why
//! it stopped (`--duration`, Ctrl-C, or every process exited).
//!
//! `--sim SPEC` runs the same policy on a simulated address space with
//! scripted metrics: `--free-mem-rate` (per mille, default halfway between
//! the low and middle watermarks, where the scheme acts) is what the
//! watermarks see, so it runs on any host; with `--virtual-time` it runs on
//! virtual time, as fast as possible.
//!
//! # Differences from the kernel module
//!
//! * The module monitors physical memory and reclaims through the reverse
//!   map; user space has none, so this monitors the **processes** given
//!   (the `vaddr` backend) and pages out with `process_madvise(MADV_PAGEOUT)`
//!   on each one's pidfd. `monitor_region_start`/`monitor_region_end` have
//!   no meaning here and do not exist; neither do `enabled`, `commit_inputs`
//!   and `kdamond_pid` (the parameters are fixed for the run) nor the
//!   read-only statistics parameters (printed instead).
//! * `--skip-anon` is a page-level `anon` filter that the vaddr backend
//!   decides from `/proc/PID/pagemap`.
//! * The free memory rate is re-read at most once per `--wmarks-interval`,
//!   not at every sampling interval.
//! * Paging out needs root (or `CAP_SYS_NICE` over the targets), like
//!   monitoring itself (`CONFIG_IDLE_PAGE_TRACKING`, root); without them it
//!   says what is missing and exits with status 1.

#![deny(unsafe_code)]

use clap::error::ErrorKind;
use clap::{CommandFactory as _, Parser};
use damon_examples::cli::{self, parse_bytes, parse_secs};
use damon_schemes::presets::ReclaimParams;
use damon_schemes::{ProcMetrics, SimMetrics, SystemMetrics};
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

fn defaults() -> ReclaimParams {
    ReclaimParams::default()
}

/// DAMON_RECLAIM on processes: pages out memory idle for at least
/// --min-age, within quotas, while free memory is between the watermarks.
#[derive(Parser, Debug)]
#[command(
    name = "reclaim",
    after_help = format!("Targets: --pid PID (repeatable) and/or -- COMMAND [ARGS...], or --sim SPEC.\n{}", cli::SIM_SPEC_HELP)
)]
struct Args {
    /// A process to act on (repeatable).
    #[arg(long, value_name = "PID", conflicts_with = "sim")]
    pid: Vec<u32>,
    /// A command to start and act on; the daemon stops when every target exited.
    #[arg(last = true, value_name = "COMMAND", conflicts_with = "sim")]
    command: Vec<String>,
    /// Act on a simulated address space with scripted metrics (no root needed).
    #[arg(long, value_name = "SPEC")]
    sim: Option<String>,
    /// Simulation: free memory rate (per mille) the watermarks see
    /// [default: halfway between --wmarks-low and --wmarks-mid].
    #[arg(long, value_name = "PERMIL", requires = "sim",
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    free_mem_rate: Option<u64>,
    /// Simulation: run on virtual time, as fast as possible.
    #[arg(long, requires = "sim")]
    virtual_time: bool,
    /// RNG seed.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Time between two statistics reports (ms).
    #[arg(long, default_value_t = 1000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    interval_ms: u64,
    /// Stop after this many seconds (default: at Ctrl-C or when every target
    /// exited; 10 with --virtual-time).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<f64>,

    /// Memory idle at least this long (µs) is paged out.
    #[arg(long, value_name = "US", default_value_t = defaults().min_age)]
    min_age: u64,
    /// Time quota: ms of paging out per reset interval (0: none).
    #[arg(long, value_name = "MS", default_value_t = defaults().quota_ms)]
    quota_ms: u64,
    /// Size quota: bytes paged out per reset interval (0: none).
    #[arg(long, value_name = "BYTES", default_value_t = defaults().quota_sz, value_parser = parse_bytes)]
    quota_sz: u64,
    /// Quota charge window (ms).
    #[arg(long, value_name = "MS", default_value_t = defaults().quota_reset_interval_ms)]
    quota_reset_interval_ms: u64,
    /// Quota goal: "some" memory pressure stall (µs per reset interval; 0: off).
    #[arg(long, value_name = "US", default_value_t = defaults().quota_mem_pressure_us)]
    quota_mem_pressure_us: u64,
    /// Quota goal: user feedback against a target of 10000 (0: off).
    #[arg(long, value_name = "N", default_value_t = defaults().quota_autotune_feedback)]
    quota_autotune_feedback: u64,
    /// Watermarks check interval (µs).
    #[arg(long, value_name = "US", default_value_t = defaults().wmarks_interval)]
    wmarks_interval: u64,
    /// High watermark: above this free memory rate (per mille), do nothing.
    #[arg(long, value_name = "PERMIL", default_value_t = defaults().wmarks_high)]
    wmarks_high: u64,
    /// Middle watermark: below this free memory rate, start.
    #[arg(long, value_name = "PERMIL", default_value_t = defaults().wmarks_mid)]
    wmarks_mid: u64,
    /// Low watermark: below this free memory rate, stop (leave it to the kernel).
    #[arg(long, value_name = "PERMIL", default_value_t = defaults().wmarks_low)]
    wmarks_low: u64,
    /// Sampling interval (µs).
    #[arg(long, value_name = "US", default_value_t = defaults().sample_interval)]
    sample_interval: u64,
    /// Aggregation interval (µs).
    #[arg(long, value_name = "US", default_value_t = defaults().aggr_interval)]
    aggr_interval: u64,
    /// Minimum number of regions.
    #[arg(long, value_name = "N", default_value_t = defaults().min_nr_regions)]
    min_nr_regions: u32,
    /// Maximum number of regions.
    #[arg(long, value_name = "N", default_value_t = defaults().max_nr_regions)]
    max_nr_regions: u32,
    /// Do not page out anonymous memory.
    #[arg(long)]
    skip_anon: bool,
    /// Auto-tune the sampling and aggregation intervals.
    #[arg(long)]
    autotune_monitoring_intervals: bool,
}

impl Args {
    fn params(&self) -> ReclaimParams {
        ReclaimParams {
            min_age: self.min_age,
            quota_ms: self.quota_ms,
            quota_sz: self.quota_sz,
            quota_reset_interval_ms: self.quota_reset_interval_ms,
            quota_mem_pressure_us: self.quota_mem_pressure_us,
            quota_autotune_feedback: self.quota_autotune_feedback,
            wmarks_interval: self.wmarks_interval,
            wmarks_high: self.wmarks_high,
            wmarks_mid: self.wmarks_mid,
            wmarks_low: self.wmarks_low,
            sample_interval: self.sample_interval,
            aggr_interval: self.aggr_interval,
            min_nr_regions: self.min_nr_regions,
            max_nr_regions: self.max_nr_regions,
            skip_anon: self.skip_anon,
            autotune_monitoring_intervals: self.autotune_monitoring_intervals,
        }
    }
}

/// The Ctrl-C / SIGTERM flag; a second signal exits at once.
fn interrupt_flag() -> &'static AtomicBool {
    static FLAG: AtomicBool = AtomicBool::new(false);
    let _ = ctrlc::set_handler(|| {
        if FLAG.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    &FLAG
}

fn emit(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_ok()
}

fn run(args: &Args) -> Result<(), String> {
    let interrupt = interrupt_flag();
    let p = args.params();
    let scheme = p.scheme();
    // check the parameters before starting anything
    let mut check = damon_core::Context::new();
    check.attrs = p.attrs();
    check.schemes = vec![scheme.clone()];
    check.validate().map_err(|e| e.to_string())?;
    let (mut ctx, mut command, what) = match &args.sim {
        Some(spec) => {
            let (ctx, what) = cli::sim_context(spec, args.seed)?;
            (ctx, None, what)
        }
        None => cli::process_context(&args.pid, &args.command)?,
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
        let rate = args
            .free_mem_rate
            .unwrap_or_else(|| cli::default_sim_free_rate(p.wmarks_low, p.wmarks_mid));
        let metrics = SimMetrics::new();
        metrics.set(|v| v.free_mem_rate = rate);
        let control = damon_schemes::install(&mut ctx, metrics.clone());
        let mut m = metrics;
        (control, Box::new(move || m.free_mem_rate().ok()))
    } else {
        let control = damon_schemes::install(&mut ctx, ProcMetrics);
        (control, Box::new(|| ProcMetrics.free_mem_rate().ok()))
    };
    emit(&format!(
        "reclaim: paging out memory of {what} idle for at least {}; quota {} ms and {} per {} ms; \
         watermarks (free memory per mille) high {} mid {} low {}, checked every {}\n",
        cli::time_us(p.min_age),
        p.quota_ms,
        cli::size(p.quota_sz),
        p.quota_reset_interval_ms,
        p.wmarks_high,
        p.wmarks_mid,
        p.wmarks_low,
        cli::time_us(p.wmarks_interval),
    ));
    let status_control = control.clone();
    let opts = cli::SchemesRun {
        name: "reclaim",
        labels: &["pageout"],
        stepped,
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
    let mut ended = format!("reclaim: stopped after {}: {stop}", cli::time_us(elapsed));
    if let Some(cmd) = command.as_mut() {
        ended.push_str(&cli::end_command(cmd, &stop));
    }
    emit(&format!("{ended}\n"));
    match stop.failure() {
        Some(r) => Err(format!("failed: {r}")),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    // clap drops `requires` when a conflicting argument is given
    if args.sim.is_none() && (args.free_mem_rate.is_some() || args.virtual_time) {
        Args::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--free-mem-rate and --virtual-time need --sim",
            )
            .exit();
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reclaim: {e}");
            ExitCode::from(1)
        }
    }
}
