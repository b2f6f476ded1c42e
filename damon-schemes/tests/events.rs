//! The engine emits `tracing` events named after the kernel's tracepoints,
//! with the tracepoints' fields, so a program can subscribe instead of
//! polling: `damon_aggregated` (per region per aggregation),
//! `damon_monitor_intervals_tune`, `damos_before_apply`,
//! `damos_stat_after_apply_interval` and `damos_esz`.

use damon_core::damos::{AccessPattern, Action, Quota, Scheme};
use damon_core::*;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Debug, Clone, PartialEq)]
struct Captured {
    target: String,
    fields: BTreeMap<String, String>,
}

#[derive(Default, Clone)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target().starts_with("damon::")
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut fields = BTreeMap::new();
        e.record(&mut Fields(&mut fields));
        self.0.lock().push(Captured {
            target: e.metadata().target().to_string(),
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn has_fields(c: &Captured, names: &[&str]) -> bool {
    names.iter().all(|n| c.fields.contains_key(*n))
}

#[test]
fn kernel_named_events_carry_the_tracepoint_fields() {
    let capture = Capture::default();
    let events = capture.0.clone();
    tracing::subscriber::with_default(capture, || {
        let mut ctx = Context::new();
        let hot = HotRange {
            range: AddrRange::new(0, 64 << 20),
            probability: 1.0,
        };
        ctx.set_ops(
            "sim",
            Box::new(SimOps::new(SimPattern::with_hot(1 << 30, vec![hot]))),
        );
        ctx.targets.push(Target::new(0));
        ctx.clock = Some(Arc::new(VirtualClock::new()));
        ctx.seed = Some(1);
        // interval tuning every 3 aggregations
        ctx.attrs.intervals_goal = IntervalsGoal {
            access_bp: 400,
            aggrs: 3,
            min_sample_us: 1000,
            max_sample_us: 100_000,
        };
        let mut s = Scheme::new(
            AccessPattern {
                max_nr_accesses: 0,
                ..AccessPattern::default()
            },
            Action::Stat,
        );
        s.quota = Quota {
            sz: 1 << 30,
            reset_interval: 1000,
            ..Quota::default()
        };
        ctx.schemes.push(s);
        damon_schemes::install(&mut ctx, damon_schemes::SimMetrics::new());
        let mut kd = Kdamond::new(ctx).unwrap();
        kd.init().unwrap();
        for _ in 0..200 {
            assert!(kd.step().is_none());
        }
    });
    let events = events.lock().clone();
    let of = |t: &str| {
        events
            .iter()
            .filter(|e| e.target == format!("damon::{t}"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let aggregated = of("damon_aggregated");
    assert!(!aggregated.is_empty());
    assert!(aggregated.iter().all(|e| has_fields(
        e,
        &[
            "target_id",
            "nr_regions",
            "start",
            "end",
            "nr_accesses",
            "age"
        ]
    )));
    // one event per region per aggregation: the first aggregation had 10 regions
    let first_nr: usize = aggregated[0].fields["nr_regions"].parse().unwrap();
    assert!(aggregated.len() >= first_nr);
    let per_region = of("damon_region_aggregated");
    assert_eq!(
        per_region.len(),
        aggregated.len(),
        "v7.2's damon_region_aggregated comes with every damon_aggregated"
    );
    assert!(per_region.iter().all(|e| has_fields(
        e,
        &[
            "target_id",
            "nr_regions",
            "start",
            "end",
            "nr_accesses",
            "age",
            "nr_probes"
        ]
    )));
    let tune = of("damon_monitor_intervals_tune");
    assert!(!tune.is_empty(), "intervals tuning ran");
    assert!(tune.iter().all(|e| has_fields(e, &["sample_us"])));
    let before = of("damos_before_apply");
    assert!(!before.is_empty());
    assert!(before.iter().all(|e| has_fields(
        e,
        &[
            "scheme_idx",
            "target_idx",
            "start",
            "end",
            "nr_accesses",
            "age"
        ]
    )));
    let stat = of("damos_stat_after_apply_interval");
    assert!(stat.iter().all(|e| has_fields(
        e,
        &[
            "nr_tried",
            "sz_tried",
            "nr_applied",
            "sz_applied",
            "qt_exceeds"
        ]
    )));
    assert!(!stat.is_empty());
    assert!(
        !of("damos_esz").is_empty(),
        "the effective quota is reported"
    );
}
