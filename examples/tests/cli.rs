//! The logic of the `monitor`, `reclaim` and `lru_sort` examples, tested
//! as library functions (`damon_examples::cli`): parsers, the live table,
//! the bounded history, the runner, the end-of-run report and the schemes
//! loop. Everything runs on the simulated backend, on virtual time.

use damon_core::{ExitReason, VirtualClock};
use damon_damo::{Record, RecordIntervals, RecordRegion, Recorder, Snapshot};
use damon_examples::cli::{self, History, Runner, SchemesRun, Stop};
use damon_schemes::presets::{LruSortParams, ReclaimParams};
use damon_schemes::SimMetrics;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

fn region(start: u64, end: u64, nr_accesses: u32, age: u32) -> RecordRegion {
    RecordRegion {
        start,
        end,
        nr_accesses,
        age,
    }
}

fn record_with(snapshots: Vec<Vec<RecordRegion>>) -> Record {
    let iv = RecordIntervals {
        sample_us: 5_000,
        aggr_us: 100_000,
        ops_update_us: 1_000_000,
        goal: Default::default(),
    };
    let mut r = Record::new(0, Some(iv));
    for (i, regions) in snapshots.into_iter().enumerate() {
        let t = i as u64 * 100_000_000;
        r.snapshots.push(Snapshot {
            start_time: t,
            end_time: t + 100_000_000,
            regions,
            sample_interval_us: Some(5_000),
        });
    }
    r
}

#[test]
fn sizes_durations_and_pids_parse_with_clear_errors() {
    assert_eq!(cli::parse_bytes("1.5K"), Ok(1536));
    assert_eq!(cli::parse_size("1.4G").unwrap() % 4096, 0);
    assert!(cli::parse_bytes("-1").is_err());
    assert!(cli::parse_secs("abc").unwrap_err().contains("not a number"));
    let e = cli::check_pid(u32::MAX - 1).unwrap_err();
    assert!(e.contains("no process with pid"), "{e}");
    assert!(cli::check_pid(0).is_err());
    cli::check_pid(std::process::id()).unwrap();
    let p = cli::parse_sim("64M:hot=0-1M@1:exit=0.25").unwrap();
    assert_eq!(p.exit_after_us, Some(250_000));
}

#[test]
fn the_table_shows_the_hottest_regions_in_address_order() {
    // 30 regions of 1 MiB; region i has i % 21 accesses
    let regions: Vec<_> = (0..30u64)
        .map(|i| region(i << 20, (i + 1) << 20, (i % 21) as u32, i as u32))
        .collect();
    let (rows, hidden, hidden_bytes) = cli::hottest_rows(&regions, 5);
    assert_eq!(rows.len(), 5);
    assert_eq!((hidden, hidden_bytes), (25, 25 << 20));
    assert!(rows.windows(2).all(|w| w[0].start < w[1].start));
    let mut counts: Vec<u32> = rows.iter().map(|r| r.nr_accesses).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![16, 17, 18, 19, 20], "the five hottest");
    // fewer than the cap: all, untouched
    let (rows, hidden, _) = cli::hottest_rows(&regions[..3], 5);
    assert_eq!((rows.len(), hidden), (3, 0));
}

