//! `damon_commit_ctx` on a running loop, and the checks a context's
//! schemes must pass against its backend and engine.

use super::Kdamond;
use crate::adapt::{apply_min_nr_regions, set_regions};
use crate::context::{validate_scheme, Context};
use crate::engine::DamosEngine;
use crate::error::{CommitError, InvalidParam, OpsError};
use crate::ops::{Operations, OpsCtx};
use crate::target::Target;

impl Kdamond {
    /// `damon_commit_ctx`: applies `src`'s parameters to the running loop
    /// with the kernel's rules (schemes and targets by position, a target
    /// committed without regions keeps its results, changed attributes
    /// rescale results). Everything is checked before anything changes, so
    /// an error leaves the loop exactly as it was.
    ///
    /// Deviation: the backend cannot be switched on a running context (the
    /// kernel copies the ops vtable); a different ops id is refused.
    pub fn commit(&mut self, mut src: Context) -> Result<(), CommitError> {
        self.check_commit(&src)?;
        let n_dst = self.ctx.targets.len();
        let new_targets: Vec<Target> = src.targets.drain(n_dst.min(src.targets.len())..).collect();
        let new_targets = self.init_new_targets(&src, new_targets)?;
        // From here on nothing can fail.
        let old_nr_schemes = self.ctx.schemes.len();
        self.commit_schemes(std::mem::take(&mut src.schemes));
        let min_region_sz = src.min_region_sz;
        self.commit_targets(std::mem::take(&mut src.targets), new_targets, min_region_sz);
        self.commit_attrs(&src);
        self.reserve_region_capacity();
        if let Some(e) = self.engine.as_mut() {
            e.schemes_committed(
                old_nr_schemes,
                self.ctx.schemes.len(),
                &self.ctx.schemes,
                &self.ctx.attrs,
                self.ctx.state.passed_sample_intervals,
            );
        }
        Ok(())
    }

    /// Everything a commit checks before it changes anything.
    fn check_commit(&self, src: &Context) -> Result<(), CommitError> {
        src.validate()?;
        if let Some(id) = src.ops_id.as_deref() {
            if Some(id) != self.ctx.ops_id.as_deref() {
                return Err(InvalidParam::new(
                    "ops",
                    format!(
                        "cannot switch a running context from {:?} to {id:?}; stop and start it",
                        self.ctx.ops_id
                    ),
                )
                .into());
            }
        }
        let n_dst = self.ctx.targets.len();
        for (i, t) in src.targets.iter().enumerate().skip(n_dst) {
            if t.obsolete {
                return Err(InvalidParam::new(
                    format!("targets[{i}].obsolete"),
                    "an obsolete target has no running target to remove",
                )
                .into());
            }
        }
        check_schemes(
            &src.schemes,
            &src.targets,
            self.ops.as_ref(),
            self.engine.as_deref(),
        )?;
        Ok(())
    }

    /// New targets get their regions from the backend before anything
    /// changes; on an error the backend forgets them again.
    fn init_new_targets(
        &mut self,
        src: &Context,
        mut new_targets: Vec<Target>,
    ) -> Result<Vec<Target>, CommitError> {
        if new_targets.iter().all(|t| !t.regions.is_empty()) {
            return Ok(new_targets);
        }
        let r = self.ops.init(&mut OpsCtx {
            attrs: &src.attrs,
            min_region_sz: src.min_region_sz,
            addr_unit: src.addr_unit,
            passed_sample_intervals: self.ctx.state.passed_sample_intervals,
            now_us: self.clock.now_us(),
            rng: &mut self.rng,
            targets: &mut new_targets,
        });
        if let Err(e) = r {
            for t in &new_targets {
                self.ops.cleanup_target(t);
            }
            return Err(e.into());
        }
        Ok(new_targets)
    }

    /// Schemes by position: kept ones take the new parameters and keep
    /// their stats, extra ones are dropped, new ones start with zero stats.
    fn commit_schemes(&mut self, mut src: Vec<crate::damos::Scheme>) {
        self.ctx.schemes.truncate(src.len());
        for (d, s) in self.ctx.schemes.iter_mut().zip(src.iter()) {
            d.commit_from(s);
        }
        let n_kept = self.ctx.schemes.len();
        self.ctx.schemes.extend(src.drain(n_kept..).map(|mut s| {
            s.stat = Default::default();
            s
        }));
    }

