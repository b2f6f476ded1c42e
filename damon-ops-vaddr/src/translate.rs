//! Address translation for one sample: every region's sampling address
//! through the process's pagemap, one `pread` per run of nearby pages, and
//! the present PFNs handed to the page_idle sampler by slot.

use crate::process::{ProcessFiles, Processes};
use damon_core::{OpsError, Region, TargetId};
use damon_ops_common::coalesce::{plan_runs, Coalesce, Run};
use damon_ops_common::pagemap::PagemapEntry;
use damon_ops_common::sampler::PfnSampler;
use damon_ops_common::sys::SysError;

/// Default coalescing of pagemap reads (units: pages). Holes and present
/// entries are cheap for the kernel to report, so gaps of a few hundred
/// pages are worth one call less.
pub const DEFAULT_PAGEMAP_COALESCE: Coalesce = Coalesce::new(128, 4096);

/// The translation scratch, kept between samples so nothing is allocated
/// per sample after warm-up.
#[derive(Debug)]
pub struct Translator {
    page_size: u64,
    coalesce: Coalesce,
    vpns: Vec<(u64, u32)>,
    runs: Vec<Run>,
    entries: Vec<u64>,
}

/// What one run's read found out about the process.
enum RunRead {
    /// This many entries were read (0: no pages, or the process exited).
    Entries(u64),
    /// The process exec'd and its files cannot be reopened: why.
    Lost(String),
}

impl Translator {
    /// A translator for pages of `page_size` bytes.
    pub fn new(page_size: u64) -> Self {
        Self {
            page_size,
            coalesce: DEFAULT_PAGEMAP_COALESCE,
            vpns: Vec::new(),
            runs: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Replaces the pagemap coalescing policy (units: pages).
    pub fn set_coalesce(&mut self, c: Coalesce) {
        self.coalesce = c;
    }

    /// Translates the sampling addresses of one target's regions (slots
    /// `base..`) and feeds present PFNs to `sampler`. A process that exits
    /// or can no longer be read is marked gone in `procs`.
    pub fn translate_target(
        &mut self,
        procs: &mut Processes,
        sampler: &mut PfnSampler,
        id: TargetId,
        regions: &[Region],
        base: usize,
    ) -> Result<(), OpsError> {
        self.plan(regions, base);
        let Some(p) = procs.get_mut(id) else {
            return Ok(());
        };
        // Buffers sized to the longest run the policy allows, once: run
        // lengths follow the random sampling addresses, so growing on demand
        // would allocate at random moments long after warm-up.
        let most = self.coalesce.max_len.max(1) as usize;
        if self.entries.len() < most {
            self.entries.resize(most, 0);
        }
        p.pagemap().reserve_entries(most);
        let mut lost = None;
        for run in &self.runs {
            let len = run.len as usize;
            if self.entries.len() < len {
                self.entries.resize(len, 0);
            }
            let got = match read_run(p, run.start, &mut self.entries[..len], id)? {
                RunRead::Entries(n) => n,
                RunRead::Lost(why) => {
                    lost = Some(why);
                    break;
                }
            };
            if got == 0 && !p.alive() {
                break;
            }
            for &(vpn, slot) in &self.vpns[run.items_start..run.items_end] {
                let idx = vpn - run.start;
                if idx < got {
                    if let Some(pfn) = PagemapEntry(self.entries[idx as usize]).pfn() {
                        sampler.add(slot as usize, pfn);
                    }
                }
            }
        }
        if let Some(reason) = lost {
            tracing::warn!(target: "damon::vaddr", pid = id, "{reason}");
            procs.close(id);
            procs.mark_gone(id, reason);
        } else if !p.alive() {
            procs.mark_exited(id);
        }
        Ok(())
    }

    /// Sorts the sampled pages by virtual page and plans the pagemap runs.
    fn plan(&mut self, regions: &[Region], base: usize) {
        let page = self.page_size;
        self.vpns.clear();
        for (i, r) in regions.iter().enumerate() {
            self.vpns.push((r.sampling_addr / page, (base + i) as u32));
        }
        if !self.vpns.is_sorted_by_key(|v| v.0) {
            self.vpns.sort_unstable_by_key(|v| v.0);
        }
        let vpns = &self.vpns;
        plan_runs(vpns.len(), |i| vpns[i].0, self.coalesce, &mut self.runs);
    }
}

/// Reads one run of pagemap entries. An empty read of a live process may
/// mean it exec'd: its files are then reopened and the run read again.
fn read_run(
    p: &mut ProcessFiles,
    start: u64,
    entries: &mut [u64],
    id: TargetId,
) -> Result<RunRead, OpsError> {
    let got = entries_or_gone(p.pagemap().read_entries(start, entries))?;
    if got > 0 || !p.check_alive() {
        return Ok(RunRead::Entries(got));
    }
    // the process lives: an exec may have replaced its address space
    match p.follow_exec() {
        Ok(true) => Ok(RunRead::Entries(entries_or_gone(
            p.pagemap().read_entries(start, entries),
        )?)),
        Ok(false) => Ok(RunRead::Entries(0)),
        // e.g. it exec'd a set-uid program we may not read
        Err(e) => Ok(RunRead::Lost(format!(
            "pid {id} exec'd and its files cannot be reopened: {e}"
        ))),
    }
}

/// Entries read, with an address space that is gone reading as none.
fn entries_or_gone(r: Result<usize, SysError>) -> Result<u64, OpsError> {
    match r {
        Ok(n) => Ok(n as u64),
        Err(e) if e.is_mm_gone() => Ok(0),
        Err(e) => Err(e.into()),
    }
}
