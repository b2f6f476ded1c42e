//! The custom backend over an in-process object pool finds the pool's hot
//! objects. Deterministic: the program's accesses are played inside each
//! sampling interval by a clock whose `sleep` does the work.

use damon_core::{Clock, Kdamond, VirtualClock, Wake};
use damon_examples::objpool::{pool_context, ObjectPool, OBJECT_SIZE};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct WorkingClock {
    time: VirtualClock,
    pool: Arc<ObjectPool>,
    hot: Arc<AtomicUsize>,
    hot_len: usize,
}

impl Clock for WorkingClock {
    fn now_us(&self) -> u64 {
        self.time.now_us()
    }
    fn sleep(&self, us: u64, wake: &Wake) -> bool {
        // the program touches every hot object once per sampling interval
        let start = self.hot.load(Ordering::Relaxed);
        for i in start..start + self.hot_len {
            self.pool.touch(i);
        }
        self.time.sleep(us, wake)
    }
}

#[test]
fn custom_ops_finds_the_pools_hot_objects_and_follows_them() {
    let objects = 1 << 18;
    let pool = ObjectPool::new(objects);
    let hot = Arc::new(AtomicUsize::new(50_000));
    let hot_len = 4096;
    let mut ctx = pool_context(&pool, "objpool-test").unwrap();
    ctx.clock = Some(Arc::new(WorkingClock {
        time: VirtualClock::new(),
        pool: pool.clone(),
        hot: hot.clone(),
        hot_len,
    }));
    ctx.seed = Some(4);
    let mut kd = Kdamond::new(ctx).unwrap();
    kd.init().unwrap();
    let hot_bytes_found = |kd: &Kdamond, start: usize| -> f64 {
        let hot = damon_core::AddrRange::new(
            start as u64 * OBJECT_SIZE,
            (start + hot_len) as u64 * OBJECT_SIZE,
        );
        let found: u64 = kd.ctx().targets[0]
            .regions
            .iter()
            .filter(|r| r.last_nr_accesses > 0)
            .map(|r| r.ar.overlap(&hot))
            .sum();
        found as f64 / hot.len() as f64
    };
    for phase_start in [50_000usize, 200_000] {
        hot.store(phase_start, Ordering::Relaxed);
        for _ in 0..30 * 20 {
            assert!(kd.step().is_none());
        }
        let found = hot_bytes_found(&kd, phase_start);
        assert!(
            found >= 0.9,
            "hot objects at {phase_start}: only {:.0}% found",
            found * 100.0
        );
        let cold_reported: u64 = kd.ctx().targets[0]
            .regions
            .iter()
            .filter(|r| r.last_nr_accesses > 0)
            .map(|r| r.size())
            .sum::<u64>();
        assert!(
            cold_reported <= 4 * (hot_len as u64) * OBJECT_SIZE,
            "accessed regions far larger than the hot set"
        );
    }
    // registered under its own id; a second registration is refused
    assert!(damon_core::OpsRegistry::global().is_registered("objpool-test"));
}