#[test]
fn a_frame_has_a_header_and_one_row_per_region() {
    let rec = record_with(vec![
        vec![region(0, 4096, 0, 0)],
        vec![
            region(0x1000_0000, 0x1010_0000, 20, 3),
            region(0x1010_0000, 0x2000_0000, 10, 0),
            region(0x2000_0000, 0x4000_0000, 0, 12),
        ],
    ]);
    let labels = vec!["pid 42".to_string()];
    let frame = cli::render_frame(
        "monitor: test",
        2_500_000,
        std::slice::from_ref(&rec),
        &labels,
        20,
    );
    let lines: Vec<&str> = frame.lines().collect();
    assert_eq!(
        lines[0],
        "monitor: test | elapsed 2.500 s | total 768.000 MiB in 3 regions"
    );
    assert!(lines[1].starts_with("pid 42: 3 regions"), "{frame}");
    assert!(lines[2].contains("start") && lines[2].contains("access") && lines[2].contains("age"));
    assert_eq!(lines.len(), 6, "{frame}");
    assert!(lines[3].contains("0x10000000") && lines[3].contains("100 %"));
    assert!(
        lines[3].trim_end().ends_with("300 ms"),
        "age 3 x 100 ms: {frame}"
    );
    assert!(lines[4].contains(" 50 %") && lines[4].trim_end().ends_with(" 0"));
    assert!(lines[5].contains("  0 %") && lines[5].trim_end().ends_with("1.200 s"));
    // capped: the colder rest is summarized
    let frame = cli::render_frame("t", 0, &[rec], &labels, 1);
    assert!(
        frame.contains("... 2 colder regions (767.000 MiB) not shown"),
        "{frame}"
    );
    // before the first aggregation
    let frame = cli::render_frame("t", 50_000, &[], &labels, 20);
    assert!(frame.contains("waiting for the first aggregation"));
}

#[test]
fn frames_redraw_on_a_terminal_and_stack_otherwise() {
    let tty = cli::present("a\n", true);
    assert!(tty.starts_with(cli::CLEAR_SCREEN) && tty.ends_with("a\n"));
    assert_eq!(cli::present("a\nb\n", false), "a\nb\n\n");
}

#[test]
fn history_stays_bounded_and_keeps_the_whole_time_span() {
    let mut h = History::new(4);
    for batch in 0..2u64 {
        let mut rec = record_with((0..5).map(|i| vec![region(0, 4096, i, 0)]).collect());
        for s in &mut rec.snapshots {
            s.start_time += batch * 500_000_000;
            s.end_time += batch * 500_000_000;
        }
        h.absorb(vec![rec]);
    }
    let snaps = &h.records()[0].snapshots;
    assert!(snaps.len() <= 4, "{}", snaps.len());
    assert_eq!(snaps[0].start_time, 0);
    assert_eq!(snaps.last().unwrap().end_time, 1_000_000_000);
    assert!(
        snaps.windows(2).all(|w| w[0].end_time <= w[1].start_time),
        "snapshots stay in time order"
    );
    assert_eq!(h.nr_snapshots(), snaps.len());
}

fn sim_ctx(spec: &str) -> damon_core::Context {
    let (mut ctx, what) = cli::sim_context(spec, Some(7)).unwrap();
    assert!(what.starts_with("simulated "), "{what}");
    ctx.clock = Some(Arc::new(VirtualClock::new()));
    ctx
}

#[test]
fn the_runner_reports_an_exited_target_and_the_report_has_heatmap_and_wss() {
    let mut ctx = sim_ctx("1G:hot=0-128M@0.9:exit=2");
    let clock = ctx.clock.clone().unwrap();
    let rec = Recorder::new().with_clock(clock).install(&mut ctx);
    let mut runner = Runner::start(ctx, true).unwrap();
    let never = AtomicBool::new(false);
    assert!(runner.run_until(1_000_000, &never).is_none());
    assert!(runner.elapsed_us() >= 1_000_000);
    let nr = runner.with_ctx(|c| c.nr_regions()).unwrap();
    assert!(nr >= 10);
    let stop = runner
        .run_until(10_000_000, &never)
        .expect("the target exits");
    assert!(
        matches!(&stop, Stop::Exited(ExitReason::AllTargetsInvalid { .. })),
        "{stop:?}"
    );
    assert!(
        stop.to_string().starts_with("every target exited"),
        "{stop}"
    );
    assert!(stop.failure().is_none());
    let elapsed = runner.elapsed_us();
    assert!((2_000_000..2_100_000).contains(&elapsed), "{elapsed}");
    assert!(runner.finish().is_some());

    let mut h = History::new(1024);
    h.absorb(rec.lock().take_records());
    assert_eq!(h.nr_snapshots(), 20);
    let report = cli::render_summary(h.records(), (10, 40));
    assert!(
        report.contains("# access_frequency: 0123456789"),
        "{report}"
    );
    assert!(report.contains("# <percentile> <wss>"), "{report}");
    let p50 = report
        .lines()
        .find(|l| l.trim_start().starts_with("50 "))
        .expect("a 50th percentile line");
    assert!(p50.contains("MiB"), "hot 128 MiB: {p50}");
    // without snapshots the report says so instead of failing
    let empty = cli::render_summary(&[], (10, 40));
    assert!(empty.contains("# no heatmap"), "{empty}");
}

