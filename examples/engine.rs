//! The tools' `--engine`: a context started with [`damon_start_on`] on this
//! library's engine or on the kernel's DAMON, behind one handle.

use damon_core::Context;
pub use damon_sysfs::Engine;
use damon_sysfs::{damon_start_on, EngineHandle, EngineOptions};

/// A context running on either engine.
#[derive(Debug)]
pub struct Running(pub EngineHandle);

impl Running {
    /// Whether it still runs.
    pub fn is_running(&self) -> bool {
        self.0.is_running()
    }

    /// Why it ended, if it did.
    pub fn exit_reason(&self) -> Option<String> {
        self.0.exit_reason()
    }

    /// Regions monitored now.
    pub fn nr_regions(&self) -> usize {
        match (self.0.user(), self.0.kernel()) {
            (Some(h), _) => h.call(|c| c.nr_regions()).unwrap_or(0),
            (_, Some(k)) => k.latest().iter().map(|s| s.regions.len()).sum(),
            _ => 0,
        }
    }

    /// Stops it (callbacks' `before_terminate` run).
    pub fn stop(self) {
        self.0.stop()
    }

    /// The engine it runs on.
    pub fn engine(&self) -> &'static str {
        match self.0.engine() {
            Engine::Kernel => "kernel",
            _ => "user",
        }
    }
}

/// Starts `ctx` (operations set `ops`: our backend if `ctx` has one
/// selected, else only named) on `engine`. `auto` says on stderr which
/// engine runs it and, for ours, why the kernel's cannot.
pub fn start_engine(engine: Engine, mut ctx: Context, ops: &str) -> Result<Running, String> {
    if ctx.ops_id().is_none() {
        ctx.name_ops(ops);
    }
    let mut handles = damon_start_on(engine, vec![ctx], false, &EngineOptions::default())
        .map_err(|e| e.to_string())?;
    let h = handles.remove(0);
    if engine == Engine::Auto {
        match h.fallback_reason() {
            None => eprintln!("engine: kernel (the kernel's DAMON)"),
            Some(why) => eprintln!("engine: user (the kernel's DAMON cannot: {why})"),
        }
    }
    Ok(Running(h))
}
