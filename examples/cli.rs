//! Pieces shared by the command-line examples (`record`, `monitor`,
//! `reclaim`, `lru_sort`): argument parsers, a runner that drives a
//! context on a worker thread or on virtual time, a bounded history of
//! aggregation snapshots, and the text the examples print.
//!
//! Everything here is a plain function or type so that the examples'
//! behaviour can be tested without running their binaries.

use damon_core::damos::Scheme;
use damon_core::{
    damon_start, AddrRange, Clock, Context, DamonHandle, ExitReason, HotRange, Kdamond, RealClock,
    SimPattern,
};
use damon_damo::fmt::{format_sz, format_time_ns};
use damon_damo::{heatmap, wss, HeatmapOptions, Record, RecordRegion, Snapshot, WssOptions};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

// ------------------------------------------------------------ parsing

fn parse_scaled(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(format!("bad size {s:?}: unknown unit {c:?}")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().map_err(|_| {
        format!("bad size {s:?}: expected a number with an optional K/M/G/T suffix")
    })?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("bad size {s:?}"));
    }
    Ok(v * mult as f64)
}

/// Parses a byte count: `4096`, `512K`, `1.5G` (binary units `K`, `M`,
/// `G`, `T`, or `B`; decimals allowed). Unlike [`parse_size`], the result
/// is not rounded.
///
/// ```
/// use damon_examples::cli::parse_bytes;
/// assert_eq!(parse_bytes("128M"), Ok(128 << 20));
/// assert_eq!(parse_bytes("1000"), Ok(1000));
/// assert!(parse_bytes("1X").is_err());
/// ```
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let v = parse_scaled(s)?;
    if v >= u64::MAX as f64 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(v as u64)
}

/// Parses a size of the simulated space like [`parse_bytes`], rounded down
/// to a 4 KiB page, and refuses sizes from 128 TiB (2^47) on.
///
/// ```
/// use damon_examples::cli::parse_size;
/// assert_eq!(parse_size("16G"), Ok(16 << 30));
/// assert_eq!(parse_size("5000"), Ok(4096));
/// assert!(parse_size("200T").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bytes = parse_scaled(s)?;
    if bytes >= (1u64 << 47) as f64 {
        return Err(format!("size {s:?} exceeds the 128 TiB simulated space"));
    }
    Ok(bytes as u64 / 4096 * 4096)
}

/// The syntax of `--sim`, for help texts.
pub const SIM_SPEC_HELP: &str =
    "SPEC is SIZE[:hot=START-END@P,...][:exit=SECS], e.g. 16G:hot=1G-1.4G@0.8,5G-5.2G@0.5\n\
(sizes take K/M/G/T suffixes and decimals; P is a per-sample access probability in [0, 1];\n\
exit=SECS makes the simulated target exit after SECS seconds).";

