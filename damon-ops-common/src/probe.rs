//! What this machine and process can do: privileges, PFN visibility in
//! pagemap, the page_idle bitmap and `/proc/kpageflags`.

use crate::pagemap::PagemapFile;
use crate::physio::{KPAGEFLAGS, PAGE_IDLE_BITMAP};
use crate::sys::{self, KFile};
use damon_core::OpsError;

/// `CAP_SYS_ADMIN`'s bit in the capability sets.
pub const CAP_SYS_ADMIN: u32 = 21;

/// How PFNs appear in `/proc/self/pagemap` for a page this process touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PfnVisibility {
    /// Present with a non-zero PFN.
    Visible,
    /// Present but the PFN field is zeroed (no `CAP_SYS_ADMIN`).
    Hidden,
    /// pagemap could not be read (the reason).
    Unavailable(String),
}

/// The result of [`ProbeReport::run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    /// Effective uid is 0.
    pub root: bool,
    /// `CAP_SYS_ADMIN` is in the effective set.
    pub cap_sys_admin: bool,
    /// PFN visibility in pagemap.
    pub pagemap_pfns: PfnVisibility,
    /// `/sys/kernel/mm/page_idle/bitmap` exists.
    pub page_idle_present: bool,
    /// It can be opened read-write.
    pub page_idle_writable: bool,
    /// `/proc/kpageflags` exists.
    pub kpageflags_present: bool,
    /// It can be opened for reading.
    pub kpageflags_readable: bool,
    /// The base page size.
    pub page_size: u64,
    /// The THP mode (`always`, `madvise`, `never`) if THP is built in.
    pub thp: Option<String>,
    /// Written pages of the calling process (userfaultfd with
    /// `UFFD_FEATURE_WP_ASYNC` and `PAGEMAP_SCAN`, the `vaddr-written`
    /// backend): `Err` says what the kernel lacks.
    pub written_pages: Result<(), String>,
    /// Soft-dirty bits in pagemap (`CONFIG_MEM_SOFT_DIRTY`): a page just
    /// written in a new mapping reads soft-dirty.
    pub soft_dirty: bool,
    /// The kernel's own DAMON (read-only look at its sysfs tree): `Err`
    /// without the interface; else the operations sets a context's
    /// `avail_operations` lists (empty when no context exists to ask).
    pub kernel_damon: Result<Vec<String>, String>,
}

/// The kernel's DAMON sysfs tree.
const DAMON_ADMIN: &str = "/sys/kernel/mm/damon/admin";

/// What the kernel's DAMON offers, read only (nothing is written: the
/// tree may belong to someone else).
fn kernel_damon() -> Result<Vec<String>, String> {
    let kdamonds = std::path::Path::new(DAMON_ADMIN).join("kdamonds");
    let n: usize = std::fs::read_to_string(kdamonds.join("nr_kdamonds"))
        .map_err(|e| format!("no DAMON sysfs interface at {DAMON_ADMIN} ({e})"))?
        .trim()
        .parse()
        .map_err(|e| format!("{DAMON_ADMIN}/kdamonds/nr_kdamonds: {e}"))?;
    for k in 0..n {
        let f = kdamonds.join(format!("{k}/contexts/0/avail_operations"));
        if let Ok(text) = std::fs::read_to_string(f) {
            return Ok(text.split_whitespace().map(str::to_string).collect());
        }
    }
    Ok(Vec::new())
}

/// Whether pagemap reports soft-dirty pages: a page just written is
/// soft-dirty on a kernel with `CONFIG_MEM_SOFT_DIRTY` (a new mapping
/// starts soft-dirty, and nothing here clears this process's bits), never
/// without.
fn soft_dirty_works() -> bool {
    let page = sys::page_size();
    let mut buf = vec![0u8; 4 * page as usize];
    // a byte in the middle lies in a page of its own
    let i = 2 * page as usize;
    buf[i] = 1;
    let addr = std::hint::black_box(&buf[i]) as *const u8 as u64;
    let soft = PagemapFile::open(None)
        .and_then(|mut pm| pm.entry(addr, page))
        .is_ok_and(|e| e.present() && e.soft_dirty());
    drop(std::hint::black_box(buf));
    soft
}

