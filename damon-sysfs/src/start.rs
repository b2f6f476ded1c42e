//! One start for both engines: [`damon_start_on`] runs a group of contexts
//! on the kernel's DAMON, on ours, or on the kernel's where it can
//! ([`Engine::Auto`]), with `damon_start`'s exclusive rules held across
//! both, and hands back one [`EngineHandle`] per context that says which
//! engine runs it and, for a fallback, why.

use crate::engine::{Engine, KernelRun, KernelRunOptions};
use crate::error::EngineStartError;
use crate::tree::Admin;
use damon_core::{damon_select_ops, damon_start_reserved, Context, DamonHandle, RunSlots};

/// Where [`damon_start_on`] finds the kernel's DAMON.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// The admin tree ([`Admin::kernel`] by default).
    pub admin: Admin,
    /// How a kernel run starts and reads its results.
    pub kernel: KernelRunOptions,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            admin: Admin::kernel(),
            kernel: KernelRunOptions::default(),
        }
    }
}

#[derive(Debug)]
enum Run {
    User(DamonHandle),
    Kernel(KernelRun),
}

/// One context of a group started by [`damon_start_on`].
#[derive(Debug)]
pub struct EngineHandle {
    run: Run,
    fallback: Option<String>,
}

impl EngineHandle {
    /// The engine that runs it: [`Engine::Kernel`] or [`Engine::User`].
    pub fn engine(&self) -> Engine {
        match self.run {
            Run::User(_) => Engine::User,
            Run::Kernel(_) => Engine::Kernel,
        }
    }

    /// Why [`Engine::Auto`] runs it on ours and not on the kernel's DAMON.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Our engine's handle (calls, commits, pause), if ours runs it.
    pub fn user(&self) -> Option<&DamonHandle> {
        match &self.run {
            Run::User(h) => Some(h),
            Run::Kernel(_) => None,
        }
    }

    /// The kernel run (commits, stats, tried regions), if the kernel's
    /// DAMON runs it.
    pub fn kernel(&self) -> Option<&KernelRun> {
        match &self.run {
            Run::Kernel(k) => Some(k),
            Run::User(_) => None,
        }
    }

    /// Whether it still runs.
    pub fn is_running(&self) -> bool {
        match &self.run {
            Run::User(h) => h.is_running(),
            Run::Kernel(k) => k.is_running(),
        }
    }

    /// Why it ended, once it has.
    pub fn exit_reason(&self) -> Option<String> {
        match &self.run {
            Run::User(h) => h.exit_reason().map(|r| r.to_string()),
            Run::Kernel(k) => (!k.is_running()).then(|| "the kernel's kdamond stopped".into()),
        }
    }

    /// Stops it and waits (`before_terminate` runs; a kdamond of ours is
    /// turned off and removed).
    pub fn stop(self) {
        match self.run {
            Run::User(h) => h.stop(),
            Run::Kernel(k) => k.stop(),
        }
    }

    /// Splits it into the handle of the engine that runs it.
    pub fn into_parts(self) -> (Result<DamonHandle, KernelRun>, Option<String>) {
        let run = match self.run {
            Run::User(h) => Ok(h),
            Run::Kernel(k) => Err(k),
        };
        (run, self.fallback)
    }
}

