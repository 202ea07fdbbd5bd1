//! Everything that turns results into text for people.

pub mod error;
pub mod progress;
mod tty;

use std::time::{SystemTime, UNIX_EPOCH};

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
}
