//! A bounded history of aggregation snapshots.

use damon_damo::{Record, Snapshot};

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
pub(crate) fn thin(snaps: &mut Vec<Snapshot>) {
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
