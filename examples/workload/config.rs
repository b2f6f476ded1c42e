//! The config language (see the module docs): pure parsing, no I/O.
use std::fmt;
use std::time::Duration;

/// A parsed config.
#[derive(Debug)]
pub struct Config {
    pub regions: Vec<RegionSpec>,
    pub phases: Vec<PhaseSpec>,
    /// `loop` was given.
    pub looped: bool,
}

/// THP handling of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thp {
    /// No madvise: the system's THP mode decides.
    Default,
    /// `thp`: MADV_HUGEPAGE, 2 MiB aligned.
    Huge,
    /// `nothp`: MADV_NOHUGEPAGE.
    NoHuge,
}

impl Thp {
    pub fn name(self) -> &'static str {
        match self {
            Thp::Default => "default",
            Thp::Huge => "yes",
            Thp::NoHuge => "no",
        }
    }
}

/// `region NAME SIZE [thp|nothp]`.
#[derive(Debug)]
pub struct RegionSpec {
    pub name: String,
    /// Bytes, a multiple of the page size.
    pub size: usize,
    pub thp: Thp,
}

/// `phase DURATION ACCESS...`.
#[derive(Debug)]
pub struct PhaseSpec {
    pub duration: Duration,
    pub accesses: Vec<Access>,
}

/// One `NAME[:RANGE][:MODE][@P%]`, resolved.
#[derive(Debug, PartialEq, Eq)]
pub struct Access {
    /// Index into [`Config::regions`].
    pub region: usize,
    /// Byte offsets in the region, page aligned, `start < end`.
    pub start: usize,
    pub end: usize,
    pub write: bool,
    /// 1..=100.
    pub percent: u32,
}

/// A config error with its 1-based line number.
#[derive(Debug)]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

/// Parses a config; `page` is the page size used for rounding.
pub fn parse(text: &str, page: usize) -> Result<Config, ParseError> {
    let mut config = Config {
        regions: Vec::new(),
        phases: Vec::new(),
        looped: false,
    };
    let mut last_line = 1;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        last_line = line;
        let code = raw.split('#').next().unwrap_or("");
        for statement in code.split(';') {
            let words: Vec<&str> = statement.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            statement_into(&mut config, &words, page).map_err(|msg| ParseError { line, msg })?;
        }
    }
    if config.phases.is_empty() {
        return Err(ParseError {
            line: last_line,
            msg: "no `phase` statement".into(),
        });
    }
    Ok(config)
}

fn statement_into(config: &mut Config, words: &[&str], page: usize) -> Result<(), String> {
    match words[0] {
        "region" => {
            let [_, name, size, flags @ ..] = words else {
                return Err("expected `region NAME SIZE [thp|nothp]`".into());
            };
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(format!(
                    "bad region name {name:?} (letters, digits, '_', '-')"
                ));
            }
            if config.regions.iter().any(|r| r.name == *name) {
                return Err(format!("region {name:?} is defined twice"));
            }
            if !config.phases.is_empty() {
                return Err("regions must come before the first phase".into());
            }
            let size = parse_size(size)?;
            if size == 0 {
                return Err("a region cannot be empty".into());
            }
            let size = round_up(size, page).ok_or("region size too large")?;
            let thp = match flags {
                [] => Thp::Default,
                ["thp"] => Thp::Huge,
                ["nothp"] => Thp::NoHuge,
                other => return Err(format!("unknown region flags {other:?} (thp or nothp)")),
            };
            config.regions.push(RegionSpec {
                name: name.to_string(),
                size,
                thp,
            });
        }
        "phase" => {
            let [_, duration, accesses @ ..] = words else {
                return Err("expected `phase DURATION [ACCESS...]`".into());
            };
            let duration = parse_duration(duration)?;
            let accesses = accesses
                .iter()
                .map(|a| parse_access(a, &config.regions, page))
                .collect::<Result<_, _>>()?;
            config.phases.push(PhaseSpec { duration, accesses });
        }
        "loop" => {
            if words.len() > 1 {
                return Err("`loop` takes no arguments".into());
            }
            if config.looped {
                return Err("`loop` given twice".into());
            }
            config.looped = true;
        }
        other => {
            return Err(format!(
                "unknown statement {other:?} (region, phase or loop)"
            ))
        }
    }
    Ok(())
}

fn round_up(x: usize, to: usize) -> Option<usize> {
    Some(x.checked_add(to - 1)? / to * to)
}