/// Parses a simulated address space: `SIZE[:hot=START-END@P,...][:exit=SECS]`,
/// one range `[0, SIZE)` whose listed hot ranges are accessed with
/// probability `P` per sample and the rest never; with `exit=SECS` the
/// target exits (becomes invalid) that long after the first sample.
///
/// ```
/// let p = damon_examples::cli::parse_sim("1G:hot=0-256M@0.9:exit=2.5").unwrap();
/// assert_eq!(p.space_bytes(), 1 << 30);
/// assert_eq!(p.total_hot_bytes(0), 256 << 20);
/// assert_eq!(p.exit_after_us, Some(2_500_000));
/// ```
pub fn parse_sim(spec: &str) -> Result<SimPattern, String> {
    let mut parts = spec.split(':');
    let size = parse_size(parts.next().unwrap_or_default())?;
    if size == 0 {
        return Err("the simulated space needs a non-zero size".into());
    }
    let mut hot = Vec::new();
    let mut exit_after_us = None;
    for part in parts {
        if let Some(secs) = part.strip_prefix("exit=") {
            let s = parse_secs(secs).map_err(|e| format!("bad exit time in {spec:?}: {e}"))?;
            exit_after_us = Some((s * 1e6) as u64);
            continue;
        }
        let list = part.strip_prefix("hot=").ok_or_else(|| {
            format!("bad sim spec {spec:?}: expected SIZE[:hot=START-END@P,...][:exit=SECS]")
        })?;
        for item in list.split(',').filter(|x| !x.trim().is_empty()) {
            let (range, p) = item
                .split_once('@')
                .ok_or_else(|| format!("bad hot range {item:?}: expected START-END@P"))?;
            let (a, b) = range
                .split_once('-')
                .ok_or_else(|| format!("bad hot range {item:?}: expected START-END@P"))?;
            let (start, end) = (parse_size(a)?, parse_size(b)?);
            let probability: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("bad probability {p:?} in {item:?}"))?;
            if !(0.0..=1.0).contains(&probability) {
                return Err(format!(
                    "probability {probability} in {item:?} is not in [0, 1]"
                ));
            }
            if start >= end || end > size {
                return Err(format!(
                    "hot range {item:?} is empty or outside [0, {size})"
                ));
            }
            hot.push(HotRange {
                range: AddrRange::new(start, end),
                probability,
            });
        }
    }
    hot.sort_by_key(|h| h.range.start);
    let mut p = SimPattern::with_hot(size, hot);
    p.exit_after_us = exit_after_us;
    p.validate().map_err(|e| e.to_string())?;
    Ok(p)
}

/// Parses a positive, finite number of seconds (for `--duration`).
///
/// ```
/// use damon_examples::cli::parse_secs;
/// assert_eq!(parse_secs("1.5"), Ok(1.5));
/// assert!(parse_secs("0").is_err() && parse_secs("-1").is_err() && parse_secs("inf").is_err());
/// ```
pub fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v <= 1e7) {
        return Err(format!("{s:?}: expected a positive number of seconds"));
    }
    Ok(v)
}

/// Checks that process `pid` exists, with a message naming it if not.
pub fn check_pid(pid: u32) -> Result<(), String> {
    if pid == 0 {
        return Err("pid 0 is not a process".into());
    }
    match std::fs::metadata(format!("/proc/{pid}")) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("no process with pid {pid}"))
        }
        Err(e) => Err(format!("cannot check process {pid}: /proc/{pid}: {e}")),
    }
}

// ------------------------------------------------------------ formatting

/// A size in damo's style (`1.500 GiB`, `512 B`).
pub fn size(bytes: u64) -> String {
    format_sz(bytes as f64)
}

/// A time in microseconds in damo's style (`100 ms`, `1.500 s`).
pub fn time_us(us: u64) -> String {
    format_time_ns(us as f64 * 1000.0)
}

// ------------------------------------------------------------ child command

/// A command started to be monitored. Dropping it kills the command if it
/// still runs, and reaps it.
#[derive(Debug)]
pub struct Command {
    child: Child,
    argv: Vec<String>,
    status: Option<ExitStatus>,
}

impl Command {
    /// Starts `argv` (program and arguments) with inherited stdio.
    pub fn spawn(argv: &[String]) -> Result<Self, String> {
        let (prog, args) = argv
            .split_first()
            .ok_or_else(|| "no command given after --".to_string())?;
        let child = std::process::Command::new(prog)
            .args(args)
            .spawn()
            .map_err(|e| format!("cannot start {prog:?}: {e}"))?;
        Ok(Self {
            child,
            argv: argv.to_vec(),
            status: None,
        })
    }

    /// The command's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }

    /// How the command exited, if it has (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the command to exit by itself, then kills
    /// it; returns how it ended and whether it had to be killed.
    pub fn finish(&mut self, timeout: Duration) -> (Option<ExitStatus>, bool) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return (Some(s), false);
            }
            if std::time::Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
        (self.status, true)
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------ runner

