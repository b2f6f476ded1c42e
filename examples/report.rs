//! `report`: damo's `wss`, `heatmap` and `access` reports of a record file
//! (written by the `record` example or by `damo record`).
//!
//! ```text
//! cargo run --release --example report -- wss damon.data
//! cargo run --release --example report -- wss damon.data --sortby time
//! cargo run --release --example report -- heatmap damon.data
//! cargo run --release --example report -- heatmap damon.data --output heatmap.png
//! cargo run --release --example report -- access damon.data
//! cargo run --release --example report -- access damon.data --style temperature-sz-hist
//! cargo run --release --example report -- access damon.data --style hot --snapshot_idx 3 5
//! cargo run --release --example report -- times damon.data --access_rate 50 max
//! ```

#![deny(unsafe_code)]

use clap::{Parser, Subcommand, ValueEnum};
use damon_damo::filter::RecordFilter;
use damon_damo::{
    access, heatmap_of, read_record_file, style_text, wss_of, AccessOptions, AccessStyle,
    DamoError, HeatmapOptions, RecordFile, StyleOptions, WssOptions, WssSort,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Reports on a damo record file (json, json_compressed or perf_script).
#[derive(Parser, Debug)]
#[command(name = "report")]
struct Args {
    #[command(subcommand)]
    kind: Kind,
}

/// The record file: positional, or damo's `--input`/`-i`; damo's default
/// `damon.data` when neither is given.
#[derive(clap::Args, Debug)]
struct Input {
    /// Record file [default: damon.data].
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
    /// Record file (damo's spelling).
    #[arg(long, short = 'i', value_name = "FILE", conflicts_with = "file")]
    input: Option<PathBuf>,
}

impl Input {
    fn path(&self) -> PathBuf {
        self.file
            .clone()
            .or_else(|| self.input.clone())
            .unwrap_or_else(|| PathBuf::from("damon.data"))
    }
}

/// damo's record filter options (`damo help access_filter_options`).
#[derive(clap::Args, Debug, Default)]
struct FilterArgs {
    /// Keep regions of this size range (bytes; `4K`, `min`, `max`).
    #[arg(long = "sz_region", visible_alias = "sz-region", num_args = 2, value_names = ["MIN", "MAX"])]
    sz_region: Option<Vec<String>>,
    /// Keep regions of this access rate range (percent of the samples).
    #[arg(long = "access_rate", visible_alias = "access-rate", num_args = 2, value_names = ["MIN", "MAX"])]
    access_rate: Option<Vec<String>>,
    /// Keep regions of this age range (µs, or with a unit: `1s`).
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"])]
    age: Option<Vec<String>>,
    /// Keep the parts of regions inside this address range (repeatable).
    #[arg(long, num_args = 2, value_names = ["START", "END"], action = clap::ArgAction::Append)]
    address: Option<Vec<String>>,
    /// Keep snapshots whose regions total this many bytes (repeatable).
    #[arg(long = "sz_snapshot", visible_alias = "sz-snapshot", num_args = 2, value_names = ["MIN", "MAX"], action = clap::ArgAction::Append)]
    sz_snapshot: Option<Vec<String>>,
    /// Keep snapshots inside this time range (ns, or with a unit; repeatable).
    #[arg(long = "snapshot_time", visible_alias = "snapshot-time", num_args = 2, value_names = ["START", "END"], action = clap::ArgAction::Append)]
    snapshot_time: Option<Vec<String>>,
    /// Keep snapshots of this index range, both included (repeatable).
    #[arg(long = "snapshot_idx", visible_alias = "snapshot-idx", num_args = 2, value_names = ["START", "END"], action = clap::ArgAction::Append)]
    snapshot_idx: Option<Vec<String>>,
    /// Keep regions of this temperature range (repeatable).
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"], action = clap::ArgAction::Append, allow_negative_numbers = true)]
    temperature: Option<Vec<i128>>,
    /// Temperature weights of size, access rate and age.
    #[arg(long = "temperature_weights", visible_alias = "temperature-weights", num_args = 3, value_names = ["SIZE", "ACCESS", "AGE"], allow_negative_numbers = true)]
    temperature_weights: Option<Vec<i64>>,
}

impl FilterArgs {
    fn pairs<T>(
        v: &Option<Vec<String>>,
        opt: &str,
        parse: impl Fn(&str, &str) -> Result<T, DamoError>,
    ) -> Result<Option<Vec<(T, T)>>, String> {
        let Some(v) = v else { return Ok(None) };
        let mut out = Vec::new();
        for c in v.chunks(2) {
            let a = parse(&c[0], opt).map_err(|e| e.to_string())?;
            let b = parse(&c[1], opt).map_err(|e| e.to_string())?;
            out.push((a, b));
        }
        Ok(Some(out))
    }

    fn filter(&self) -> Result<RecordFilter, String> {
        use damon_damo::filter::*;
        let mut f = RecordFilter::default();
        let one = |v: Option<Vec<(u64, u64)>>| v.map(|v| v[0]);
        if let Some(p) = one(Self::pairs(
            &self.sz_region,
            "--sz_region",
            parse_size_text,
        )?) {
            f.sz_region = p;
        }
        if let Some(v) = Self::pairs(&self.access_rate, "--access_rate", parse_percent_text)? {
            f.access_rate_percent = v[0];
        }
        if let Some(p) = one(Self::pairs(&self.age, "--age", parse_time_us_text)?) {
            f.age_us = p;
        }
        f.address = Self::pairs(&self.address, "--address", parse_size_text)?;
        f.sz_snapshot = Self::pairs(&self.sz_snapshot, "--sz_snapshot", parse_size_text)?;
        f.snapshot_time_ns =
            Self::pairs(&self.snapshot_time, "--snapshot_time", parse_time_ns_text)?;
        f.snapshot_idx = Self::pairs(&self.snapshot_idx, "--snapshot_idx", parse_nr_text)?;
        f.temperature = self
            .temperature
            .as_ref()
            .map(|v| v.chunks(2).map(|c| (c[0], c[1])).collect());
        if let Some(w) = &self.temperature_weights {
            f.temperature_weights = [w[0], w[1], w[2]];
        }
        for (what, ranges) in [
            ("--address", &f.address),
            ("--sz_snapshot", &f.sz_snapshot),
            ("--snapshot_time", &f.snapshot_time_ns),
            ("--snapshot_idx", &f.snapshot_idx),
        ] {
            if let Some(&(a, b)) = ranges.iter().flatten().find(|(a, b)| a > b) {
                return Err(format!("{what} {a} {b}: the start is after the end"));
            }
        }
        Ok(f)
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum SortBy {
    Size,
    Time,
}

#[derive(Subcommand, Debug)]
enum Kind {
    /// Working set size distribution (percentiles 0, 25, 50, 75, 100 and the average).
    Wss {
        #[command(flatten)]
        input: Input,
        /// Sort the sizes by size (percentiles) or keep time order.
        #[arg(long, value_enum, default_value = "size")]
        sortby: SortBy,
        /// Snapshots to skip at the start (damo's default: 20).
        #[arg(
            long,
            visible_alias = "exclude_samples",
            default_value_t = 20,
            value_name = "N"
        )]
        exclude_samples: usize,
        /// Minimal nr_accesses of a working-set region.
        #[arg(
            long,
            visible_alias = "acc_thres",
            default_value_t = 1,
            value_name = "N"
        )]
        acc_thres: u32,
        /// One distribution per target instead of their sum.
        #[arg(long)]
        per_target: bool,
        /// Print plain byte counts.
        #[arg(long, visible_alias = "raw_number")]
        raw_number: bool,
        /// Print every working set size, not only the percentiles.
        #[arg(long, visible_alias = "all_wss")]
        all_wss: bool,
        /// Percentiles to report: START END STEP (damo's --range; default 0 101 25).
        #[arg(long, num_args = 3, value_names = ["START", "END", "STEP"])]
        range: Option<Vec<u32>>,
        /// Also plot the distribution to this PNG file.
        #[arg(long, short = 'p', value_name = "FILE")]
        plot: Option<PathBuf>,
        /// Write the report to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Time x address heatmap: ASCII on stdout, `raw` triples, or a PNG or
    /// SVG picture with axes, ticks and a colour scale.
    Heatmap {
        #[command(flatten)]
        input: Input,
        /// `stdout` (default), `raw`, or a picture file name ending in `.png` or `.svg`.
        #[arg(long, default_value = "stdout", value_name = "OUTPUT")]
        output: String,
        /// Resolution: time rows and address columns (default 40 80, or 500 500 for images).
        #[arg(long, num_args = 2, value_names = ["TIME", "ADDR"])]
        resol: Option<Vec<usize>>,
        /// Time range [START, END) in ns.
        #[arg(long, visible_alias = "time_range", num_args = 2, value_names = ["START", "END"])]
        #[arg(allow_negative_numbers = true)]
        time_range: Option<Vec<i64>>,
        /// Address range [START, END).
        #[arg(long, visible_alias = "address_range", num_args = 2, value_names = ["START", "END"])]
        address_range: Option<Vec<u64>>,
        /// Target id to draw.
        #[arg(long, value_name = "ID")]
        tid: Option<u64>,
    },
    /// Distribution of the number of regions per snapshot (the first 20
    /// of each record skipped, as damo does).
    NrRegions {
        #[command(flatten)]
        input: Input,
        /// Percentiles to report: START END STEP (default 0 101 25).
        #[arg(long, short = 'r', num_args = 3, value_names = ["START", "END", "STEP"])]
        range: Option<Vec<u32>>,
        /// Sort by size (percentiles) or keep time order.
        #[arg(long, short = 's', value_enum, default_value = "size")]
        sortby: SortBy,
        /// Also plot the distribution to this PNG file.
        #[arg(long, short = 'p', value_name = "FILE")]
        plot: Option<PathBuf>,
    },
    /// Distribution of the memory footprint recorded beside a record
    /// (`<record>.mem_footprint`): `vsz`, `rss`, `sys_used` or `all`.
    Footprints {
        /// vsz, rss, sys_used or all.
        #[arg(default_value = "all", value_parser = ["vsz", "rss", "sys_used", "all"])]
        metric: String,
        /// Footprint file [default: damon.data.mem_footprint].
        #[arg(
            long,
            short = 'i',
            value_name = "FILE",
            default_value = "damon.data.mem_footprint"
        )]
        input: PathBuf,
        /// Percentiles to report: START END STEP (default 0 101 25).
        #[arg(long, short = 'r', num_args = 3, value_names = ["START", "END", "STEP"])]
        range: Option<Vec<u32>>,
        /// Sort by size (percentiles) or keep time order.
        #[arg(long, short = 's', value_enum, default_value = "size")]
        sortby: SortBy,
        /// Print plain byte counts.
        #[arg(long, visible_alias = "raw_number")]
        raw_number: bool,
        /// Print every footprint, not only the percentiles.
        #[arg(long, visible_alias = "all_footprint")]
        all_footprint: bool,
    },
    /// What each record covers: its time and contiguous address ranges.
    RecordInfo {
        #[command(flatten)]
        input: Input,
        /// Plain numbers (damo's --raw_numbers).
        #[arg(long, visible_alias = "raw_numbers")]
        raw_numbers: bool,
    },
    /// Regions of a snapshot (address, size, access frequency, age), or
    /// damo's styles over every selected snapshot: size histograms and
    /// percentiles of temperature or idle time, regions hottest or coldest
    /// first; `--json` prints the selected records as a damo JSON record.
    Access {
        #[command(flatten)]
        input: Input,
        /// Snapshot index (default: the last; with --style, every snapshot).
        #[arg(long, value_name = "N")]
        snapshot: Option<usize>,
        /// Only this target.
        #[arg(long, value_name = "ID")]
        tid: Option<u64>,
        /// damo's style: temperature-sz-hist, recency-sz-hist,
        /// temperature-percentiles, recency-percentiles
        /// (idle-time-percentiles), hot or cold.
        #[arg(long, value_name = "STYLE")]
        style: Option<String>,
        /// Histogram ranges doubling in width.
        #[arg(long = "hist_logscale", visible_alias = "hist-logscale")]
        hist_logscale: bool,
        /// Every histogram range starts at the minimum.
        #[arg(long = "hist_cumulate", visible_alias = "hist-cumulate")]
        hist_cumulate: bool,
        /// Percentiles to show (up to 3 values: START END [STEP] as a range; more: the values).
        #[arg(long = "percentiles_range", visible_alias = "percentiles-range", num_args = 1..)]
        percentiles_range: Option<Vec<u32>>,
        /// Plain numbers.
        #[arg(long = "raw_number", visible_alias = "raw-number")]
        raw_number: bool,
        /// The selected records as damo's JSON record format.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        filter: FilterArgs,
        /// Write the report to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// damo's short holistic report: a small heatmap per contiguous range,
    /// the working set size and memory footprint percentiles, and perf's
    /// hottest functions when the record has a profile.
    Holistic {
        /// Record file (damo's spelling) [default: damon.data].
        #[arg(
            long = "access_pattern",
            visible_alias = "access-pattern",
            value_name = "FILE"
        )]
        access_pattern: Option<PathBuf>,
        /// Record file.
        #[arg(value_name = "FILE", conflicts_with = "access_pattern")]
        file: Option<PathBuf>,
        /// Memory footprint file [default: FILE.mem_footprint].
        #[arg(long, value_name = "FILE")]
        footprints: Option<PathBuf>,
        /// perf profile [default: FILE.profile].
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        /// perf to run `perf report` with.
        #[arg(
            long = "perf_path",
            visible_alias = "perf-path",
            value_name = "PATH",
            default_value = "perf"
        )]
        perf_path: String,
    },
    /// When the record had regions that pass the filters: `start-end` in
    /// seconds, adjacent snapshots joined (damo's `report times`).
    Times {
        #[command(flatten)]
        input: Input,
        /// damo's spelling: the record and its profile (the profile is not read).
        #[arg(long, num_args = 1..=2, value_names = ["FILE", "PROFILE"], conflicts_with_all = ["file", "input"])]
        inputs: Option<Vec<PathBuf>>,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

fn emit(text: &str, output: Option<&PathBuf>) -> Result<(), String> {
    match output {
        Some(p) => std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display())),
        None => {
            use std::io::Write as _;
            match std::io::stdout().lock().write_all(text.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
                _ => Ok(()),
            }
        }
    }
}

