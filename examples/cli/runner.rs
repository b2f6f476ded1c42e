//! The runner: a context on a worker thread, or on virtual time, until
//! it is stopped, its time is up or its command exits.

use super::*;
use damon_core::{damon_start, Clock, Context, DamonHandle, ExitReason, Kdamond, RealClock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why a run ended.
#[derive(Clone, Debug)]
pub enum Stop {
    /// The requested duration passed.
    Duration,
    /// The user interrupted (Ctrl-C or SIGTERM).
    Interrupted,
    /// The context ended by itself (e.g. every target exited).
    Exited(ExitReason),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Duration => f.write_str("the requested duration passed"),
            Stop::Interrupted => f.write_str("interrupted"),
            Stop::Exited(ExitReason::AllTargetsInvalid { detail }) => {
                write!(f, "every target exited ({detail})")
            }
            Stop::Exited(r) => write!(f, "monitoring ended: {r}"),
        }
    }
}

impl Stop {
    /// The exit reason when the context failed (backend error, panic),
    /// which a program should report with a non-zero exit status.
    pub fn failure(&self) -> Option<&ExitReason> {
        match self {
            Stop::Exited(
                r @ (ExitReason::OpsFailed(_)
                | ExitReason::WorkerPanicked(_)
                | ExitReason::CallbackPanicked { .. }),
            ) => Some(r),
            _ => None,
        }
    }
}

/// Ends a started command after a run that stopped for `stop`: after the
/// requested duration it is killed at once; otherwise (it exited, or the
/// user interrupted, which the command saw too) it gets a second to exit.
/// Returns the text to append to the "stopped" line.
pub fn end_command(cmd: &mut Command, stop: &Stop) -> String {
    let grace = match stop {
        Stop::Duration => Duration::ZERO,
        _ => Duration::from_secs(1),
    };
    match cmd.finish(grace) {
        (_, true) => format!("; killed `{}`", cmd.display()),
        (Some(status), false) => format!("; `{}` exited ({status})", cmd.display()),
        (None, false) => String::new(),
    }
}

pub(crate) enum Engine {
    Threaded(DamonHandle),
    Stepped(Box<Kdamond>),
    Kernel(Box<damon_sysfs::KernelRun>),
}

/// Runs one context either on a worker thread ([`damon_start`], real time)
/// or on the caller's thread step by step (meant for a
/// [`damon_core::VirtualClock`]: as fast as the CPU goes, deterministic).
pub struct Runner {
    engine: Engine,
    clock: Arc<dyn Clock>,
    start_us: u64,
    ended: Option<ExitReason>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("stepped", &matches!(self.engine, Engine::Stepped(_)))
            .field("elapsed_us", &self.elapsed_us())
            .finish()
    }
}

impl Runner {
    /// Starts `ctx`; with `stepped`, nothing runs until [`Runner::run_until`].
    /// A context without a clock gets a [`RealClock`].
    pub fn start(mut ctx: Context, stepped: bool) -> Result<Self, String> {
        let clock = ctx
            .clock
            .get_or_insert_with(|| Arc::new(RealClock::new()))
            .clone();
        let start_us = clock.now_us();
        let engine = if stepped {
            let mut kd = Kdamond::new(ctx).map_err(|e| e.to_string())?;
            kd.init().map_err(|e| e.to_string())?;
            Engine::Stepped(Box::new(kd))
        } else {
            let mut handles = damon_start(vec![ctx], false).map_err(|e| e.to_string())?;
            Engine::Threaded(handles.remove(0))
        };
        Ok(Self {
            engine,
            clock,
            start_us,
            ended: None,
        })
    }

    /// Starts `ctx` (operations set `ops`) on `engine` in real time;
    /// `auto` falls back to ours, saying why on stderr.
    pub fn start_on(
        engine: crate::engine::Engine,
        mut ctx: Context,
        ops: &str,
    ) -> Result<Self, String> {
        let clock: Arc<dyn Clock> = ctx
            .clock
            .get_or_insert_with(|| Arc::new(RealClock::new()))
            .clone();
        let start_us = clock.now_us();
        let engine = match crate::engine::start_engine(engine, ctx, ops)?
            .0
            .into_parts()
            .0
        {
            Ok(h) => Engine::Threaded(h),
            Err(k) => Engine::Kernel(Box::new(k)),
        };
        Ok(Self {
            engine,
            clock,
            start_us,
            ended: None,
        })
    }

