//! DAMOS in the examples: contexts with schemes and their report.

use super::*;
use damon_core::damos::Scheme;
use damon_core::Context;
use std::sync::atomic::AtomicBool;

/// One line of scheme statistics: the scheme's label, watermark state, the
/// kernel's stat names (`nr_tried`, `sz_tried`, `nr_applied`, `sz_applied`,
/// `qt_exceeds`; sizes in bytes, with a human form) and the effective size
/// quota of the current window (`esz`, `unlimited` without a quota).
/// `status` is what the engine says of it.
///
/// ```
/// use damon_core::damos::{AccessPattern, Action, Scheme};
/// use damon_examples::cli::SchemeStatus;
/// let mut s = Scheme::new(AccessPattern::default(), Action::Pageout);
/// s.stat.nr_tried = 3;
/// s.stat.sz_applied = 8192;
/// let ours = SchemeStatus::Ours { esz: 0, activated: true };
/// let line = damon_examples::cli::scheme_line("pageout", &s, ours);
/// assert!(line.starts_with("pageout [active]: nr_tried=3 "), "{line}");
/// assert!(line.contains("sz_applied=8192 (8.000 KiB)") && line.ends_with("effective_quota=unlimited"));
/// ```
pub fn scheme_line(label: &str, s: &Scheme, status: SchemeStatus) -> String {
    let st = &s.stat;
    let (state, esz) = match status {
        SchemeStatus::Ours {
            esz,
            activated: true,
        } => ("active", Some(esz)),
        SchemeStatus::Ours {
            esz,
            activated: false,
        } => ("inactive (watermarks)", Some(esz)),
        SchemeStatus::Kernel { esz } => ("on the kernel's kdamond", esz),
        SchemeStatus::NotStarted => ("not started", None),
    };
    let quota = if !s.quota.is_set() {
        "unlimited".to_string()
    } else {
        match esz {
            Some(esz) => format!("{esz} ({})", size(esz)),
            None => "?".into(),
        }
    };
    format!(
        "{label} [{state}]: nr_tried={} sz_tried={} ({}) nr_applied={} sz_applied={} ({}) qt_exceeds={} effective_quota={quota}",
        st.nr_tried,
        st.sz_tried,
        size(st.sz_tried),
        st.nr_applied,
        st.sz_applied,
        size(st.sz_applied),
        st.qt_exceeds,
    )
}

/// What an engine says of a scheme, for [`scheme_line`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemeStatus {
    /// Nothing yet.
    NotStarted,
    /// Our DAMOS engine: the effective size quota and whether the
    /// watermarks let the scheme act.
    Ours {
        /// Effective size quota of the current window (bytes).
        esz: u64,
        /// Whether the watermarks let it act.
        activated: bool,
    },
    /// The kernel's kdamond: the effective quota where the kernel reports
    /// it (`effective_bytes`, Linux 6.9+); its watermark state is not in
    /// sysfs.
    Kernel {
        /// Effective size quota (bytes), if reported.
        esz: Option<u64>,
    },
}

/// Loads the first context of a damo kdamonds JSON file for monitoring:
/// its schemes are dropped, and `program` warns about them and about any
/// further context. Errors name the file.
pub fn kdamonds_context(
    path: &std::path::Path,
    program: &str,
) -> Result<(Context, damon_damo::ContextParams), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = damon_damo::parse_kdamonds(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let params = cfg
        .contexts()
        .next()
        .ok_or_else(|| format!("{}: no context", path.display()))?
        .clone();
    let n = cfg.contexts().count();
    if n > 1 {
        eprintln!(
            "{program}: {}: using the first of {n} contexts",
            path.display()
        );
    }
    let mut ctx = params.to_context();
    if !params.schemes.is_empty() {
        eprintln!(
            "{program}: ignoring the {} scheme(s) of the config (monitoring only)",
            params.schemes.len()
        );
        ctx.schemes.clear();
    }
    Ok((ctx, params))
}

/// Default free-memory rate of a simulation: halfway between the low and
/// middle watermarks, where a scheme is active.
pub fn default_sim_free_rate(low: u64, mid: u64) -> u64 {
    low + mid.saturating_sub(low) / 2
}

/// A context for the `vaddr` backend over processes `pids` and, if
/// `command` is not empty, a command started for it (after the backend was
/// found usable, so nothing starts when monitoring cannot). Returns the
/// context, the command and a description of the targets.
pub fn process_context(
    pids: &[u32],
    command: &[String],
) -> Result<(Context, Option<Command>, String), String> {
    process_context_on(crate::engine::Engine::User, pids, command)
}