    /// Targets by position: an obsolete or missing one is removed, a kept
    /// one takes the committed regions (if any) and id, new ones follow.
    fn commit_targets(&mut self, src: Vec<Target>, new_targets: Vec<Target>, min_region_sz: u64) {
        let mut kept = Vec::with_capacity(self.ctx.targets.len() + new_targets.len());
        let mut remap = Vec::with_capacity(self.ctx.targets.len());
        let mut src_iter = src.into_iter();
        for mut dst in std::mem::take(&mut self.ctx.targets) {
            let next = src_iter.next();
            remap.push(match &next {
                Some(s) if !s.obsolete => Some(kept.len()),
                _ => None,
            });
            match next {
                Some(s) if !s.obsolete => {
                    if !s.regions.is_empty() {
                        let ranges: Vec<_> = s.regions.iter().map(|r| r.ar).collect();
                        // validated above: sorted, disjoint, non-empty
                        let _ = set_regions(&mut dst, &ranges, min_region_sz);
                    }
                    if dst.id != s.id {
                        self.ops.cleanup_target(&dst);
                        dst.id = s.id;
                    }
                    kept.push(dst);
                }
                _ => self.ops.cleanup_target(&dst),
            }
        }
        kept.extend(new_targets);
        self.ctx.targets = kept;
        if let Some(e) = self.engine.as_mut() {
            e.targets_committed(&remap);
        }
    }

    /// Attributes (rescaling results when they changed), region size unit,
    /// address unit and pause.
    fn commit_attrs(&mut self, src: &Context) {
        if !self.ctx.attrs.same_params(&src.attrs) {
            self.set_attrs(src.attrs, false);
            // Deviation: the kernel keeps kdamond_fn's local sz_limit until
            // the next merge and enforces a new min_nr_regions only after
            // it, so the first aggregation after such a commit can end with
            // more than max_nr_regions (regions sized for the old minimum
            // are cut after merging). Enforcing the new bounds here makes
            // them hold from the next aggregation on.
            self.ctx.state.sz_limit = apply_min_nr_regions(
                &mut self.ctx.targets,
                &mut self.scratch,
                self.ctx.attrs.min_nr_regions,
                src.min_region_sz,
            );
        }
        self.ctx.min_region_sz = src.min_region_sz;
        self.ctx.addr_unit = src.addr_unit;
        self.ctx.pause = src.pause;
    }
}

/// Prefixes an unsupported-feature error with the field it came from.
fn with_field(e: OpsError, field: &str) -> OpsError {
    match e {
        OpsError::Unsupported { what, hint } => OpsError::Unsupported {
            what: format!("{field}: {what}"),
            hint,
        },
        other => other,
    }
}

pub(crate) fn check_schemes(
    schemes: &[crate::damos::Scheme],
    targets: &[Target],
    ops: &dyn Operations,
    engine: Option<&dyn DamosEngine>,
) -> Result<(), OpsError> {
    for (i, s) in schemes.iter().enumerate() {
        validate_scheme(s, &format!("schemes[{i}]"))?;
        ops.check_action(s.action)
            .map_err(|e| with_field(e, &format!("schemes[{i}].action")))?;
        for (j, f) in s.filters.iter().enumerate() {
            ops.check_filter(&f.kind)
                .map_err(|e| with_field(e, &format!("schemes[{i}].filters[{j}]")))?;
        }
        ops.check_scheme(s, targets)
            .map_err(|e| with_field(e, &format!("schemes[{i}]")))?;
    }
    if let Some(e) = engine {
        e.check(schemes, ops)?;
    } else if !schemes.is_empty() {
        return Err(OpsError::Unsupported {
            what: "schemes".into(),
            hint: "install a DAMOS engine (damon-schemes) with Context::set_damos_engine".into(),
        });
    }
    Ok(())
}
