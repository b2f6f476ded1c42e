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

use damon_examples::daemon;

use clap::{CommandFactory as _, Parser};
use damon_examples::cli::{self, parse_bytes};
use damon_schemes::presets::ReclaimParams;
use std::process::ExitCode;

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
    #[command(flatten)]
    daemon: daemon::DaemonArgs,

    /// Memory idle at least this long (µs) is paged out.
    #[arg(long, value_name = "US", default_value_t = defaults().min_age)]
    min_age: u64,
    /// Time quota: ms of paging out per reset interval (0: none).
    #[arg(long, value_name = "MS", default_value_t = defaults().quota_ms)]
    quota_ms: u64,
    /// Size quota: bytes paged out per reset interval (0: none).
    #[arg(long, value_name = "BYTES", default_value_t = defaults().quota_sz, value_parser = parse_bytes)]
    quota_sz: u64,
    /// Quota charge window (ms; at least 1).
    #[arg(long, value_name = "MS", default_value_t = defaults().quota_reset_interval_ms,
          value_parser = clap::value_parser!(u64).range(1..))]
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
    #[arg(long, value_name = "PERMIL", default_value_t = defaults().wmarks_high,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    wmarks_high: u64,
    /// Middle watermark: below this free memory rate, start.
    #[arg(long, value_name = "PERMIL", default_value_t = defaults().wmarks_mid,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    wmarks_mid: u64,
    /// Low watermark: below this free memory rate, stop (leave it to the kernel).
    #[arg(long, value_name = "PERMIL", default_value_t = defaults().wmarks_low,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    wmarks_low: u64,
    /// Sampling interval (µs, or with a unit: 5ms).
    #[arg(long, visible_alias = "sample", value_name = "TIME",
          default_value_t = defaults().sample_interval,
          value_parser = damon_examples::cli::parse_interval_us)]
    sample_interval: u64,
    /// Aggregation interval (µs, or with a unit: 100ms).
    #[arg(long, visible_alias = "aggr", value_name = "TIME",
          default_value_t = defaults().aggr_interval,
          value_parser = damon_examples::cli::parse_interval_us)]
    aggr_interval: u64,
    /// Minimum number of regions.
    #[arg(long, visible_alias = "minr", value_name = "N", default_value_t = defaults().min_nr_regions,
          value_parser = clap::value_parser!(u32).range(1..))]
    min_nr_regions: u32,
    /// Maximum number of regions.
    #[arg(long, visible_alias = "maxr", value_name = "N", default_value_t = defaults().max_nr_regions,
          value_parser = clap::value_parser!(u32).range(3..))]
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

fn main() -> ExitCode {
    let args = Args::try_parse().unwrap_or_else(|e| e.exit());
    let p = args.params();
    let banner = format!(
        "quota {} ms and {} per {} ms; watermarks (free memory per mille) high {} mid {} low {}, checked every {}",
        p.quota_ms,
        cli::size(p.quota_sz),
        p.quota_reset_interval_ms,
        p.wmarks_high,
        p.wmarks_mid,
        p.wmarks_low,
        cli::time_us(p.wmarks_interval),
    );
    let min_age = cli::time_us(p.min_age);
    let preset = daemon::Preset {
        name: "reclaim",
        labels: &["pageout"],
        attrs: p.attrs(),
        schemes: vec![p.scheme()],
        wmarks_low_mid: (p.wmarks_low, p.wmarks_mid),
        banner: Box::new(move |what| {
            format!("reclaim: paging out memory of {what} idle for at least {min_age}; {banner}")
        }),
    };
    daemon::main(Args::command(), &args.daemon, preset)
}
