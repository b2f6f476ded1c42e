//! Human-readable numbers in damo's conventions (binary size units with
//! three decimals, `5 ms`, `1 m 30 s`, `120 hz`), for report output.

const KIB: f64 = 1024.0;

/// A size: `512 B`, `4.000 KiB`, `1.500 GiB`, or `max` for `u64::MAX`.
/// As in damo, a unit is used only above (not at) its threshold, so 1024
/// bytes prints as `1024 B`.
pub fn format_sz(bytes: f64) -> String {
    if bytes >= u64::MAX as f64 {
        return "max".into();
    }
    const UNITS: [(&str, i32); 6] = [
        ("EiB", 6),
        ("PiB", 5),
        ("TiB", 4),
        ("GiB", 3),
        ("MiB", 2),
        ("KiB", 1),
    ];
    for (name, pow) in UNITS {
        let unit = KIB.powi(pow);
        if bytes > unit {
            return format!("{:.3} {name}", bytes / unit);
        }
    }
    format!("{} B", bytes.max(0.0) as u64)
}

/// An integer with `,` grouping of thousands: `26,843,545,600`.
pub fn format_nr(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const US: f64 = 1e3;
const MS: f64 = 1e6;
const SEC: f64 = 1e9;
const MINUTE: f64 = 60.0 * SEC;
const HOUR: f64 = 60.0 * MINUTE;

fn trimmed_unit(ns: f64, unit: f64, name: &str) -> String {
    if ns % unit == 0.0 {
        format!("{} {name}", (ns / unit) as u64)
    } else {
        format!("{:.3} {name}", ns / unit)
    }
}

/// A duration in nanoseconds: `5 ms`, `1.500 s`, `2 m 30 s`, `1 h 2 m`.
/// Negative durations get a leading `-`.
pub fn format_time_ns(ns: f64) -> String {
    if ns < 0.0 {
        return format!("-{}", format_time_ns(-ns));
    }
    if !ns.is_finite() || ns >= u64::MAX as f64 {
        return "max".into();
    }
    if ns >= HOUR {
        let h = (ns / HOUR).floor();
        let rest = ns - h * HOUR;
        if rest == 0.0 {
            return format!("{} h", h as u64);
        }
        return format!("{} h {}", h as u64, format_time_ns(rest));
    }
    if ns >= MINUTE {
        let m = (ns / MINUTE).floor() as u64;
        if ns % MINUTE == 0.0 {
            return format!("{m} m");
        }
        let s = ns % MINUTE / SEC;
        if ns % SEC == 0.0 {
            return format!("{m} m {} s", s as u64);
        }
        return format!("{m} m {s:.3} s");
    }
    if ns >= SEC {
        return trimmed_unit(ns, SEC, "s");
    }
    if ns >= MS {
        return trimmed_unit(ns, MS, "ms");
    }
    if ns >= US {
        return trimmed_unit(ns, US, "us");
    }
    format!("{} ns", ns as u64)
}

/// A frequency: three decimals below 10 hz, whole numbers (grouped) above.
pub fn format_hz(hz: f64) -> String {
    if hz < 10.0 && hz != 0.0 {
        format!("{hz:.3} hz")
    } else {
        format!("{} hz", format_nr(hz.max(0.0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(format_sz(0.0), "0 B");
        assert_eq!(format_sz(1024.0), "1024 B");
        assert_eq!(format_sz(4096.0), "4.000 KiB");
        assert_eq!(format_sz(25.0 * (1u64 << 30) as f64), "25.000 GiB");
        assert_eq!(format_sz(u64::MAX as f64), "max");
    }

    #[test]
    fn numbers() {
        assert_eq!(format_nr(0), "0");
        assert_eq!(format_nr(999), "999");
        assert_eq!(format_nr(1000), "1,000");
        assert_eq!(format_nr(26_843_545_600), "26,843,545,600");
    }

    #[test]
    fn times() {
        assert_eq!(format_time_ns(0.0), "0 ns");
        assert_eq!(format_time_ns(5e6), "5 ms");
        assert_eq!(format_time_ns(1.5e9), "1.500 s");
        assert_eq!(format_time_ns(150e9), "2 m 30 s");
        assert_eq!(format_time_ns(3_660e9), "1 h 1 m");
        assert_eq!(format_time_ns(-5e6), "-5 ms");
    }

    #[test]
    fn hz() {
        assert_eq!(format_hz(0.0), "0 hz");
        assert_eq!(format_hz(2.5), "2.500 hz");
        assert_eq!(format_hz(1200.0), "1,200 hz");
    }
}