/// Why a run ended.
#[derive(Clone, Debug)]
pub enum Stop {
    /// The requested duration passed.
    Duration,
    /// The user interrupted (Ctrl-C or SIGTERM).
    Interrupted,
    /// The context ended by itself (e.g. every target exited).
    Exited(ExitReason),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Duration => f.write_str("the requested duration passed"),
            Stop::Interrupted => f.write_str("interrupted"),
            Stop::Exited(ExitReason::AllTargetsInvalid { detail }) => {
                write!(f, "every target exited ({detail})")
            }
            Stop::Exited(r) => write!(f, "monitoring ended: {r}"),
        }
    }
}

impl Stop {
    /// The exit reason when the context failed (backend error, panic),
    /// which a program should report with a non-zero exit status.
    pub fn failure(&self) -> Option<&ExitReason> {
        match self {
            Stop::Exited(
                r @ (ExitReason::OpsFailed(_)
                | ExitReason::WorkerPanicked(_)
                | ExitReason::CallbackPanicked { .. }),
            ) => Some(r),
            _ => None,
        }
    }
}

/// Ends a started command after a run that stopped for `stop`: after the
/// requested duration it is killed at once; otherwise (it exited, or the
/// user interrupted, which the command saw too) it gets a second to exit.
/// Returns the text to append to the "stopped" line.
pub fn end_command(cmd: &mut Command, stop: &Stop) -> String {
    let grace = match stop {
        Stop::Duration => Duration::ZERO,
        _ => Duration::from_secs(1),
    };
    match cmd.finish(grace) {
        (_, true) => format!("; killed `{}`", cmd.display()),
        (Some(status), false) => format!("; `{}` exited ({status})", cmd.display()),
        (None, false) => String::new(),
    }
}

enum Engine {
    Threaded(DamonHandle),
    Stepped(Box<Kdamond>),
}

/// Runs one context either on a worker thread ([`damon_start`], real time)
/// or on the caller's thread step by step (meant for a
/// [`damon_core::VirtualClock`]: as fast as the CPU goes, deterministic).
pub struct Runner {
    engine: Engine,
    clock: Arc<dyn Clock>,
    start_us: u64,
    ended: Option<ExitReason>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("stepped", &matches!(self.engine, Engine::Stepped(_)))
            .field("elapsed_us", &self.elapsed_us())
            .finish()
    }
}

impl Runner {
    /// Starts `ctx`; with `stepped`, nothing runs until [`Runner::run_until`].
    /// A context without a clock gets a [`RealClock`].
    pub fn start(mut ctx: Context, stepped: bool) -> Result<Self, String> {
        let clock = ctx
            .clock
            .get_or_insert_with(|| Arc::new(RealClock::new()))
            .clone();
        let start_us = clock.now_us();
        let engine = if stepped {
            let mut kd = Kdamond::new(ctx).map_err(|e| e.to_string())?;
            kd.init().map_err(|e| e.to_string())?;
            Engine::Stepped(Box::new(kd))
        } else {
            let mut handles = damon_start(vec![ctx], false).map_err(|e| e.to_string())?;
            Engine::Threaded(handles.remove(0))
        };
        Ok(Self {
            engine,
            clock,
            start_us,
            ended: None,
        })
    }

    /// Microseconds of the context's clock since the start.
    pub fn elapsed_us(&self) -> u64 {
        self.clock.now_us().saturating_sub(self.start_us)
    }

