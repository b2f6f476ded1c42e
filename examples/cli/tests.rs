//! Tests of the CLI helpers.

use super::*;
use damon_core::AddrRange;

#[test]
fn sim_specs() {
    let p = parse_sim("16G:hot=1G-1.4G@0.8,5G-5.2G@0.5").unwrap();
    assert_eq!(p.space, vec![AddrRange::new(0, 16 << 30)]);
    let hot = &p.phases[0].hot;
    assert_eq!(hot.len(), 2);
    assert_eq!(hot[0].range.start, 1 << 30);
    assert_eq!(hot[0].range.end % 4096, 0);
    assert_eq!(hot[1].probability, 0.5);
    assert!(parse_sim("1G").is_ok());
    for bad in [
        "",
        "0",
        "1X",
        "1G:cold=1-2@1",
        "1G:hot=2M-1M@1",
        "1G:hot=0-2G@1",
        "1G:hot=0-1M@2",
        "1G:hot=0-1M",
        "1G:exit=0",
        "1G:exit=x",
        "1G:hot=0-1M@1:other=1",
    ] {
        assert!(parse_sim(bad).is_err(), "{bad}");
    }
}

fn region(start: u64, end: u64, nr_accesses: u32, age: u32) -> damon_damo::RecordRegion {
    damon_damo::RecordRegion {
        start,
        end,
        nr_accesses,
        age,
    }
}

#[test]
fn temperature_is_damos_with_cold_regions_negative() {
    // 20 samples per aggregation of 100 ms
    let hot_young = region(0, 10, 10, 0); // 50 %: 5000
    let hot_old = region(0, 10, 10, 3); // 5000 + 300 ms * 100
    let cold_old = region(0, 10, 0, 5); // -(500 ms * 100)
    let cold_young = region(0, 10, 0, 1);
    let t = |r| temperature(&r, 20, 100_000);
    assert_eq!(t(hot_young), 5_000);
    assert_eq!(t(hot_old), 5_000 + 30_000_000);
    assert_eq!(t(cold_old), -50_000_000);
    assert!(
        t(hot_old) > t(hot_young) && t(hot_young) > t(cold_young) && t(cold_young) > t(cold_old)
    );
}

#[test]
fn views_sort_and_pick_targets() {
    let mut rec0 = damon_damo::Record::new(0, None);
    rec0.snapshots.push(damon_damo::Snapshot {
        start_time: 0,
        end_time: 100_000_000,
        regions: vec![
            region(0x1000, 0x3000, 0, 9),
            region(0x3000, 0x8000, 4, 0),
            region(0x8000, 0x9000, 8, 2),
        ],
        sample_interval_us: None,
    });
    let mut rec1 = rec0.clone();
    rec1.target_id = 1;
    let labels = vec!["zero".to_string(), "one".to_string()];
    let starts = |frame: &str| -> Vec<String> {
        frame
            .lines()
            .filter(|l| l.trim_start().starts_with("0x"))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let recs = [rec0, rec1];
    let view = |sort, target| View {
        sort,
        target,
        interactive: false,
    };
    let f = render_view("t", 0, &recs, &labels, 2, view(SortKey::Size, Some(1)));
    assert!(
        f.contains("sort: size | target 1") && f.contains("one:") && !f.contains("zero:"),
        "{f}"
    );
    assert_eq!(starts(&f), ["0x3000", "0x1000"], "largest first, 2 rows");
    assert!(f.contains("... 1 regions (4.000 KiB) not shown"), "{f}");
    let f = render_view(
        "t",
        0,
        &recs[..1],
        &labels,
        3,
        view(SortKey::Temperature, None),
    );
    assert_eq!(starts(&f), ["0x8000", "0x3000", "0x1000"], "{f}");
    let f = render_view("t", 0, &recs[..1], &labels, 3, view(SortKey::Age, None));
    assert_eq!(starts(&f), ["0x1000", "0x8000", "0x3000"], "{f}");
    // the default view is the plain frame, without a view line
    assert_eq!(
        render_view("t", 0, &recs, &labels, 3, View::default()),
        render_frame("t", 0, &recs, &labels, 3)
    );
    let v = view(SortKey::Address, None);
    assert_eq!(v.next_target(2), Some(0));
    assert_eq!(view(SortKey::Address, Some(0)).next_target(2), Some(1));
    assert_eq!(view(SortKey::Address, Some(1)).next_target(2), None);
    assert_eq!(SortKey::Age.next(), SortKey::Address);
    assert_eq!(key_action('s'), Some(KeyAction::Sort));
    assert_eq!(key_action('t'), Some(KeyAction::Target));
    assert_eq!(key_action('q'), Some(KeyAction::Quit));
    assert_eq!(key_action('x'), None);
}
