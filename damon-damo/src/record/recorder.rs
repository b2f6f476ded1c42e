//! The live recorder: aggregation snapshots of a running context, as
//! records.

use super::*;

/// Turns aggregation results into records: call [`Recorder::record`] from
/// an `after_aggregation` callback (or use [`Recorder::install`]). Each call
/// adds one snapshot per target (`target_id` = target index).
///
/// Snapshot times are, by default, counted in sampling intervals since the
/// start (deterministic, exact under a virtual clock); with
/// [`Recorder::with_clock`] they come from a clock instead. Both are offset
/// by [`Recorder::with_time_origin_ns`].
///
/// ```
/// use damon_damo::Recorder;
/// use damon_core::{AddrRange, Context, HotRange, Kdamond, SimOps, SimPattern, Target, VirtualClock};
/// use std::sync::Arc;
///
/// let hot = HotRange { range: AddrRange::new(0, 64 << 20), probability: 0.8 };
/// let mut ctx = Context::new();
/// ctx.set_ops("sim", Box::new(SimOps::new(SimPattern::with_hot(1 << 30, vec![hot]))));
/// ctx.targets.push(Target::new(0));
/// ctx.clock = Some(Arc::new(VirtualClock::new()));
/// ctx.seed = Some(7);
/// let recorder = Recorder::new().install(&mut ctx);
/// let mut kd = Kdamond::new(ctx).unwrap();
/// kd.init().unwrap();
/// for _ in 0..200 { kd.step(); } // 200 samples of 5 ms = 10 aggregations
/// let records = recorder.lock().records().to_vec();
/// assert_eq!(records[0].snapshots.len(), 10);
/// assert_eq!(records[0].snapshots[0].end_time, 100_000_000);
/// ```
#[derive(Debug, Default)]
pub struct Recorder {
    records: Vec<Record>,
    kdamond_idx: u64,
    context_idx: u64,
    origin_ns: u64,
    clock: Option<ClockRef>,
    last_sis: u64,
    elapsed_ns: u64,
    last_end_ns: Option<u64>,
    writer: Option<RecordWriter>,
    write_error: Option<DamoError>,
    /// Keep one aggregation per this many ns (damo's `--snapshot`).
    every_ns: Option<u64>,
    /// End time of the first aggregation seen, and of the last kept.
    first_end_ns: Option<u64>,
    last_kept_ns: Option<u64>,
    /// Snapshots kept at most (per target).
    limit: Option<usize>,
}

/// A clock shared with the recorder.
#[derive(Clone)]
pub(super) struct ClockRef(Arc<dyn damon_core::clock::Clock>);

impl std::fmt::Debug for ClockRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// A recorder installed as a callback, shared with the caller.
pub type SharedRecorder = Arc<parking_lot::Mutex<Recorder>>;

impl Recorder {
    /// A recorder for kdamond 0, context 0, with times from 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the kdamond and context indices written into the records.
    pub fn with_indices(mut self, kdamond_idx: u64, context_idx: u64) -> Self {
        self.kdamond_idx = kdamond_idx;
        self.context_idx = context_idx;
        self
    }

    /// Adds `origin_ns` to every snapshot time (e.g. the monotonic time of
    /// the start, as perf timestamps have).
    pub fn with_time_origin_ns(mut self, origin_ns: u64) -> Self {
        self.origin_ns = origin_ns;
        self
    }

    /// Streams the snapshots into `writer` as they are taken instead of
    /// keeping them ([`records`](Recorder::records) stays empty): memory
    /// for one snapshot, however long the recording. Call
    /// [`finish`](Recorder::finish) to complete the file.
    pub fn with_writer(mut self, writer: RecordWriter) -> Self {
        self.writer = Some(writer);
        self
    }

    /// Completes the file of [`with_writer`](Recorder::with_writer) (a
    /// valid record of every snapshot taken, fsynced) and reports what it
    /// holds; the first write error, if one happened, instead. Without a
    /// writer, `Ok(None)`.
    pub fn finish(&mut self) -> Result<Option<WriteSummary>, DamoError> {
        if let Some(e) = self.write_error.take() {
            self.writer = None;
            return Err(e);
        }
        self.writer.take().map(RecordWriter::finish).transpose()
    }