    /// Lets the context run until `until_us` (of [`Runner::elapsed_us`]);
    /// returns early with why it ended, or when `interrupt` is set.
    pub fn run_until(&mut self, until_us: u64, interrupt: &AtomicBool) -> Option<Stop> {
        if let Some(r) = &self.ended {
            return Some(Stop::Exited(r.clone()));
        }
        match &mut self.engine {
            Engine::Threaded(h) => loop {
                if interrupt.load(Ordering::Relaxed) {
                    return Some(Stop::Interrupted);
                }
                if !h.is_running() {
                    let r = h.wait().unwrap_or(ExitReason::Stopped);
                    self.ended = Some(r.clone());
                    return Some(Stop::Exited(r));
                }
                let now = self.clock.now_us().saturating_sub(self.start_us);
                if now >= until_us {
                    return None;
                }
                std::thread::sleep(Duration::from_micros((until_us - now).min(20_000)));
            },
            Engine::Stepped(kd) => {
                let mut stuck = 0u32;
                loop {
                    if interrupt.load(Ordering::Relaxed) {
                        return Some(Stop::Interrupted);
                    }
                    let before = self.clock.now_us();
                    if before.saturating_sub(self.start_us) >= until_us {
                        return None;
                    }
                    if let Some(r) = kd.step() {
                        self.ended = Some(r.clone());
                        return Some(Stop::Exited(r));
                    }
                    // every step sleeps on the clock; guard against one that does not
                    stuck = if self.clock.now_us() == before {
                        stuck + 1
                    } else {
                        0
                    };
                    if stuck > 10_000 {
                        return None;
                    }
                }
            }
        }
    }

    /// Runs `f` on the context (between two loop steps) and returns its
    /// value; `None` once the context has ended.
    pub fn with_ctx<R, F>(&self, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Context) -> R + Send + 'static,
    {
        match &self.engine {
            Engine::Threaded(h) => h.call(f).ok(),
            Engine::Stepped(kd) => Some(f(kd.ctx())),
        }
    }

    /// Stops the context and returns it as it ended (targets, scheme stats).
    pub fn finish(self) -> Option<Context> {
        match self.engine {
            Engine::Threaded(h) => {
                h.stop();
                h.take_final_context()
            }
            Engine::Stepped(kd) => Some(kd.terminate()),
        }
    }
}

// ------------------------------------------------------------ history

/// Aggregation snapshots of every target, bounded: beyond `max_snapshots`
/// per target, every other snapshot is dropped and the kept one is
/// stretched over the dropped one's time, so a long run keeps its whole
/// time span at a coarser resolution in bounded memory.
#[derive(Clone, Debug)]
pub struct History {
    records: Vec<Record>,
    max_snapshots: usize,
}

impl History {
    /// An empty history keeping at most `max_snapshots` (at least 2) per target.
    pub fn new(max_snapshots: usize) -> Self {
        Self {
            records: Vec::new(),
            max_snapshots: max_snapshots.max(2),
        }
    }

    /// Appends records taken from a [`damon_damo::Recorder`]
    /// (`take_records`): record `i` continues target `i`.
    pub fn absorb(&mut self, new: Vec<Record>) {
        for (i, r) in new.into_iter().enumerate() {
            match self.records.get_mut(i) {
                Some(old) => {
                    old.snapshots.extend(r.snapshots);
                    if r.intervals.is_some() {
                        old.intervals = r.intervals;
                    }
                }
                None => self.records.push(r),
            }
        }
        let max = self.max_snapshots;
        for r in &mut self.records {
            while r.snapshots.len() > max {
                thin(&mut r.snapshots);
            }
        }
    }

    /// The records so far.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Snapshots of the first target.
    pub fn nr_snapshots(&self) -> usize {
        self.records.first().map_or(0, |r| r.snapshots.len())
    }
}

/// Keeps every second snapshot (and the last), each stretched back to the
/// start of the one dropped before it.
fn thin(snaps: &mut Vec<Snapshot>) {
    let old = std::mem::take(snaps);
    let n = old.len();
    let mut prev_start = None;
    for (i, mut s) in old.into_iter().enumerate() {
        if i % 2 == 0 && i + 1 < n {
            prev_start = Some(s.start_time);
            continue;
        }
        if let Some(st) = prev_start.take() {
            s.start_time = st.min(s.start_time);
        }
        snaps.push(s);
    }
}

// ------------------------------------------------------------ live table

