//! The one wall clock: Unix time for the metrics' timestamps, the token's
//! `exp` and the local API's `iat` and answers. The crate has no date
//! library, and the API contract only needs whole UTC seconds, so the
//! RFC 3339 formatting is done here.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; a clock before 1970 counts as the
/// epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Whole seconds since the Unix epoch, as JWT claims count them.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form the real server's timestamps take.
pub fn rfc3339_utc(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs_of_day = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm, restricted to dates on or after
/// 1970-01-01 (the only ones `unix_secs` produces).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_read_one_clock() {
        let ms = unix_ms();
        let secs = unix_secs();
        // After 2020-09-13 in milliseconds, not seconds; the two within a second.
        assert!(ms > 1_600_000_000_000, "{ms}");
        assert!((ms / 1000..=ms / 1000 + 1).contains(&secs), "{ms} ms vs {secs} s");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_763_903_419), "2025-11-23T13:10:19Z");
        // Leap day and the last second of a leap year.
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_735_689_599), "2024-12-31T23:59:59Z");
    }
}
