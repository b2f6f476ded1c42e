//! Monitors the program's own object pool with a custom DAMON backend.
//!
//! ```text
//! cargo run --release --example custom_ops -- [--objects N] [--seconds S]
//! ```
//! Worker threads use a hot set of objects that moves every two seconds;
//! the engine, knowing nothing but the accessed bits the pool reports,
//! finds it. No root and no kernel support are needed.

use clap::Parser;
use damon_core::{damon_start, Control};
use damon_examples::objpool::{pool_context, ObjectPool, OBJECT_SIZE};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most objects the pool takes (64 Mi objects: 512 MiB of counters).
const MAX_OBJECTS: u64 = 1 << 26;

/// Monitors an in-process object pool through a custom Operations backend
/// registered as "objpool"; prints the hot object ranges every second.
#[derive(Parser, Debug)]
#[command(name = "custom_ops")]
struct Args {
    /// Objects in the pool (1024 to 67108864).
    #[arg(long, default_value_t = 1 << 20, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1024..=MAX_OBJECTS))]
    objects: u64,
    /// How long to run, in seconds (1 to 86400).
    #[arg(long, default_value_t = 6, value_name = "S",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    seconds: u64,
    #[command(flatten)]
    intervals: damon_examples::cli::IntervalArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args.objects as usize, args.seconds, &args.intervals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custom_ops: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(
    objects: usize,
    seconds: u64,
    intervals: &damon_examples::cli::IntervalArgs,
) -> Result<(), String> {
    let pool = ObjectPool::try_new(objects)?;
    let hot_start = Arc::new(AtomicUsize::new(objects / 10));
    let hot_len = objects / 50;
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (pool, hot_start, stop) = (pool.clone(), hot_start.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9u64 + w;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = hot_start.load(Ordering::Relaxed) + (x as usize % hot_len);
                    pool.touch(i);
                }
            })
        })
        .collect();

    let mut ctx = pool_context(&pool, "objpool").map_err(|e| e.to_string())?;
    intervals.apply(&mut ctx.attrs);
    ctx.validate().map_err(|e| e.to_string())?;
    let printed = Arc::new(AtomicUsize::new(0));
    let p2 = printed.clone();
    let t0 = Instant::now();
    ctx.callbacks.after_aggregation = Some(Box::new(move |c| {
        // print once per second (every 10th aggregation)
        if p2.fetch_add(1, Ordering::Relaxed) % 10 == 9 {
            let hot: Vec<String> = c.targets[0]
                .regions
                .iter()
                .filter(|r| r.nr_accesses * 2 >= c.attrs.max_nr_accesses())
                .map(|r| {
                    format!(
                        "objects {}..{} ({} accesses)",
                        r.ar.start / OBJECT_SIZE,
                        r.ar.end / OBJECT_SIZE,
                        r.nr_accesses
                    )
                })
                .collect();
            println!(
                "t={:.1}s regions={} hot: {}",
                t0.elapsed().as_secs_f64(),
                c.nr_regions(),
                hot.join(", ")
            );
        }
        Control::Continue
    }));
    let handles = damon_start(vec![ctx], false).map_err(|e| e.to_string())?;
    for s in 0..seconds {
        if s % 2 == 0 {
            let start = (objects / 10) * (1 + (s as usize / 2) % 8);
            hot_start.store(start.min(objects - hot_len), Ordering::Relaxed);
            println!(
                "t={s}s: workers now use objects {}..{}",
                start,
                start + hot_len
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    handles[0].stop();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}
