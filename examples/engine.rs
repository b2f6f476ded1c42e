//! The tools' `--engine`: a context started on this library's engine or on
//! the kernel's DAMON (damon-sysfs), behind one handle.

use damon_core::{damon_select_ops, damon_start, Context, DamonHandle};
pub use damon_sysfs::Engine;
use damon_sysfs::{Admin, KernelRun, KernelRunOptions};

/// A context running on either engine.
#[derive(Debug)]
pub enum Running {
    /// On this library's engine.
    User(DamonHandle),
    /// On a kdamond of ours.
    Kernel(KernelRun),
}

impl Running {
    /// Whether it still runs.
    pub fn is_running(&self) -> bool {
        match self {
            Running::User(h) => h.is_running(),
            Running::Kernel(k) => k.is_running(),
        }
    }

    /// Why it ended, if it did.
    pub fn exit_reason(&self) -> Option<String> {
        match self {
            Running::User(h) => h.exit_reason().map(|r| r.to_string()),
            Running::Kernel(k) => {
                (!k.is_running()).then(|| "the kernel's kdamond stopped".to_string())
            }
        }
    }

    /// Regions monitored now.
    pub fn nr_regions(&self) -> usize {
        match self {
            Running::User(h) => h.call(|c| c.nr_regions()).unwrap_or(0),
            Running::Kernel(k) => k.latest().iter().map(|s| s.regions.len()).sum(),
        }
    }

    /// Stops it (callbacks' `before_terminate` run).
    pub fn stop(self) {
        match self {
            Running::User(h) => h.stop(),
            Running::Kernel(k) => k.stop(),
        }
    }

    /// The engine it runs on.
    pub fn engine(&self) -> &'static str {
        match self {
            Running::User(_) => "user",
            Running::Kernel(_) => "kernel",
        }
    }
}

fn user(mut ctx: Context, ops: &str) -> Result<Running, String> {
    if ctx.ops_id().is_none() {
        damon_select_ops(&mut ctx, ops)
            .map_err(|e| format!("cannot use the {ops} backend: {e}"))?;
    }
    let mut handles = damon_start(vec![ctx], false).map_err(|e| e.to_string())?;
    Ok(Running::User(handles.remove(0)))
}

/// Starts `ctx` (operations set `ops`) on `engine`. `auto` tries the
/// kernel's DAMON first and says on stderr why it falls back to ours.
pub fn start_engine(engine: Engine, mut ctx: Context, ops: &str) -> Result<Running, String> {
    let kernel = |ctx: &mut Context| {
        KernelRun::start(Admin::kernel(), ops, ctx, &KernelRunOptions::default())
    };
    match engine {
        Engine::User => user(ctx, ops),
        Engine::Kernel => kernel(&mut ctx)
            .map(Running::Kernel)
            .map_err(|e| format!("the kernel engine cannot run this: {e}")),
        Engine::Auto => match kernel(&mut ctx) {
            Ok(k) => {
                eprintln!("engine: kernel (the kernel's DAMON)");
                Ok(Running::Kernel(k))
            }
            Err(e) => {
                eprintln!("engine: user (the kernel's DAMON cannot: {e})");
                user(ctx, ops)
            }
        },
    }
}
