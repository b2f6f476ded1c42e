//! A fake kernel admin tree in a temporary directory: real files, and the
//! kernel's reactions to writes that the tree alone cannot show: `nr_*`
//! files make numbered directories, unknown keywords get `EINVAL`,
//! `nr_kdamonds` gets `EBUSY` while a kdamond runs, `state` turns a
//! kdamond on and off. A [`Profile`] leaves out what an older kernel lacks.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of these helpers; `expect` would fail in the binaries that use them all"
)]

use damon_sysfs::SysfsIo;
use std::fs;
use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};

/// What a kernel version has.
#[derive(Clone, Debug)]
pub(crate) struct Profile {
    pub(crate) release: &'static str,
    /// File and directory names this kernel lacks.
    pub(crate) missing: Vec<&'static str>,
    pub(crate) actions: Vec<&'static str>,
    pub(crate) filter_types: Vec<&'static str>,
    pub(crate) metrics: Vec<&'static str>,
    pub(crate) avail_operations: &'static str,
}

impl Profile {
    /// The layout of this development machine's 6.18 kernel.
    pub(crate) fn v6_18() -> Self {
        Self {
            release: "6.18.44",
            missing: vec![
                "pause",
                "obsolete_target",
                "goal_tuner",
                "fail_charge_num",
                "fail_charge_denom",
                "max_nr_snapshots",
                "nr_snapshots",
                "path",
            ],
            actions: vec![
                "willneed",
                "cold",
                "pageout",
                "hugepage",
                "nohugepage",
                "lru_prio",
                "lru_deprio",
                "migrate_hot",
                "migrate_cold",
                "stat",
            ],
            filter_types: vec![
                "anon",
                "memcg",
                "young",
                "hugepage_size",
                "unmapped",
                "active",
                "addr",
                "target",
            ],
            metrics: vec![
                "user_input",
                "some_mem_psi_us",
                "node_mem_used_bp",
                "node_mem_free_bp",
            ],
            avail_operations: "vaddr\nfvaddr\npaddr",
        }
    }

    /// A 6.6 kernel: filters in one directory without `allow`, no quota
    /// goals, apply intervals, intervals goal or addr_unit.
    pub(crate) fn v6_6() -> Self {
        let mut p = Self::v6_18();
        p.release = "6.6.0";
        p.missing.extend([
            "addr_unit",
            "intervals_goal",
            "apply_interval_us",
            "goals",
            "effective_bytes",
            "target_nid",
            "allow",
            "core_filters",
            "ops_filters",
            "dests",
            "nid",
        ]);
        p.actions.retain(|a| !a.starts_with("migrate"));
        p.filter_types = vec!["anon", "memcg", "addr", "target"];
        p.metrics = vec![];
        p
    }
}

/// The fake tree.
pub(crate) struct FakeKernel {
    pub(crate) root: PathBuf,
    pub(crate) profile: Profile,
}

fn write_file(path: &Path, content: &str) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(path, content).unwrap();
}

