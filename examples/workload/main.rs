//! `workload`: a memory-access generator with a known ground truth.
//!
//! It maps named anonymous regions, populates them, then runs timed phases,
//! each touching chosen sub-ranges page by page in a tight loop. With
//! `--print-truth` it prints the real virtual addresses of what each phase
//! touches, so a monitor (ours or the kernel's DAMON) can score itself.
//!
//! # Config
//!
//! One statement per line (or separated by `;`); `#` starts a comment.
//!
//! ```text
//! # sizes: bytes or K/M/G suffixes (binary); durations: us, ms, s or m
//! region buf 64M              # anonymous mapping named buf
//! region other 32M thp        # flags: thp (MADV_HUGEPAGE, 2 MiB aligned) or nothp
//! phase 5s buf:0-16M:write other:0-8M:read@50%
//! phase 5s buf:32M+16M:write  # START+LEN is START-(START+LEN)
//! phase 2s                    # no accesses: idle
//! loop                        # repeat the phases until stopped
//! ```
//!
//! An access is `NAME[:RANGE][:MODE][@P%]`: `RANGE` is `START-END` or
//! `START+LEN` within the region (default: all of it; rounded out to whole
//! pages), `MODE` is `read` (default) or `write` (`r`/`w`), and `@P%`
//! touches each page in a pass with probability P (1-100, default 100,
//! from a deterministic RNG). A phase repeats passes over its accesses until
//! its time is up.
//!
//! # Memory contents
//!
//! Every page is populated with pure writes (a first read would map the
//! shared zero page and defeat THP) of a pattern derived from its region and
//! index. Writes during phases store the pattern's own value again, so
//! `--verify` can check every word at exit (e.g. after the pages were swapped
//! out and back in by a DAMOS `pageout`) and exits 3 on corruption.
//!
//! # Truth lines (stdout, with `--print-truth`)
//!
//! ```text
//! truth region name=buf start=0x7f3876600000 end=0x7f387a600000 thp=default
//! truth start pid=123 start_us=5123456789
//! truth phase=0 cycle=0 start_us=5123460000 hot=0x7f3876600000-0x7f3877600000 modes=w
//! truth end start_us=5133460000
//! ```
//!
//! `start_us` is `CLOCK_MONOTONIC` in microseconds (comparable across
//! processes); `hot` lists the touched ranges (end exclusive, comma
//! separated, empty when idle) and `modes` their modes in the same order
//! (`r`, `w`, with `@P` for a probability below 100%).
//!
//! Every region starts on a 2 MiB boundary, `thp` or not, so that layouts
//! compare across THP modes.

#![deny(unsafe_code)]

use std::fmt::Write as _;
use std::io::Read as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const HELP: &str = "\
usage: workload [OPTIONS] (CONFIG-FILE | - | -e TEXT)

Maps the regions of the config, populates them, runs its timed phases
touching the listed page ranges, and exits (or loops until SIGINT/SIGTERM).

options:
  -e, --config-str TEXT  the config as text (';' separates statements)
  --print-truth          print region/phase lines with real addresses on stdout
  --pid-file PATH        write the pid once the regions are populated
  --verify               check every page's pattern at exit (exit 3 if corrupt)
  --duration D           run for D in all: phases repeat as with `loop`, and
                         the run stops at D even in the middle of a phase
  --seed N               seed of the access-probability RNG (default 42)
  -h, --help             this text

config (one statement per line or ';'-separated, '#' comments):
  region NAME SIZE [thp|nothp]   anonymous mapping; thp = MADV_HUGEPAGE and
                                 2 MiB alignment, nothp = MADV_NOHUGEPAGE
  phase DURATION [ACCESS...]     ACCESS = NAME[:START-END|:START+LEN][:read|:write][@P%]
  loop                           repeat the phases until stopped
  sizes: 4096, 64K, 16M, 1G; durations: 500us, 250ms, 5s, 2m

example:
  region buf 64M
  phase 5s buf:0-16M:write
  phase 5s buf:32M-48M:read@50%

Every region is 2 MiB aligned.