/// Starts `ctxs` as one group (`damon_start`) on `engine`:
///
/// * [`Engine::User`]: all on our engine, as [`damon_core::damon_start`].
/// * [`Engine::Kernel`]: on the kernel's DAMON, or an error naming what it
///   lacks. This library drives one kdamond per process (the kernel adds
///   kdamonds only while none runs), so a kernel group has one context.
/// * [`Engine::Auto`]: each context on the kernel's DAMON if it can run the
///   whole of it (the first such context: one kdamond per process), else
///   on ours, with the reason in [`EngineHandle::fallback_reason`].
///
/// The operations set of each context is its [`Context::ops_id`]; a
/// context may only name it ([`Context::name_ops`]), and our backend of
/// that id is then selected only if ours runs it. With `exclusive`, the
/// group is refused while any context of this process runs, on either
/// engine, and while it runs no other starts; without, it is refused while
/// an exclusive group runs. On an error nothing of the group runs.
pub fn damon_start_on(
    engine: Engine,
    ctxs: Vec<Context>,
    exclusive: bool,
    opts: &EngineOptions,
) -> Result<Vec<EngineHandle>, EngineStartError> {
    if ctxs.is_empty() {
        return Err(damon_core::StartError::Empty.into());
    }
    if engine == Engine::Kernel && ctxs.len() > 1 {
        return Err(EngineStartError::Kernel {
            index: 1,
            source: crate::SysfsError::Unsupported(format!(
                "a group of {} contexts: this library drives one kdamond per process (the kernel adds kdamonds only while none runs), so the kernel engine runs one context; use Engine::Auto to run the rest on ours",
                ctxs.len()
            )),
        });
    }
    let mut slots = RunSlots::reserve(ctxs.len(), exclusive)?;
    let mut kernel: Option<(usize, KernelRun)> = None;
    let mut user: Vec<(usize, Context, Option<String>)> = Vec::new();
    for (index, mut ctx) in ctxs.into_iter().enumerate() {
        let fallback = match (engine, &kernel) {
            (Engine::User, _) => None,
            (_, Some((k, _))) => Some(
                match crate::engine::kernel_can_run(&ctx, ctx.ops_id().unwrap_or("")) {
                    Err(e) => e.to_string(),
                    Ok(()) => format!(
                        "context {k} of this group runs on this process's kdamond (one per process)"
                    ),
                },
            ),
            (_, None) => match start_kernel(&mut ctx, opts, &mut slots) {
                Ok(k) => {
                    kernel = Some((index, k));
                    continue;
                }
                Err(source) if engine == Engine::Kernel => {
                    return Err(EngineStartError::Kernel { index, source })
                }
                Err(e) => Some(e.to_string()),
            },
        };
        user.push((index, ctx, fallback));
    }
    let mut handles: Vec<(usize, EngineHandle)> = Vec::new();
    if !user.is_empty() {
        let mut ctxs = Vec::with_capacity(user.len());
        let mut reasons = Vec::with_capacity(user.len());
        for (index, mut ctx, fallback) in user {
            if ctx.ops().is_none() {
                if let Some(id) = ctx.ops_id().map(str::to_string) {
                    damon_select_ops(&mut ctx, &id).map_err(|source| EngineStartError::Select {
                        index,
                        ops: id.clone(),
                        kernel: fallback.clone(),
                        source,
                    })?;
                }
            }
            ctxs.push(ctx);
            reasons.push((index, fallback));
        }
        let started = damon_start_reserved(ctxs, slots).map_err(|e| renumber(e, &reasons))?;
        for (h, (index, fallback)) in started.into_iter().zip(reasons) {
            handles.push((
                index,
                EngineHandle {
                    run: Run::User(h),
                    fallback,
                },
            ));
        }
    }
    if let Some((index, k)) = kernel {
        handles.push((
            index,
            EngineHandle {
                run: Run::Kernel(k),
                fallback: None,
            },
        ));
    }
    handles.sort_by_key(|(i, _)| *i);
    Ok(handles.into_iter().map(|(_, h)| h).collect())
}

/// Starts `ctx` on a kdamond of ours in one of `slots`.
fn start_kernel(
    ctx: &mut Context,
    opts: &EngineOptions,
    slots: &mut RunSlots,
) -> Result<KernelRun, crate::SysfsError> {
    let ops = ctx.ops_id().map(str::to_string).ok_or_else(|| {
        crate::SysfsError::Unsupported(
            "the context names no operations set (Context::name_ops or damon_select_ops)".into(),
        )
    })?;
    KernelRun::start_in(opts.admin.clone(), &ops, ctx, &opts.kernel, slots)
}

/// Our engine numbers contexts within what it was given; the caller's
/// group numbers them within the whole group.
fn renumber(e: damon_core::StartError, reasons: &[(usize, Option<String>)]) -> EngineStartError {
    use damon_core::StartError as S;
    let at = |i: usize| reasons.get(i).map_or(i, |r| r.0);
    match e {
        S::NoOps { index } => S::NoOps { index: at(index) },
        S::Invalid { index, source } => S::Invalid {
            index: at(index),
            source,
        },
        S::Init { index, source } => S::Init {
            index: at(index),
            source,
        },
        other => other,
    }
    .into()
}