fn pair<T: Copy>(v: &Option<Vec<T>>) -> Option<(T, T)> {
    v.as_ref().and_then(|v| match v.as_slice() {
        [a, b] => Some((*a, *b)),
        _ => None,
    })
}

/// `access --percentiles_range`, as damo takes it: up to three values are
/// Python's `range()` arguments (END, START END, START END STEP), more are
/// the percentiles themselves; every one within 0..=100.
fn access_percentiles(v: &[u32]) -> Result<Vec<u32>, String> {
    let bad = |why: &str| format!("--percentiles_range {v:?}: {why}");
    let mut out: Vec<u32> = match *v {
        [end] => (0..end).collect(),
        [start, end] => (start..end).collect(),
        [start, end, step] if step > 0 => (start..end).step_by(step as usize).collect(),
        [_, _, _] => return Err(bad("the step must be positive")),
        _ => v.to_vec(),
    };
    out.sort_unstable();
    if out.is_empty() {
        return Err(bad("no percentile in that range"));
    }
    if out.iter().any(|&p| p > 100) {
        return Err(bad("percentiles go up to 100"));
    }
    Ok(out)
}

/// damo's `--range START END STEP` of percentiles (default 0 101 25).
fn percentiles_of(range: Option<&[u32]>) -> Result<Vec<u32>, String> {
    match range {
        None => Ok(WssOptions::default().percentiles),
        Some(&[start, end, step]) if step > 0 && start < end && end <= 101 => {
            Ok((start..end).step_by(step as usize).collect())
        }
        Some(r) => Err(format!(
            "--range {r:?}: expected START < END <= 101 and STEP > 0 (percentiles)"
        )),
    }
}