exit status: 0 done, 1 system error, 2 bad usage or config, 3 corruption
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(Failure::Usage(msg)) => {
            eprintln!("workload: {msg}\n(see workload --help)");
            ExitCode::from(2)
        }
        Err(Failure::System(msg)) => {
            eprintln!("workload: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Why the program stops early.
enum Failure {
    /// Bad arguments or config (exit 2).
    Usage(String),
    /// A system call failed (exit 1).
    System(String),
}

/// Command-line options.
struct Options {
    config_text: String,
    print_truth: bool,
    pid_file: Option<String>,
    verify: bool,
    duration: Option<Duration>,
    seed: u64,
}

fn parse_options() -> Result<Option<Options>, Failure> {
    let mut args = std::env::args().skip(1);
    let mut text = None;
    let mut opts = Options {
        config_text: String::new(),
        print_truth: false,
        pid_file: None,
        verify: false,
        duration: None,
        seed: 42,
    };
    let usage = Failure::Usage;
    let set_text = |t: String, text: &mut Option<String>| match text.replace(t) {
        Some(_) => Err(usage("more than one config given".into())),
        None => Ok(()),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--print-truth" => opts.print_truth = true,
            "--verify" => opts.verify = true,
            "--pid-file" => opts.pid_file = Some(value("--pid-file")?),
            "--duration" => {
                let v = value("--duration")?;
                opts.duration = Some(
                    config::parse_duration(&v).map_err(|e| usage(format!("--duration: {e}")))?,
                );
            }
            "--seed" => {
                let v = value("--seed")?;
                opts.seed = v
                    .parse()
                    .map_err(|_| usage(format!("--seed: {v:?} is not a number")))?;
            }
            "-e" | "--config-str" => {
                let v = value("--config-str")?;
                set_text(v, &mut text)?;
            }
            "-" => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| Failure::System(format!("reading the config from stdin: {e}")))?;
                set_text(s, &mut text)?;
            }
            path if !path.starts_with('-') => {
                let s = std::fs::read_to_string(path)
                    .map_err(|e| usage(format!("cannot read config {path}: {e}")))?;
                set_text(s, &mut text)?;
            }
            other => return Err(usage(format!("unknown option {other:?}"))),
        }
    }
    opts.config_text =
        text.ok_or_else(|| usage("no config: pass a file, '-' for stdin, or -e TEXT".into()))?;
    Ok(Some(opts))
}