    /// Keeps one aggregation every `every` (damo's `record --snapshot
    /// DELAY COUNT`): the first one `every` after the first aggregation,
    /// then one each `every` after the last kept. Each kept snapshot spans
    /// its own aggregation interval.
    pub fn with_snapshot_every(mut self, every: std::time::Duration) -> Self {
        self.every_ns = Some(u64::try_from(every.as_nanos()).unwrap_or(u64::MAX).max(1));
        self
    }

    /// Keeps at most `n` snapshots (of each target); later aggregations
    /// are not recorded.
    pub fn with_limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Takes snapshot end times from `clock` (µs, times 1000) instead of
    /// counting sampling intervals.
    pub fn with_clock(mut self, clock: Arc<dyn damon_core::clock::Clock>) -> Self {
        self.clock = Some(ClockRef(clock));
        self
    }

    /// Adds one snapshot per target of `ctx`, taken at an aggregation
    /// boundary (`after_aggregation`: `nr_accesses` holds the finished
    /// aggregation's count).
    pub fn record(&mut self, ctx: &Context) {
        let sis = ctx.passed_sample_intervals();
        let si_ns = ctx.attrs.sample_interval.saturating_mul(1000);
        let end = match &self.clock {
            Some(c) => c.0.now_us().saturating_mul(1000),
            None => {
                let d = sis.saturating_sub(self.last_sis).saturating_mul(si_ns);
                self.elapsed_ns = self.elapsed_ns.saturating_add(d);
                self.elapsed_ns
            }
        }
        .saturating_add(self.origin_ns);
        self.last_sis = sis;
        let start = self
            .last_end_ns
            .unwrap_or_else(|| end.saturating_sub(ctx.attrs.aggr_interval.saturating_mul(1000)))
            .min(end);
        self.last_end_ns = Some(end);
        if self.limit.is_some_and(|n| self.nr_snapshots() >= n) {
            return;
        }
        if let Some(every) = self.every_ns {
            let first = *self.first_end_ns.get_or_insert(end);
            let due = self.last_kept_ns.unwrap_or(first).saturating_add(every);
            if end < due {
                return;
            }
            self.last_kept_ns = Some(end);
        }
        let intervals = RecordIntervals::from_attrs(&ctx.attrs);
        for (ti, t) in ctx.targets.iter().enumerate() {
            let snap = Snapshot {
                start_time: start,
                end_time: end,
                regions: t
                    .regions
                    .iter()
                    .map(|r| RecordRegion {
                        start: r.ar.start,
                        end: r.ar.end,
                        nr_accesses: r.nr_accesses,
                        age: r.age,
                    })
                    .collect(),
                sample_interval_us: Some(ctx.attrs.sample_interval),
            };
            if let Some(w) = self.writer.as_mut() {
                let meta = RecordMeta {
                    index: ti,
                    kdamond_idx: self.kdamond_idx,
                    context_idx: self.context_idx,
                    intervals: Some(intervals),
                    scheme_idx: None,
                    target_id: ti as u64,
                };
                if self.write_error.is_none() {
                    if let Err(e) = w.push(&meta, &snap) {
                        self.write_error = Some(e);
                    }
                }
                continue;
            }
            if self.records.len() <= ti {
                let mut r = Record::new(ti as u64, Some(intervals));
                r.kdamond_idx = self.kdamond_idx;
                r.context_idx = self.context_idx;
                self.records.push(r);
            }
            self.records[ti].snapshots.push(snap);
        }
    }

    /// The records so far.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Snapshots taken so far (of the first target).
    pub fn nr_snapshots(&self) -> usize {
        match &self.writer {
            Some(w) => w.nr_snapshots() as usize,
            None => self.records.first().map_or(0, |r| r.snapshots.len()),
        }
    }

    /// Takes the records, leaving the recorder empty (times keep running).
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// Installs the recorder as `ctx`'s `after_aggregation` callback,
    /// keeping (and running first) any callback already there, and returns
    /// it shared so the caller can read the records while or after it runs.
    pub fn install(self, ctx: &mut Context) -> SharedRecorder {
        let shared: SharedRecorder = Arc::new(parking_lot::Mutex::new(self));
        let rec = Arc::clone(&shared);
        let mut prev = ctx.callbacks.after_aggregation.take();
        ctx.callbacks.after_aggregation = Some(Box::new(move |c: &Context| {
            let ctl = prev.as_mut().map_or(Control::Continue, |f| f(c));
            rec.lock().record(c);
            ctl
        }));
        shared
    }
}