/// Extracts `CapEff` from the text of `/proc/PID/status`.
///
/// ```
/// let caps = damon_ops_common::probe::parse_cap_eff("Name:\tx\nCapEff:\t000001ffffffffff\n");
/// assert_eq!(caps, Some(0x1ff_ffff_ffff));
/// ```
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// The selected mode out of `always [madvise] never`.
pub fn parse_thp_mode(text: &str) -> Option<String> {
    let s = text.find('[')?;
    let e = text[s..].find(']')? + s;
    Some(text[s + 1..e].to_string())
}

fn pfn_visibility() -> PfnVisibility {
    let page = sys::page_size();
    let mut touched = Box::new([0u8; 64]);
    touched[0] = 1;
    let addr = std::hint::black_box(&touched[0]) as *const u8 as u64;
    let res = PagemapFile::open(None).and_then(|mut pm| pm.entry(addr, page));
    drop(std::hint::black_box(touched));
    match res {
        Ok(e) if e.pfn().is_some() => PfnVisibility::Visible,
        Ok(e) if e.present() => PfnVisibility::Hidden,
        Ok(e) => PfnVisibility::Unavailable(format!("touched page not present (entry {:#x})", e.0)),
        Err(e) => PfnVisibility::Unavailable(e.to_string()),
    }
}

impl ProbeReport {
    /// Probes the running system (a handful of cheap system calls).
    pub fn run() -> Self {
        let caps = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| parse_cap_eff(&s));
        let exists = |p: &str| std::path::Path::new(p).exists();
        Self {
            root: rustix::process::geteuid().is_root(),
            cap_sys_admin: caps.is_some_and(|c| c & (1 << CAP_SYS_ADMIN) != 0),
            pagemap_pfns: pfn_visibility(),
            page_idle_present: exists(PAGE_IDLE_BITMAP),
            page_idle_writable: KFile::open_rw(PAGE_IDLE_BITMAP).is_ok(),
            kpageflags_present: exists(KPAGEFLAGS),
            kpageflags_readable: KFile::open_read(KPAGEFLAGS).is_ok(),
            page_size: sys::page_size(),
            thp: std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
                .ok()
                .and_then(|t| parse_thp_mode(&t)),
            written_pages: sys::written::WriteTracker::open()
                .map(drop)
                .map_err(|e| e.to_string()),
            soft_dirty: soft_dirty_works(),
            kernel_damon: kernel_damon(),
        }
    }

    /// What the paddr backend needs: a writable page_idle bitmap and a
    /// readable kpageflags. The error's hint names exactly what is missing.
    pub fn require_paddr(&self) -> Result<(), OpsError> {
        if !self.page_idle_present {
            return Err(OpsError::Unsupported {
                what: "idle page tracking".into(),
                hint: format!(
                    "kernel built without CONFIG_IDLE_PAGE_TRACKING (no {PAGE_IDLE_BITMAP})"
                ),
            });
        }
        if !self.page_idle_writable {
            return Err(OpsError::PermissionDenied {
                what: PAGE_IDLE_BITMAP.into(),
                hint: "needs root (the bitmap is mode 0600)".into(),
            });
        }
        if !self.kpageflags_present {
            return Err(OpsError::Unsupported {
                what: "page flags".into(),
                hint: format!("kernel built without CONFIG_PROC_PAGE_MONITOR (no {KPAGEFLAGS})"),
            });
        }
        if !self.kpageflags_readable {
            return Err(OpsError::PermissionDenied {
                what: KPAGEFLAGS.into(),
                hint: "needs root or CAP_SYS_ADMIN to read /proc/kpageflags".into(),
            });
        }
        Ok(())
    }

    /// What the vaddr backend needs: everything paddr needs, plus PFNs in pagemap.
    pub fn require_vaddr(&self) -> Result<(), OpsError> {
        self.require_paddr()?;
        match &self.pagemap_pfns {
            PfnVisibility::Visible => Ok(()),
            PfnVisibility::Hidden => Err(OpsError::PermissionDenied {
                what: "/proc/PID/pagemap".into(),
                hint: "needs root or CAP_SYS_ADMIN to see PFNs in /proc/PID/pagemap".into(),
            }),
            PfnVisibility::Unavailable(why) => Err(OpsError::Unsupported {
                what: "/proc/PID/pagemap".into(),
                hint: format!(
                    "kernel built without CONFIG_PROC_PAGE_MONITOR or pagemap unreadable: {why}"
                ),
            }),
        }
    }
}