/// Samples per aggregation of a snapshot of `r` (the 100 % access rate).
pub fn max_nr_accesses(r: &Record, s: &Snapshot) -> u32 {
    let from_record = r
        .intervals
        .map(|iv| iv.aggr_us / iv.sample_us.max(1))
        .filter(|&m| m > 0);
    let from_snapshot = s.sample_interval_us.and_then(|si| {
        let aggr_us = s.end_time.saturating_sub(s.start_time) / 1000;
        Some(aggr_us / si.max(1)).filter(|&m| m > 0)
    });
    let seen = s.regions.iter().map(|x| x.nr_accesses).max().unwrap_or(0);
    from_record
        .or(from_snapshot)
        .map_or(seen, |m| m.min(u64::from(u32::MAX)) as u32)
        .max(seen)
        .max(1)
}

/// Length of one aggregation of `r` in microseconds (for ages).
pub fn aggr_us(r: &Record, s: &Snapshot) -> u64 {
    r.intervals
        .map(|iv| iv.aggr_us)
        .unwrap_or_else(|| s.end_time.saturating_sub(s.start_time) / 1000)
}

/// Access rate in percent: `nr_accesses * 100 / max_nr_accesses`.
pub fn access_percent(nr_accesses: u32, max_nr_accesses: u32) -> u64 {
    u64::from(nr_accesses) * 100 / u64::from(max_nr_accesses.max(1))
}

/// The regions to show when at most `max_rows` fit: the hottest (most
/// accesses; among equals the largest), in address order, with the count
/// and bytes of the others.
pub fn hottest_rows(regions: &[RecordRegion], max_rows: usize) -> (Vec<RecordRegion>, usize, u64) {
    let mut idx: Vec<usize> = (0..regions.len()).collect();
    if regions.len() > max_rows {
        idx.sort_by_key(|&i| {
            let r = &regions[i];
            (
                std::cmp::Reverse(r.nr_accesses),
                std::cmp::Reverse(r.size()),
                r.start,
            )
        });
        idx.truncate(max_rows);
    }
    let mut rows: Vec<RecordRegion> = idx.iter().map(|&i| regions[i]).collect();
    rows.sort_by_key(|r| r.start);
    let hidden = regions.len() - rows.len();
    let shown: u64 = rows.iter().map(RecordRegion::size).sum();
    let total: u64 = regions.iter().map(RecordRegion::size).sum();
    (rows, hidden, total - shown)
}

/// One block of the live view: a header line (title, elapsed time, number
/// of regions, total size), then per target a table of its regions in the
/// last aggregation (start, end, size, access rate, age), limited to the
/// `max_rows` hottest. `labels[i]` names target `i`.
pub fn render_frame(
    title: &str,
    elapsed_us: u64,
    records: &[Record],
    labels: &[String],
    max_rows: usize,
) -> String {
    let latest: Vec<(usize, &Record, &Snapshot)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.snapshots.last().map(|s| (i, r, s)))
        .collect();
    let mut out = String::new();
    if latest.is_empty() {
        out.push_str(&format!(
            "{title} | elapsed {} | waiting for the first aggregation\n",
            time_us(elapsed_us)
        ));
        return out;
    }
    let nr: usize = latest.iter().map(|(_, _, s)| s.regions.len()).sum();
    let total: u64 = latest.iter().map(|(_, _, s)| s.total_bytes()).sum();
    out.push_str(&format!(
        "{title} | elapsed {} | total {} in {nr} regions\n",
        time_us(elapsed_us),
        size(total)
    ));
    for (i, r, s) in latest {
        let max = max_nr_accesses(r, s);
        let aggr = aggr_us(r, s);
        let label = labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("target {i}"));
        out.push_str(&format!(
            "{label}: {} regions, {}\n",
            s.regions.len(),
            size(s.total_bytes())
        ));
        out.push_str(&format!(
            "{:>18} {:>18} {:>14} {:>7} {:>12}\n",
            "start", "end", "size", "access", "age"
        ));
        let (rows, hidden, hidden_bytes) = hottest_rows(&s.regions, max_rows);
        for row in &rows {
            out.push_str(&format!(
                "{:>#18x} {:>#18x} {:>14} {:>5} % {:>12}\n",
                row.start,
                row.end,
                size(row.size()),
                access_percent(row.nr_accesses, max),
                match u64::from(row.age).saturating_mul(aggr) {
                    0 => "0".to_string(),
                    us => time_us(us),
                },
            ));
        }
        if hidden > 0 {
            out.push_str(&format!(
                "... {hidden} colder regions ({}) not shown\n",
                size(hidden_bytes)
            ));
        }
    }
    out
}

