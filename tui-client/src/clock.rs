//! Wall-clock formatting for the message pane. Time is injected (`Event::Tick`) so screens are
//! deterministic; the local time zone is read once at start, and its rules (not one fixed
//! offset) turn every timestamp into local time, so times stay right across a daylight-saving
//! change.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// Milliseconds since the Unix epoch, as the server stamps messages.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The user's time zone, as their shell resolves it: `TZ` (a zone name or a POSIX rule), else
/// `/etc/localtime`. When neither names a zone jiff can read, UTC: only the shown clock shifts.
pub fn local_zone() -> TimeZone {
    TimeZone::try_system().unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read the local time zone; showing times in UTC");
        TimeZone::UTC
    })
}

/// The local date and time of a server timestamp. Timestamps past jiff's range (year 9999)
/// show as its last instant rather than failing: the server stamps with its own clock.
fn local(ts_ms: u64, zone: &TimeZone) -> DateTime {
    let ms = i64::try_from(ts_ms).unwrap_or(i64::MAX);
    let at = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MAX);
    zone.to_datetime(at)
}

/// `HH:MM` in local time.
pub fn hh_mm(ts_ms: u64, zone: &TimeZone) -> String {
    let at = local(ts_ms, zone);
    format!("{:02}:{:02}", at.hour(), at.minute())
}

/// The local date, to notice when the day changes.
pub fn day(ts_ms: u64, zone: &TimeZone) -> Date {
    local(ts_ms, zone).date()
}

/// `YYYY-MM-DD`.
pub fn date_label(day: Date) -> String {
    day.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lisbon's rule as a POSIX TZ string (what `TZ=Europe/Lisbon` means today), so the test
    /// needs no time-zone database on the machine: WET (UTC+0) in winter, WEST (UTC+1) from
    /// the last Sunday of March 01:00 UTC to the last Sunday of October 01:00 UTC.
    fn lisbon() -> TimeZone {
        TimeZone::posix("WET0WEST,M3.5.0/1,M10.5.0").expect("a valid POSIX TZ rule")
    }

    fn ms(rfc3339: &str) -> u64 {
        let at: Timestamp = rfc3339.parse().expect("an RFC 3339 instant");
        u64::try_from(at.as_millisecond()).expect("after 1970")
    }

    #[test]
    fn local_times_follow_daylight_saving_in_both_directions() {
        let zone = lisbon();
        // Spring forward, 2025-03-30: 00:59 UTC is 00:59 WET; 01:00 UTC is 02:00 WEST.
        assert_eq!(hh_mm(ms("2025-03-30T00:59:00Z"), &zone), "00:59");
        assert_eq!(hh_mm(ms("2025-03-30T01:00:00Z"), &zone), "02:00");
        assert_eq!(hh_mm(ms("2025-07-01T12:00:00Z"), &zone), "13:00");
        // Fall back, 2025-10-26: 00:59 UTC is 01:59 WEST; 01:00 UTC is 01:00 WET again.
        assert_eq!(hh_mm(ms("2025-10-26T00:59:00Z"), &zone), "01:59");
        assert_eq!(hh_mm(ms("2025-10-26T01:00:00Z"), &zone), "01:00");
        assert_eq!(hh_mm(ms("2025-12-01T12:00:00Z"), &zone), "12:00");
    }

    #[test]
    fn the_day_changes_at_local_midnight_in_summer_time() {
        let zone = lisbon();
        // 23:30 UTC in July is 00:30 the next day in Lisbon; in January it is still the day.
        assert_eq!(
            date_label(day(ms("2025-07-14T23:30:00Z"), &zone)),
            "2025-07-15"
        );
        assert_eq!(
            date_label(day(ms("2025-01-14T23:30:00Z"), &zone)),
            "2025-01-14"
        );
    }

    #[test]
    fn utc_and_the_edges_of_time_are_shown_without_failing() {
        // 2024-02-29 23:30:00 UTC
        let ts = 1_709_249_400_000;
        assert_eq!(hh_mm(ts, &TimeZone::UTC), "23:30");
        assert_eq!(date_label(day(ts, &TimeZone::UTC)), "2024-02-29");
        assert_eq!(date_label(day(0, &TimeZone::UTC)), "1970-01-01");
        // jiff keeps its last instant a day short of 9999-12-31 so that every offset fits.
        assert_eq!(date_label(day(u64::MAX, &TimeZone::UTC)), "9999-12-30");
    }
}
