//! Sizes as people write them, read the same way by every roomcast tool's flags.

/// Parses `65536`, `64KiB`, `64KB`, `64k`, `1MiB`, `1M`, `1GiB` into bytes. Multiples are binary
/// throughout (K = 1024): memory bounds are sized in KiB and MiB, and a `64KB` that meant 64,000
/// would be a surprise nobody wants in a limit.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write 65536, 64KiB or 1MiB"))?;
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_the_way_people_write_them() {
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("64k"), Ok(65536));
        assert_eq!(parse_bytes("1 MiB"), Ok(1 << 20));
        assert!(parse_bytes("12 parsecs").is_err_and(|e| e.contains("KiB, MiB or GiB")));
        assert!(parse_bytes("lots").is_err_and(|e| e.contains("64KiB")));
        assert!(parse_bytes("99999999999999999999G").is_err());
    }
}
