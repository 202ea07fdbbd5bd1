//! werf's human commit time: Go's `time.Time.String()` of a time in a fixed zone with no name.

/// Formats `seconds` since the epoch in a zone `offset` seconds east of UTC as
/// `YYYY-MM-DD hh:mm:ss ±hhmm ±hhmm`. Go prints the numeric offset in place of the zone
/// abbreviation when the zone has no name, which is what git commit times have in werf.
pub(crate) fn go_time_string(seconds: i64, offset: i32) -> String {
    let local = seconds + i64::from(offset);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let zone = format!("{sign}{:02}{:02}", abs / 3600, abs % 3600 / 60);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} {zone} {zone}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        // 2022-01-24 14:26:19 UTC
        assert_eq!(
            go_time_string(1_643_034_379, 3 * 3600),
            "2022-01-24 17:26:19 +0300 +0300"
        );
        assert_eq!(go_time_string(0, 0), "1970-01-01 00:00:00 +0000 +0000");
        assert_eq!(
            go_time_string(0, -(5 * 3600 + 30 * 60)),
            "1969-12-31 18:30:00 -0530 -0530"
        );
        // leap day
        assert_eq!(
            go_time_string(951_782_400, 0),
            "2000-02-29 00:00:00 +0000 +0000"
        );
    }
}
