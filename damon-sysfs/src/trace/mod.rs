//! Monitoring results from the kernel's `damon:damon_aggregated` trace
//! event, read from a tracefs instance of our own (no perf): the event is
//! enabled only there and filtered to our kdamond's pid, so nothing of
//! anyone else's tracing changes, and the kernel's per-CPU buffers of the
//! instance bound what waits to be read. One [`TargetSnapshot`] is made per
//! target per aggregation (the event carries the target's region count)
//! and sent on a bounded channel; when the reader falls behind, snapshots
//! are dropped and counted, never queued without bound.

mod raw;

use crate::SysfsError;
use crossbeam_channel::{Receiver, Sender};
use damon_core::AddrRange;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Where tracefs is mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// One `damon_aggregated` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggregatedEvent {
    /// Trace timestamp, ns.
    pub time_ns: u64,
    /// The emitting thread (the kdamond).
    pub pid: i64,
    /// Index of the target in the context.
    pub target_idx: u64,
    /// Regions the target has in this aggregation.
    pub nr_regions: u32,
    /// The region.
    pub range: AddrRange,
    /// Its access count in the aggregation.
    pub nr_accesses: u32,
    /// Its age.
    pub age: u32,
}

/// Parses one line of a `trace_pipe`:
/// `kdamond.0-123 [000] ..... 45.678901: damon_aggregated: target_id=0 nr_regions=2 4096-8192: 3 5`.
pub fn parse_line(line: &str) -> Option<AggregatedEvent> {
    let (head, fields) = line.split_once(": damon_aggregated: ")?;
    let mut head_words = head.split_whitespace();
    let task = head_words.next()?;
    let pid = task.rsplit_once('-')?.1.parse().ok()?;
    let stamp = head.split_whitespace().last()?;
    let (secs, frac) = stamp.split_once('.').unwrap_or((stamp, "0"));
    let frac_ns = format!("{frac:0<9}");
    let time_ns =
        secs.parse::<u64>().ok()? * 1_000_000_000 + frac_ns.get(..9)?.parse::<u64>().ok()?;
    let mut it = fields.split_whitespace();
    let target_idx = it.next()?.strip_prefix("target_id=")?.parse().ok()?;
    let nr_regions = it.next()?.strip_prefix("nr_regions=")?.parse().ok()?;
    let (s, e) = it.next()?.strip_suffix(':')?.split_once('-')?;
    let nr_accesses = it.next()?.parse().ok()?;
    let age = it.next()?.parse().ok()?;
    Some(AggregatedEvent {
        time_ns,
        pid,
        target_idx,
        nr_regions,
        range: AddrRange::new(s.parse().ok()?, e.parse().ok()?),
        nr_accesses,
        age,
    })
}

/// The regions of one target at the end of one aggregation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSnapshot {
    /// Trace time of the aggregation's first event, ns.
    pub time_ns: u64,
    /// Index of the target.
    pub target_idx: u64,
    /// `(region, nr_accesses, age)`, in the kernel's (address) order.
    pub regions: Vec<(AddrRange, u32, u32)>,
}

/// Groups events into per-target snapshots.
#[derive(Debug, Default)]
pub struct Assembler {
    partial: HashMap<u64, TargetSnapshot>,
}

impl Assembler {
    /// Adds an event; returns the target's snapshot once it has all regions.
    pub fn push(&mut self, ev: &AggregatedEvent) -> Option<TargetSnapshot> {
        let snap = self
            .partial
            .entry(ev.target_idx)
            .or_insert_with(|| TargetSnapshot {
                time_ns: ev.time_ns,
                target_idx: ev.target_idx,
                regions: Vec::new(),
            });
        // a region at or below the last one starts a new aggregation (the
        // previous one lost events, e.g. to a full buffer)
        if snap
            .regions
            .last()
            .is_some_and(|l| ev.range.start < l.0.end)
        {
            snap.regions.clear();
            snap.time_ns = ev.time_ns;
        }
        snap.regions.push((ev.range, ev.nr_accesses, ev.age));
        if snap.regions.len() >= ev.nr_regions as usize {
            return self.partial.remove(&ev.target_idx);
        }
        None
    }
}

