//! How durations, rates and sizes are written on the command line, and how they are shown.

use std::time::Duration;

/// Parses `500ms`, `20s`, `1m`, `1h 30m` (humantime).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; write durations like 500ms, 20s or 1m"))
}

/// Parses a rate in events per second: `50`, `50/s`, `0.5`, `600/m`, `3600/h`. Must be > 0.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, per) = match text.split_once('/') {
        Some((number, unit)) => (number.trim(), unit.trim()),
        None => (text, "s"),
    };
    let seconds = match per {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown rate unit {other:?}; write 50, 50/s or 600/m"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a rate; write 50, 50/s or 600/m"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!("{text:?}: a rate must be greater than 0"));
    }
    Ok(value / seconds)
}

/// Parses a fraction between 0 and 1 inclusive: `0.1`, or a percentage `10%`.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    }
    .map_err(|_| format!("{text:?} is not a fraction; write 0.1 or 10%"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("{text:?}: a fraction must be between 0 and 1"));
    }
    Ok(value)
}

/// Sizes read as every roomcast tool reads them (`64KiB`).
pub use roomcast_protocol::units::parse_bytes;

/// A duration for people: `850µs`, `12.3ms`, `1.50s`, `2m05s`.
pub fn show(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.1}ms", duration.as_secs_f64() * 1e3)
    } else if micros < 60_000_000 {
        format!("{:.2}s", duration.as_secs_f64())
    } else {
        let secs = duration.as_secs();
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// Milliseconds with microsecond precision, for JSON (`12.345`).
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// Bytes for people: `812 B`, `7.4 KiB`, `120.3 MiB`.
pub fn show_bytes(bytes: f64) -> String {
    let magnitude = bytes.abs();
    if magnitude < 1024.0 {
        format!("{bytes:.0} B")
    } else if magnitude < 1024.0 * 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_per_second_minute_or_hour() {
        assert_eq!(parse_rate("50"), Ok(50.0));
        assert_eq!(parse_rate("50/s"), Ok(50.0));
        assert_eq!(parse_rate("600/m"), Ok(10.0));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("5/day").is_err());
    }

    #[test]
    fn fractions_accept_percentages_and_refuse_more_than_one() {
        assert_eq!(parse_fraction("0.25"), Ok(0.25));
        assert_eq!(parse_fraction("10%"), Ok(0.1));
        assert!(parse_fraction("1.5").is_err());
    }

    #[test]
    fn durations_and_sizes_read_the_way_people_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err_and(|e| e.contains("500ms, 20s")));
        assert_eq!(parse_bytes("1KiB"), Ok(1024));
        assert_eq!(parse_bytes("100"), Ok(100));
    }

    #[test]
    fn durations_show_in_a_fitting_unit() {
        assert_eq!(show(Duration::from_micros(850)), "850µs");
        assert_eq!(show(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(show(Duration::from_millis(1_500)), "1.50s");
        assert_eq!(show(Duration::from_secs(125)), "2m05s");
        assert!((millis(Duration::from_micros(12_345)) - 12.345).abs() < 1e-9);
    }
}
