//! A kdamond of ours: made, configured, started, controlled through the
//! `state` keywords, and removed when stopped or dropped (only ours: see
//! [`crate::guard`]).

use crate::features::{file_since, Features};
use crate::guard::{claim_kdamond, release_kdamond, SysfsLock};
use crate::tree::{paths, Admin};
use crate::{read_context, write_context, SysfsError};
use damon_core::damos::Stat;
use damon_core::{AddrRange, Context};
use std::path::PathBuf;

/// How to start a kdamond.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Take over kdamonds that are configured but off (their configuration
    /// is lost); running ones are never touched.
    pub take_over_off: bool,
    /// The advisory lock file ([`crate::LOCK_PATH`]); `None` takes none.
    pub lock: Option<PathBuf>,
    /// Where our running kdamond is recorded ([`crate::guard::OWNER_PATH`]),
    /// to take it back after this process is killed; `None` records nothing.
    pub owner: Option<PathBuf>,
    /// Add a hidden `stat` scheme matching every region, whose tried
    /// regions ([`KernelKdamond::probe_regions`]) give the monitoring
    /// results where the trace event cannot (as damo does).
    pub probe_scheme: bool,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            take_over_off: false,
            lock: Some(PathBuf::from(crate::LOCK_PATH)),
            owner: Some(PathBuf::from(crate::guard::OWNER_PATH)),
            probe_scheme: false,
        }
    }
}

/// One region of a scheme's tried regions, as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelTriedRegion {
    /// The region.
    pub range: AddrRange,
    /// Its access frequency (samples per aggregation).
    pub nr_accesses: u32,
    /// Its age (aggregation intervals).
    pub age: u32,
    /// Bytes that passed the operations set's filters (Linux 6.14+).
    pub sz_filter_passed: Option<u64>,
}

/// The parameters of `ctx` that the kernel holds, as a new [`Context`]
/// (a Context owns its backend and callbacks, so it is not `Clone`).
pub(crate) fn params_of(ctx: &Context) -> Context {
    let mut c = Context::new();
    c.attrs = ctx.attrs;
    c.addr_unit = ctx.addr_unit;
    c.pause = ctx.pause;
    c.targets = ctx.targets.clone();
    c.schemes = ctx.schemes.clone();
    c
}

/// A running kdamond that this library created.
#[derive(Debug)]
pub struct KernelKdamond {
    admin: Admin,
    features: Features,
    index: usize,
    ops: String,
    current: Context,
    released: bool,
    owner: Option<PathBuf>,
    probe_scheme: bool,
    _lock: Option<SysfsLock>,
}

impl KernelKdamond {
    /// Makes a kdamond for `ctx` run with `ops`, and turns it on. Refuses
    /// (writing nothing) while another kdamond runs, and names what this
    /// kernel lacks; on any failure after the kdamond was made, removes it.
    pub fn start(
        admin: Admin,
        ops: &str,
        ctx: &Context,
        opts: &StartOptions,
    ) -> Result<Self, SysfsError> {
        let lock = opts.lock.as_deref().map(SysfsLock::take).transpose()?;
        let features = Features::probe(&admin, &crate::kernel_release())?;
        let index = claim_kdamond(&admin, opts.take_over_off, opts.owner.as_deref())?;
        let mut me = Self {
            admin,
            features,
            index,
            ops: ops.to_string(),
            current: params_of(ctx),
            released: false,
            owner: opts.owner.clone(),
            probe_scheme: opts.probe_scheme,
            _lock: lock,
        };
        let written = me.written(ctx);
        write_context(&me.admin, &me.features, index, ops, &written)?;
        me.state("on")?;
        if let (Some(p), Some(pid)) = (&me.owner, me.pid()) {
            crate::guard::record_owner(p, pid)?;
        }
        if !me.is_running() {
            me.release()?;
            return Err(SysfsError::Unsupported(
                "the kernel accepted the configuration but its kdamond did not start".into(),
            ));
        }
        Ok(me)
    }

    /// What goes to the kernel: `ctx`'s parameters and the probe scheme.
    fn written(&self, ctx: &Context) -> Context {
        let mut c = params_of(ctx);
        if self.probe_scheme {
            c.schemes.push(damon_core::damos::Scheme::new(
                damon_core::damos::AccessPattern::default(),
                damon_core::damos::Action::Stat,
            ));
        }
        c
    }

