//! Sizes and durations as people write them in settings (`10MiB`, `15m`),
//! for the command line and the budgets alike.

use std::time::Duration;

/// Parses `10MiB`, `512KiB`, `2MB`, `1G` or a plain number of bytes, as
/// memocache reads its `capacity_bytes=` (one parser for both).
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_size(input: &str) -> Result<u64, String> {
    memocache::parse_size(input)
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
