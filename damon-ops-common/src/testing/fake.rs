//! An in-memory stand-in for the page_idle bitmap and `/proc/kpageflags`
//! that follows the kernel's semantics (see [`PhysIo`]), so the samplers and
//! backends can be tested and benchmarked on machines without
//! `CONFIG_IDLE_PAGE_TRACKING` or root.

use crate::kpageflags::{KPF_ANON, KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_LRU, KPF_THP};
use crate::physio::{PhysIo, KPAGEFLAGS, PAGE_IDLE_BITMAP};
use crate::sys::{fault, should_retry, Fault, FaultCall, SysError};
use damon_core::Rng;
use std::sync::{Arc, Mutex};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Untracked,
    Thp,
}

/// Shared state of a [`FakePhysMem`]: clone the `Arc` to inject accesses
/// from a test while a backend owns the I/O. Memory use is one bit per PFN
/// plus one entry per configured range, so machine-sized fakes are cheap.
#[derive(Debug)]
pub struct FakeState {
    idle: Vec<u64>,
    overrides: Vec<(std::ops::Range<u64>, Kind)>,
    max_pfn: u64,
    hot: Vec<(std::ops::Range<u64>, f64)>,
    rng: Rng,
    workload_due: bool,
    /// (PFNs, flags set, flags cleared), applied in order after the kind.
    flag_edits: Vec<(std::ops::Range<u64>, u64, u64)>,
    /// (PFNs, memory cgroup inode) for `/proc/kpagecgroup`.
    memcgs: Vec<(std::ops::Range<u64>, u64)>,
    /// Calls per kind: bitmap reads, bitmap writes, kpageflags reads.
    pub calls: [u64; 3],
}

const DEFAULT_FLAGS: u64 = (1 << KPF_LRU) | (1 << KPF_ANON);

impl FakeState {
    /// The kpageflags word of `pfn`.
    pub fn flags(&self, pfn: u64) -> u64 {
        let mut f = self.kind_flags(pfn);
        for (r, set, clear) in &self.flag_edits {
            if r.contains(&pfn) {
                f = (f | set) & !clear;
            }
        }
        f
    }

    /// The memory cgroup inode `/proc/kpagecgroup` reports for `pfn` (0: none).
    pub fn memcg(&self, pfn: u64) -> u64 {
        self.memcgs
            .iter()
            .rev()
            .find(|(r, _)| r.contains(&pfn))
            .map_or(0, |m| m.1)
    }

    fn kind_flags(&self, pfn: u64) -> u64 {
        match self.overrides.iter().rev().find(|(r, _)| r.contains(&pfn)) {
            None => DEFAULT_FLAGS,
            Some((_, Kind::Untracked)) => 0,
            Some((r, Kind::Thp)) => {
                let bit = if pfn == r.start {
                    KPF_COMPOUND_HEAD
                } else {
                    KPF_COMPOUND_TAIL
                };
                DEFAULT_FLAGS | (1 << KPF_THP) | (1 << bit)
            }
        }
    }

    fn is_idle(&self, pfn: u64) -> bool {
        self.idle
            .get((pfn / 64) as usize)
            .is_some_and(|w| w & (1 << (pfn % 64)) != 0)
    }

    fn set_idle(&mut self, pfn: u64, idle: bool) {
        if let Some(w) = self.idle.get_mut((pfn / 64) as usize) {
            if idle {
                *w |= 1 << (pfn % 64);
            } else {
                *w &= !(1 << (pfn % 64));
            }
        }
    }

    /// Marks `pfn` accessed (clears its folio's idle flag).
    pub fn touch(&mut self, pfn: u64) {
        let head = self.head_of(pfn);
        self.set_idle(head, false);
    }

    fn head_of(&self, pfn: u64) -> u64 {
        match self.overrides.iter().rev().find(|(r, _)| r.contains(&pfn)) {
            Some((r, Kind::Thp)) => r.start,
            _ => pfn,
        }
    }

    /// Every hot range is accessed with its probability (as if the workload
    /// ran during the sampling interval); runs at the first bitmap read after
    /// a bitmap write, i.e. once per sample.
    fn run_workload(&mut self) {
        for i in 0..self.hot.len() {
            let (r, p) = self.hot[i].clone();
            for pfn in r {
                if p >= 1.0 || self.rng.unit() < p {
                    self.touch(pfn);
                }
            }
        }
    }

    fn tracked(&self, pfn: u64) -> bool {
        let f = self.flags(pfn);
        pfn < self.max_pfn && f & (1 << KPF_LRU) != 0 && f & (1 << KPF_COMPOUND_TAIL) == 0
    }
}

