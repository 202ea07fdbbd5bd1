//! Everything that turns results into text for people.

pub mod error;
pub mod explain;
pub mod progress;
pub mod table;
mod tty;

use std::time::{SystemTime, UNIX_EPOCH};

/// Whether output may be colored: not when `NO_COLOR` is set to anything but the empty
/// string (<https://no-color.org>). Only the live view colors; clap's help honours it too.
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Bytes as a short human size (`4.2 MB`).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// How long ago a unix time was (`5s`, `3m`, `2h`, `4d`).
pub fn age(unix: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = now.saturating_sub(unix);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// Bytes as docker writes sizes (`4.19MB`, `512B`): three significant digits, decimal units.
pub fn docker_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    // `%.3g`: three significant digits, trailing zeros dropped.
    let decimals = match value {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    let text = format!("{value:.decimals$}");
    let text = match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    };
    format!("{text}{}", UNITS[unit])
}

/// How long ago a unix time was, as docker says it (`About an hour ago`, `3 days ago`).
pub fn ago(unix: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format!(
        "{} ago",
        human_duration(now.saturating_sub(unix).max(0) as u64)
    )
}

/// A duration in words, as docker's `units.HumanDuration`.
fn human_duration(secs: u64) -> String {
    let minutes = secs / 60;
    // Hours are rounded, the way docker rounds them.
    let hours = (secs + 1800) / 3600;
    match () {
        _ if secs < 1 => "Less than a second".into(),
        _ if secs == 1 => "1 second".into(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// Milliseconds as seconds with two decimals.
pub fn seconds(millis: u64) -> String {
    format!("{:.2}s", millis as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(4_200_000), "4.2 MB");
        assert_eq!(seconds(1234), "1.23s");
    }

    #[test]
    fn sizes_and_durations_read_as_docker_writes_them() {
        assert_eq!(docker_size(0), "0B");
        assert_eq!(docker_size(512), "512B");
        assert_eq!(docker_size(4_194_304), "4.19MB");
        assert_eq!(docker_size(4_200_000), "4.2MB");
        assert_eq!(docker_size(12_340_000), "12.3MB");
        assert_eq!(docker_size(123_400_000), "123MB");
        assert_eq!(docker_size(1_000_000_000), "1GB");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(30), "30 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(21 * 86400), "3 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(3 * 365 * 86400), "3 years");
    }
}