/// A tracefs instance of ours reading `damon_aggregated` of one kdamond.
#[derive(Debug)]
pub struct AggregationTrace {
    instance: PathBuf,
    text_why: Option<String>,
    stop: Arc<AtomicBool>,
    lost: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    rx: Receiver<TargetSnapshot>,
}

fn io(op: &str, path: &Path, source: std::io::Error) -> SysfsError {
    SysfsError::Io {
        op: op.into(),
        path: path.to_path_buf(),
        source,
    }
}

fn write(path: &Path, v: &str) -> Result<(), SysfsError> {
    std::fs::write(path, v).map_err(|e| io(&format!("write {v:?} to"), path, e))
}

/// Removes instances `udamon-<pid>-…` whose process is gone (killed before
/// it could remove its own): they are ours, and each holds trace buffers.
fn remove_stale_instances(tracefs: &Path) {
    let Ok(dir) = std::fs::read_dir(tracefs.join("instances")) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("udamon-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::write(e.path().join("events/damon/damon_aggregated/enable"), "0");
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

impl AggregationTrace {
    /// Makes instance `udamon-<our pid>-<kdamond pid>` under `tracefs`,
    /// enables the event there for `kdamond_pid` only, and starts reading
    /// (the binary per-CPU pipes where the kernel's files are as expected,
    /// else the text pipe); at most `capacity` snapshots wait to be received.
    pub fn start(tracefs: &Path, kdamond_pid: i64, capacity: usize) -> Result<Self, SysfsError> {
        Self::start_reading(tracefs, kdamond_pid, capacity, true)
    }

    /// [`AggregationTrace::start`] reading the binary per-CPU pipes if
    /// `binary` (and the kernel's files allow), else the text `trace_pipe`.
    pub fn start_reading(
        tracefs: &Path,
        kdamond_pid: i64,
        capacity: usize,
        binary: bool,
    ) -> Result<Self, SysfsError> {
        let events = tracefs.join("events/damon/damon_aggregated");
        if !events.exists() {
            return Err(SysfsError::Unsupported(format!(
                "no damon:damon_aggregated event under {} (tracefs not mounted, or a kernel without DAMON tracepoints)",
                tracefs.display()
            )));
        }
        remove_stale_instances(tracefs);
        let instance = tracefs
            .join("instances")
            .join(format!("udamon-{}-{kdamond_pid}", std::process::id()));
        std::fs::create_dir(&instance).map_err(|e| io("mkdir", &instance, e))?;
        let ev = instance.join("events/damon/damon_aggregated");
        let setup = (|| {
            write(&instance.join("buffer_size_kb"), "1024")?;
            write(&ev.join("filter"), &format!("common_pid == {kdamond_pid}"))?;
            write(&ev.join("enable"), "1")
        })();
        if let Err(e) = setup {
            let _ = std::fs::remove_dir(&instance);
            return Err(e);
        }
        let pipe = instance.join("trace_pipe");
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicU64::new(0));
        let raw = if binary {
            RawSource::open(tracefs, &instance)
        } else {
            Err("the text pipe was asked for".into())
        };
        let text_why = raw.as_ref().err().cloned();
        let raw = raw.ok();
        let reader: Box<dyn FnOnce() + Send> = match raw {
            Some(src) => {
                let (stop, lost) = (stop.clone(), lost.clone());
                Box::new(move || src.read_loop(kdamond_pid, &tx, &stop, &lost))
            }
            None => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                    .open(&pipe)
                    .map_err(|e| io("open", &pipe, e));
                let file = match file {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = std::fs::remove_dir(&instance);
                        return Err(e);
                    }
                };
                let (stop, lost) = (stop.clone(), lost.clone());
                Box::new(move || read_loop(file, kdamond_pid, &tx, &stop, &lost))
            }
        };
        let thread = std::thread::Builder::new()
            .name("udamon-trace".into())
            .spawn(reader)
            .map_err(|e| io("spawn a reader for", &pipe, e))?;
        Ok(Self {
            instance,
            text_why,
            stop,
            lost,
            thread: Some(thread),
            rx,
        })
    }

    /// The snapshots, as they come.
    pub fn receiver(&self) -> &Receiver<TargetSnapshot> {
        &self.rx
    }

    /// Whether it reads the binary per-CPU pipes (else the text pipe).
    pub fn binary(&self) -> bool {
        self.text_why.is_none()
    }

    /// Why it reads the text pipe, if it does.
    pub fn text_reason(&self) -> Option<&str> {
        self.text_why.as_deref()
    }

    /// Snapshots dropped because the receiver fell behind.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
}

