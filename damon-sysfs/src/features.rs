//! What this kernel's DAMON sysfs interface has. Files are probed where
//! they must appear (a directory of ours, after the `nr_*` write that
//! creates it); keywords (actions, filter types, goal metrics) by the
//! kernel's answer to writing them (it refuses unknown ones with
//! `EINVAL`); operations sets by `avail_operations`. The kernel versions
//! that added each are from damo's feature map; they only word the error.

use crate::tree::Admin;
use crate::SysfsError;
use damon_core::damos::{Action, FilterKind, GoalMetric};

/// A kernel version, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl KernelVersion {
    /// Parses the start of a release string (`6.18.44-fc-v1098` is 6.18).
    pub fn parse(release: &str) -> Option<Self> {
        let mut it = release.split(|c: char| !c.is_ascii_digit());
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(Self { major, minor })
    }
}

/// This kernel's release (`/proc/sys/kernel/osrelease`).
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The Linux version that added a sysfs file, by its path under a
/// context (`monitoring_attrs/...`), scheme (`quotas/...`) or kdamond.
pub fn file_since(file: &str) -> &'static str {
    let last = file.rsplit('/').next().unwrap_or(file);
    match last {
        "avail_operations" => "5.19",
        "tried_regions" => "6.2",
        "filters" => "6.3",
        "apply_interval_us" => "6.7",
        "goals" => "6.8",
        "effective_bytes" => "6.9",
        "target_nid" => "6.11",
        "allow" => "6.14",
        "intervals_goal" | "core_filters" | "ops_filters" => "6.15",
        "nid" => "6.16",
        "refresh_ms" | "dests" => "6.17",
        "addr_unit" => "6.18",
        "path" | "obsolete_target" => "6.19",
        "max_nr_snapshots" | "nr_snapshots" => "7.0",
        "goal_tuner" => "7.1",
        "pause" | "fail_charge_num" | "fail_charge_denom" => "7.2",
        _ => "5.18",
    }
}

/// The Linux version that added an action keyword.
pub fn action_since(a: Action) -> &'static str {
    match a {
        Action::LruPrio | Action::LruDeprio => "6.0",
        Action::MigrateHot | Action::MigrateCold => "6.11",
        Action::Collapse => "7.2",
        _ => "5.18",
    }
}

/// The Linux version that added a filter type.
pub fn filter_since(k: &FilterKind) -> &'static str {
    match k {
        FilterKind::Anon | FilterKind::Memcg { .. } => "6.3",
        FilterKind::Addr(_) | FilterKind::Target { .. } => "6.6",
        FilterKind::Young => "6.10",
        _ => "6.15",
    }
}

/// The Linux version that added a quota goal metric (`none`: not merged).
pub fn metric_since(m: GoalMetric) -> &'static str {
    match m.name() {
        "user_input" => "6.8",
        "some_mem_psi_us" => "6.9",
        "node_mem_used_bp" | "node_mem_free_bp" => "6.16",
        "node_memcg_used_bp" | "node_memcg_free_bp" => "6.19",
        "active_mem_bp" | "inactive_mem_bp" => "7.0",
        "node_eligible_mem_bp" => "7.2",
        _ => "none (not in a released kernel)",
    }
}

/// What the probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    /// The kernel release.
    pub release: String,
    /// Its version, if the release string starts with one.
    pub version: Option<KernelVersion>,
    /// `avail_operations` of a context, if one could be read.
    pub avail_operations: Option<Vec<String>>,
}

impl Features {
    /// Probes `admin` for this kernel (`release`): fails when there is no
    /// DAMON sysfs interface. Reads only; the operations sets are read from
    /// any existing context (and again from ours when it is made).
    pub fn probe(admin: &Admin, release: &str) -> Result<Self, SysfsError> {
        if !admin.exists(crate::tree::paths::NR_KDAMONDS) {
            return Err(SysfsError::NoInterface {
                root: admin.root().to_path_buf(),
            });
        }
        let nr = admin.read_u64(crate::tree::paths::NR_KDAMONDS)? as usize;
        let avail = (0..nr).find_map(|k| {
            admin
                .read(&format!("{}/avail_operations", crate::tree::paths::ctx(k)))
                .ok()
        });
        Ok(Self {
            release: release.to_string(),
            version: KernelVersion::parse(release),
            avail_operations: avail.map(|a| a.split_whitespace().map(str::to_string).collect()),
        })
    }

    /// The error for a missing `feature` added in `since`.
    pub fn missing(&self, feature: impl Into<String>, since: &'static str) -> SysfsError {
        SysfsError::Missing {
            feature: feature.into(),
            since,
            release: self.release.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_release_strings() {
        let v = KernelVersion::parse("6.18.44-fc-v1098").unwrap();
        assert_eq!((v.major, v.minor), (6, 18));
        assert!(KernelVersion::parse("7.2-rc1").unwrap() > v);
        assert_eq!(KernelVersion::parse("unknown"), None);
    }

    #[test]
    fn since_tables() {
        assert_eq!(
            file_since("monitoring_attrs/intervals/intervals_goal"),
            "6.15"
        );
        assert_eq!(file_since("addr_unit"), "6.18");
        assert_eq!(action_since(Action::MigrateHot), "6.11");
        assert_eq!(filter_since(&FilterKind::Young), "6.10");
        assert_eq!(metric_since(GoalMetric::NodeMemFreeBp), "6.16");
    }
}