/// [`process_context`] for `engine`: with the kernel's (or `auto`), the
/// context only names `vaddr` (the kernel has its own), and our backend
/// is selected if ours ends up running it.
pub fn process_context_on(
    engine: crate::engine::Engine,
    pids: &[u32],
    command: &[String],
) -> Result<(Context, Option<Command>, String), String> {
    let mut pids = pids.to_vec();
    pids.sort_unstable();
    pids.dedup();
    for &pid in &pids {
        check_pid(pid)?;
    }
    if pids.is_empty() && command.is_empty() {
        return Err("no process given: use --pid PID (repeatable) or -- COMMAND".into());
    }
    damon_ops_vaddr::register();
    let mut ctx = Context::new();
    if engine == crate::engine::Engine::User {
        damon_core::damon_select_ops(&mut ctx, "vaddr")
            .map_err(|e| format!("cannot monitor processes: {e}"))?;
    } else {
        ctx.name_ops("vaddr");
    }
    let mut what: Vec<String> = pids.iter().map(|p| format!("pid {p}")).collect();
    let cmd = if command.is_empty() {
        None
    } else {
        let c = Command::spawn(command)?;
        what.push(format!("`{}` (pid {})", c.display(), c.pid()));
        pids.push(c.pid());
        Some(c)
    };
    ctx.targets = pids
        .iter()
        .map(|&p| damon_core::Target::new(u64::from(p)))
        .collect();
    Ok((ctx, cmd, what.join(", ")))
}

/// A context over the simulated space of `spec` (see [`parse_sim`]), one target.
pub fn sim_context(spec: &str, seed: Option<u64>) -> Result<(Context, String), String> {
    let pattern = parse_sim(spec).map_err(|e| format!("--sim: {e}"))?;
    let what = format!("simulated {} ({spec})", size(pattern.space_bytes()));
    let mut ops = damon_core::SimOps::new(pattern);
    if let Some(seed) = seed {
        ops = ops.with_seed(seed);
    }
    let mut ctx = Context::new();
    ctx.set_ops("sim", Box::new(ops));
    ctx.targets.push(damon_core::Target::new(0));
    ctx.seed = seed;
    Ok((ctx, what))
}

/// How [`run_schemes`] runs and reports.
pub struct SchemesRun<'a> {
    /// Program name, the prefix of every report line.
    pub name: &'a str,
    /// Scheme labels, by position (the action name where missing).
    pub labels: &'a [&'a str],
    /// Run on the caller's thread (virtual time) instead of a worker.
    pub stepped: bool,
    /// The engine that runs it in real time (`stepped` is ours only).
    pub engine: crate::engine::Engine,
    /// Its operations set, for the kernel engine.
    pub ops: &'a str,
    /// Time between two reports (µs).
    pub interval_us: u64,
    /// Stop after this long (µs); `None` runs until interrupted or the
    /// targets exit.
    pub duration_us: Option<u64>,
    /// Set by Ctrl-C.
    pub interrupt: &'a AtomicBool,
    /// Our DAMOS engine's `(esz, activated)` per scheme (unused when the
    /// kernel's kdamond runs it).
    pub status: Box<dyn Fn() -> Vec<(u64, bool)> + 'a>,
    /// The free memory rate (per mille) the watermarks see.
    pub free_mem_rate: Box<dyn FnMut() -> Option<u64> + 'a>,
}

impl std::fmt::Debug for SchemesRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemesRun")
            .field("name", &self.name)
            .field("stepped", &self.stepped)
            .field("interval_us", &self.interval_us)
            .field("duration_us", &self.duration_us)
            .finish()
    }
}

/// The report block of [`run_schemes`]: a header with the time and the
/// free memory rate, then one [`scheme_line`] per scheme.
pub fn schemes_report(
    name: &str,
    elapsed_us: u64,
    free_mem_rate: Option<u64>,
    labels: &[&str],
    schemes: &[Scheme],
    status: &[SchemeStatus],
) -> String {
    let mut out = format!("{name}: t={}", time_us(elapsed_us));
    if let Some(r) = free_mem_rate {
        out.push_str(&format!(", free_mem_rate={r} per mille"));
    }
    out.push('\n');
    for (i, s) in schemes.iter().enumerate() {
        let label = labels.get(i).copied().unwrap_or(s.action.name());
        out.push_str("  ");
        out.push_str(&scheme_line(
            label,
            s,
            status.get(i).copied().unwrap_or(SchemeStatus::NotStarted),
        ));
        out.push('\n');
    }
    out
}