/// ANSI: cursor home, clear screen.
pub const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// A frame as printed: on a terminal it redraws the screen; otherwise
/// frames follow each other separated by a blank line.
pub fn present(frame: &str, tty: bool) -> String {
    if tty {
        format!("{CLEAR_SCREEN}{frame}")
    } else {
        format!("{frame}\n")
    }
}

/// The end-of-run report: an ASCII time x address heatmap (damo's
/// `report heatmap`, `resolution` = time rows x address columns) and the
/// working set size percentiles (damo's `report wss`, skipping the first
/// fifth of the snapshots, at most 20, as warm-up).
pub fn render_summary(records: &[Record], resolution: (usize, usize)) -> String {
    let mut out = String::new();
    out.push_str("# heatmap: time (rows, top to bottom) x address (columns)\n");
    let opts = HeatmapOptions {
        resolution,
        ..HeatmapOptions::default()
    };
    match heatmap(records, &opts) {
        Ok(map) => out.push_str(&map.to_ascii()),
        Err(e) => out.push_str(&format!("# no heatmap: {e}\n")),
    }
    let n = records.iter().map(|r| r.snapshots.len()).max().unwrap_or(0);
    out.push_str("# working set size (bytes accessed per aggregation interval)\n");
    let rep = wss(
        records,
        &WssOptions {
            exclude_samples: (n / 5).min(20),
            ..WssOptions::default()
        },
    );
    out.push_str(&rep.to_text(false));
    out
}

// ------------------------------------------------------------ schemes

/// One line of scheme statistics: the scheme's label, watermark state, the
/// kernel's stat names (`nr_tried`, `sz_tried`, `nr_applied`, `sz_applied`,
/// `qt_exceeds`; sizes in bytes, with a human form) and the effective size
/// quota of the current window (`esz`, `unlimited` without a quota).
/// `status` is the engine's `(esz, activated)` if known.
///
/// ```
/// use damon_core::damos::{AccessPattern, Action, Scheme};
/// let mut s = Scheme::new(AccessPattern::default(), Action::Pageout);
/// s.stat.nr_tried = 3;
/// s.stat.sz_applied = 8192;
/// let line = damon_examples::cli::scheme_line("pageout", &s, Some((0, true)));
/// assert!(line.starts_with("pageout [active]: nr_tried=3 "), "{line}");
/// assert!(line.contains("sz_applied=8192 (8.000 KiB)") && line.ends_with("effective_quota=unlimited"));
/// ```
pub fn scheme_line(label: &str, s: &Scheme, status: Option<(u64, bool)>) -> String {
    let st = &s.stat;
    let state = match status {
        Some((_, true)) => "active",
        Some((_, false)) => "inactive (watermarks)",
        None => "not started",
    };
    let quota = if !s.quota.is_set() {
        "unlimited".to_string()
    } else {
        match status {
            Some((esz, _)) => format!("{esz} ({})", size(esz)),
            None => "?".into(),
        }
    };
    format!(
        "{label} [{state}]: nr_tried={} sz_tried={} ({}) nr_applied={} sz_applied={} ({}) qt_exceeds={} effective_quota={quota}",
        st.nr_tried,
        st.sz_tried,
        size(st.sz_tried),
        st.nr_applied,
        st.sz_applied,
        size(st.sz_applied),
        st.qt_exceeds,
    )
}