impl FakeKernel {
    /// An empty tree (`nr_kdamonds` 0) in a fresh temporary directory.
    pub(crate) fn new(name: &str, profile: Profile) -> Self {
        let root =
            std::env::temp_dir().join(format!("damon-sysfs-fake-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        write_file(&root.join("kdamonds/nr_kdamonds"), "0\n");
        Self { root, profile }
    }

    /// A second handle on the same tree (for [`damon_sysfs::Admin::at`]).
    pub(crate) fn io(&self) -> Box<dyn SysfsIo> {
        Box::new(FakeKernel {
            root: self.root.clone(),
            profile: self.profile.clone(),
        })
    }

    fn has(&self, name: &str) -> bool {
        !self.profile.missing.contains(&name)
    }

    fn files(&self, dir: &Path, files: &[(&str, &str)]) {
        for (rel, content) in files {
            if rel.split('/').any(|c| !self.has(c)) {
                continue;
            }
            write_file(&dir.join(rel), &format!("{content}\n"));
        }
    }

    /// Makes the children of an `nr_*` directory, as the kernel does.
    fn populate(&self, nr_file: &Path, n: usize) -> std::io::Result<()> {
        let dir = nr_file.parent().unwrap();
        for e in fs::read_dir(dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().parse::<usize>().is_ok() {
                fs::remove_dir_all(e.path())?;
            }
        }
        let kind = dir.file_name().unwrap().to_string_lossy().into_owned();
        for i in 0..n {
            let d = dir.join(i.to_string());
            fs::create_dir_all(&d)?;
            match kind.as_str() {
                "kdamonds" => self.files(
                    &d,
                    &[
                        ("state", "off"),
                        ("pid", "-1"),
                        ("refresh_ms", "0"),
                        ("contexts/nr_contexts", "0"),
                    ],
                ),
                "contexts" => self.files(
                    &d,
                    &[
                        ("avail_operations", self.profile.avail_operations),
                        ("operations", "vaddr"),
                        ("addr_unit", "1"),
                        ("pause", "N"),
                        ("monitoring_attrs/intervals/sample_us", "5000"),
                        ("monitoring_attrs/intervals/aggr_us", "100000"),
                        ("monitoring_attrs/intervals/update_us", "60000000"),
                        ("monitoring_attrs/intervals/intervals_goal/access_bp", "0"),
                        ("monitoring_attrs/intervals/intervals_goal/aggrs", "0"),
                        (
                            "monitoring_attrs/intervals/intervals_goal/min_sample_us",
                            "0",
                        ),
                        (
                            "monitoring_attrs/intervals/intervals_goal/max_sample_us",
                            "0",
                        ),
                        ("monitoring_attrs/nr_regions/min", "10"),
                        ("monitoring_attrs/nr_regions/max", "1000"),
                        ("targets/nr_targets", "0"),
                        ("schemes/nr_schemes", "0"),
                    ],
                ),
                "targets" => self.files(
                    &d,
                    &[
                        ("pid_target", "0"),
                        ("obsolete_target", "N"),
                        ("regions/nr_regions", "0"),
                    ],
                ),
                "regions" => self.files(&d, &[("start", "0"), ("end", "0")]),
                "schemes" => self.files(
                    &d,
                    &[
                        ("action", "stat"),
                        ("target_nid", "-1"),
                        ("apply_interval_us", "0"),
                        ("access_pattern/sz/min", "0"),
                        ("access_pattern/sz/max", "0"),
                        ("access_pattern/nr_accesses/min", "0"),
                        ("access_pattern/nr_accesses/max", "0"),
                        ("access_pattern/age/min", "0"),
                        ("access_pattern/age/max", "0"),
                        ("quotas/ms", "0"),
                        ("quotas/bytes", "0"),
                        ("quotas/reset_interval_ms", "0"),
                        ("quotas/effective_bytes", "0"),
                        ("quotas/goal_tuner", "consist"),
                        ("quotas/fail_charge_num", "0"),
                        ("quotas/fail_charge_denom", "0"),
                        ("quotas/weights/sz_permil", "0"),
                        ("quotas/weights/nr_accesses_permil", "0"),
                        ("quotas/weights/age_permil", "0"),
                        ("quotas/goals/nr_goals", "0"),
                        ("watermarks/metric", "none"),
                        ("watermarks/interval_us", "0"),
                        ("watermarks/high", "0"),
                        ("watermarks/mid", "0"),
                        ("watermarks/low", "0"),
                        ("filters/nr_filters", "0"),
                        ("core_filters/nr_filters", "0"),
                        ("ops_filters/nr_filters", "0"),
                        ("dests/nr_dests", "0"),
                        ("stats/nr_tried", "0"),
                        ("stats/sz_tried", "0"),
                        ("stats/nr_applied", "0"),
                        ("stats/sz_applied", "0"),
                        ("stats/sz_ops_filter_passed", "0"),
                        ("stats/qt_exceeds", "0"),
                        ("stats/nr_snapshots", "0"),
                        ("stats/max_nr_snapshots", "0"),
                        ("tried_regions/total_bytes", "0"),
                    ],
                ),
                "goals" => self.files(
                    &d,
                    &[
                        ("target_metric", "user_input"),
                        ("target_value", "0"),
                        ("current_value", "0"),
                        ("nid", "0"),
                        ("path", ""),
                    ],
                ),
                "filters" | "core_filters" | "ops_filters" => self.files(
                    &d,
                    &[
                        ("type", "anon"),
                        ("matching", "N"),
                        ("allow", "N"),
                        ("memcg_path", ""),
                        ("addr_start", "0"),
                        ("addr_end", "0"),
                        ("min", "0"),
                        ("max", "0"),
                        ("damon_target_idx", "0"),
                    ],
                ),
                _ => {}
            }
        }
        Ok(())
    }

    /// Marks kdamond `k` running with thread `pid`, as if someone else had
    /// started it.
    pub(crate) fn run_foreign(&self, k: usize, pid: i64) {
        fs::write(self.root.join(format!("kdamonds/{k}/state")), "on\n").unwrap();
        fs::write(
            self.root.join(format!("kdamonds/{k}/pid")),
            format!("{pid}\n"),
        )
        .unwrap();
    }

    /// Two tried regions per scheme, as `update_schemes_tried_regions`
    /// would make them.
    fn fake_tried_regions(&self, kd: &Path) -> std::io::Result<()> {
        let schemes = kd.join("contexts/0/schemes");
        for s in 0.. {
            let d = schemes.join(s.to_string()).join("tried_regions");
            if !d.exists() {
                break;
            }
            for (r, (start, end)) in [(0x1000u64, 0x3000u64), (0x3000, 0x4000)]
                .into_iter()
                .enumerate()
            {
                self.files(
                    &d.join(r.to_string()),
                    &[
                        ("start", &start.to_string()),
                        ("end", &end.to_string()),
                        ("nr_accesses", "3"),
                        ("age", "7"),
                        ("sz_filter_passed", "4096"),
                    ],
                );
            }
            fs::write(d.join("total_bytes"), "12288\n")?;
        }
        Ok(())
    }

    /// Reads a file of the tree.
    pub(crate) fn get(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel))
            .unwrap()
            .trim()
            .to_string()
    }
}

