//! Argument parsers: sizes, durations, simulated patterns, pids.

use damon_core::{AddrRange, HotRange, SimPattern};

pub(crate) fn parse_scaled(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(format!("bad size {s:?}: unknown unit {c:?}")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().map_err(|_| {
        format!("bad size {s:?}: expected a number with an optional K/M/G/T suffix")
    })?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("bad size {s:?}"));
    }
    Ok(v * mult as f64)
}

/// Parses a byte count: `4096`, `512K`, `1.5G` (binary units `K`, `M`,
/// `G`, `T`, or `B`; decimals allowed). Unlike [`parse_size`], the result
/// is not rounded.
///
/// ```
/// use damon_examples::cli::parse_bytes;
/// assert_eq!(parse_bytes("128M"), Ok(128 << 20));
/// assert_eq!(parse_bytes("1000"), Ok(1000));
/// assert!(parse_bytes("1X").is_err());
/// ```
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let v = parse_scaled(s)?;
    if v >= u64::MAX as f64 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(v as u64)
}

/// Parses a size of the simulated space like [`parse_bytes`], rounded down
/// to a 4 KiB page, and refuses sizes from 128 TiB (2^47) on.
///
/// ```
/// use damon_examples::cli::parse_size;
/// assert_eq!(parse_size("16G"), Ok(16 << 30));
/// assert_eq!(parse_size("5000"), Ok(4096));
/// assert!(parse_size("200T").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bytes = parse_scaled(s)?;
    if bytes >= (1u64 << 47) as f64 {
        return Err(format!("size {s:?} exceeds the 128 TiB simulated space"));
    }
    Ok(bytes as u64 / 4096 * 4096)
}

/// The syntax of `--sim`, for help texts.
pub const SIM_SPEC_HELP: &str =
    "SPEC is SIZE[:hot=START-END@P,...][:exit=SECS], e.g. 16G:hot=1G-1.4G@0.8,5G-5.2G@0.5\n\
(sizes take K/M/G/T suffixes and decimals; P is a per-sample access probability in [0, 1];\n\
exit=SECS makes the simulated target exit after SECS seconds).";

/// Parses a simulated address space: `SIZE[:hot=START-END@P,...][:exit=SECS]`,
/// one range `[0, SIZE)` whose listed hot ranges are accessed with
/// probability `P` per sample and the rest never; with `exit=SECS` the
/// target exits (becomes invalid) that long after the first sample.
///
/// ```
/// let p = damon_examples::cli::parse_sim("1G:hot=0-256M@0.9:exit=2.5").unwrap();
/// assert_eq!(p.space_bytes(), 1 << 30);
/// assert_eq!(p.total_hot_bytes(0), 256 << 20);
/// assert_eq!(p.exit_after_us, Some(2_500_000));
/// ```
pub fn parse_sim(spec: &str) -> Result<SimPattern, String> {
    let mut parts = spec.split(':');
    let size = parse_size(parts.next().unwrap_or_default())?;
    if size == 0 {
        return Err("the simulated space needs a non-zero size".into());
    }
    let mut hot = Vec::new();
    let mut exit_after_us = None;
    for part in parts {
        if let Some(secs) = part.strip_prefix("exit=") {
            let s = parse_secs(secs).map_err(|e| format!("bad exit time in {spec:?}: {e}"))?;
            exit_after_us = Some((s * 1e6) as u64);
            continue;
        }
        let list = part.strip_prefix("hot=").ok_or_else(|| {
            format!("bad sim spec {spec:?}: expected SIZE[:hot=START-END@P,...][:exit=SECS]")
        })?;
        for item in list.split(',').filter(|x| !x.trim().is_empty()) {
            let (range, p) = item
                .split_once('@')
                .ok_or_else(|| format!("bad hot range {item:?}: expected START-END@P"))?;
            let (a, b) = range
                .split_once('-')
                .ok_or_else(|| format!("bad hot range {item:?}: expected START-END@P"))?;
            let (start, end) = (parse_size(a)?, parse_size(b)?);
            let probability: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("bad probability {p:?} in {item:?}"))?;
            if !(0.0..=1.0).contains(&probability) {
                return Err(format!(
                    "probability {probability} in {item:?} is not in [0, 1]"
                ));
            }
            if start >= end || end > size {
                return Err(format!(
                    "hot range {item:?} is empty or outside [0, {size})"
                ));
            }
            hot.push(HotRange {
                range: AddrRange::new(start, end),
                probability,
            });
        }
    }
    hot.sort_by_key(|h| h.range.start);
    let mut p = SimPattern::with_hot(size, hot);
    p.exit_after_us = exit_after_us;
    p.validate().map_err(|e| e.to_string())?;
    Ok(p)
}

/// Parses a positive, finite number of seconds (for `--duration`).
///
/// ```
/// use damon_examples::cli::parse_secs;
/// assert_eq!(parse_secs("1.5"), Ok(1.5));
/// assert!(parse_secs("0").is_err() && parse_secs("-1").is_err() && parse_secs("inf").is_err());
/// ```
pub fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v <= 1e7) {
        return Err(format!("{s:?}: expected a positive number of seconds"));
    }
    Ok(v)
}

/// Checks that process `pid` exists, with a message naming it if not.
pub fn check_pid(pid: u32) -> Result<(), String> {
    if pid == 0 {
        return Err("pid 0 is not a process".into());
    }
    match std::fs::metadata(format!("/proc/{pid}")) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("no process with pid {pid}"))
        }
        Err(e) => Err(format!("cannot check process {pid}: /proc/{pid}: {e}")),
    }
}