/// Loads the first context of a damo kdamonds JSON file for monitoring:
/// its schemes are dropped, and `program` warns about them and about any
/// further context. Errors name the file.
pub fn kdamonds_context(
    path: &std::path::Path,
    program: &str,
) -> Result<(Context, damon_damo::ContextParams), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = damon_damo::parse_kdamonds(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let params = cfg
        .contexts()
        .next()
        .ok_or_else(|| format!("{}: no context", path.display()))?
        .clone();
    let n = cfg.contexts().count();
    if n > 1 {
        eprintln!(
            "{program}: {}: using the first of {n} contexts",
            path.display()
        );
    }
    let mut ctx = params.to_context();
    if !params.schemes.is_empty() {
        eprintln!(
            "{program}: ignoring the {} scheme(s) of the config (monitoring only)",
            params.schemes.len()
        );
        ctx.schemes.clear();
    }
    Ok((ctx, params))
}

/// Default free-memory rate of a simulation: halfway between the low and
/// middle watermarks, where a scheme is active.
pub fn default_sim_free_rate(low: u64, mid: u64) -> u64 {
    low + mid.saturating_sub(low) / 2
}

/// A context for the `vaddr` backend over processes `pids` and, if
/// `command` is not empty, a command started for it (after the backend was
/// found usable, so nothing starts when monitoring cannot). Returns the
/// context, the command and a description of the targets.
pub fn process_context(
    pids: &[u32],
    command: &[String],
) -> Result<(Context, Option<Command>, String), String> {
    let mut pids = pids.to_vec();
    pids.sort_unstable();
    pids.dedup();
    for &pid in &pids {
        check_pid(pid)?;
    }
    if pids.is_empty() && command.is_empty() {
        return Err("no process given: use --pid PID (repeatable) or -- COMMAND".into());
    }
    damon_ops_vaddr::register();
    let mut ctx = Context::new();
    damon_core::damon_select_ops(&mut ctx, "vaddr")
        .map_err(|e| format!("cannot monitor processes: {e}"))?;
    let mut what: Vec<String> = pids.iter().map(|p| format!("pid {p}")).collect();
    let cmd = if command.is_empty() {
        None
    } else {
        let c = Command::spawn(command)?;
        what.push(format!("`{}` (pid {})", c.display(), c.pid()));
        pids.push(c.pid());
        Some(c)
    };
    ctx.targets = pids
        .iter()
        .map(|&p| damon_core::Target::new(u64::from(p)))
        .collect();
    Ok((ctx, cmd, what.join(", ")))
}

/// A context over the simulated space of `spec` (see [`parse_sim`]), one target.
pub fn sim_context(spec: &str, seed: Option<u64>) -> Result<(Context, String), String> {
    let pattern = parse_sim(spec).map_err(|e| format!("--sim: {e}"))?;
    let what = format!("simulated {} ({spec})", size(pattern.space_bytes()));
    let mut ops = damon_core::SimOps::new(pattern);
    if let Some(seed) = seed {
        ops = ops.with_seed(seed);
    }
    let mut ctx = Context::new();
    ctx.set_ops("sim", Box::new(ops));
    ctx.targets.push(damon_core::Target::new(0));
    ctx.seed = seed;
    Ok((ctx, what))
}

/// How [`run_schemes`] runs and reports.
pub struct SchemesRun<'a> {
    /// Program name, the prefix of every report line.
    pub name: &'a str,
    /// Scheme labels, by position (the action name where missing).
    pub labels: &'a [&'a str],
    /// Run on the caller's thread (virtual time) instead of a worker.
    pub stepped: bool,
    /// Time between two reports (µs).
    pub interval_us: u64,
    /// Stop after this long (µs); `None` runs until interrupted or the
    /// targets exit.
    pub duration_us: Option<u64>,
    /// Set by Ctrl-C.
    pub interrupt: &'a AtomicBool,
    /// The engine's `(esz, activated)` per scheme.
    pub status: Box<dyn Fn() -> Vec<(u64, bool)> + 'a>,
    /// The free memory rate (per mille) the watermarks see.
    pub free_mem_rate: Box<dyn FnMut() -> Option<u64> + 'a>,
}

