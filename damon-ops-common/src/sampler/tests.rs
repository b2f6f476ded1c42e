//! Unit tests of the parent module.

use super::*;
use crate::testing::fake::FakePhysMem;

fn sample(s: &mut PfnSampler, pfns: &[u64]) -> Vec<Verdict> {
    s.begin(pfns.len());
    for (i, &p) in pfns.iter().enumerate() {
        s.add(i, p);
    }
    s.mark_idle().unwrap();
    s.check().unwrap();
    (0..pfns.len()).map(|i| s.verdict(i)).collect()
}

#[test]
fn hot_pages_are_accessed_and_cold_ones_idle() {
    let mut fake = FakePhysMem::new(1 << 16);
    fake.add_hot(1000..2000, 1.0);
    let mut s = PfnSampler::new(Box::new(fake));
    let v = sample(&mut s, &[5, 1500, 1999, 2000, 40_000]);
    assert_eq!(
        v,
        [
            Verdict::Idle,
            Verdict::Accessed,
            Verdict::Accessed,
            Verdict::Idle,
            Verdict::Idle
        ]
    );
}

#[test]
fn untracked_pages_are_not_accessed() {
    let mut fake = FakePhysMem::new(1 << 12);
    fake.set_untracked(0..100);
    let mut s = PfnSampler::new(Box::new(fake));
    assert_eq!(
        sample(&mut s, &[10, 200]),
        [Verdict::Untracked, Verdict::Idle]
    );
}

#[test]
fn thp_tails_are_resolved_to_heads_and_cached() {
    let mut fake = FakePhysMem::new(1 << 14);
    fake.add_thp(1024, 512);
    fake.add_thp(2048, 512);
    fake.add_hot(1024..1536, 1.0);
    let mut s = PfnSampler::new(Box::new(fake));
    // First sample: tails unknown, heads get cached.
    let v = sample(&mut s, &[1100, 2100]);
    assert_eq!(v, [Verdict::Unknown, Verdict::Unknown]);
    assert_eq!(s.cached_heads(), 2);
    assert_eq!(s.stats().tails_resolved, 2);
    // Later samples use the heads: hot THP accessed, cold THP idle.
    let v = sample(&mut s, &[1500, 2500]);
    assert_eq!(v, [Verdict::Accessed, Verdict::Idle]);
    let v = sample(&mut s, &[1030, 2559]);
    assert_eq!(v, [Verdict::Accessed, Verdict::Idle]);
    assert!(s.stats().head_cache_hits >= 4);
}

#[test]
fn eager_heads_resolve_before_marking() {
    let mut fake = FakePhysMem::new(1 << 14);
    fake.add_thp(4096, 512);
    fake.add_thp(8192, 512);
    fake.add_hot(4096..4608, 1.0);
    let policy = SamplerPolicy {
        eager_heads: true,
        ..Default::default()
    };
    let mut s = PfnSampler::with_policy(Box::new(fake), policy);
    assert_eq!(
        sample(&mut s, &[4200, 8300, 8192]),
        [Verdict::Accessed, Verdict::Idle, Verdict::Idle]
    );
}

#[test]
fn the_partial_max_pfn_word_is_unknown_not_accessed() {
    // max_pfn = 0x3ffe0 as in a 1 GiB guest: the last word is partial.
    let fake = FakePhysMem::new(0x3ffe0);
    let mut s = PfnSampler::new(Box::new(fake));
    let v = sample(&mut s, &[0x3ffc0 + 3, 0x3ff80]);
    assert_eq!(v, [Verdict::Unknown, Verdict::Idle]);
    assert_eq!(s.stats().unreadable, 1);
}

#[test]
fn beyond_max_pfn_is_not_an_error() {
    let fake = FakePhysMem::new(1 << 10);
    let mut s = PfnSampler::new(Box::new(fake));
    let v = sample(&mut s, &[1 << 20]);
    assert_eq!(v, [Verdict::Unknown]);
    assert_eq!(s.stats().enxio, 1);
}

#[test]
fn a_whole_context_costs_few_calls() {
    let fake = FakePhysMem::new(1 << 18);
    let state = fake.state();
    let mut s = PfnSampler::new(Box::new(fake));
    // 1000 regions of a 1 GiB machine, sampled at spread PFNs
    let pfns: Vec<u64> = (0..1000u64)
        .map(|i| (i * 2_654_435_761) % (1 << 18))
        .collect();
    let before = s.syscalls();
    let v = sample(&mut s, &pfns);
    assert!(v.iter().all(|&x| x == Verdict::Idle));
    let calls = s.syscalls() - before;
    let c = state.lock().unwrap().calls;
    assert!(c[1] <= 100, "{} bitmap writes for 1000 PFNs", c[1]);
    assert!(c[0] < 1000, "{} bitmap reads for 1000 PFNs", c[0]);
    assert_eq!(c[2], 0, "idle pages need no kpageflags reads");
    assert!(
        calls < 1016,
        "{calls} calls for 1000 region-samples (naive: 2000)"
    );
}

#[test]
fn duplicates_and_out_of_range_slots_are_harmless() {
    let mut fake = FakePhysMem::new(1 << 12);
    fake.add_hot(7..8, 1.0);
    let mut s = PfnSampler::new(Box::new(fake));
    s.begin(3);
    s.add(0, 7);
    s.add(1, 7);
    s.add(2, 9);
    s.add(99, 9);
    s.mark_idle().unwrap();
    s.check().unwrap();
    assert!(s.accessed(0) && s.accessed(1) && !s.accessed(2) && !s.accessed(99));
    // check without mark is a no-op
    s.check().unwrap();
}
