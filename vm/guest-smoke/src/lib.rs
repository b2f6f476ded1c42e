//! The VM harness's own guest checks.
//!
//! `cargo xtask vm-test` runs this libtest binary first, as root inside the
//! guest. Each test checks one thing the other VM tests rely on — page_idle,
//! DAMON's sysfs and tracepoints, swap on zram, cgroup v2, two NUMA nodes,
//! pagemap/kpageflags, the `workload` program — so that a broken guest
//! setup shows up here, by name, rather than as puzzling failures elsewhere.
//!
//! Outside the VM suite (`DAMON_VM_SUITE` unset) every test prints why it is
//! skipped and passes: the host has neither page_idle nor DAMON.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::FileExt;
    use std::path::Path;
    use std::process::Command;

    /// Returns early (the test passes) unless we run inside the VM suite.
    macro_rules! guest_only {
        ($name:literal) => {
            if std::env::var_os("DAMON_VM_SUITE").is_none() {
                eprintln!(concat!(
                    "skipped: ",
                    $name,
                    ": not inside the VM suite (DAMON_VM_SUITE unset)"
                ));
                return;
            }
        };
    }

    fn read(path: &str) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    fn write(path: &str, value: &str) {
        fs::write(path, value).unwrap_or_else(|e| panic!("writing {value:?} to {path}: {e}"));
    }

    /// Reads the 8-byte little-endian word at `offset` of `path`.
    fn read_u64_at(path: &str, offset: u64) -> u64 {
        let file = fs::File::open(path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        let mut buf = [0u8; 8];
        let n = file
            .read_at(&mut buf, offset)
            .unwrap_or_else(|e| panic!("reading {path} at {offset:#x}: {e}"));
        assert_eq!(n, 8, "short read of {path} at {offset:#x}");
        u64::from_le_bytes(buf)
    }

    #[test]
    fn kernel_booted_without_warnings() {
        guest_only!("kernel_booted_without_warnings");
        // A WARN at boot (e.g. a CPU topology that contradicts the NUMA
        // layout) taints the kernel; later taint checks would then be moot.
        let tainted = read("/proc/sys/kernel/tainted");
        assert_eq!(tainted.trim(), "0", "kernel tainted at boot (see dmesg)");
    }

    #[test]
    fn page_idle_bitmap_is_readable() {
        guest_only!("page_idle_bitmap_is_readable");
        // Bit 0 is PFN 0; any 8-byte-aligned read below max_pfn works.
        read_u64_at("/sys/kernel/mm/page_idle/bitmap", 0);
    }

    #[test]
    fn pagemap_and_kpageflags_show_our_pages() {
        guest_only!("pagemap_and_kpageflags_show_our_pages");
        // 1 MiB populated by pure writes (a first read would map the zero page).
        let mut buf = vec![0u64; 1 << 17];
        for (i, word) in buf.iter_mut().enumerate() {
            *word = i as u64 | 1;
        }
        let page = (buf.as_ptr() as u64 + (1 << 19)) / 4096;
        let entry = read_u64_at("/proc/self/pagemap", page * 8);
        // Documentation/admin-guide/mm/pagemap.rst: bit 63 present, bits 0-54 PFN.
        assert!(
            entry >> 63 == 1,
            "page not present: pagemap entry {entry:#x}"
        );
        let pfn = entry & ((1 << 55) - 1);
        assert_ne!(pfn, 0, "PFN hidden (needs CAP_SYS_ADMIN)");
        let flags = read_u64_at("/proc/kpageflags", pfn * 8);
        const KPF_ANON: u64 = 1 << 12;
        assert!(
            flags & KPF_ANON != 0,
            "kpageflags {flags:#x} lacks ANON for PFN {pfn:#x}"
        );
        assert_eq!(buf[1 << 16], (1 << 16) | 1);
    }

    /// Resets `nr_kdamonds` to 0 even if the test fails half-way.
    struct KdamondsReset;

    impl Drop for KdamondsReset {
        fn drop(&mut self) {
            let _ = fs::write("/sys/kernel/mm/damon/admin/kdamonds/nr_kdamonds", "0");
        }
    }

    #[test]
    fn damon_sysfs_offers_vaddr_and_paddr() {
        guest_only!("damon_sysfs_offers_vaddr_and_paddr");
        let kdamonds = "/sys/kernel/mm/damon/admin/kdamonds";
        assert_eq!(read(&format!("{kdamonds}/nr_kdamonds")).trim(), "0");
        let _reset = KdamondsReset;
        write(&format!("{kdamonds}/nr_kdamonds"), "1");
        write(&format!("{kdamonds}/0/contexts/nr_contexts"), "1");
        let ops = read(&format!("{kdamonds}/0/contexts/0/avail_operations"));
        let ops: Vec<&str> = ops.split_whitespace().collect();
        assert!(
            ops.contains(&"vaddr") && ops.contains(&"paddr"),
            "avail_operations: {ops:?}"
        );
        assert_eq!(read(&format!("{kdamonds}/0/state")).trim(), "off");
    }

    #[test]
    fn damon_tracepoints_exist() {
        guest_only!("damon_tracepoints_exist");
        for event in ["damon_aggregated", "damos_before_apply"] {
            let path = format!("/sys/kernel/tracing/events/damon/{event}/enable");
            assert!(
                Path::new(&path).exists(),
                "{path} missing (tracefs mounted?)"
            );
        }
    }

    #[test]
    fn swap_on_zram_is_active() {
        guest_only!("swap_on_zram_is_active");
        let swaps = read("/proc/swaps");
        let zram = swaps
            .lines()
            .find(|l| l.starts_with("/dev/zram0"))
            .unwrap_or_else(|| panic!("no zram swap in /proc/swaps:\n{swaps}"));
        let kib: u64 = zram
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse size in {zram:?}"));
        assert!(kib >= 500 * 1024, "zram swap is only {kib} KiB");
    }

    #[test]
    fn cgroup2_has_the_memory_controller() {
        guest_only!("cgroup2_has_the_memory_controller");
        let controllers = read("/sys/fs/cgroup/cgroup.controllers");
        assert!(
            controllers.split_whitespace().any(|c| c == "memory"),
            "{controllers:?}"
        );
        let subtree = read("/sys/fs/cgroup/cgroup.subtree_control");
        assert!(
            subtree.split_whitespace().any(|c| c == "memory"),
            "{subtree:?}"
        );
        assert!(Path::new("/proc/pressure/memory").exists(), "no PSI");
    }

    #[test]
    fn one_cpu_and_two_numa_nodes_with_memory() {
        guest_only!("one_cpu_and_two_numa_nodes_with_memory");
        // one vCPU on purpose (see xtask/src/qemu.rs); node 1 is memory-only
        assert_eq!(read("/sys/devices/system/cpu/online").trim(), "0");
        assert_eq!(read("/sys/devices/system/node/has_memory").trim(), "0-1");
        assert!(Path::new("/sys/devices/system/memory/block_size_bytes").exists());
    }

    #[test]
    fn thp_can_be_requested_with_madvise() {
        guest_only!("thp_can_be_requested_with_madvise");
        let mode = read("/sys/kernel/mm/transparent_hugepage/enabled");
        assert!(
            mode.contains("[madvise]") || mode.contains("[always]"),
            "THP mode {mode:?}"
        );
    }

    /// A running `workload` whose stdout (truth lines) has been read up to
    /// the region line; killed on drop.
    struct Workload {
        child: std::process::Child,
        start: u64,
        end: u64,
    }

    impl Drop for Workload {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn hex(s: &str) -> u64 {
        u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn field(line: &str, key: &str) -> String {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .to_owned()
    }

    /// Starts the workload on `config` (one region) and waits for its
    /// `truth start` line.
    fn spawn_workload(config: &str, extra: &[&str]) -> Workload {
        use std::io::{BufRead, BufReader};
        let bin = std::env::var("DAMON_WORKLOAD_BIN").expect("DAMON_WORKLOAD_BIN is set by init");
        let mut child = Command::new(&bin)
            .args(["--print-truth", "-e", config])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {bin}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let mut w = Workload {
            child,
            start: 0,
            end: 0,
        };
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("workload stdout");
            if line.starts_with("truth region ") {
                (w.start, w.end) = (hex(&field(&line, "start=")), hex(&field(&line, "end=")));
            }
            if line.starts_with("truth start ") {
                return w;
            }
        }
        panic!("workload exited before `truth start`");
    }

    /// Reads the PFNs of `[start, end)` of `pid` (all must be present).
    fn pfns(pid: u32, start: u64, end: u64) -> Vec<u64> {
        let path = format!("/proc/{pid}/pagemap");
        let file = fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
        let mut buf = vec![0u8; ((end - start) / 4096 * 8) as usize];
        file.read_exact_at(&mut buf, start / 4096 * 8)
            .unwrap_or_else(|e| panic!("reading {path}: {e}"));
        buf.chunks_exact(8)
            .map(|c| {
                let entry = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                assert!(entry >> 63 == 1, "page not present: {entry:#x}");
                entry & ((1 << 55) - 1)
            })
            .collect()
    }

    /// Marks `pfns` idle, waits `wait`, and returns how many were accessed
    /// and how many could be read back.
    ///
    /// The 64-PFN chunk cut off by `max_pfn` reads (and writes) 0 bytes: a
    /// write still applies, a read tells nothing, so those PFNs are left out.
    fn accessed_after(pfns: &[u64], wait: std::time::Duration) -> (usize, usize) {
        let path = "/sys/kernel/mm/page_idle/bitmap";
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("opening {path}: {e}"));
        for &pfn in pfns {
            let bit = 1u64 << (pfn % 64);
            file.write_at(&bit.to_le_bytes(), pfn / 64 * 8)
                .unwrap_or_else(|e| panic!("marking PFN {pfn:#x} idle: {e}"));
        }
        std::thread::sleep(wait);
        let (mut accessed, mut known) = (0, 0);
        for &pfn in pfns {
            let mut word = [0u8; 8];
            let n = file
                .read_at(&mut word, pfn / 64 * 8)
                .unwrap_or_else(|e| panic!("reading PFN {pfn:#x}: {e}"));
            if n == 8 {
                known += 1;
                if u64::from_le_bytes(word) & (1 << (pfn % 64)) == 0 {
                    accessed += 1;
                }
            }
        }
        (accessed, known)
    }

    #[test]
    fn page_idle_sees_the_workload_touch_its_hot_range() {
        guest_only!("page_idle_sees_the_workload_touch_its_hot_range");
        // 16 MiB of 4 KiB pages; the first 4 MiB are written continuously.
        let w = spawn_workload("region buf 16M nothp; phase 60s buf:0-4M:write", &[]);
        let pfns = pfns(w.child.id(), w.start, w.end);
        let (hot, cold) = pfns.split_at(1024);
        for round in 0..3 {
            let wait = std::time::Duration::from_millis(100);
            let (hot_seen, hot_known) = accessed_after(hot, wait);
            let (cold_seen, cold_known) = accessed_after(cold, wait);
            eprintln!(
                "round {round}: accessed: hot {hot_seen}/{hot_known}, cold {cold_seen}/{cold_known}"
            );
            assert!(
                hot_known >= 960 && cold_known >= 2900,
                "too many unreadable PFNs"
            );
            assert!(
                hot_seen * 100 >= hot_known * 95,
                "round {round}: only {hot_seen}/{hot_known} hot pages seen accessed"
            );
            assert!(
                cold_seen * 100 <= cold_known,
                "round {round}: {cold_seen}/{cold_known} cold pages seen accessed"
            );
        }
    }

    #[test]
    fn workload_runs_reports_truth_and_verifies() {
        guest_only!("workload_runs_reports_truth_and_verifies");
        let bin = std::env::var("DAMON_WORKLOAD_BIN").expect("DAMON_WORKLOAD_BIN is set by init");
        let config =
            "region buf 8M thp; phase 200ms buf:0-4M:write; phase 200ms buf:4M-8M:read@50%";
        let out = Command::new(&bin)
            .args(["--print-truth", "--verify", "-e", config])
            .output()
            .unwrap_or_else(|e| panic!("running {bin}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{bin} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let region = stdout
            .lines()
            .find(|l| l.starts_with("truth region name=buf "))
            .unwrap_or_else(|| panic!("no region line in:\n{stdout}"));
        let field = |line: &str, key: &str| -> String {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .to_owned()
        };
        let hex = |s: &str| {
            u64::from_str_radix(s.trim_start_matches("0x"), 16)
                .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        };
        let start = hex(&field(region, "start="));
        let end = hex(&field(region, "end="));
        assert_eq!(end - start, 8 << 20);
        assert_eq!(start % (2 << 20), 0, "thp region not 2 MiB aligned");
        let phases: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("truth phase="))
            .collect();
        assert_eq!(phases.len(), 2, "{stdout}");
        let hot = field(phases[1], "hot=");
        let (lo, hi) = hot.split_once('-').unwrap_or_else(|| panic!("hot={hot}"));
        assert_eq!((hex(lo), hex(hi)), (start + (4 << 20), end));
    }
}