#[test]
fn the_runner_stops_on_interrupt_and_runs_threads_on_real_time() {
    let flag = AtomicBool::new(true);
    let mut stepped = Runner::start(sim_ctx("64M"), true).unwrap();
    assert!(matches!(
        stepped.run_until(u64::MAX, &flag),
        Some(Stop::Interrupted)
    ));
    let mut ctx = sim_ctx("64M:hot=0-1M@1");
    ctx.clock = None; // real time, on a worker thread
    let mut threaded = Runner::start(ctx, false).unwrap();
    let never = AtomicBool::new(false);
    assert!(threaded.run_until(150_000, &never).is_none());
    assert!(threaded.elapsed_us() >= 150_000);
    assert!(threaded.with_ctx(|c| c.nr_regions()).unwrap() >= 10);
    assert!(matches!(
        threaded.run_until(u64::MAX, &flag),
        Some(Stop::Interrupted)
    ));
    let ctx = threaded.finish().expect("the final context");
    assert_eq!(ctx.targets.len(), 1);
}

/// Runs a preset's schemes on a simulated space for 2 s of virtual time
/// with the given free memory rate; returns the final statistics lines.
fn run_preset(
    schemes: Vec<damon_core::damos::Scheme>,
    attrs: damon_core::Attrs,
    free_mem_rate: u64,
) -> String {
    let mut ctx = sim_ctx("1G:hot=0-128M@0.9");
    ctx.attrs = attrs;
    ctx.schemes = schemes;
    let metrics = SimMetrics::new();
    metrics.set(|v| v.free_mem_rate = free_mem_rate);
    let control = damon_schemes::install(&mut ctx, metrics);
    let never = AtomicBool::new(false);
    let mut out = String::new();
    let (stop, elapsed) = cli::run_schemes(
        ctx,
        SchemesRun {
            name: "test",
            labels: &[],
            stepped: true,
            engine: damon_examples::engine::Engine::User,
            ops: "sim",
            interval_us: 500_000,
            duration_us: Some(2_000_000),
            interrupt: &never,
            status: Box::new(move || {
                control
                    .status()
                    .iter()
                    .map(|s| (s.esz, s.activated))
                    .collect()
            }),
            free_mem_rate: Box::new(move || Some(free_mem_rate)),
        },
        &mut |t: &str| {
            out.push_str(t);
            true
        },
    )
    .unwrap();
    assert!(matches!(stop, Stop::Duration), "{stop:?}");
    assert!(elapsed >= 2_000_000);
    assert!(out.contains(&format!("free_mem_rate={free_mem_rate} per mille")));
    let at = out
        .find("test: final statistics")
        .expect("final statistics");
    out[at..].to_string()
}