/// Runs a context with schemes (its DAMOS engine installed), writing a
/// [`schemes_report`] every `interval_us` and a final one through `emit`
/// (which returns false once its output is closed). Returns why it stopped
/// and the elapsed time.
pub fn run_schemes(
    ctx: Context,
    mut opts: SchemesRun<'_>,
    emit: &mut dyn FnMut(&str) -> bool,
) -> Result<(Stop, u64), String> {
    let mut runner = if opts.stepped || opts.engine == crate::engine::Engine::User {
        if opts.stepped && opts.engine == crate::engine::Engine::Kernel {
            return Err("virtual time runs on the user engine only (--engine user)".into());
        }
        Runner::start(ctx, opts.stepped)
    } else {
        Runner::start_on(opts.engine, ctx, opts.ops)
    }
    .map_err(|e| format!("cannot start: {e}"))?;
    let status = |runner: &Runner, opts: &SchemesRun<'_>| -> Vec<SchemeStatus> {
        match runner.kernel_quotas() {
            Some(q) => q
                .into_iter()
                .map(|esz| SchemeStatus::Kernel { esz })
                .collect(),
            None => (opts.status)()
                .into_iter()
                .map(|(esz, activated)| SchemeStatus::Ours { esz, activated })
                .collect(),
        }
    };
    let interval = opts.interval_us.max(1);
    let mut next = interval;
    let stop = loop {
        let until = opts.duration_us.map_or(next, |d| next.min(d));
        let stop = runner.run_until(until, opts.interrupt);
        let elapsed = runner.elapsed_us();
        if stop.is_none() {
            if let Some(schemes) = runner.schemes() {
                let st = status(&runner, &opts);
                let text = schemes_report(
                    opts.name,
                    elapsed,
                    (opts.free_mem_rate)(),
                    opts.labels,
                    &schemes,
                    &st,
                );
                if !emit(&text) {
                    break Stop::Interrupted;
                }
            }
        }
        if let Some(s) = stop {
            break s;
        }
        if opts.duration_us.is_some_and(|d| elapsed >= d) {
            break Stop::Duration;
        }
        while next <= elapsed {
            next += interval;
        }
    };
    let elapsed = runner.elapsed_us();
    let status = status(&runner, &opts);
    let rate = (opts.free_mem_rate)();
    if let Some(ctx) = runner.finish() {
        let mut text = format!("{}: final statistics\n", opts.name);
        text.push_str(&schemes_report(
            opts.name,
            elapsed,
            rate,
            opts.labels,
            &ctx.schemes,
            &status,
        ));
        emit(&text);
    }
    Ok((stop, elapsed))
}

/// Selects the best backend of ours for monitoring another process and
/// returns its id: `vaddr` (every access: idle page tracking, root), else
/// `vaddr-softdirty` (writes only: soft-dirty bits, ptrace access), saying
/// on stderr, as `program`, that it records writes and why. The error
/// says what each source lacks. The kernel engine (`user` false) runs its
/// own `vaddr`: nothing is selected.
pub fn select_process_ops(
    ctx: &mut Context,
    user: bool,
    program: &str,
) -> Result<&'static str, String> {
    if !user {
        return Ok("vaddr");
    }
    damon_ops_vaddr::register();
    let vaddr = match damon_core::damon_select_ops(ctx, "vaddr") {
        Ok(()) => return Ok("vaddr"),
        Err(e) => e,
    };
    match damon_core::damon_select_ops(ctx, damon_ops_vaddr::softdirty::ID) {
        Ok(()) => {
            eprintln!(
                "{program}: vaddr cannot run here ({vaddr}):\n\
                 {program}: watching WRITES through soft-dirty bits (vaddr-softdirty); a page only read is not seen"
            );
            Ok(damon_ops_vaddr::softdirty::ID)
        }
        Err(soft) => Err(format!(
            "no access source for another process: vaddr: {vaddr}; vaddr-softdirty: {soft} \
             (vaddr-written sees only the calling process's writes: monitor --self-demo; \
             or the kernel's DAMON: --engine kernel)"
        )),
    }
}