/// A tracefs file read with one large buffer: `events/header_page`
/// answers only the first read (a short first read, as
/// `read_to_string`'s probe makes, loses the rest).
fn read_whole(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(out).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The instance's per-CPU `trace_pipe_raw` files and the layouts to
/// decode them ([`raw`]).
struct RawSource {
    files: Vec<std::fs::File>,
    page: raw::PageLayout,
    event: raw::EventLayout,
}

impl RawSource {
    /// Opens the binary pipes of every CPU of `instance` and lets a poll
    /// wake at the first event (`buffer_percent` 0; its default, 50, waits
    /// for half a buffer). `None` when the kernel's files are not as
    /// expected: the text pipe is read instead.
    fn open(tracefs: &Path, instance: &Path) -> Result<Self, String> {
        let read = |p: PathBuf| read_whole(&p).map_err(|e| format!("{}: {e}", p.display()));
        let page = raw::PageLayout::parse(&read(tracefs.join("events/header_page"))?)
            .ok_or("events/header_page: not the layout expected")?;
        let event =
            raw::EventLayout::parse(&read(tracefs.join("events/damon/damon_aggregated/format"))?)
                .ok_or("damon_aggregated/format: not the fields expected")?;
        let mut files = Vec::new();
        let cpus =
            std::fs::read_dir(instance.join("per_cpu")).map_err(|e| format!("per_cpu: {e}"))?;
        for e in cpus.flatten() {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(e.path().join("trace_pipe_raw"));
            // an offline CPU's file may refuse; its buffer stays empty
            if let Ok(f) = f {
                files.push(f);
            }
        }
        if files.is_empty() {
            return Err("no per-CPU trace_pipe_raw could be opened".into());
        }
        std::fs::write(instance.join("buffer_percent"), "0")
            .map_err(|e| format!("buffer_percent: {e}"))?;
        Ok(Self { files, page, event })
    }

    /// Reads every CPU's pages until the stop flag, sends the snapshots.
    fn read_loop(self, pid: i64, tx: &Sender<TargetSnapshot>, stop: &AtomicBool, lost: &AtomicU64) {
        let mut page = vec![0u8; self.page.size];
        let mut events = Vec::new();
        let mut asm = Assembler::default();
        while !stop.load(Ordering::Relaxed) {
            events.clear();
            for mut f in &self.files {
                loop {
                    match f.read(&mut page) {
                        Ok(0) => break,
                        Ok(n) => {
                            raw::decode_page(&page[..n], &self.page, &self.event, &mut events);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break, // WouldBlock: this CPU's buffer is empty
                    }
                }
            }
            if events.is_empty() {
                wait_any_readable(&self.files);
                continue;
            }
            // per CPU in time order already; the kdamond may have moved
            events.sort_by_key(|e| e.time_ns);
            for ev in events.iter().filter(|e| e.pid == pid) {
                if let Some(snap) = asm.push(ev) {
                    if tx.try_send(snap).is_err() {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// How long the raw reader lets a burst of events gather once a buffer
/// turns readable: the kdamond traces every region of an aggregation back
/// to back, and a reader woken at the first event would wake again for
/// the next ones. Callbacks see each aggregation this much later.
const GATHER: Duration = Duration::from_millis(5);

/// Sleeps until one of `files` has data, or 200 ms (to see the stop flag),
/// then lets the burst gather ([`GATHER`]).
fn wait_any_readable(files: &[std::fs::File]) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds: Vec<PollFd<'_>> = files
        .iter()
        .map(|f| PollFd::new(f, PollFlags::IN))
        .collect();
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    match poll(&mut fds, Some(&timeout)) {
        Ok(n) if n > 0 => std::thread::sleep(GATHER),
        Ok(_) => {}
        Err(_) => std::thread::sleep(Duration::from_millis(10)),
    }
}

/// Sleeps until the pipe has data, or 200 ms (to see the stop flag): one
/// wake-up per burst of events, not a timer tick every few milliseconds.
fn wait_readable(file: &std::fs::File) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(file, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    if poll(&mut fds, Some(&timeout)).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_loop(
    mut file: std::fs::File,
    pid: i64,
    tx: &Sender<TargetSnapshot>,
    stop: &AtomicBool,
    lost: &AtomicU64,
) {
    let mut buf = vec![0u8; 64 << 10];
    let mut line = Vec::new();
    let mut asm = Assembler::default();
    while !stop.load(Ordering::Relaxed) {
        match file.read(&mut buf) {
            Ok(0) => wait_readable(&file),
            Ok(n) => {
                for &b in &buf[..n] {
                    if b != b'\n' {
                        // a line longer than any event is garbage: drop it
                        if line.len() < 4096 {
                            line.push(b);
                        }
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line);
                    if let Some(ev) = parse_line(&text).filter(|e| e.pid == pid) {
                        if let Some(snap) = asm.push(&ev) {
                            if tx.try_send(snap).is_err() {
                                lost.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    line.clear();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_readable(&file),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

impl Drop for AggregationTrace {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::write(
            self.instance.join("events/damon/damon_aggregated/enable"),
            "0",
        );
        // the instance is ours; removing it frees its buffers
        let _ = std::fs::remove_dir(&self.instance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_the_trace_pipe() {
        let l = "      kdamond.0-1234    [001] d..1.  4567.000123: damon_aggregated: target_id=1 nr_regions=3 4096-8192: 7 12";
        let e = parse_line(l).unwrap();
        assert_eq!(e.pid, 1234);
        assert_eq!(e.time_ns, 4_567_000_123_000);
        assert_eq!((e.target_idx, e.nr_regions), (1, 3));
        assert_eq!(e.range, AddrRange::new(4096, 8192));
        assert_eq!((e.nr_accesses, e.age), (7, 12));
        assert_eq!(
            parse_line("kdamond.0-1 [0] 1.0: damos_before_apply: x"),
            None
        );
        assert_eq!(parse_line("garbage"), None);
    }

    #[test]
    fn snapshots_per_target_and_a_lost_tail_restarts() {
        let ev = |t, n, s: u64, nr| AggregatedEvent {
            time_ns: s,
            pid: 1,
            target_idx: t,
            nr_regions: n,
            range: AddrRange::new(s, s + 10),
            nr_accesses: nr,
            age: 0,
        };
        let mut a = Assembler::default();
        assert!(a.push(&ev(0, 2, 0, 1)).is_none());
        assert!(
            a.push(&ev(1, 1, 100, 2)).is_some(),
            "target 1 has one region"
        );
        let s = a.push(&ev(0, 2, 10, 3)).unwrap();
        assert_eq!(s.regions.len(), 2);
        // an aggregation that lost its second event: the next one restarts
        assert!(a.push(&ev(0, 2, 0, 1)).is_none());
        assert!(
            a.push(&ev(0, 2, 0, 4)).is_none(),
            "restart at the first region"
        );
        let s = a.push(&ev(0, 2, 10, 5)).unwrap();
        assert_eq!(s.regions.iter().map(|r| r.1).collect::<Vec<_>>(), [4, 5]);
    }
}
