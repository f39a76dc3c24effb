//! Disappearing-message timers as people write and read them: `30s`, `10m`,
//! `1d`, `2w`, or `off`. One unit per value: `90m` rather than `1h30m`, so a
//! value reads back the way it was written.

/// The longest timer the daemon takes: one year.
pub const MAX_TIMER_SECONDS: u64 = 365 * DAY;

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY;

/// Units, largest first: (suffix, seconds, singular word).
const UNITS: [(char, u64, &str); 5] = [
    ('w', WEEK, "week"),
    ('d', DAY, "day"),
    ('h', HOUR, "hour"),
    ('m', MINUTE, "minute"),
    ('s', 1, "second"),
];

/// `off` or `0` is 0; otherwise a number and one unit, at most a year.
pub fn parse_timer(s: &str) -> Result<u64, String> {
    if s == "off" || s == "0" {
        return Ok(0);
    }
    let bad = || {
        format!("`{s}` is not a duration: a number and s, m, h, d or w (30s, 10m, 1d, 2w), or off")
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let (_, size, _) = UNITS.iter().find(|(u, _, _)| *u == unit).ok_or_else(bad)?;
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let seconds = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(*size))
        .filter(|&n| n <= MAX_TIMER_SECONDS)
        .ok_or_else(|| format!("`{s}` is longer than the longest timer, a year (365d)"))?;
    Ok(seconds)
}

/// `1d`, `90m`, `off`: the largest unit that divides it.
pub fn short(seconds: u64) -> String {
    match unit_of(seconds) {
        None => "off".to_owned(),
        Some((n, suffix, _)) => format!("{n}{suffix}"),
    }
}

/// `1 day`, `90 minutes`, `off`.
pub fn long(seconds: u64) -> String {
    match unit_of(seconds) {
        None => "off".to_owned(),
        Some((1, _, word)) => format!("1 {word}"),
        Some((n, _, word)) => format!("{n} {word}s"),
    }
}

fn unit_of(seconds: u64) -> Option<(u64, char, &'static str)> {
    if seconds == 0 {
        return None;
    }
    UNITS
        .iter()
        .find(|(_, size, _)| seconds.is_multiple_of(*size))
        .map(|&(suffix, size, word)| (seconds / size, suffix, word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_parse_and_read_back() {
        for (text, seconds, long_form) in [
            ("30s", 30, "30 seconds"),
            ("10m", 600, "10 minutes"),
            ("1h", 3600, "1 hour"),
            ("1d", 86_400, "1 day"),
            ("2w", 1_209_600, "2 weeks"),
            ("365d", MAX_TIMER_SECONDS, "365 days"),
        ] {
            assert_eq!(parse_timer(text), Ok(seconds), "{text}");
            assert_eq!(short(seconds), text);
            assert_eq!(long(seconds), long_form);
        }
        assert_eq!(parse_timer("off"), Ok(0));
        assert_eq!(parse_timer("0"), Ok(0));
        assert_eq!(parse_timer("0d"), Ok(0));
        assert_eq!(short(0), "off");
        assert_eq!(long(0), "off");
        assert_eq!(short(90 * 60), "90m");
        assert_eq!(short(61), "61s");
    }

    #[test]
    fn bad_timers_say_what_is_expected() {
        for bad in ["", "d", "1", "1y", "-1d", "1.5h", "1 d", "１d", "1dd"] {
            let e = parse_timer(bad).unwrap_err();
            assert!(e.contains("not a duration"), "{bad}: {e}");
        }
        for long in [
            "366d",
            "53w",
            "99999999999999999999s",
            "18446744073709551615w",
        ] {
            let e = parse_timer(long).unwrap_err();
            assert!(e.contains("a year"), "{long}: {e}");
        }
    }
}
