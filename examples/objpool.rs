//! An in-process object pool whose accesses the program reports itself,
//! and a DAMON backend over it: the engine monitors an address space the
//! kernel never sees (object index × object size = "address").

use damon_core::{AccessRate, AddrRange, Operations, OpsCtx, OpsError, Target};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes per object in the pool's address space.
pub const OBJECT_SIZE: u64 = 256;

/// A pool of `len` objects with one "accessed" bit per object, set by the
/// program on every access (like a PTE's accessed bit) and cleared by the
/// monitor when it samples the object.
#[derive(Debug)]
pub struct ObjectPool {
    data: Vec<AtomicU64>,
    accessed: Vec<AtomicU64>,
}

impl ObjectPool {
    /// A pool of `len` zeroed objects.
    pub fn new(len: usize) -> Arc<Self> {
        Arc::new(Self {
            data: (0..len).map(|_| AtomicU64::new(0)).collect(),
            accessed: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// [`ObjectPool::new`] that reports a failed allocation instead of
    /// aborting the process.
    pub fn try_new(len: usize) -> Result<Arc<Self>, String> {
        let zeroed = |n: usize| -> Result<Vec<AtomicU64>, String> {
            let mut v = Vec::new();
            v.try_reserve_exact(n)
                .map_err(|e| format!("cannot allocate {n} words for {len} objects: {e}"))?;
            v.extend((0..n).map(|_| AtomicU64::new(0)));
            Ok(v)
        };
        Ok(Arc::new(Self {
            data: zeroed(len)?,
            accessed: zeroed(len.div_ceil(64))?,
        }))
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True for an empty pool.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The pool's address space.
    pub fn range(&self) -> AddrRange {
        AddrRange::new(0, self.len() as u64 * OBJECT_SIZE)
    }

    /// Uses object `i` (the program's own work), reporting the access.
    #[inline]
    pub fn touch(&self, i: usize) -> u64 {
        self.accessed[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
        self.data[i].fetch_add(1, Ordering::Relaxed)
    }

    fn clear(&self, i: usize) {
        self.accessed[i / 64].fetch_and(!(1 << (i % 64)), Ordering::Relaxed);
    }

    fn was_accessed(&self, i: usize) -> bool {
        self.accessed[i / 64].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }
}

/// The backend: one target, the pool's address space.
#[derive(Debug)]
pub struct PoolOps {
    pool: Arc<ObjectPool>,
}

impl PoolOps {
    /// A backend over `pool`.
    pub fn new(pool: Arc<ObjectPool>) -> Self {
        Self { pool }
    }
}

impl Operations for PoolOps {
    fn init(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        for t in ctx.targets.iter_mut() {
            if t.regions.is_empty() {
                damon_core::backend::set_regions(t, &[self.pool.range()], ctx.min_region_sz)?;
            }
        }
        Ok(())
    }

    fn prepare_access_checks(&mut self, ctx: &mut OpsCtx<'_>) -> Result<(), OpsError> {
        for t in ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                r.sampling_addr = ctx.rng.range(r.ar.start, r.ar.end);
                self.pool.clear((r.sampling_addr / OBJECT_SIZE) as usize);
            }
        }
        Ok(())
    }

    fn check_accesses(&mut self, ctx: &mut OpsCtx<'_>) -> Result<u32, OpsError> {
        let rate = AccessRate::new(ctx.attrs);
        let mut max = 0;
        for t in ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                rate.update(
                    r,
                    self.pool
                        .was_accessed((r.sampling_addr / OBJECT_SIZE) as usize),
                );
                max = max.max(r.nr_accesses);
            }
        }
        Ok(max)
    }
}

/// A context monitoring `pool` through the globally registered id `id`
/// (registering it on first use), with region boundaries on objects.
pub fn pool_context(
    pool: &Arc<ObjectPool>,
    id: &str,
) -> Result<damon_core::Context, Box<dyn std::error::Error>> {
    let p = pool.clone();
    match damon_core::damon_register_ops(id, move || {
        Ok(Box::new(PoolOps::new(p.clone())) as Box<dyn Operations>)
    }) {
        Ok(()) | Err(damon_core::RegistryError::Duplicate(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut ctx = damon_core::Context::new();
    ctx.min_region_sz = OBJECT_SIZE;
    ctx.targets.push(Target::new(0));
    damon_core::damon_select_ops(&mut ctx, id)?;
    Ok(ctx)
}
