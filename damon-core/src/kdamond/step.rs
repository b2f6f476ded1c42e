//! One iteration of the loop, as the kernel's `kdamond_fn` spells it:
//! wait for activation, sample, aggregate (merge), `kdamond_call`, apply
//! schemes, adapt regions (tune intervals, reset, split), update the
//! backend.

use super::exit::Callback;
use super::{ops_ctx, ExitReason, Kdamond};
use crate::access::update_monitoring_result;
use crate::adapt::{apply_min_nr_regions, merge_regions, split_regions};
use crate::attrs::Attrs;
use crate::engine::{BeforeApplyHook, DamosEnv};
use crate::ops::OpsCtx;
use crate::target::Target;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Kdamond {
    /// One iteration of the kernel's main loop; returns why the loop must
    /// end, or `None` to continue.
    pub fn step(&mut self) -> Option<ExitReason> {
        self.kdamond_fn_iteration().err()
    }

    /// The body of `kdamond_fn`'s loop, step by named step.
    fn kdamond_fn_iteration(&mut self) -> Result<(), ExitReason> {
        self.check_stop()?;
        if self.ctx.pause {
            if let Some(engine) = self.engine.as_mut() {
                engine.walk_cancel();
            }
            return self.idle(self.ctx.attrs.sample_interval);
        }
        // Deadlines as they were when the iteration began: a commit or an
        // intervals tuning in the middle moves the context's own copies.
        let next_aggregation_sis = self.ctx.state.next_aggregation_sis;
        let next_ops_update_sis = self.ctx.state.next_ops_update_sis;
        let mut sample_interval = self.ctx.attrs.sample_interval.max(1);
        let wait = self.wait_activation();
        if wait > 0 {
            return self.idle(wait);
        }
        let max_nr_accesses = self.sample()?;
        let aggregating = self.ctx.state.passed_sample_intervals >= next_aggregation_sis;
        if aggregating {
            self.aggregate(max_nr_accesses)?;
        }
        // kdamond_call and the schemes come after the merge, as in the kernel.
        if let Some(r) = self.kdamond_call() {
            return Err(r);
        }
        self.apply_schemes()?;
        if aggregating {
            sample_interval = self.adapt_regions(next_aggregation_sis, sample_interval);
        }
        self.update_ops(next_ops_update_sis, sample_interval)
    }

    /// `kdamond_need_stop`, as a step.
    fn check_stop(&mut self) -> Result<(), ExitReason> {
        self.need_stop().map_or(Ok(()), Err)
    }

    /// Paused or watermark-inactive: sleep, then still serve requests.
    fn idle(&mut self, us: u64) -> Result<(), ExitReason> {
        self.sleep(us);
        match self.kdamond_call().or_else(|| self.need_stop()) {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    /// `kdamond_wait_activation`: microseconds to wait because every scheme
    /// is watermark-inactive (0: monitor).
    fn wait_activation(&mut self) -> u64 {
        let now = self.clock.now_us();
        match self.engine.as_mut() {
            Some(engine) => engine.wait_activation_us(&mut self.ctx.schemes, now),
            None => 0,
        }
    }

    /// `prepare_access_checks`, the sampling sleep, `check_accesses` and
    /// the `after_sampling` callback; returns the largest `nr_accesses`.
    fn sample(&mut self) -> Result<u32, ExitReason> {
        let ops_failed = |e| ExitReason::OpsFailed(Arc::new(e));
        self.ops
            .prepare_access_checks(&mut ops_ctx!(self))
            .map_err(ops_failed)?;
        self.sleep(self.ctx.attrs.sample_interval.max(1));
        if self.stop.load(Ordering::Acquire) {
            return Err(ExitReason::Stopped);
        }
        self.ctx.state.passed_sample_intervals += 1;
        let max_nr_accesses = self
            .ops
            .check_accesses(&mut ops_ctx!(self))
            .map_err(ops_failed)?;
        self.run_callback(Callback::AfterSampling)?;
        Ok(max_nr_accesses)
    }

    /// `kdamond_merge_regions`, the `min_nr_regions` split that follows
    /// it, and the `after_aggregation` callback.
    fn aggregate(&mut self, max_nr_accesses: u32) -> Result<(), ExitReason> {
        let attrs = self.ctx.attrs;
        let max_thres = attrs.aggr_interval / attrs.sample_interval.max(1);
        merge_regions(
            &mut self.ctx.targets,
            max_nr_accesses / 10,
            self.ctx.state.sz_limit,
            attrs.max_nr_regions,
            max_thres,
        );
        self.ctx.state.sz_limit = apply_min_nr_regions(
            &mut self.ctx.targets,
            &mut self.scratch,
            attrs.min_nr_regions,
            self.ctx.min_region_sz,
        );
        self.run_callback(Callback::AfterAggregation)
    }

    /// `kdamond_apply_schemes`, through the installed DAMOS engine. A panic
    /// in `before_damos_apply` stops the context like any callback's.
    fn apply_schemes(&mut self) -> Result<(), ExitReason> {
        if self.ctx.schemes.is_empty() {
            return Ok(());
        }
        let Some(engine) = self.engine.as_mut() else {
            return Ok(());
        };
        let now_us = self.clock.now_us();
        let mut panicked = None;
        engine.apply(DamosEnv {
            attrs: &self.ctx.attrs,
            passed_sample_intervals: self.ctx.state.passed_sample_intervals,
            next_aggregation_sis: self.ctx.state.next_aggregation_sis,
            now_us,
            clock: self.clock.as_ref(),
            min_region_sz: self.ctx.min_region_sz,
            targets: &mut self.ctx.targets,
            schemes: &mut self.ctx.schemes,
            ops: self.ops.as_mut(),
            before_damos_apply: BeforeApplyHook::new(
                self.callbacks.before_damos_apply.as_mut(),
                &mut panicked,
            ),
        });
        match panicked {
            None => Ok(()),
            Some(message) => Err(ExitReason::CallbackPanicked {
                callback: "before_damos_apply",
                message,
            }),
        }
    }

    /// The end of an aggregation interval: intervals auto-tuning when due,
    /// the next aggregation deadline, `kdamond_reset_aggregated` and
    /// `kdamond_split_regions`. Returns the sampling interval the rest of
    /// the iteration uses: the one it began with, or the tuned one.
    fn adapt_regions(&mut self, next_aggregation_sis: u64, mut sample_interval: u64) -> u64 {
        let goal = self.ctx.attrs.intervals_goal;
        let st = &mut self.ctx.state;
        if goal.aggrs != 0 && st.passed_sample_intervals >= st.next_intervals_tune_sis {
            // Restore the snapshot so set_attrs() does not think this is
            // the middle of an aggregation (see the kernel's comment).
            st.next_aggregation_sis = next_aggregation_sis;
            st.next_intervals_tune_sis += st.aggr_samples * goal.aggrs;
            self.tune_intervals();
            sample_interval = self.ctx.attrs.sample_interval.max(1);
        }
        self.ctx.state.next_aggregation_sis =
            next_aggregation_sis + self.ctx.attrs.aggr_interval / sample_interval;
        reset_aggregated(&mut self.ctx.targets);
        self.ops.reset_aggregated(&mut ops_ctx!(self));
        split_regions(
            &mut self.ctx.targets,
            &mut self.scratch,
            self.ctx.attrs.max_nr_regions,
            self.ctx.min_region_sz,
            &mut self.ctx.state.last_nr_regions,
            &mut self.ctx.state.split_rotation,
            &mut self.rng,
        );
        sample_interval
    }

    /// The backend's `update` when its interval is due.
    fn update_ops(
        &mut self,
        next_ops_update_sis: u64,
        sample_interval: u64,
    ) -> Result<(), ExitReason> {
        if self.ctx.state.passed_sample_intervals < next_ops_update_sis {
            return Ok(());
        }
        self.ctx.state.next_ops_update_sis =
            next_ops_update_sis + self.ctx.attrs.ops_update_interval / sample_interval;
        self.ops
            .update(&mut ops_ctx!(self))
            .map_err(|e| ExitReason::OpsFailed(Arc::new(e)))
    }

    /// `kdamond_tune_intervals`.
    fn tune_intervals(&mut self) {
        if let Some(new) = crate::tune::tuned_attrs(
            &self.ctx.targets,
            &self.ctx.attrs,
            self.ctx.state.aggr_samples,
        ) {
            tracing::debug!(
                target: "damon::damon_monitor_intervals_tune",
                sample_us = new.sample_interval,
                "damon_monitor_intervals_tune"
            );
            self.set_attrs(new, true);
        }
    }

    /// `damon_set_attrs` on a running loop: re-bases the deadlines on now
    /// and rescales every region's results. `new` must be valid.
    /// `from_tuning` keeps `aggr_samples` (the kernel's "core-internal call").
    pub(super) fn set_attrs(&mut self, new: Attrs, from_tuning: bool) {
        let si = new.sample_interval.max(1);
        let st = &mut self.ctx.state;
        let aggregating = st.passed_sample_intervals < st.next_aggregation_sis;
        if !from_tuning {
            st.aggr_samples = new.aggr_interval / si;
        }
        st.next_aggregation_sis = st.passed_sample_intervals + new.aggr_interval / si;
        st.next_ops_update_sis = st.passed_sample_intervals + new.ops_update_interval / si;
        let old = self.ctx.attrs;
        for t in self.ctx.targets.iter_mut() {
            for r in t.regions.iter_mut() {
                update_monitoring_result(r, &old, &new, aggregating);
            }
        }
        self.ctx.attrs = new;
        if let Some(e) = self.engine.as_mut() {
            e.attrs_changed(
                &self.ctx.schemes,
                &self.ctx.attrs,
                self.ctx.state.passed_sample_intervals,
            );
        }
    }
}

/// `kdamond_reset_aggregated`: for every region, emits the
/// `damon_aggregated` and `damon_region_aggregated` events, then moves
/// `nr_accesses` into `last_nr_accesses`.
pub fn reset_aggregated(targets: &mut [Target]) {
    let trace = tracing::enabled!(target: "damon::damon_aggregated", tracing::Level::TRACE)
        || tracing::enabled!(target: "damon::damon_region_aggregated", tracing::Level::TRACE);
    for (ti, t) in targets.iter_mut().enumerate() {
        let nr_regions = t.regions.len();
        for r in t.regions.iter_mut() {
            if trace {
                tracing::trace!(
                    target: "damon::damon_aggregated",
                    target_id = ti,
                    nr_regions,
                    start = r.ar.start,
                    end = r.ar.end,
                    nr_accesses = r.nr_accesses,
                    age = r.age,
                    "damon_aggregated"
                );
            }
            if trace {
                // v7.2's per-region event (with the probes' hits in the
                // kernel; this engine has no probes: nr_probes 0).
                tracing::trace!(
                    target: "damon::damon_region_aggregated",
                    target_id = ti,
                    nr_regions,
                    start = r.ar.start,
                    end = r.ar.end,
                    nr_accesses = r.nr_accesses,
                    age = r.age,
                    nr_probes = 0u32,
                    "damon_region_aggregated"
                );
            }
            r.last_nr_accesses = r.nr_accesses;
            r.nr_accesses = 0;
        }
    }
}