/// `println!` that ignores a closed stdout: a monitor that stops reading
/// our truth lines must not end the workload (std would panic on EPIPE).
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn run() -> Result<ExitCode, Failure> {
    let Some(opts) = parse_options()? else {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    };
    let page = sys::page_size();
    let config = config::parse(&opts.config_text, page)
        .map_err(|e| Failure::Usage(format!("config {e}")))?;
    sys::install_stop_handler().map_err(|e| Failure::System(format!("sigaction: {e}")))?;

    let mut regions = Vec::with_capacity(config.regions.len());
    for (id, spec) in config.regions.iter().enumerate() {
        regions.push(Region::map(spec, id as u64, page)?);
    }
    for region in &mut regions {
        region.populate();
    }
    if opts.print_truth {
        for region in &regions {
            emit!(
                "truth region name={} start={:#x} end={:#x} thp={}",
                region.name,
                region.map.addr(),
                region.map.addr() + region.map.len(),
                region.thp.name()
            );
        }
    }
    if let Some(path) = &opts.pid_file {
        write_pid_file(path)?;
    }
    if opts.print_truth {
        emit!(
            "truth start pid={} start_us={}",
            std::process::id(),
            sys::monotonic_us()
        );
    }

    let started = Instant::now();
    let end_of_run = opts.duration.map(|d| started + d);
    let repeat = config.looped || opts.duration.is_some();
    let mut rng = Rng(opts.seed);
    let mut pass = 0u64;
    'cycles: for cycle in 0u64.. {
        for (index, phase) in config.phases.iter().enumerate() {
            if sys::stop_requested() || end_of_run.is_some_and(|e| Instant::now() >= e) {
                break 'cycles;
            }
            if opts.print_truth {
                emit!("{}", truth_phase_line(index, cycle, phase, &regions));
            }
            let mut deadline = Instant::now() + phase.duration;
            if let Some(e) = end_of_run {
                deadline = deadline.min(e);
            }
            run_phase(phase, &mut regions, deadline, &mut rng, &mut pass);
        }
        if !repeat {
            break;
        }
    }
    if opts.print_truth {
        emit!("truth end start_us={}", sys::monotonic_us());
    }
    if opts.verify {
        let (pages, corrupt) = verify(&regions);
        eprintln!("workload: verify: {pages} pages checked, {corrupt} corrupt");
        if corrupt > 0 {
            return Ok(ExitCode::from(3));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes our pid to `path` atomically (temporary file, then rename), so a
/// waiting monitor never reads a partial number.
fn write_pid_file(path: &str) -> Result<(), Failure> {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Failure::System(format!("writing pid file {path}: {e}")))
}

/// One mapped region.
struct Region {
    name: String,
    id: u64,
    thp: config::Thp,
    map: sys::Mapping,
    page_words: usize,
}

impl Region {
    fn map(spec: &config::RegionSpec, id: u64, page: usize) -> Result<Self, Failure> {
        // 2 MiB (a PMD) for every region, so layouts match across THP modes.
        let align = (2 << 20).max(page);
        let err = |what: &str, e: std::io::Error| {
            Failure::System(format!(
                "{what} of region {} ({} bytes): {e}",
                spec.name, spec.size
            ))
        };
        let map = sys::Mapping::anonymous(spec.size, align).map_err(|e| err("mmap", e))?;
        let advice = match spec.thp {
            config::Thp::Default => None,
            config::Thp::Huge => Some(sys::Advice::HugePage),
            config::Thp::NoHuge => Some(sys::Advice::NoHugePage),
        };
        if let Some(advice) = advice {
            map.advise(advice).map_err(|e| err("madvise", e))?;
        }
        Ok(Region {
            name: spec.name.clone(),
            id,
            thp: spec.thp,
            map,
            page_words: page / 8,
        })
    }

    /// Fills every page with its pattern (pure writes: see the module docs).
    fn populate(&mut self) {
        let (id, page_words) = (self.id, self.page_words);
        for (index, page) in self
            .map
            .words_mut()
            .chunks_exact_mut(page_words)
            .enumerate()
        {
            let base = page_base(id, index as u64);
            for (i, word) in page.iter_mut().enumerate() {
                *word = pattern(base, i);
            }
        }
    }
}

/// The pattern's per-page seed (splitmix64 of region and page index).
fn page_base(region: u64, page: u64) -> u64 {
    splitmix(region << 40 ^ page)
}

/// The expected value of word `i` of a page whose base is `base`.
fn pattern(base: u64, i: usize) -> u64 {
    base.wrapping_add((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The deterministic RNG behind `@P%` (splitmix64 sequence).
struct Rng(u64);

impl Rng {
    fn below_100(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        (splitmix(self.0) % 100) as u32
    }
}

/// Checks every word of every page; returns (pages checked, pages corrupt).
fn verify(regions: &[Region]) -> (u64, u64) {
    let (mut pages, mut corrupt) = (0, 0);
    for region in regions {
        let words = region.map.words();
        for (index, page) in words.chunks_exact(region.page_words).enumerate() {
            pages += 1;
            let base = page_base(region.id, index as u64);
            if let Some(i) = (0..page.len()).find(|&i| page[i] != pattern(base, i)) {
                corrupt += 1;
                if corrupt <= 10 {
                    eprintln!(
                        "workload: corrupt page {index} of region {} at {:#x}: word {i} is {:#x}, expected {:#x}",
                        region.name,
                        region.map.addr() + index * region.page_words * 8,
                        page[i],
                        pattern(base, i)
                    );
                }
            }
        }
    }
    (pages, corrupt)
}

/// `truth phase=… hot=… modes=…` for a phase.
fn truth_phase_line(
    index: usize,
    cycle: u64,
    phase: &config::PhaseSpec,
    regions: &[Region],
) -> String {
    let mut hot = String::new();
    let mut modes = String::new();
    for (n, a) in phase.accesses.iter().enumerate() {
        let base = regions[a.region].map.addr();
        let sep = if n == 0 { "" } else { "," };
        let _ = write!(hot, "{sep}{:#x}-{:#x}", base + a.start, base + a.end);
        let _ = write!(modes, "{sep}{}", if a.write { "w" } else { "r" });
        if a.percent < 100 {
            let _ = write!(modes, "@{}", a.percent);
        }
    }
    format!(
        "truth phase={index} cycle={cycle} start_us={} hot={hot} modes={modes}",
        sys::monotonic_us()
    )
}

/// Touches the phase's pages until `deadline` (or a stop signal).
fn run_phase(
    phase: &config::PhaseSpec,
    regions: &mut [Region],
    deadline: Instant,
    rng: &mut Rng,
    pass: &mut u64,
) {
    if phase.accesses.is_empty() {
        while !sys::stop_requested() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        return;
    }
    // Look at the clock every this many pages, not on every touch.
    const CHECK_EVERY: u32 = 64;
    let mut until_check = CHECK_EVERY;
    loop {
        *pass += 1;
        for a in &phase.accesses {
            let region = &mut regions[a.region];
            let (id, page_words) = (region.id, region.page_words);
            let words = region.map.words_mut();
            for page in a.start / (page_words * 8)..a.end / (page_words * 8) {
                until_check -= 1;
                if until_check == 0 {
                    until_check = CHECK_EVERY;
                    if sys::stop_requested() || Instant::now() >= deadline {
                        return;
                    }
                }
                if a.percent < 100 && rng.below_100() >= a.percent {
                    continue;
                }
                // A different word (cache line) of the page on each pass.
                let i = (*pass as usize * 8) % page_words;
                let word = &mut words[page * page_words + i];
                if a.write {
                    sys::write_word(word, pattern(page_base(id, page as u64), i));
                } else {
                    std::hint::black_box(sys::read_word(word));
                }
            }
        }
    }
}

mod config;

mod sys;