impl std::fmt::Debug for SchemesRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemesRun")
            .field("name", &self.name)
            .field("stepped", &self.stepped)
            .field("interval_us", &self.interval_us)
            .field("duration_us", &self.duration_us)
            .finish()
    }
}

/// The report block of [`run_schemes`]: a header with the time and the
/// free memory rate, then one [`scheme_line`] per scheme.
pub fn schemes_report(
    name: &str,
    elapsed_us: u64,
    free_mem_rate: Option<u64>,
    labels: &[&str],
    schemes: &[Scheme],
    status: &[(u64, bool)],
) -> String {
    let mut out = format!("{name}: t={}", time_us(elapsed_us));
    if let Some(r) = free_mem_rate {
        out.push_str(&format!(", free_mem_rate={r} per mille"));
    }
    out.push('\n');
    for (i, s) in schemes.iter().enumerate() {
        let label = labels.get(i).copied().unwrap_or(s.action.name());
        out.push_str("  ");
        out.push_str(&scheme_line(label, s, status.get(i).copied()));
        out.push('\n');
    }
    out
}

/// Runs a context with schemes (its DAMOS engine installed), writing a
/// [`schemes_report`] every `interval_us` and a final one through `emit`
/// (which returns false once its output is closed). Returns why it stopped
/// and the elapsed time.
pub fn run_schemes(
    ctx: Context,
    mut opts: SchemesRun<'_>,
    emit: &mut dyn FnMut(&str) -> bool,
) -> Result<(Stop, u64), String> {
    let mut runner = Runner::start(ctx, opts.stepped).map_err(|e| format!("cannot start: {e}"))?;
    let interval = opts.interval_us.max(1);
    let mut next = interval;
    let stop = loop {
        let until = opts.duration_us.map_or(next, |d| next.min(d));
        let stop = runner.run_until(until, opts.interrupt);
        let elapsed = runner.elapsed_us();
        if stop.is_none() {
            if let Some(schemes) = runner.with_ctx(|c| c.schemes.clone()) {
                let text = schemes_report(
                    opts.name,
                    elapsed,
                    (opts.free_mem_rate)(),
                    opts.labels,
                    &schemes,
                    &(opts.status)(),
                );
                if !emit(&text) {
                    break Stop::Interrupted;
                }
            }
        }
        if let Some(s) = stop {
            break s;
        }
        if opts.duration_us.is_some_and(|d| elapsed >= d) {
            break Stop::Duration;
        }
        while next <= elapsed {
            next += interval;
        }
    };
    let elapsed = runner.elapsed_us();
    let status = (opts.status)();
    let rate = (opts.free_mem_rate)();
    if let Some(ctx) = runner.finish() {
        let mut text = format!("{}: final statistics\n", opts.name);
        text.push_str(&schemes_report(
            opts.name,
            elapsed,
            rate,
            opts.labels,
            &ctx.schemes,
            &status,
        ));
        emit(&text);
    }
    Ok((stop, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_specs() {
        let p = parse_sim("16G:hot=1G-1.4G@0.8,5G-5.2G@0.5").unwrap();
        assert_eq!(p.space, vec![AddrRange::new(0, 16 << 30)]);
        let hot = &p.phases[0].hot;
        assert_eq!(hot.len(), 2);
        assert_eq!(hot[0].range.start, 1 << 30);
        assert_eq!(hot[0].range.end % 4096, 0);
        assert_eq!(hot[1].probability, 0.5);
        assert!(parse_sim("1G").is_ok());
        for bad in [
            "",
            "0",
            "1X",
            "1G:cold=1-2@1",
            "1G:hot=2M-1M@1",
            "1G:hot=0-2G@1",
            "1G:hot=0-1M@2",
            "1G:hot=0-1M",
            "1G:exit=0",
            "1G:exit=x",
            "1G:hot=0-1M@1:other=1",
        ] {
            assert!(parse_sim(bad).is_err(), "{bad}");
        }
    }
}