impl std::fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            f,
            "root: {}, CAP_SYS_ADMIN: {}",
            yn(self.root),
            yn(self.cap_sys_admin)
        )?;
        let pfns = match &self.pagemap_pfns {
            PfnVisibility::Visible => "visible".to_string(),
            PfnVisibility::Hidden => "hidden (zeroed: needs CAP_SYS_ADMIN)".to_string(),
            PfnVisibility::Unavailable(w) => format!("unavailable ({w})"),
        };
        writeln!(f, "pagemap PFNs: {pfns}")?;
        writeln!(
            f,
            "page_idle bitmap ({PAGE_IDLE_BITMAP}): present {}, writable {}",
            yn(self.page_idle_present),
            yn(self.page_idle_writable)
        )?;
        writeln!(
            f,
            "kpageflags ({KPAGEFLAGS}): present {}, readable {}",
            yn(self.kpageflags_present),
            yn(self.kpageflags_readable)
        )?;
        writeln!(
            f,
            "page size: {}, THP: {}",
            self.page_size,
            self.thp.as_deref().unwrap_or("not built")
        )?;
        match &self.written_pages {
            Ok(()) => writeln!(
                f,
                "written pages of this process (vaddr-written: userfaultfd WP_ASYNC + PAGEMAP_SCAN): yes (writes only, not reads)"
            )?,
            Err(why) => writeln!(f, "written pages of this process (vaddr-written): no ({why})")?,
        }
        writeln!(
            f,
            "soft-dirty bits in pagemap (CONFIG_MEM_SOFT_DIRTY): {}",
            yn(self.soft_dirty)
        )?;
        match &self.kernel_damon {
            Ok(ops) if ops.is_empty() => write!(
                f,
                "the kernel's DAMON: sysfs interface present (its operations sets show once a context exists)"
            ),
            Ok(ops) => write!(f, "the kernel's DAMON: operations {}", ops.join(" ")),
            Err(why) => write!(f, "the kernel's DAMON: no ({why})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(
            parse_cap_eff("CapInh:\t0\nCapEff:\t0000000000200000\n"),
            Some(1 << CAP_SYS_ADMIN)
        );
        assert_eq!(parse_cap_eff("nothing"), None);
        assert_eq!(parse_cap_eff("CapEff:\tzz"), None);
        assert_eq!(
            parse_thp_mode("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(parse_thp_mode("always madvise never"), None);
    }

    #[test]
    fn report_is_consistent_with_requirements() {
        let r = ProbeReport::run();
        let text = r.to_string();
        assert!(text.contains("page_idle bitmap"), "{text}");
        assert!(text.contains("written pages of this process"), "{text}");
        assert!(text.contains("soft-dirty bits in pagemap"), "{text}");
        assert!(text.contains("the kernel's DAMON"), "{text}");
        // on this machine's kernel (DAMON paddr only) or the guest's
        if let Ok(ops) = &r.kernel_damon {
            assert!(
                ops.iter()
                    .all(|o| ["vaddr", "fvaddr", "paddr"].contains(&o.as_str())),
                "{ops:?}"
            );
        }
        // the probe agrees with the tracker it reports on
        assert_eq!(
            r.written_pages.is_ok(),
            crate::sys::written::WriteTracker::open().is_ok()
        );
        if !r.page_idle_present {
            let e = r.require_paddr().unwrap_err().to_string();
            assert!(e.contains("CONFIG_IDLE_PAGE_TRACKING"), "{e}");
            assert!(r.require_vaddr().is_err());
        }
        if r.root {
            assert_eq!(r.pagemap_pfns, PfnVisibility::Visible, "root sees PFNs");
        }
        let hidden = ProbeReport {
            pagemap_pfns: PfnVisibility::Hidden,
            page_idle_present: true,
            page_idle_writable: true,
            kpageflags_present: true,
            kpageflags_readable: true,
            ..r
        };
        let e = hidden.require_vaddr().unwrap_err().to_string();
        assert!(
            e.contains("needs root or CAP_SYS_ADMIN to see PFNs in /proc/PID/pagemap"),
            "{e}"
        );
        assert!(hidden.require_paddr().is_ok());
    }
}