    /// The regions of the whole context as the probe scheme last tried
    /// them (`update_schemes_tried_regions`: the kernel answers at its
    /// next scheme application, about one aggregation), as
    /// `(region, nr_accesses, age)`; the kernel does not say which target
    /// each is of. Needs [`StartOptions::probe_scheme`].
    pub fn probe_regions(&self) -> Result<Vec<(AddrRange, u32, u32)>, SysfsError> {
        if !self.probe_scheme {
            return Err(SysfsError::Unsupported(
                "this kdamond was started without the probe scheme".into(),
            ));
        }
        let all = self.tried_regions_of(self.current.schemes.len() + 1)?;
        let (_, regions) = all.into_iter().last().unwrap_or_default();
        Ok(regions
            .into_iter()
            .map(|r| (r.range, r.nr_accesses, r.age))
            .collect())
    }

    fn state(&self, cmd: &str) -> Result<(), SysfsError> {
        self.admin
            .write(&format!("{}/state", paths::kdamond(self.index)), cmd)
    }

    /// The kdamond's index in the tree.
    pub fn index(&self) -> usize {
        self.index
    }

    /// What the probe found.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        self.admin
            .read(&format!("{}/state", paths::kdamond(self.index)))
            .is_ok_and(|s| s.trim() == "on")
    }

    /// The kdamond thread's pid.
    pub fn pid(&self) -> Option<i64> {
        self.admin
            .read_i64(&format!("{}/pid", paths::kdamond(self.index)))
            .ok()
            .filter(|&p| p > 0)
    }

    /// Applies `ctx` to the running kdamond (`commit`). If the kernel
    /// refuses it, the files are written back to the running configuration,
    /// so that the tree and the kdamond keep agreeing, and the error returned.
    pub fn commit(&mut self, ctx: &Context) -> Result<(), SysfsError> {
        let written = self.written(ctx);
        let done = write_context(&self.admin, &self.features, self.index, &self.ops, &written)
            .and_then(|()| self.state("commit"));
        match done {
            Ok(()) => {
                self.current = params_of(ctx);
                Ok(())
            }
            Err(e) => {
                write_context(
                    &self.admin,
                    &self.features,
                    self.index,
                    &self.ops,
                    &self.current,
                )?;
                Err(e)
            }
        }
    }

    /// What the tree holds now (after the kernel's own updates, e.g. tuned
    /// intervals written back by [`Self::tuned_intervals`]).
    pub fn read_back(&self) -> Result<Context, SysfsError> {
        let (_, mut c) = read_context(&self.admin, self.index)?;
        if self.probe_scheme {
            c.schemes.pop();
        }
        Ok(c)
    }

    /// Pauses or resumes monitoring (the context's `pause`, Linux 7.2+).
    pub fn set_pause(&mut self, pause: bool) -> Result<(), SysfsError> {
        let rel = format!("{}/pause", paths::ctx(self.index));
        if !self.admin.exists(&rel) {
            return Err(self
                .features
                .missing("the sysfs file pause", file_since("pause")));
        }
        let mut ctx = params_of(&self.current);
        ctx.pause = pause;
        self.commit(&ctx)
    }

    /// The context as last committed (the hidden probe scheme left out).
    pub fn current(&self) -> &Context {
        &self.current
    }

    /// The schemes as last committed, each with the kernel's statistics
    /// (`update_schemes_stats`).
    pub fn schemes_with_stats(&self) -> Result<Vec<damon_core::damos::Scheme>, SysfsError> {
        let stats = self.stats()?;
        let mut schemes = self.current.schemes.clone();
        for (s, st) in schemes.iter_mut().zip(stats) {
            s.stat = st;
        }
        Ok(schemes)
    }

    /// The schemes' statistics (`update_schemes_stats`).
    pub fn stats(&self) -> Result<Vec<Stat>, SysfsError> {
        self.state("update_schemes_stats")?;
        (0..self.current.schemes.len())
            .map(|s| {
                let d = format!("{}/stats", paths::scheme(self.index, s));
                let opt = |f: &str| -> Result<u64, SysfsError> {
                    let rel = format!("{d}/{f}");
                    if self.admin.exists(&rel) {
                        self.admin.read_u64(&rel)
                    } else {
                        Ok(0)
                    }
                };
                Ok(Stat {
                    nr_tried: self.admin.read_u64(&format!("{d}/nr_tried"))?,
                    sz_tried: self.admin.read_u64(&format!("{d}/sz_tried"))?,
                    nr_applied: self.admin.read_u64(&format!("{d}/nr_applied"))?,
                    sz_applied: self.admin.read_u64(&format!("{d}/sz_applied"))?,
                    sz_ops_filter_passed: opt("sz_ops_filter_passed")?,
                    qt_exceeds: self.admin.read_u64(&format!("{d}/qt_exceeds"))?,
                    nr_snapshots: opt("nr_snapshots")?,
                })
            })
            .collect()
    }

    /// Each scheme's tried regions and their total bytes
    /// (`update_schemes_tried_regions`, Linux 6.2+).
    pub fn tried_regions(&self) -> Result<Vec<(u64, Vec<KernelTriedRegion>)>, SysfsError> {
        self.tried_regions_of(self.current.schemes.len())
    }

    fn tried_regions_of(
        &self,
        nr_schemes: usize,
    ) -> Result<Vec<(u64, Vec<KernelTriedRegion>)>, SysfsError> {
        self.state("update_schemes_tried_regions")?;
        (0..nr_schemes)
            .map(|s| {
                let d = format!("{}/tried_regions", paths::scheme(self.index, s));
                if !self.admin.exists(&d) {
                    return Err(self.features.missing(
                        "the sysfs directory tried_regions",
                        file_since("tried_regions"),
                    ));
                }
                let total = if self.admin.exists(&format!("{d}/total_bytes")) {
                    self.admin.read_u64(&format!("{d}/total_bytes"))?
                } else {
                    0
                };
                let mut regions = Vec::new();
                for r in 0.. {
                    let rd = format!("{d}/{r}");
                    if !self.admin.exists(&rd) {
                        break;
                    }
                    let u32_of = |f: &str| -> Result<u32, SysfsError> {
                        let v = self.admin.read_u64(&format!("{rd}/{f}"))?;
                        Ok(u32::try_from(v).unwrap_or(u32::MAX))
                    };
                    let passed = format!("{rd}/sz_filter_passed");
                    regions.push(KernelTriedRegion {
                        range: AddrRange::new(
                            self.admin.read_u64(&format!("{rd}/start"))?,
                            self.admin.read_u64(&format!("{rd}/end"))?,
                        ),
                        nr_accesses: u32_of("nr_accesses")?,
                        age: u32_of("age")?,
                        sz_filter_passed: if self.admin.exists(&passed) {
                            Some(self.admin.read_u64(&passed)?)
                        } else {
                            None
                        },
                    });
                }
                Ok((total, regions))
            })
            .collect()
    }

    /// Each scheme's effective size quota (`update_schemes_effective_quotas`,
    /// Linux 6.9+).
    pub fn effective_quotas(&self) -> Result<Vec<u64>, SysfsError> {
        let first = format!("{}/quotas/effective_bytes", paths::scheme(self.index, 0));
        if !self.current.schemes.is_empty() && !self.admin.exists(&first) {
            return Err(self.features.missing(
                "the sysfs file effective_bytes",
                file_since("effective_bytes"),
            ));
        }
        self.state("update_schemes_effective_quotas")?;
        (0..self.current.schemes.len())
            .map(|s| {
                self.admin.read_u64(&format!(
                    "{}/quotas/effective_bytes",
                    paths::scheme(self.index, s)
                ))
            })
            .collect()
    }

    /// The auto-tuned sampling and aggregation intervals, µs
    /// (`update_tuned_intervals`, Linux 6.15+).
    pub fn tuned_intervals(&self) -> Result<(u64, u64), SysfsError> {
        let iv = format!("{}/monitoring_attrs/intervals", paths::ctx(self.index));
        if !self.admin.exists(&format!("{iv}/intervals_goal")) {
            return Err(self.features.missing(
                "intervals auto-tuning (intervals_goal)",
                file_since("intervals_goal"),
            ));
        }
        self.state("update_tuned_intervals")?;
        Ok((
            self.admin.read_u64(&format!("{iv}/sample_us"))?,
            self.admin.read_u64(&format!("{iv}/aggr_us"))?,
        ))
    }

    fn release(&mut self) -> Result<(), SysfsError> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        let r = release_kdamond(&self.admin, self.index);
        if let Some(p) = &self.owner {
            crate::guard::clear_owner(p);
        }
        r
    }

    /// Turns the kdamond off and removes it.
    pub fn stop(mut self) -> Result<(), SysfsError> {
        self.release()
    }

    /// [`Self::stop`] through a reference (for a shared kdamond); later
    /// calls do nothing.
    pub fn shutdown(&mut self) -> Result<(), SysfsError> {
        self.release()
    }
}

impl Drop for KernelKdamond {
    fn drop(&mut self) {
        // best effort: a failure here has no caller to report to
        let _ = self.release();
    }
}