fn einval() -> Error {
    Error::from_raw_os_error(22)
}

impl SysfsIo for FakeKernel {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
        if !path.is_file() {
            return Err(Error::new(ErrorKind::NotFound, "no such sysfs file"));
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let parent = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let v = value.trim();
        match name.as_str() {
            "nr_kdamonds" => {
                let running = (0..100).any(|k| {
                    fs::read_to_string(self.root.join(format!("kdamonds/{k}/state")))
                        .is_ok_and(|s| s.trim() == "on")
                });
                if running {
                    return Err(Error::from_raw_os_error(16)); // EBUSY
                }
            }
            "state" => {
                let kd = path.parent().unwrap();
                let pid = kd.join("pid");
                // the kernel's damon_set_attrs() checks, on `on` and `commit`
                let valid = || {
                    let nr = kd.join("contexts/0/monitoring_attrs/nr_regions");
                    let get = |f: &str| -> u64 {
                        fs::read_to_string(nr.join(f)).map_or(0, |s| s.trim().parse().unwrap_or(0))
                    };
                    get("min") >= 3 && get("min") <= get("max")
                };
                match v {
                    "on" | "commit" if !valid() => return Err(einval()),
                    "on" => fs::write(pid, "4242\n")?,
                    "off" => fs::write(pid, "-1\n")?,
                    "update_schemes_tried_regions" => {
                        self.fake_tried_regions(kd)?;
                        return Ok(());
                    }
                    "commit"
                    | "update_schemes_stats"
                    | "update_schemes_tried_bytes"
                    | "clear_schemes_tried_regions"
                    | "update_schemes_effective_quotas"
                    | "update_tuned_intervals"
                    | "commit_schemes_quota_goals" => return Ok(()),
                    _ => return Err(einval()),
                }
            }
            "operations" if !["vaddr", "fvaddr", "paddr"].contains(&v) => return Err(einval()),
            "action" if !self.profile.actions.contains(&v) => return Err(einval()),
            "type" if !self.profile.filter_types.contains(&v) => return Err(einval()),
            "target_metric" if !self.profile.metrics.contains(&v) => return Err(einval()),
            _ => {}
        }
        fs::write(path, format!("{v}\n"))?;
        if name.starts_with("nr_") {
            let n: usize = v.parse().map_err(|_| einval())?;
            let _ = parent;
            self.populate(path, n)?;
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}