/// damo's `--plot FILE`: the values against their percentile (sorted) or
/// their position in time.
fn write_plot(
    path: &std::path::Path,
    values: &[u64],
    sorted: bool,
    what: &str,
    fmt: &dyn Fn(f64) -> String,
) -> Result<(), String> {
    let x = if sorted {
        "percentile"
    } else {
        "runtime (percent)"
    };
    let png = damon_damo::plot::plot_dist(values, x, what, &format!("distribution of {what}"), fmt)
        .map_err(|e| e.to_string())?;
    std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("report: wrote {}", path.display());
    Ok(())
}

/// An error reading `f`, naming the file once.
fn report_error(f: &std::path::Path, e: DamoError) -> String {
    match e {
        DamoError::Io { .. } => e.to_string(),
        _ => format!("{}: {e}", f.display()),
    }
}

fn run(args: Args) -> Result<(), String> {
    let read = |f: &PathBuf| read_record_file(f).map_err(|e| report_error(f, e));
    match args.kind {
        Kind::Wss {
            input,
            sortby,
            exclude_samples,
            acc_thres,
            per_target,
            raw_number,
            all_wss,
            range,
            plot,
            output,
        } => {
            let file = input.path();
            let percentiles = percentiles_of(range.as_deref())?;
            // streamed: memory for one snapshot, however long the record
            let records = RecordFile::new(&file);
            let opts = WssOptions {
                sort_by: match sortby {
                    SortBy::Size => WssSort::Size,
                    SortBy::Time => WssSort::Time,
                },
                exclude_samples,
                acc_thres,
                collapse_targets: !per_target,
                percentiles,
                ..WssOptions::default()
            };
            let rep = wss_of(&records, &opts).map_err(|e| report_error(&file, e))?;
            if let Some(p) = &plot {
                let values: Vec<u64> = rep.dists.iter().flat_map(|d| d.values.clone()).collect();
                write_plot(
                    p,
                    &values,
                    opts.sort_by == WssSort::Size,
                    "working set size",
                    &|v| damon_damo::fmt::format_sz(v),
                )?;
            }
            let mut text = rep.to_text(raw_number);
            if all_wss {
                for d in &rep.dists {
                    text.push_str(&format!(
                        "# all working set sizes of target {}\n",
                        d.target_id
                    ));
                    for (i, v) in d.values.iter().enumerate() {
                        text.push_str(&format!("{i} {v}\n"));
                    }
                }
            }
            emit(&text, output.as_ref())
        }
        Kind::Heatmap {
            input,
            output,
            resol,
            time_range,
            address_range,
            tid,
        } => {
            let file = input.path();
            let records = RecordFile::new(&file);
            let svg = output.ends_with(".svg");
            let image = output.ends_with(".png") || svg;
            if !image && output != "stdout" && output != "raw" {
                return Err(format!(
                    "--output {output:?}: expected stdout, raw or a file name ending in .png or .svg"
                ));
            }
            let opts = HeatmapOptions {
                target_id: tid,
                time_range: pair(&time_range),
                addr_range: pair(&address_range),
                resolution: pair(&resol).unwrap_or(if image { (500, 500) } else { (40, 80) }),
            };
            let map = heatmap_of(&records, &opts).map_err(|e| report_error(&file, e))?;
            if image {
                let name = file.file_name().map_or_else(
                    || file.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                let title = match tid {
                    Some(t) => format!("access heatmap of {name}, target {t}"),
                    None => format!("access heatmap of {name}"),
                };
                let bytes = if svg {
                    map.to_svg(&title).map(String::into_bytes)
                } else {
                    map.to_png(&title)
                }
                .map_err(|e| e.to_string())?;
                std::fs::write(&output, bytes).map_err(|e| format!("{output}: {e}"))?;
                eprintln!(
                    "report: wrote {output} (a {}x{} map: time on x, address on y)",
                    map.time_resol, map.addr_resol
                );
                Ok(())
            } else if output == "raw" {
                emit(&map.to_raw(), None)
            } else {
                emit(&map.to_ascii(), None)
            }
        }
        Kind::NrRegions {
            input,
            range,
            sortby,
            plot,
        } => {
            let file = input.path();
            let percentiles = percentiles_of(range.as_deref())?;
            let sort = matches!(sortby, SortBy::Size);
            let dists = damon_damo::info::nr_regions_of(&RecordFile::new(&file), 20, sort)
                .map_err(|e| report_error(&file, e))?;
            if let Some(p) = &plot {
                let values: Vec<u64> = dists.iter().flat_map(|d| d.values.clone()).collect();
                write_plot(
                    p,
                    &values,
                    sort,
                    "number of monitoring target regions",
                    &|v| format!("{v:.0}"),
                )?;
            }
            emit(
                &damon_damo::info::nr_regions_text(&dists, &percentiles),
                None,
            )
        }
        Kind::Footprints {
            metric,
            input,
            range,
            sortby,
            raw_number,
            all_footprint,
        } => {
            use damon_damo::footprint::{
                dist_text, footprint_dist, read_footprints, FootprintMetric,
            };
            let percentiles = percentiles_of(range.as_deref())?;
            let snaps = read_footprints(&input).map_err(|e| e.to_string())?;
            let metrics: &[FootprintMetric] = match metric.as_str() {
                "vsz" => &[FootprintMetric::Vsz],
                "rss" => &[FootprintMetric::Rss],
                "sys_used" => &[FootprintMetric::SysUsed],
                _ => &[
                    FootprintMetric::Vsz,
                    FootprintMetric::Rss,
                    FootprintMetric::SysUsed,
                ],
            };
            let sort = matches!(sortby, SortBy::Size);
            let text: String = metrics
                .iter()
                .map(|&m| {
                    let d = footprint_dist(&snaps, m, sort);
                    dist_text(m.name(), &d, &percentiles, all_footprint, raw_number)
                })
                .collect();
            emit(&text, None)
        }
        Kind::RecordInfo { input, raw_numbers } => {
            let file = input.path();
            let records = read(&file)?;
            let infos = damon_damo::info::record_info(&records);
            emit(
                &damon_damo::info::record_info_text(&infos, raw_numbers),
                None,
            )
        }
        Kind::Access {
            input,
            snapshot,
            tid,
            style,
            hist_logscale,
            hist_cumulate,
            percentiles_range,
            raw_number,
            json,
            filter,
            output,
        } => {
            let file = input.path();
            let style = style
                .map(|n| {
                    AccessStyle::from_name(&n).ok_or_else(|| {
                        format!(
                            "--style {n:?}: expected temperature-sz-hist, recency-sz-hist, \
                             temperature-percentiles, recency-percentiles, idle-time-percentiles, hot or cold"
                        )
                    })
                })
                .transpose()?;
            let mut f = filter.filter()?;
            if let Some(n) = snapshot {
                if f.snapshot_idx.is_some() {
                    return Err(
                        "--snapshot and --snapshot_idx select snapshots twice; give one".into(),
                    );
                }
                f.snapshot_idx = Some(vec![(n as u64, n as u64)]);
            }
            let mut records = read(&file)?;
            records.retain(|r| tid.is_none_or(|t| t == r.target_id));
            if records.is_empty() {
                return Err(match tid {
                    Some(t) => format!("{}: no record of target {t}", file.display()),
                    None => format!("No record in {}", file.display()),
                });
            }
            let picked = f.snapshot_idx.is_some() || f.snapshot_time_ns.is_some();
            f.apply(&mut records).map_err(|e| e.to_string())?;
            if json {
                return emit(&damon_damo::write_json(&records), output.as_ref());
            }
            if let Some(style) = style {
                let percentiles = percentiles_range
                    .as_deref()
                    .map(access_percentiles)
                    .transpose()?;
                let o = StyleOptions {
                    style,
                    raw_number,
                    temperature_weights: f.temperature_weights,
                    hist_logscale,
                    hist_cumulate,
                    percentiles,
                };
                let text = style_text(&records, &o).map_err(|e| e.to_string())?;
                return emit(&text, output.as_ref());
            }
            // the region table: the last snapshot, or every selected one
            let mut texts = Vec::new();
            for r in &records {
                let n = r.snapshots.len();
                let idxs: Vec<usize> = if picked {
                    (0..n).collect()
                } else {
                    n.checked_sub(1).into_iter().collect()
                };
                for i in idxs {
                    let rep = access(
                        std::slice::from_ref(r),
                        &AccessOptions {
                            snapshot: Some(i),
                            target_id: None,
                        },
                    )
                    .map_err(|e| e.to_string())?;
                    texts.extend(rep.iter().map(|r| r.to_text()));
                }
            }
            if texts.is_empty() {
                return Err("no snapshot passes the filters".into());
            }
            emit(&texts.join("\n"), output.as_ref())
        }
        Kind::Holistic {
            access_pattern,
            file,
            footprints,
            profile,
            perf_path,
        } => {
            let file = file
                .or(access_pattern)
                .unwrap_or_else(|| PathBuf::from("damon.data"));
            let records = read(&file)?;
            let side = |given: Option<PathBuf>, ext: &str| {
                given.unwrap_or_else(|| {
                    let mut p = file.clone().into_os_string();
                    p.push(ext);
                    PathBuf::from(p)
                })
            };
            let fp_path = side(footprints, ".mem_footprint");
            let fps = if fp_path.exists() {
                Some(damon_damo::footprint::read_footprints(&fp_path).map_err(|e| e.to_string())?)
            } else {
                eprintln!(
                    "report: no {} (record writes it on real-time recordings): rss, vsz and sys_used left out",
                    fp_path.display()
                );
                None
            };
            let profile = side(profile, ".profile");
            let perf = if profile.exists() || perf_path != "perf" {
                match std::process::Command::new(&perf_path)
                    .arg("report")
                    .arg("-i")
                    .arg(&profile)
                    .arg("--stdio")
                    .stderr(std::process::Stdio::null())
                    .output()
                {
                    Ok(o) if o.status.success() => {
                        Some(String::from_utf8_lossy(&o.stdout).into_owned())
                    }
                    Ok(o) => {
                        eprintln!(
                            "report: `{perf_path} report -i {}` failed ({}): hotspots left out",
                            profile.display(),
                            o.status
                        );
                        None
                    }
                    Err(e) => {
                        eprintln!("report: cannot run {perf_path} ({e}): hotspots left out");
                        None
                    }
                }
            } else {
                None
            };
            let text =
                damon_damo::holistic::holistic_text(&records, fps.as_deref(), perf.as_deref())
                    .map_err(|e| report_error(&file, e))?;
            emit(&text, None)
        }
        Kind::Times {
            input,
            inputs,
            filter,
        } => {
            let file = inputs
                .and_then(|v| v.into_iter().next())
                .unwrap_or_else(|| input.path());
            let f = filter.filter()?;
            let mut records = read(&file)?;
            f.apply(&mut records).map_err(|e| e.to_string())?;
            emit(
                &damon_damo::filter::times_text(&damon_damo::filter::times(&records)),
                None,
            )
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("report: {e}");
            ExitCode::from(1)
        }
    }
}
