//! Wall-clock formatting for the message pane. Time is injected (`Event::Tick`) so screens are
//! deterministic; the local offset is read once at start.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as the server stamps messages.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The local time zone's offset from UTC in seconds, read once at start.
///
/// Why `date +%z`: the workspace has no time-zone crate, and `date` resolves `TZ` and
/// `/etc/localtime` exactly as the user's shell does. Any failure falls back to UTC, which only
/// shifts the displayed clock.
pub fn local_offset_secs() -> i32 {
    std::process::Command::new("date")
        .arg("+%z")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| parse_offset(text.trim()))
        .unwrap_or(0)
}

/// Parses `+0130` / `-0800` into seconds.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Local seconds since the epoch for a server timestamp.
fn local_secs(ts_ms: u64, offset_secs: i32) -> i64 {
    i64::try_from(ts_ms / 1000).unwrap_or(i64::MAX) + i64::from(offset_secs)
}

/// `HH:MM` in local time.
pub fn hh_mm(ts_ms: u64, offset_secs: i32) -> String {
    let secs_of_day = local_secs(ts_ms, offset_secs).rem_euclid(86_400);
    format!("{:02}:{:02}", secs_of_day / 3600, (secs_of_day % 3600) / 60)
}

/// The local day number (days since 1970-01-01), to notice when the date changes.
pub fn day(ts_ms: u64, offset_secs: i32) -> i64 {
    local_secs(ts_ms, offset_secs).div_euclid(86_400)
}

/// `YYYY-MM-DD` for a day number (Howard Hinnant's civil-from-days algorithm).
pub fn date_label(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_with_sign_hours_and_minutes() {
        assert_eq!(parse_offset("+0130"), Some(5400));
        assert_eq!(parse_offset("-0800"), Some(-28_800));
        assert_eq!(parse_offset("UTC"), None);
    }

    #[test]
    fn times_and_dates_follow_the_offset() {
        // 2024-02-29 23:30:00 UTC
        let ts = 1_709_249_400_000;
        assert_eq!(hh_mm(ts, 0), "23:30");
        assert_eq!(date_label(day(ts, 0)), "2024-02-29");
        assert_eq!(hh_mm(ts, 3600), "00:30");
        assert_eq!(date_label(day(ts, 3600)), "2024-03-01");
        assert_eq!(date_label(0), "1970-01-01");
    }
}