/// `NAME[:RANGE][:MODE][@P%]`.
fn parse_access(token: &str, regions: &[RegionSpec], page: usize) -> Result<Access, String> {
    let (spec, percent) = match token.split_once('@') {
        Some((spec, p)) => {
            let digits = p.strip_suffix('%').unwrap_or(p);
            let percent: u32 = digits
                .parse()
                .map_err(|_| format!("{token:?}: bad probability {p:?} (like @50%)"))?;
            if !(1..=100).contains(&percent) {
                return Err(format!("{token:?}: probability must be 1-100%"));
            }
            (spec, percent)
        }
        None => (token, 100),
    };
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or("");
    let region = regions.iter().position(|r| r.name == name).ok_or_else(|| {
        let known: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        format!(
            "{token:?}: unknown region {name:?} (defined: {})",
            known.join(", ")
        )
    })?;
    let size = regions[region].size;
    let (mut start, mut end, mut write) = (0, size, false);
    let (mut seen_range, mut seen_mode) = (false, false);
    for part in parts {
        match part {
            "read" | "r" | "write" | "w" if !seen_mode => {
                write = part.starts_with('w');
                seen_mode = true;
            }
            _ if !seen_range && !seen_mode => {
                (start, end) = parse_range(part).map_err(|e| format!("{token:?}: {e}"))?;
                seen_range = true;
            }
            _ => {
                return Err(format!(
                    "{token:?}: expected NAME[:START-END][:read|write][@P%]"
                ))
            }
        }
    }
    let start = start / page * page;
    let end = round_up(end, page).ok_or_else(|| format!("{token:?}: range too large"))?;
    if start >= end {
        return Err(format!("{token:?}: empty range"));
    }
    if end > size {
        return Err(format!(
            "{token:?}: range ends at {end:#x}, beyond the {size:#x}-byte region {name}"
        ));
    }
    Ok(Access {
        region,
        start,
        end,
        write,
        percent,
    })
}

/// `START-END` or `START+LEN`.
fn parse_range(s: &str) -> Result<(usize, usize), String> {
    if let Some((a, b)) = s.split_once('-') {
        Ok((parse_size(a)?, parse_size(b)?))
    } else if let Some((a, b)) = s.split_once('+') {
        let start = parse_size(a)?;
        let end = start.checked_add(parse_size(b)?).ok_or("range too large")?;
        Ok((start, end))
    } else {
        Err(format!("bad range {s:?} (START-END or START+LEN)"))
    }
}

/// `4096`, `64K`, `16M`, `1G` (binary units; `k/m/g` too).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("bad size {s:?} (like 4096, 64K, 16M, 1G)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size {s:?} too large"))
}

const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `500us`, `250ms`, `5s`, `2m` (at most a year).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("bad duration {s:?} (like 500us, 250ms, 5s, 2m)"))?;
    let d = match unit {
        "us" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("bad duration unit in {s:?} (us, ms, s or m)")),
    };
    if d.is_zero() {
        return Err(format!("duration {s:?} is zero"));
    }
    // Keeps `Instant + duration` far from overflowing.
    if d > MAX_DURATION {
        return Err(format!("duration {s:?} is longer than a year"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    #[test]
    fn parses_the_documented_example() {
        let text = "# comment\nregion buf 64M\nregion other 32M thp   # hot\n\
                    phase 5s  buf:0-16M:write  other:0-8M:read@50%\n\
                    phase 5s buf:32M+16M:w; phase 2s\nloop\n";
        let c = parse(text, PAGE).expect("valid");
        assert_eq!(c.regions.len(), 2);
        assert_eq!(c.regions[1].thp, Thp::Huge);
        assert_eq!(c.phases.len(), 3);
        assert!(c.looped);
        assert_eq!(
            c.phases[0].accesses[1],
            Access {
                region: 1,
                start: 0,
                end: 8 << 20,
                write: false,
                percent: 50
            }
        );
        assert_eq!(
            c.phases[1].accesses[0],
            Access {
                region: 0,
                start: 32 << 20,
                end: 48 << 20,
                write: true,
                percent: 100
            }
        );
        assert!(c.phases[2].accesses.is_empty());
    }

    #[test]
    fn whole_region_and_rounding() {
        let c = parse("region a 10000; phase 1ms a a:100-5000:write", PAGE).expect("valid");
        assert_eq!(c.regions[0].size, 12288);
        assert_eq!(
            (c.phases[0].accesses[0].start, c.phases[0].accesses[0].end),
            (0, 12288)
        );
        assert_eq!(
            (c.phases[0].accesses[1].start, c.phases[0].accesses[1].end),
            (0, 8192)
        );
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("region buf 64M\nphase 1s bf:0-1M", 2, "unknown region"),
            ("region buf 64M\n\nphase 1s buf:0-65M", 3, "beyond"),
            ("region buf 64X", 1, "bad size"),
            ("region buf 1M\nphase 1x", 2, "duration unit"),
            ("region buf 1M\nphase 1s buf@0%", 2, "1-100"),
            ("region buf 1M\nregion buf 2M", 2, "twice"),
            ("region buf 1M", 1, "no `phase`"),
            ("frobnicate", 1, "unknown statement"),
            ("region buf 1M\nphase 1s buf:8K-4K", 2, "empty range"),
            ("region b 99999999999999999999G", 1, "bad size"),
            ("region b 1M\nphase 9999999m", 2, "longer than a year"),
            ("region b 1M\nphase 1s b:x", 2, "bad range"),
            ("region b 1M\nphase 1s b:0-4K:w:z", 2, "expected"),
            ("region b 1M\nphase 1s b:w:0-4K", 2, "expected"),
        ];
        for (text, line, needle) in cases {
            let err = parse(text, PAGE).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.msg.contains(needle), "{text:?}: {err}");
        }
    }
}
