//! The memory cgroup quota goals (`node_memcg_used_bp`,
//! `node_memcg_free_bp`) read from a real cgroup: the test process moves
//! itself into a cgroup it creates under its own, allocates, and reads the
//! goal as the engine does. Needs root and a memory cgroup hierarchy (v1
//! on the host, v2 in the guest suite); one test in this file, so nothing
//! else runs in the moved process.

use damon_core::damos::{GoalMetric, Quota, QuotaGoal};
use damon_core::testing::skip;
use damon_schemes::memcg::{memcg_id_of, own_memcg_dir};
use damon_schemes::quota::{quota_score, QuotaState};
use damon_schemes::{ProcMetrics, SystemMetrics};
use std::path::PathBuf;

/// Above glibc's largest mmap threshold (32 MiB), so the buffer is a
/// fresh mapping faulted in (and charged) in the new cgroup, not heap
/// memory faulted in before the move.
const SIZE: usize = 64 << 20;

struct OwnCgroup {
    dir: PathBuf,
    back: PathBuf,
}

impl OwnCgroup {
    fn join() -> Option<Self> {
        let back = own_memcg_dir()?;
        let dir = back.join(format!("udamon-goal-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cg = Self { dir, back };
        std::fs::write(cg.dir.join("cgroup.procs"), std::process::id().to_string()).ok()?;
        Some(cg)
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(
            self.back.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn goal(metric: GoalMetric, memcg_id: u64, nid: i32) -> Quota {
    Quota {
        reset_interval: 1000,
        goals: vec![QuotaGoal {
            metric,
            target_value: 10_000,
            current_value: 0,
            nid,
            memcg_id,
        }],
        ..Quota::default()
    }
}

fn measure(metric: GoalMetric, memcg_id: u64, nid: i32) -> u64 {
    let mut q = goal(metric, memcg_id, nid);
    quota_score(&mut q, &mut QuotaState::default(), &mut ProcMetrics).expect("measured");
    q.goals[0].current_value
}

#[test]
fn memcg_goals_read_the_cgroup_numa_stat() {
    let test = "memcg_goals_read_the_cgroup_numa_stat";
    let root = is_root();
    if !skip::require(root, test, "needs root to create a memory cgroup") {
        return;
    }
    let Some(cg) = OwnCgroup::join() else {
        skip::require(
            false,
            test,
            "no memory cgroup this process can create and join",
        );
        return;
    };
    let id = memcg_id_of(&cg.dir).expect("a memory cgroup");
    // the buffer lands on whichever node has room (the guest's node 0 also
    // holds the initramfs): sum the nodes, then check the busiest one
    let nodes: Vec<i32> = (0..64).filter(|&n| ProcMetrics.node_exists(n)).collect();
    let per_node = || -> Vec<u64> {
        nodes
            .iter()
            .map(|&n| {
                ProcMetrics
                    .node_memcg_lru(id, n)
                    .expect("readable")
                    .expect("exists")
            })
            .collect()
    };
    let before: u64 = per_node().iter().sum();
    // black_box: an optimised build may otherwise never allocate it
    let buf = std::hint::black_box(vec![7u8; SIZE]);
    let after = per_node();
    let total_after: u64 = after.iter().sum();
    assert!(
        total_after >= before + (SIZE as u64) * 9 / 10,
        "the cgroup's LRU memory grew by the buffer: {before} -> {after:?} on nodes {nodes:?}\n\
         memory.current {:?}",
        std::fs::read_to_string(cg.dir.join("memory.current")),
    );
    let (i, &bytes) = after
        .iter()
        .enumerate()
        .max_by_key(|x| *x.1)
        .expect("a node");
    let nid = nodes[i];
    let (node_total, _) = ProcMetrics.node_mem(nid).expect("the node's meminfo");
    let used = measure(GoalMetric::NodeMemcgUsedBp, id, nid);
    let free = measure(GoalMetric::NodeMemcgFreeBp, id, nid);
    let floor = (bytes * 9 / 10 * 10_000 / node_total).max(1);
    assert!(used >= floor, "used {used} bp >= {floor} bp on node {nid}");
    assert!(
        (used + free).abs_diff(10_000) <= 2,
        "used {used} + free {free} = 10000"
    );
    assert_eq!(std::hint::black_box(&buf)[SIZE - 1], 7);
    drop(buf);

    // a cgroup that does not exist reads 0 used, 10000 free, as the kernel's
    let gone = u64::MAX - 7;
    assert_eq!(ProcMetrics.node_memcg_lru(gone, 0).unwrap(), None);
    assert_eq!(measure(GoalMetric::NodeMemcgUsedBp, gone, 0), 0);
    assert_eq!(measure(GoalMetric::NodeMemcgFreeBp, gone, 0), 10_000);
    assert!(ProcMetrics.memcg_exists(id) && !ProcMetrics.memcg_exists(gone));
    drop(cg);
}

/// Root, from `/proc/self/status` (no libc in this crate's tests).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    })
}
