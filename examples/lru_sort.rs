//! `lru_sort`: DAMON_LRU_SORT on a set of processes — marks frequently
//! accessed memory as wanted and long-idle memory as cold, within quotas,
//! while free memory is between the watermarks, so that the kernel's LRU
//! lists follow the access pattern DAMON sees.
//!
//! ```text
//! cargo run --release --example lru_sort -- --pid 1234 --hot-thres-access-freq 300 --cold-min-age 30000000
//! cargo run --release --example lru_sort -- --active-mem-bp 7000 -- ./my-program arg
//! cargo run --release --example lru_sort -- --sim 4G:hot=0-512M@0.9 --cold-min-age 1000000 --virtual-time --duration 10
//! ```
//!
//! Every parameter of the kernel module
//! (`/sys/module/damon_lru_sort/parameters/`) is an option of the same name
//! with dashes, with the module's default and unit:
//! `--hot-thres-access-freq` (per mille of the maximum access frequency),
//! `--cold-min-age` (µs), `--quota-ms` (split between the two schemes),
//! `--quota-reset-interval-ms`, `--active-mem-bp` (quota goal: active LRU
//! share in basis points; 0: off), `--filter-young-pages`,
//! `--autotune-monitoring-intervals`, `--wmarks-interval` (µs),
//! `--wmarks-high`, `--wmarks-mid`, `--wmarks-low` (free memory per mille),
//! `--sample-interval`, `--aggr-interval` (µs), `--min-nr-regions` and
//! `--max-nr-regions`. Watermarks and goals read this machine's
//! `/proc/meminfo`.
//!
//! Every `--interval-ms` it prints the free memory rate and both schemes'
//! statistics under the kernel's names (`nr_tried`, `sz_tried`,
//! `nr_applied`, `sz_applied`, `qt_exceeds`) with their effective size
//! quotas; at the end the final statistics and why it stopped
//! (`--duration`, Ctrl-C, or every process exited).
//!
//! `--sim SPEC` runs the same policy on a simulated address space with
//! scripted metrics: `--free-mem-rate` (per mille, default halfway between
//! the low and middle watermarks, where the schemes act) is what the
//! watermarks see, so it runs on any host; with `--virtual-time` it runs on
//! virtual time, as fast as possible.
//!
//! # Differences from the kernel module
//!
//! * The module monitors physical memory and moves pages between the LRU
//!   lists (`lru_prio`, `lru_deprio`) through the reverse map. User space
//!   has neither, so this monitors the **processes** given (the `vaddr`
//!   backend) and acts with `process_madvise` on each one's pidfd: the hot
//!   scheme uses `MADV_WILLNEED` and the cold scheme `MADV_COLD` (which
//!   deactivates pages). `monitor_region_start`/`monitor_region_end`,
//!   `enabled`, `commit_inputs`, `kdamond_pid` and the read-only statistics
//!   parameters do not exist (the statistics are printed instead).
//! * `--filter-young-pages` adds page-level `young` filters, which the
//!   vaddr backend decides per folio from the idle bitmap (reading a
//!   folio's young state resets it, as the kernel's filter does); the
//!   simulation has no pages, so with `--sim` starting fails with a
//!   message naming the filter.
//! * The free memory rate is re-read at most once per `--wmarks-interval`,
//!   not at every sampling interval.
//! * Acting on other processes needs root (or `CAP_SYS_NICE` over them),
//!   like monitoring itself (`CONFIG_IDLE_PAGE_TRACKING`, root); without
//!   them it says what is missing and exits with status 1.

#![deny(unsafe_code)]

use damon_examples::daemon;

use clap::{CommandFactory as _, Parser};
use damon_examples::cli;
use damon_schemes::presets::LruSortParams;
use std::process::ExitCode;

fn defaults() -> LruSortParams {
    LruSortParams::default()
}

/// DAMON_LRU_SORT on processes: marks hot memory wanted (willneed) and
/// long-idle memory cold, within quotas, while free memory is between the
/// watermarks.
#[derive(Parser, Debug)]
#[command(
    name = "lru_sort",
    after_help = format!("Targets: --pid PID (repeatable) and/or -- COMMAND [ARGS...], or --sim SPEC.\n{}", cli::SIM_SPEC_HELP)
)]
struct Args {
    #[command(flatten)]
    daemon: daemon::DaemonArgs,

    /// Hot threshold: access frequency, per mille of the maximum.
    #[arg(long, value_name = "PERMIL", default_value_t = defaults().hot_thres_access_freq,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    hot_thres_access_freq: u64,
    /// Cold threshold: memory idle at least this long (µs) is cold.
    #[arg(long, value_name = "US", default_value_t = defaults().cold_min_age)]
    cold_min_age: u64,
    /// Time quota: ms of work per reset interval, half for each scheme (0: none).
    #[arg(long, value_name = "MS", default_value_t = defaults().quota_ms)]
    quota_ms: u64,
    /// Quota charge window (ms; at least 1).
    #[arg(long, value_name = "MS", default_value_t = defaults().quota_reset_interval_ms,
          value_parser = clap::value_parser!(u64).range(1..))]
    quota_reset_interval_ms: u64,
    /// Quota goal: share of active memory (basis points; 0: off).
    #[arg(long, value_name = "BP", default_value_t = defaults().active_mem_bp,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    active_mem_bp: u64,
    /// Act only on pages whose accessed ("young") state agrees.
    #[arg(long)]
    filter_young_pages: bool,
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
    /// Auto-tune the sampling and aggregation intervals.
    #[arg(long)]
    autotune_monitoring_intervals: bool,
}

impl Args {
    fn params(&self) -> LruSortParams {
        LruSortParams {
            hot_thres_access_freq: self.hot_thres_access_freq,
            cold_min_age: self.cold_min_age,
            quota_ms: self.quota_ms,
            quota_reset_interval_ms: self.quota_reset_interval_ms,
            active_mem_bp: self.active_mem_bp,
            filter_young_pages: self.filter_young_pages,
            autotune_monitoring_intervals: self.autotune_monitoring_intervals,
            wmarks_interval: self.wmarks_interval,
            wmarks_high: self.wmarks_high,
            wmarks_mid: self.wmarks_mid,
            wmarks_low: self.wmarks_low,
            sample_interval: self.sample_interval,
            aggr_interval: self.aggr_interval,
            min_nr_regions: self.min_nr_regions,
            max_nr_regions: self.max_nr_regions,
        }
    }
}

fn main() -> ExitCode {
    let args = Args::try_parse().unwrap_or_else(|e| e.exit());
    let p = args.params();
    let (attrs, schemes) = (p.attrs(), p.schemes());
    let banner = format!(
        "willneed for memory accessed in at least {} of {} samples per aggregation, cold for memory idle \
         for at least {}; quota {} ms per {} ms; watermarks (free memory per mille) high {} mid {} low {}, \
         checked every {}",
        schemes[0].pattern.min_nr_accesses,
        attrs.max_nr_accesses(),
        cli::time_us(p.cold_min_age),
        p.quota_ms,
        p.quota_reset_interval_ms,
        p.wmarks_high,
        p.wmarks_mid,
        p.wmarks_low,
        cli::time_us(p.wmarks_interval),
    );
    let preset = daemon::Preset {
        name: "lru_sort",
        labels: &["hot: willneed", "cold: cold"],
        attrs,
        schemes,
        wmarks_low_mid: (p.wmarks_low, p.wmarks_mid),
        banner: Box::new(move |what| format!("lru_sort: on {what}: {banner}")),
    };
    daemon::main(Args::command(), &args.daemon, preset)
}