/// The fake: `max_pfn` pages, all LRU anonymous 4 KiB pages unless
/// configured otherwise.
///
/// ```
/// use damon_ops_common::testing::fake::FakePhysMem;
/// use damon_ops_common::physio::PhysIo;
/// let mut fake = FakePhysMem::new(1000);
/// fake.add_hot(0..64, 1.0);
/// let word = 0xffu64.to_ne_bytes(); // mark PFNs 0..8 idle
/// fake.bitmap_write(0, &word).unwrap();
/// let mut back = [0u8; 8];
/// fake.bitmap_read(0, &mut back).unwrap();
/// assert_eq!(back, [0u8; 8]); // the hot workload touched them again
/// ```
#[derive(Debug, Clone)]
pub struct FakePhysMem {
    state: Arc<Mutex<FakeState>>,
    syscalls: u64,
    bitmap_path: Arc<str>,
    kpageflags_path: Arc<str>,
}

static FAKE_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl FakePhysMem {
    /// `max_pfn` LRU anonymous pages; the last 64-PFN word is partial when
    /// `max_pfn` is not a multiple of 64, as on real machines.
    pub fn new(max_pfn: u64) -> Self {
        let id = FAKE_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            state: Arc::new(Mutex::new(FakeState {
                idle: vec![0; max_pfn.div_ceil(64) as usize],
                overrides: Vec::new(),
                max_pfn,
                hot: Vec::new(),
                rng: Rng::new(7),
                workload_due: false,
                flag_edits: Vec::new(),
                memcgs: Vec::new(),
                calls: [0; 3],
            })),
            syscalls: 0,
            bitmap_path: Arc::from(format!("fake{id}:{PAGE_IDLE_BITMAP}")),
            kpageflags_path: Arc::from(format!("fake{id}:{KPAGEFLAGS}")),
        }
    }

    /// The shared state, to inject accesses or read call counts.
    pub fn state(&self) -> Arc<Mutex<FakeState>> {
        self.state.clone()
    }

    /// PFNs `range` are accessed with probability `p` once per sample (at
    /// the first bitmap read after a bitmap write).
    pub fn add_hot(&mut self, range: std::ops::Range<u64>, p: f64) {
        self.lock().hot.push((range, p));
    }

    /// Makes `[head, head + nr)` one THP: a head and `nr - 1` tails.
    pub fn add_thp(&mut self, head: u64, nr: u64) {
        self.lock().overrides.push((head..head + nr, Kind::Thp));
    }

    /// Sets the kpageflags bits `set` and clears `clear` on PFNs `range`
    /// (e.g. `KPF_ACTIVE`, or `KPF_ANON` cleared for page cache).
    pub fn edit_flags(&mut self, range: std::ops::Range<u64>, set: u64, clear: u64) {
        self.lock().flag_edits.push((range, set, clear));
    }

    /// Charges PFNs `range` to the memory cgroup of inode `memcg_id`.
    pub fn set_memcg(&mut self, range: std::ops::Range<u64>, memcg_id: u64) {
        self.lock().memcgs.push((range, memcg_id));
    }

    /// Makes PFNs `range` untracked (not on an LRU list: kernel or free memory).
    pub fn set_untracked(&mut self, range: std::ops::Range<u64>) {
        self.lock().overrides.push((range, Kind::Untracked));
    }

    /// The name this fake's bitmap goes by in errors and fault plans
    /// (`fake<N>:/sys/kernel/mm/page_idle/bitmap`, unique per fake).
    pub fn bitmap_path(&self) -> &str {
        &self.bitmap_path
    }

    /// The name of this fake's `/proc/kpageflags` (`fake<N>:/proc/kpageflags`).
    pub fn kpageflags_path(&self) -> &str {
        &self.kpageflags_path
    }

    /// One emulated system call, with the retry policy and fault hooks of
    /// [`crate::sys::KFile`]: `op` gets the byte count to transfer.
    fn io(
        &mut self,
        kpageflags: bool,
        call: FaultCall,
        len: usize,
        mut op: impl FnMut(&mut Self, usize) -> Result<usize, SysError>,
    ) -> Result<usize, SysError> {
        let path = if kpageflags {
            self.kpageflags_path.clone()
        } else {
            self.bitmap_path.clone()
        };
        let mut eagain = 0;
        loop {
            self.syscalls += 1;
            let r = match fault(&path, call) {
                Some(Fault::Errno(e)) => Err(SysError {
                    call: if matches!(call, FaultCall::Pwrite) {
                        "pwrite"
                    } else {
                        "pread"
                    },
                    path: path.to_string(),
                    source: std::io::Error::from_raw_os_error(e),
                }),
                Some(Fault::Zero) => Ok(0),
                Some(Fault::Short(n)) => op(self, n.min(len)),
                _ => op(self, len),
            };
            match r {
                Err(e) if e.errno().is_some_and(|x| should_retry(x, &mut eagain)) => continue,
                r => return r,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn einval(call: &'static str) -> SysError {
    SysError::new(call, "fake page_idle", rustix::io::Errno::INVAL)
}

impl PhysIo for FakePhysMem {
    fn bitmap_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
        let len = buf.len();
        self.io(false, FaultCall::Pread, len, |f, n| {
            f.bitmap_read_at(offset, &mut buf[..n])
        })
    }

    fn bitmap_write(&mut self, offset: u64, buf: &[u8]) -> Result<usize, SysError> {
        self.io(false, FaultCall::Pwrite, buf.len(), |f, n| {
            f.bitmap_write_at(offset, &buf[..n])
        })
    }

    fn kpageflags_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
        let len = buf.len();
        self.io(true, FaultCall::Pread, len, |f, n| {
            f.kpageflags_read_at(offset, &mut buf[..n])
        })
    }

    fn kpagecgroup_read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
        self.syscalls += 1;
        if offset % 8 != 0 {
            return Err(einval("pread"));
        }
        let s = self.lock();
        let mut n = 0;
        for (i, out) in buf.chunks_exact_mut(8).enumerate() {
            let pfn = offset / 8 + i as u64;
            if pfn >= s.max_pfn {
                break;
            }
            out.copy_from_slice(&s.memcg(pfn).to_ne_bytes());
            n += 8;
        }
        Ok(n)
    }

    fn has_kpagecgroup(&self) -> bool {
        true
    }

    fn syscalls(&self) -> u64 {
        self.syscalls
    }
}

