//! Unit tests of the parent module.

use super::*;
use crate::record::RecordRegion;
use damon_core::attrs::IntervalsGoal;

fn iv() -> RecordIntervals {
    RecordIntervals {
        sample_us: 5_000,
        aggr_us: 100_000,
        ops_update_us: 1_000_000,
        goal: IntervalsGoal::default(),
    }
}

fn region(start: u64, end: u64, nr: u32, age: u32) -> RecordRegion {
    RecordRegion {
        start,
        end,
        nr_accesses: nr,
        age,
    }
}

fn snap(start: u64, end: u64, regions: Vec<RecordRegion>) -> Snapshot {
    Snapshot {
        start_time: start,
        end_time: end,
        regions,
        sample_interval_us: None,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn one_region_filling_the_map_gives_its_rate_everywhere() {
    // 10 samples per 100 ms aggregation = 100 hz, over the whole map
    let mut r = Record::new(0, Some(iv()));
    r.snapshots
        .push(snap(0, 100_000_000, vec![region(0, 4096, 10, 0)]));
    let opts = HeatmapOptions {
        resolution: (2, 4),
        ..Default::default()
    };
    let m = heatmap(&[r], &opts).unwrap();
    assert_eq!((m.time_unit, m.addr_unit), (50_000_000, 1024));
    for t in 0..2 {
        for a in 0..4 {
            assert!(
                close(m.heat(t, a).unwrap(), 100.0),
                "{t} {a}: {:?}",
                m.heat(t, a)
            );
        }
    }
    assert_eq!(m.heat_unit, "hz");
}

#[test]
fn binning_weights_by_overlapped_time_and_bytes() {
    // map: time [0, 400) ns in 2 rows of 200, addresses [0, 400) in 2
    // columns of 200. One snapshot [100, 300) with region [100, 300)
    // of 7 samples (no intervals: heat in samples).
    let mut r = Record::new(0, None);
    r.snapshots
        .push(snap(100, 300, vec![region(100, 300, 7, 0)]));
    let opts = HeatmapOptions {
        time_range: Some((0, 400)),
        addr_range: Some((0, 400)),
        resolution: (2, 2),
        ..Default::default()
    };
    let m = heatmap(&[r], &opts).unwrap();
    assert_eq!(m.heat_unit, "samples");
    // each pixel overlaps 100 ns x 100 bytes of the region:
    // 7 * 100 * 100 / (200 * 200) = 1.75
    for t in 0..2 {
        for a in 0..2 {
            assert!(close(m.heat(t, a).unwrap(), 1.75));
        }
    }
}

#[test]
fn partial_overlap_and_untouched_pixels() {
    // rows of 100 ns, columns of 100 bytes, 3x3.
    // snapshot [0, 150): region [0, 50) x 4 samples
    let mut r = Record::new(0, None);
    r.snapshots.push(snap(0, 150, vec![region(0, 50, 4, 0)]));
    let opts = HeatmapOptions {
        time_range: Some((0, 300)),
        addr_range: Some((0, 300)),
        resolution: (3, 3),
        ..Default::default()
    };
    let m = heatmap(&[r], &opts).unwrap();
    // row 0: 100 ns x 50 B x 4 / 10000 = 2
    assert!(close(m.heat(0, 0).unwrap(), 2.0));
    // row 1: 50 ns x 50 B x 4 / 10000 = 1
    assert!(close(m.heat(1, 0).unwrap(), 1.0));
    // row 2 and other columns: untouched
    assert_eq!(m.heat(2, 0), None);
    assert_eq!(m.heat(0, 1), None);
    assert_eq!(m.heat(0, 2), None);
}

#[test]
fn heats_of_several_snapshots_add_up() {
    // two snapshots inside the same pixel: heats add
    let mut r = Record::new(0, None);
    r.snapshots.push(snap(0, 50, vec![region(0, 100, 2, 0)]));
    r.snapshots.push(snap(50, 100, vec![region(0, 100, 6, 0)]));
    let opts = HeatmapOptions {
        time_range: Some((0, 100)),
        addr_range: Some((0, 100)),
        resolution: (1, 1),
        ..Default::default()
    };
    let m = heatmap(&[r], &opts).unwrap();
    // (2 * 50 * 100 + 6 * 50 * 100) / (100 * 100) = 4
    assert!(close(m.heat(0, 0).unwrap(), 4.0));
}

#[test]
fn age_backfills_only_the_first_snapshot() {
    // aggregation 100 ms; first snapshot [1 s, 1.1 s) with age 5 is
    // counted from 0.5 s; the second one's age 9 is clamped to 1.1 s.
    let mut r = Record::new(0, Some(iv()));
    r.snapshots.push(snap(
        1_000_000_000,
        1_100_000_000,
        vec![region(0, 100, 10, 5)],
    ));
    r.snapshots.push(snap(
        1_100_000_000,
        1_200_000_000,
        vec![region(0, 100, 20, 9)],
    ));
    let opts = HeatmapOptions {
        time_range: Some((0, 1_200_000_000)),
        addr_range: Some((0, 100)),
        resolution: (12, 1),
        ..Default::default()
    };
    let m = heatmap(&[r], &opts).unwrap();
    for t in 0..5 {
        assert_eq!(m.heat(t, 0), None, "row {t}");
    }
    for t in 5..11 {
        assert!(close(m.heat(t, 0).unwrap(), 100.0), "row {t}");
    }
    assert!(close(m.heat(11, 0).unwrap(), 200.0));
}

#[test]
fn guide_picks_hottest_contiguous_range() {
    // two ranges separated by a gap in both snapshots: [0,100) cold,
    // [200, 300) hot
    let mut r = Record::new(3, None);
    for t in 0..2u64 {
        r.snapshots.push(snap(
            t * 100,
            (t + 1) * 100,
            vec![region(0, 100, 0, 0), region(200, 300, 5, 0)],
        ));
    }
    let g = &guides(std::slice::from_ref(&r))[0];
    assert_eq!(g.contig, vec![(0, 100, 0.0), (200, 300, 1000.0)]);
    assert_eq!(g.hottest(), Some((200, 300)));
    let m = heatmap(
        &[r],
        &HeatmapOptions {
            resolution: (2, 10),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (m.addr_start, m.addr_unit, m.time_start, m.time_unit),
        (200, 10, 0, 100)
    );
}

#[test]
fn ascii_levels_and_axes() {
    let mut r = Record::new(0, None);
    r.snapshots.push(snap(
        0,
        100,
        vec![region(0, 50, 0, 0), region(50, 100, 9, 0)],
    ));
    let opts = HeatmapOptions {
        time_range: Some((0, 100)),
        addr_range: Some((0, 100)),
        resolution: (1, 2),
        ..Default::default()
    };
    let m = heatmap(&[r], &opts).unwrap();
    // pixel 1: 9 samples x 100 ns x 50 B / (100 ns x 50 B) = 9; pixel 0
    // is touched by the idle region only: 0. unit = (9 + 1 - 0) / 9,
    // so 9 is level int(8.1) = 8.
    let text = m.to_ascii();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("08"));
    assert_eq!(
        lines.next(),
        Some("# access_frequency: 0123456789 (0.000-9.000 samples)")
    );
    assert_eq!(
        lines.next(),
        Some("# x-axis: space [0 B, 100 B) (100 B; [0x0, 0x64))")
    );
    assert_eq!(lines.next(), Some("# y-axis: time [0 ns, 100 ns) (100 ns)"));
    assert_eq!(
        lines.next(),
        Some("# resolution: 2x1 (50 B and 100 ns for each character)")
    );
    assert_eq!(m.to_raw(), "0\t0\t0\n0\t50\t9\n");
}

fn picture_map() -> Heatmap {
    let mut r = Record::new(0, Some(iv()));
    for t in 0..4u64 {
        r.snapshots.push(snap(
            t * 100_000_000,
            (t + 1) * 100_000_000,
            vec![
                region(0x7f00_0000_0000, 0x7f00_0010_0000, 10, 0),
                region(0x7f00_0010_0000, 0x7f00_0020_0000, 0, 0),
            ],
        ));
    }
    heatmap(
        &[r],
        &HeatmapOptions {
            resolution: (40, 60),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn png_is_a_picture_with_axes_labels_and_a_colour_bar() {
    let m = picture_map();
    let png = m.to_png("heatmap of test.data, target 0").unwrap();
    let dec = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = dec.read_info().unwrap();
    let (w, h) = (reader.info().width, reader.info().height);
    assert!(
        w > 40 + 100 && h > 60 + 40,
        "margins around the 40x60 map: {w}x{h}"
    );
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    let px = |x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        [buf[i], buf[i + 1], buf[i + 2]]
    };
    let black = |x0: u32, x1: u32, y0: u32, y1: u32| {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| px(x, y) == [0, 0, 0])
            .count()
    };
    // the map: the hot lower half (low addresses at the bottom) is white,
    // the cold upper half black, inside the frame
    let (left, top) = (84, 30);
    let hot = px(left + 20, top + 55);
    assert!(
        hot[0] == 255 && hot[1] >= 250 && hot[2] >= 200,
        "hot, low addresses: {hot:?}"
    );
    assert_eq!(px(left + 20, top + 5), [0, 0, 0], "cold, high addresses");
    // text and ticks in the margins: title, address labels, time labels
    assert!(black(0, w, 0, top - 16) > 50, "a title");
    assert!(
        black(0, left - 8, top, top + 60) > 50,
        "address tick labels"
    );
    assert!(black(left, left + 40, top + 62, h) > 50, "time tick labels");
    // the colour bar right of the map: white at the top, black at the bottom
    let bx = left + 40 + 14 + 4;
    assert_eq!(px(bx, top), [255, 255, 255]);
    assert_eq!(px(bx, top + 59), [0, 0, 0]);
    assert_eq!(hot_colour(0.0), [0, 0, 0]);
    assert_eq!(hot_colour(1.0), [255, 255, 255]);
}

#[test]
fn svg_has_the_map_axes_and_labels() {
    let m = picture_map();
    let svg = m.to_svg("heatmap <of> test.data").unwrap();
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("data:image/png;base64,"), "the map");
    assert!(
        svg.contains("heatmap &lt;of&gt; test.data"),
        "the title, escaped"
    );
    assert!(svg.contains("address: 0x7f0000000000 + offset"), "{svg}");
    assert!(
        svg.contains(">+0<") && svg.contains(">+2.000 MiB<"),
        "address ticks"
    );
    assert!(svg.contains("accesses/s"), "the colour bar's unit");
    assert_eq!(svg.matches("<line").count(), 10, "five ticks per axis");
}

#[test]
fn default_time_range_starts_at_the_first_snapshot() {
    // regions 50 aggregations old at the first snapshot: damo's range would
    // start 5 s before anything was recorded
    let mut r = Record::new(0, Some(iv()));
    for t in 0..4u64 {
        r.snapshots.push(snap(
            (10 + t) * 100_000_000,
            (11 + t) * 100_000_000,
            vec![region(0, 4096, 3, 50 + t as u32)],
        ));
    }
    let m = heatmap(
        &[r],
        &HeatmapOptions {
            resolution: (4, 1),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((m.time_start, m.time_unit), (1_000_000_000, 100_000_000));
    assert!((0..4).all(|t| m.heat(t, 0).is_some()), "no untouched row");
}

#[test]
fn errors_instead_of_panics() {
    let mut r = Record::new(0, None);
    r.snapshots.push(snap(0, 10, vec![region(0, 5, 1, 0)]));
    // 10 ns cannot be cut in 40 rows
    assert!(heatmap(&[r.clone()], &HeatmapOptions::default()).is_err());
    assert!(heatmap(&[], &HeatmapOptions::default()).is_err());
    let o = HeatmapOptions {
        resolution: (0, 1),
        ..Default::default()
    };
    assert!(heatmap(&[r], &o).is_err());
}
