//! Monitors the program's own object pool with a custom DAMON backend.
//!
//! ```text
//! cargo run --release --example custom_ops -- [--objects N] [--seconds S]
//! ```
//! Worker threads use a hot set of objects that moves every two seconds;
//! the engine, knowing nothing but the accessed bits the pool reports,
//! finds it. No root and no kernel support are needed.

use damon_core::{damon_start, Control};
use damon_examples::objpool::{pool_context, ObjectPool, OBJECT_SIZE};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|_| format!("{name}: not a number")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("usage: custom_ops [--objects N] [--seconds S]\n\nMonitors an in-process object pool through a custom Operations backend\nregistered as \"objpool\"; prints the hot object ranges every second.");
        return;
    }
    let (objects, seconds) = match (arg(&args, "--objects", 1 << 20), arg(&args, "--seconds", 6)) {
        (Ok(o), Ok(s)) if o >= 1024 => (o as usize, s),
        (Ok(_), Ok(_)) => return eprintln!("custom_ops: --objects must be at least 1024"),
        (Err(e), _) | (_, Err(e)) => return eprintln!("custom_ops: {e}"),
    };
    let pool = ObjectPool::new(objects);
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

    let mut ctx = match pool_context(&pool, "objpool") {
        Ok(c) => c,
        Err(e) => return eprintln!("custom_ops: {e}"),
    };
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
    let handles = match damon_start(vec![ctx], false) {
        Ok(h) => h,
        Err(e) => return eprintln!("custom_ops: {e}"),
    };
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
}