fn stat(line: &str, key: &str) -> u64 {
    let at = line
        .find(&format!("{key}="))
        .unwrap_or_else(|| panic!("{key} in {line}"))
        + key.len()
        + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn reclaim_acts_inside_the_watermarks_and_not_above_them() {
    let p = ReclaimParams {
        min_age: 200_000,
        ..ReclaimParams::default()
    };
    let inside = run_preset(vec![p.scheme()], p.attrs(), 300);
    let line = inside.lines().find(|l| l.contains("pageout [")).unwrap();
    assert!(line.contains("[active]"), "{line}");
    assert!(
        stat(line, "nr_tried") > 0 && stat(line, "sz_applied") > 0,
        "{line}"
    );
    assert!(stat(line, "effective_quota") > 0, "{line}");

    let above = run_preset(vec![p.scheme()], p.attrs(), 600);
    let line = above.lines().find(|l| l.contains("pageout [")).unwrap();
    assert!(line.contains("inactive (watermarks)"), "{line}");
    assert_eq!((stat(line, "nr_tried"), stat(line, "sz_applied")), (0, 0));
}

#[test]
fn lru_sort_acts_on_hot_and_cold_memory_inside_the_watermarks() {
    let p = LruSortParams {
        cold_min_age: 200_000,
        ..LruSortParams::default()
    };
    let inside = run_preset(p.schemes(), p.attrs(), 100);
    for action in ["willneed [", "cold ["] {
        let line = inside.lines().find(|l| l.contains(action)).unwrap();
        assert!(
            stat(line, "nr_tried") > 0 && stat(line, "sz_applied") > 0,
            "{line}"
        );
    }
    let above = run_preset(p.schemes(), p.attrs(), 300);
    for action in ["willneed [", "cold ["] {
        let line = above.lines().find(|l| l.contains(action)).unwrap();
        assert_eq!(
            (stat(line, "nr_tried"), stat(line, "sz_applied")),
            (0, 0),
            "{line}"
        );
    }
}

#[test]
fn scheme_lines_name_the_state_and_the_quota() {
    let mut s = ReclaimParams::default().scheme();
    let none = cli::SchemeStatus::NotStarted;
    assert!(cli::scheme_line("x", &s, none).contains("[not started]"));
    assert!(cli::scheme_line("x", &s, none).ends_with("effective_quota=?"));
    let kernel = cli::scheme_line("x", &s, cli::SchemeStatus::Kernel { esz: None });
    assert!(
        kernel.contains("[on the kernel's kdamond]") && kernel.ends_with("effective_quota=?"),
        "{kernel}"
    );
    s.stat.qt_exceeds = 2;
    let ours = cli::SchemeStatus::Ours {
        esz: 4096,
        activated: false,
    };
    let l = cli::scheme_line("x", &s, ours);
    assert!(
        l.contains("[inactive (watermarks)]") && l.contains("qt_exceeds=2"),
        "{l}"
    );
    assert!(l.ends_with("effective_quota=4096 (4.000 KiB)"), "{l}");
    assert_eq!(cli::default_sim_free_rate(200, 400), 300);
}

#[test]
fn process_targets_are_checked_before_anything_starts() {
    let e = cli::process_context(&[u32::MAX - 1], &[]).unwrap_err();
    assert!(e.contains("no process with pid"), "{e}");
    let e = cli::process_context(&[], &[]).unwrap_err();
    assert!(e.contains("no process given"), "{e}");
    if std::path::Path::new("/sys/kernel/mm/page_idle/bitmap").exists() {
        eprintln!("skipped the missing-page_idle check: this kernel has idle page tracking");
        return;
    }
    let marker = std::env::temp_dir().join(format!("damon-cli-test-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let argv = vec!["touch".to_string(), marker.display().to_string()];
    let e = cli::process_context(&[], &argv).unwrap_err();
    assert!(e.contains("CONFIG_IDLE_PAGE_TRACKING"), "{e}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!marker.exists(), "the command must not start");
}

#[test]
fn commands_are_reaped_or_killed() {
    let mut quick = cli::Command::spawn(&["true".to_string()]).unwrap();
    let text = cli::end_command(&mut quick, &Stop::Interrupted);
    assert!(text.contains("`true` exited (exit status: 0)"), "{text}");
    let mut slow = cli::Command::spawn(&["sleep".to_string(), "30".to_string()]).unwrap();
    assert!(slow.try_status().is_none());
    let text = cli::end_command(&mut slow, &Stop::Duration);
    assert!(text.contains("killed `sleep 30`"), "{text}");
    let e = cli::Command::spawn(&["/nonexistent/program".to_string()]).unwrap_err();
    assert!(e.contains("cannot start"), "{e}");
    assert!(cli::Command::spawn(&[]).is_err());
}