    /// Microseconds of the context's clock since the start.
    pub fn elapsed_us(&self) -> u64 {
        self.clock.now_us().saturating_sub(self.start_us)
    }

    /// Lets the context run until `until_us` (of [`Runner::elapsed_us`]);
    /// returns early with why it ended, or when `interrupt` is set.
    pub fn run_until(&mut self, until_us: u64, interrupt: &AtomicBool) -> Option<Stop> {
        if let Some(r) = &self.ended {
            return Some(Stop::Exited(r.clone()));
        }
        match &mut self.engine {
            Engine::Threaded(h) => loop {
                if interrupt.load(Ordering::Relaxed) {
                    return Some(Stop::Interrupted);
                }
                if !h.is_running() {
                    let r = h.wait().unwrap_or(ExitReason::Stopped);
                    self.ended = Some(r.clone());
                    return Some(Stop::Exited(r));
                }
                let now = self.clock.now_us().saturating_sub(self.start_us);
                if now >= until_us {
                    return None;
                }
                std::thread::sleep(Duration::from_micros((until_us - now).min(20_000)));
            },
            Engine::Kernel(k) => loop {
                if interrupt.load(Ordering::Relaxed) {
                    return Some(Stop::Interrupted);
                }
                if !k.is_running() {
                    self.ended = Some(ExitReason::Stopped);
                    return Some(Stop::Exited(ExitReason::Stopped));
                }
                let now = self.clock.now_us().saturating_sub(self.start_us);
                if now >= until_us {
                    return None;
                }
                std::thread::sleep(Duration::from_micros((until_us - now).min(20_000)));
            },
            Engine::Stepped(kd) => {
                let mut stuck = 0u32;
                loop {
                    if interrupt.load(Ordering::Relaxed) {
                        return Some(Stop::Interrupted);
                    }
                    let before = self.clock.now_us();
                    if before.saturating_sub(self.start_us) >= until_us {
                        return None;
                    }
                    if let Some(r) = kd.step() {
                        self.ended = Some(r.clone());
                        return Some(Stop::Exited(r));
                    }
                    // every step sleeps on the clock; guard against one that does not
                    stuck = if self.clock.now_us() == before {
                        stuck + 1
                    } else {
                        0
                    };
                    if stuck > 10_000 {
                        return None;
                    }
                }
            }
        }
    }

    /// Runs `f` on the context (between two loop steps) and returns its
    /// value; `None` once the context has ended.
    pub fn with_ctx<R, F>(&self, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&Context) -> R + Send + 'static,
    {
        match &self.engine {
            Engine::Threaded(h) => h.call(f).ok(),
            Engine::Stepped(kd) => Some(f(kd.ctx())),
            // the kernel holds the context; its results come by callbacks
            Engine::Kernel(_) => None,
        }
    }

    /// The schemes with their statistics now: from the context between
    /// two loop steps, or as the kernel's kdamond reports them
    /// (`update_schemes_stats`); `None` once the context has ended.
    pub fn schemes(&self) -> Option<Vec<damon_core::damos::Scheme>> {
        match &self.engine {
            Engine::Kernel(k) => k.kdamond().schemes_with_stats().ok(),
            _ => self.with_ctx(|c| c.schemes.clone()),
        }
    }

    /// On the kernel's kdamond: each scheme's effective size quota where
    /// the kernel reports it (Linux 6.9+); `None` on our engine.
    pub fn kernel_quotas(&self) -> Option<Vec<Option<u64>>> {
        let Engine::Kernel(k) = &self.engine else {
            return None;
        };
        let kd = k.kdamond();
        let n = kd.current().schemes.len();
        Some(match kd.effective_quotas() {
            Ok(q) => q.into_iter().map(Some).collect(),
            Err(_) => vec![None; n],
        })
    }

    /// Stops the context and returns it as it ended (targets, scheme stats).
    pub fn finish(self) -> Option<Context> {
        match self.engine {
            Engine::Threaded(h) => {
                h.stop();
                h.take_final_context()
            }
            Engine::Stepped(kd) => Some(kd.terminate()),
            Engine::Kernel(k) => {
                // the last statistics, read before the kdamond goes
                let schemes = k.kdamond().schemes_with_stats().ok();
                k.stop();
                schemes.map(|schemes| {
                    let mut c = Context::new();
                    c.schemes = schemes;
                    c
                })
            }
        }
    }
}
