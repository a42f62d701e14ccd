//! Sizes and durations as people write them in settings (`10MiB`, `15m`),
//! for the command line and the budgets alike.

use std::time::Duration;

/// Parses `10MiB`, `512KiB`, `2MB`, `1G` or a plain number of bytes.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{input}` is not a size such as 10MiB, 500KiB or 1048576"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let bytes = number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{input}` is too large"))?;
    if bytes == 0 {
        return Err("the size must be more than 0".into());
    }
    Ok(bytes)
}

/// Parses `600`, `600s`, `250ms`, `10m`, `2h` or `14d`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{input}` is not a duration such as 30s, 250ms, 10m, 2h or 14d"))?;
    let millis: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m, h or d)"
            ));
        }
    };
    number
        .checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{input}` is too long"))
}
