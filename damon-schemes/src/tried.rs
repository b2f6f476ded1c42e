//! Tried regions (`damos_walk`): a snapshot of the regions each scheme's
//! action was tried on during one apply interval of every scheme, and the
//! engine's published status.

use crossbeam_channel::{bounded, Receiver, Sender};
use damon_core::AddrRange;
use parking_lot::Mutex;
use std::sync::Arc;

/// One region an action was tried on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriedRegion {
    /// Index of the target in the context.
    pub target_idx: usize,
    /// The region (after any quota or filter split).
    pub range: AddrRange,
    /// The per-sample access estimate the pattern was matched against.
    pub nr_accesses: u32,
    /// Age at the time.
    pub age: u32,
    /// Bytes that passed the backend's filters.
    pub sz_filter_passed: u64,
}

/// The result of a walk: per scheme, its tried regions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TriedRegions {
    /// Indexed by scheme position.
    pub schemes: Vec<Vec<TriedRegion>>,
}

impl TriedRegions {
    /// Total bytes tried by scheme `i` (`tried_regions/total_bytes`).
    pub fn total_bytes(&self, i: usize) -> u64 {
        self.schemes
            .get(i)
            .map(|v| v.iter().map(|r| r.range.len()).sum())
            .unwrap_or(0)
    }
}

/// What the engine publishes about each scheme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchemeStatus {
    /// Effective size quota of the current window (`effective_bytes`).
    pub esz: u64,
    /// Whether watermarks let the scheme run.
    pub activated: bool,
    /// Current score threshold of quota prioritization.
    pub min_score: u32,
}

struct Walk {
    tx: Sender<TriedRegions>,
    collected: TriedRegions,
}

#[derive(Default)]
pub(crate) struct Shared {
    walk: Mutex<Option<Walk>>,
    status: Mutex<Vec<SchemeStatus>>,
    nr_schemes: Mutex<usize>,
}

impl Shared {
    /// Publishes each scheme's (esz, activated, min_score); the status
    /// vector keeps its capacity, so this does not allocate per step.
    pub(crate) fn publish(&self, st: impl Iterator<Item = (u64, bool, u32)>) {
        let mut s = self.status.lock();
        s.clear();
        s.extend(st.map(|(esz, activated, min_score)| SchemeStatus {
            esz,
            activated,
            min_score,
        }));
    }
    pub(crate) fn set_nr_schemes(&self, n: usize) {
        *self.nr_schemes.lock() = n;
    }
    pub(crate) fn walk_active(&self, nr_schemes: usize) -> bool {
        let mut w = self.walk.lock();
        match w.as_mut() {
            Some(walk) => {
                walk.collected.schemes.resize(nr_schemes, Vec::new());
                true
            }
            None => false,
        }
    }
    pub(crate) fn record(&self, si: usize, r: TriedRegion) {
        if let Some(w) = self.walk.lock().as_mut() {
            if let Some(v) = w.collected.schemes.get_mut(si) {
                v.push(r);
            }
        }
    }
    pub(crate) fn complete_walk(&self) {
        if let Some(w) = self.walk.lock().take() {
            let _ = w.tx.send(w.collected);
        }
    }
    pub(crate) fn cancel_walk(&self) {
        self.walk.lock().take();
    }
}

/// Why a tried-regions request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// A request is already pending (the kernel's -EBUSY).
    #[error("a tried-regions request is already pending")]
    Busy,
    /// The context has no scheme.
    #[error("the context has no scheme")]
    NoSchemes,
}

/// The user's side of the engine: tried regions and scheme status. Cheap to clone.
#[derive(Clone)]
pub struct DamosControl {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DamosControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DamosControl")
            .field("status", &self.status())
            .finish()
    }
}

impl DamosControl {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Asks for the regions every scheme's action is tried on during its
    /// next apply interval; the receiver gets them once every scheme has
    /// had one. It disconnects (cancelled) if every scheme becomes
    /// watermark-inactive, the schemes are removed, or the context stops.
    pub fn request_tried_regions(&self) -> Result<Receiver<TriedRegions>, WalkError> {
        if *self.shared.nr_schemes.lock() == 0 {
            return Err(WalkError::NoSchemes);
        }
        let mut w = self.shared.walk.lock();
        if w.is_some() {
            return Err(WalkError::Busy);
        }
        let (tx, rx) = bounded(1);
        *w = Some(Walk {
            tx,
            collected: TriedRegions::default(),
        });
        Ok(rx)
    }

    /// Per-scheme effective quota, activation and score threshold, as of the
    /// last loop iteration.
    pub fn status(&self) -> Vec<SchemeStatus> {
        self.shared.status.lock().clone()
    }
}