impl FakePhysMem {
    fn bitmap_read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
        if offset % 8 != 0 || buf.len() % 8 != 0 {
            return Err(einval("pread"));
        }
        let max = self.max_bitmap_call();
        let mut s = self.lock();
        s.calls[0] += 1;
        if std::mem::take(&mut s.workload_due) {
            s.run_workload();
        }
        let first = offset * 8;
        let mut n = 0;
        let lim = buf.len().min(max);
        for (w, out) in buf[..lim].chunks_exact_mut(8).enumerate() {
            let base = first + w as u64 * 64;
            if base + 64 > s.max_pfn {
                break; // partial or beyond the last word: not delivered
            }
            let mut word = 0u64;
            for bit in 0..64 {
                let pfn = base + bit;
                if s.tracked(pfn) && s.is_idle(pfn) {
                    word |= 1 << bit;
                }
            }
            out.copy_from_slice(&word.to_ne_bytes());
            n += 8;
        }
        Ok(n)
    }

    fn bitmap_write_at(&mut self, offset: u64, buf: &[u8]) -> Result<usize, SysError> {
        if offset % 8 != 0 || buf.len() % 8 != 0 {
            return Err(einval("pwrite"));
        }
        let max = self.max_bitmap_call();
        let mut s = self.lock();
        s.calls[1] += 1;
        s.workload_due = true;
        let first = offset * 8;
        if first >= s.max_pfn {
            return Err(SysError::new(
                "pwrite",
                "fake page_idle",
                rustix::io::Errno::NXIO,
            ));
        }
        let mut n = 0;
        for (w, inp) in buf[..buf.len().min(max)].chunks_exact(8).enumerate() {
            let word = u64::from_ne_bytes(inp.try_into().expect("chunks_exact(8)"));
            let base = first + w as u64 * 64;
            for bit in 0..64 {
                let pfn = base + bit;
                if pfn >= s.max_pfn {
                    return Ok(n); // bits up to max_pfn applied, partial word not counted
                }
                if word & (1 << bit) != 0 && s.tracked(pfn) {
                    s.set_idle(pfn, true);
                }
            }
            n += 8;
        }
        Ok(n)
    }

    fn kpageflags_read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, SysError> {
        if offset % 8 != 0 || buf.len() % 8 != 0 {
            return Err(einval("pread"));
        }
        let mut s = self.lock();
        s.calls[2] += 1;
        let first = offset / 8;
        let mut n = 0;
        for (i, out) in buf.chunks_exact_mut(8).enumerate() {
            let pfn = first + i as u64;
            if pfn >= s.max_pfn {
                break;
            }
            out.copy_from_slice(&s.flags(pfn).to_ne_bytes());
            n += 8;
        }
        Ok(n)
    }
}
