//! Sprig's date and duration functions over Go's time layouts (`2006-01-02 15:04:05`).
//!
//! Times are UTC: Go's `Local` is the builder's zone, and strata renders as if it were UTC
//! (werf in a container usually is); `dateInZone` knows `UTC` and `Local` and, as Sprig does
//! for a zone it cannot load, falls back to UTC for every other name. As in Sprig, `date` of
//! a value that is neither a time nor an integer is the current time, and `duration` and
//! `durationRound` read a template's integer literal (Go's `int`, which they do not accept)
//! as 0.

use time::OffsetDateTime;

use super::funcs::{FnResult, arity, str_arg};
use super::value::Value;

/// The functions of this module.
pub(super) const NAMES: [&str; 16] = [
    "now",
    "date",
    "dateInZone",
    "date_in_zone",
    "htmlDate",
    "htmlDateInZone",
    "toDate",
    "mustToDate",
    "unixEpoch",
    "dateModify",
    "date_modify",
    "mustDateModify",
    "must_date_modify",
    "duration",
    "durationRound",
    "ago",
];

const SECOND: i128 = 1_000_000_000;

fn now_nanos() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos()
}

/// Sprig's reading of a date argument: a time, an integer of seconds, else now.
fn date_of(v: &Value) -> i128 {
    match v {
        Value::Time(n) => *n,
        Value::Int(s) => i128::from(*s) * SECOND,
        _ => now_nanos(),
    }
}

/// Calls a function of this module.
pub(super) fn call(name: &str, args: &[Value]) -> FnResult {
    let n = |count| arity(name, args, count);
    match name {
        "now" => {
            n(0)?;
            Ok(Value::Time(now_nanos()))
        }
        "date" | "dateInZone" | "date_in_zone" => {
            n(if name == "date" { 2 } else { 3 })?;
            Ok(Value::Str(format(str_arg(&args[0])?, date_of(&args[1]))?))
        }
        "htmlDate" | "htmlDateInZone" => {
            n(if name == "htmlDate" { 1 } else { 2 })?;
            Ok(Value::Str(format("2006-01-02", date_of(&args[0]))?))
        }
        "toDate" | "mustToDate" => {
            n(2)?;
            match parse(str_arg(&args[0])?, str_arg(&args[1])?) {
                Ok(t) => Ok(Value::Time(t)),
                Err(e) if name == "mustToDate" => Err(e),
                // Sprig's toDate returns the zero time on a parse error.
                Err(_) => Ok(Value::Time(ZERO_TIME)),
            }
        }
        "unixEpoch" => {
            n(1)?;
            match &args[0] {
                Value::Time(t) => Ok(Value::Str(t.div_euclid(SECOND).to_string())),
                other => Err(format!(
                    "wrong type for value; expected time.Time; got {}",
                    other.type_name()
                )),
            }
        }
        "dateModify" | "date_modify" | "mustDateModify" | "must_date_modify" => {
            n(2)?;
            let Value::Time(t) = &args[1] else {
                return Err(format!(
                    "wrong type for value; expected time.Time; got {}",
                    args[1].type_name()
                ));
            };
            match parse_duration(str_arg(&args[0])?) {
                Ok(d) => Ok(Value::Time(t + d)),
                Err(e) if name.starts_with("must") => Err(e),
                Err(_) => Ok(Value::Time(*t)),
            }
        }
        "duration" => {
            n(1)?;
            let secs = match &args[0] {
                Value::Str(s) => s.parse::<i64>().unwrap_or(0),
                _ => 0,
            };
            Ok(Value::Str(duration_string(i128::from(secs) * SECOND)))
        }
        "durationRound" => {
            n(1)?;
            let d = match &args[0] {
                Value::Str(s) => parse_duration(s).unwrap_or(0),
                Value::Time(t) => now_nanos() - t,
                _ => 0,
            };
            Ok(Value::Str(duration_round(d)))
        }
        "ago" => {
            n(1)?;
            let d = now_nanos() - date_of(&args[0]);
            // Go's Duration.Round(time.Second): halves away from zero.
            let rounded = (d + SECOND / 2 * d.signum()) / SECOND * SECOND;
            Ok(Value::Str(duration_string(rounded)))
        }
        _ => Err(format!("unknown function {name:?}")),
    }
}

/// Go's zero `time.Time` (0001-01-01 00:00:00 UTC) in nanoseconds since the epoch.
const ZERO_TIME: i128 = -62_135_596_800 * SECOND;

fn datetime(nanos: i128) -> Result<OffsetDateTime, String> {
    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|e| e.to_string())
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// One element of a Go layout.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Chunk {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    /// An ISO zone (`Z07:00`, `-0700`, ...): whether `Z` stands for UTC, colons, seconds.
    Zone {
        z: bool,
        colon: bool,
        minutes: bool,
        seconds: bool,
    },
    /// Fractional seconds: digits, and whether trailing zeros are dropped (`.999`).
    Frac {
        digits: usize,
        trim: bool,
        sep: char,
    },
}

/// Go's `nextStdChunk`: the text before the next element, the element, the rest.
fn next_chunk(layout: &str) -> (&str, Option<(Chunk, &str)>) {
    let b = layout.as_bytes();
    let starts = |i: usize, s: &str| layout[i..].starts_with(s);
    for i in 0..b.len() {
        let found = match b[i] {
            b'J' if starts(i, "January") => Some((Chunk::LongMonth, 7)),
            b'J' if starts(i, "Jan") => Some((Chunk::Month, 3)),
            b'M' if starts(i, "Monday") => Some((Chunk::LongWeekDay, 6)),
            b'M' if starts(i, "Mon") => Some((Chunk::WeekDay, 3)),
            b'M' if starts(i, "MST") => Some((Chunk::Tz, 3)),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => Some((
                [
                    Chunk::ZeroMonth,
                    Chunk::ZeroDay,
                    Chunk::ZeroHour12,
                    Chunk::ZeroMinute,
                    Chunk::ZeroSecond,
                    Chunk::Year,
                ][usize::from(b[i + 1] - b'1')],
                2,
            )),
            b'1' if starts(i, "15") => Some((Chunk::Hour, 2)),
            b'1' => Some((Chunk::NumMonth, 1)),
            b'2' if starts(i, "2006") => Some((Chunk::LongYear, 4)),
            b'2' => Some((Chunk::Day, 1)),
            b'_' if starts(i, "_2") && !starts(i, "_2006") => Some((Chunk::UnderDay, 2)),
            b'3' => Some((Chunk::Hour12, 1)),
            b'4' => Some((Chunk::Minute, 1)),
            b'5' => Some((Chunk::Second, 1)),
            b'P' if starts(i, "PM") => Some((Chunk::PM, 2)),
            b'p' if starts(i, "pm") => Some((Chunk::Pm, 2)),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let forms = [
                    ("070000", false, true, true),
                    ("07:00:00", true, true, true),
                    ("0700", false, true, false),
                    ("07:00", true, true, false),
                    ("07", false, false, false),
                ];
                forms.iter().find(|f| starts(i + 1, f.0)).map(|f| {
                    (
                        Chunk::Zone {
                            z,
                            colon: f.1,
                            minutes: f.2,
                            seconds: f.3,
                        },
                        1 + f.0.len(),
                    )
                })
            }
            sep @ (b'.' | b',') if i + 1 < b.len() && matches!(b[i + 1], b'0' | b'9') => {
                let digit = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == digit {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    None
                } else {
                    Some((
                        Chunk::Frac {
                            digits: j - i - 1,
                            trim: digit == b'9',
                            sep: sep as char,
                        },
                        j - i,
                    ))
                }
            }
            _ => None,
        };
        if let Some((chunk, len)) = found {
            return (&layout[..i], Some((chunk, &layout[i + len..])));
        }
    }
    (layout, None)
}

/// Go's `Time.Format` in UTC.
pub(super) fn format(layout: &str, nanos: i128) -> Result<String, String> {
    let t = datetime(nanos)?;
    let mut out = String::new();
    let mut rest = layout;
    loop {
        let (prefix, next) = next_chunk(rest);
        out.push_str(prefix);
        let Some((chunk, after)) = next else {
            break;
        };
        rest = after;
        let hour12 = match t.hour() % 12 {
            0 => 12,
            h => h,
        };
        let month = u8::from(t.month());
        let text = match chunk {
            Chunk::LongMonth => MONTHS[usize::from(month - 1)].to_string(),
            Chunk::Month => MONTHS[usize::from(month - 1)][..3].to_string(),
            Chunk::NumMonth => month.to_string(),
            Chunk::ZeroMonth => format!("{month:02}"),
            Chunk::LongWeekDay => DAYS[usize::from(t.weekday().number_days_from_monday())].into(),
            Chunk::WeekDay => {
                DAYS[usize::from(t.weekday().number_days_from_monday())][..3].to_string()
            }
            Chunk::Day => t.day().to_string(),
            Chunk::UnderDay => format!("{:>2}", t.day()),
            Chunk::ZeroDay => format!("{:02}", t.day()),
            Chunk::Hour => format!("{:02}", t.hour()),
            Chunk::Hour12 => hour12.to_string(),
            Chunk::ZeroHour12 => format!("{hour12:02}"),
            Chunk::Minute => t.minute().to_string(),
            Chunk::ZeroMinute => format!("{:02}", t.minute()),
            Chunk::Second => t.second().to_string(),
            Chunk::ZeroSecond => format!("{:02}", t.second()),
            Chunk::LongYear => format!("{:04}", t.year()),
            Chunk::Year => format!("{:02}", t.year().rem_euclid(100)),
            Chunk::PM => if t.hour() >= 12 { "PM" } else { "AM" }.into(),
            Chunk::Pm => if t.hour() >= 12 { "pm" } else { "am" }.into(),
            Chunk::Tz => "UTC".into(),
            Chunk::Zone {
                z,
                colon,
                minutes,
                seconds,
            } => {
                if z {
                    "Z".into()
                } else {
                    let sep = if colon { ":" } else { "" };
                    let mut s = "+00".to_string();
                    if minutes {
                        s.push_str(sep);
                        s.push_str("00");
                    }
                    if seconds {
                        s.push_str(sep);
                        s.push_str("00");
                    }
                    s
                }
            }
            Chunk::Frac { digits, trim, sep } => {
                let all = format!("{:09}", t.nanosecond());
                let mut digits_text = all[..digits.min(9)].to_string();
                if trim {
                    digits_text = all.trim_end_matches('0').to_string();
                    digits_text.truncate(digits);
                    if digits_text.is_empty() {
                        continue;
                    }
                }
                format!("{sep}{digits_text}")
            }
        };
        out.push_str(&text);
    }
    Ok(out)
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub(super) fn time_string(nanos: i128) -> String {
    format("2006-01-02 15:04:05.999999999 -0700 MST", nanos)
        .unwrap_or_else(|e| format!("%!v(time: {e})"))
}

/// Go's RFC 3339 with nanoseconds, how `encoding/json` writes a time.
pub(super) fn time_json(nanos: i128) -> String {
    format("2006-01-02T15:04:05.999999999Z07:00", nanos)
        .unwrap_or_else(|e| format!("%!v(time: {e})"))
}

/// Go's `time.ParseInLocation(layout, value, UTC)` for the layout elements above.
fn parse(layout: &str, value: &str) -> Result<i128, String> {
    let bad = || format!("parsing time {value:?} as {layout:?}: cannot parse {value:?}");
    let (mut year, mut month, mut day, mut hour, mut minute, mut second) =
        (1i32, 1u8, 1u8, 0u8, 0u8, 0u8);
    let mut nanos = 0u32;
    let mut pm: Option<bool> = None;
    let mut offset = 0i64;
    let (mut rest, mut text) = (layout, value);
    fn digits(text: &str, min: usize, max: usize) -> Option<(i64, &str)> {
        let n = text
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if n < min {
            return None;
        }
        Some((text[..n].parse().ok()?, &text[n..]))
    }
    loop {
        let (prefix, next) = next_chunk(rest);
        text = text.strip_prefix(prefix).ok_or_else(bad)?;
        let Some((chunk, after)) = next else {
            break;
        };
        rest = after;
        let name_of = |names: &[&str], short: bool| -> Option<(usize, usize)> {
            names.iter().enumerate().find_map(|(i, n)| {
                let n = if short { &n[..3] } else { n };
                text.get(..n.len())
                    .filter(|t| t.eq_ignore_ascii_case(n))
                    .map(|_| (i, n.len()))
            })
        };
        let (value_num, remaining): (i64, &str) = match chunk {
            Chunk::LongMonth | Chunk::Month => {
                let (i, len) = name_of(&MONTHS, chunk == Chunk::Month).ok_or_else(bad)?;
                (i as i64 + 1, &text[len..])
            }
            Chunk::LongWeekDay | Chunk::WeekDay => {
                let (i, len) = name_of(&DAYS, chunk == Chunk::WeekDay).ok_or_else(bad)?;
                (i as i64, &text[len..])
            }
            Chunk::PM | Chunk::Pm => {
                let t = text.get(..2).ok_or_else(bad)?;
                pm = Some(match t.to_ascii_uppercase().as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return Err(bad()),
                });
                (0, &text[2..])
            }
            Chunk::Tz => {
                let t = text.get(..3).ok_or_else(bad)?;
                if t != "UTC" {
                    return Err(bad());
                }
                (0, &text[3..])
            }
            Chunk::Zone {
                z,
                colon,
                minutes,
                seconds,
            } => {
                if z && text.starts_with('Z') {
                    (0, &text[1..])
                } else {
                    let sign = match text.as_bytes().first() {
                        Some(b'+') => 1,
                        Some(b'-') => -1,
                        _ => return Err(bad()),
                    };
                    let (h, mut t) = digits(&text[1..], 2, 2).ok_or_else(bad)?;
                    let mut total = h * 3600;
                    for (wanted, mult) in [(minutes, 60), (seconds, 1)] {
                        if wanted {
                            if colon {
                                t = t.strip_prefix(':').ok_or_else(bad)?;
                            }
                            let (v, r) = digits(t, 2, 2).ok_or_else(bad)?;
                            total += v * mult;
                            t = r;
                        }
                    }
                    offset = sign * total;
                    (0, t)
                }
            }
            Chunk::Frac {
                digits: count,
                trim,
                sep,
            } => {
                let t = text.strip_prefix(sep).ok_or_else(bad)?;
                let n = t.bytes().take_while(u8::is_ascii_digit).count();
                if (!trim && n != count) || n == 0 || n > 9 {
                    return Err(bad());
                }
                nanos = format!("{:0<9}", &t[..n]).parse().map_err(|_| bad())?;
                (0, &t[n..])
            }
            Chunk::UnderDay => {
                let t = text.strip_prefix(' ').unwrap_or(text);
                digits(t, 1, 2).ok_or_else(bad)?
            }
            Chunk::LongYear => digits(text, 4, 4).ok_or_else(bad)?,
            Chunk::Year => {
                let (y, r) = digits(text, 2, 2).ok_or_else(bad)?;
                (if y >= 69 { 1900 + y } else { 2000 + y }, r)
            }
            Chunk::ZeroMonth
            | Chunk::ZeroDay
            | Chunk::ZeroHour12
            | Chunk::ZeroMinute
            | Chunk::ZeroSecond
            | Chunk::Hour => digits(text, 2, 2).ok_or_else(bad)?,
            _ => digits(text, 1, 2).ok_or_else(bad)?,
        };
        text = remaining;
        let small = |v: i64| u8::try_from(v).map_err(|_| bad());
        match chunk {
            Chunk::LongMonth | Chunk::Month | Chunk::NumMonth | Chunk::ZeroMonth => {
                month = small(value_num)?
            }
            Chunk::Day | Chunk::UnderDay | Chunk::ZeroDay => day = small(value_num)?,
            Chunk::Hour | Chunk::Hour12 | Chunk::ZeroHour12 => hour = small(value_num)?,
            Chunk::Minute | Chunk::ZeroMinute => minute = small(value_num)?,
            Chunk::Second | Chunk::ZeroSecond => second = small(value_num)?,
            Chunk::LongYear | Chunk::Year => year = value_num as i32,
            _ => {}
        }
    }
    if !text.is_empty() {
        return Err(format!(
            "parsing time {value:?} as {layout:?}: extra text: {text:?}"
        ));
    }
    match pm {
        Some(true) if hour < 12 => hour += 12,
        Some(false) if hour == 12 => hour = 0,
        _ => {}
    }
    let month = time::Month::try_from(month)
        .map_err(|_| format!("parsing time {value:?}: month out of range"))?;
    let date = time::Date::from_calendar_date(year, month, day)
        .map_err(|_| format!("parsing time {value:?}: day out of range"))?;
    let t = date
        .with_hms_nano(hour, minute, second, nanos)
        .map_err(|_| bad())?
        .assume_utc();
    Ok(t.unix_timestamp_nanos() - i128::from(offset) * SECOND)
}

/// Go's `time.ParseDuration`: nanoseconds.
pub(super) fn parse_duration(text: &str) -> Result<i128, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let (neg, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if n == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            other => return Err(format!("time: unknown unit {other:?} in duration {text:?}")),
        };
        rest = &rest[u..];
        total += number * unit;
    }
    let nanos = total.round() as i128;
    Ok(if neg { -nanos } else { nanos })
}

/// Go's `Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
fn duration_string(d: i128) -> String {
    if d == 0 {
        return "0s".into();
    }
    let sign = if d < 0 { "-" } else { "" };
    let u = d.unsigned_abs();
    let frac = |value: u128, unit: u128| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    };
    if u < 1_000_000_000 {
        let (unit, name) = if u < 1_000 {
            (1, "ns")
        } else if u < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{sign}{}{name}", frac(u, unit));
    }
    let secs = u % 60_000_000_000;
    let mins = u / 60_000_000_000;
    let mut out = sign.to_string();
    if mins >= 60 {
        out.push_str(&format!("{}h{}m", mins / 60, mins % 60));
    } else if mins > 0 {
        out.push_str(&format!("{mins}m"));
    }
    out.push_str(&format!("{}s", frac(secs, 1_000_000_000)));
    out
}

/// Sprig's `durationRound`: the largest unit only (`2h`, `3mo`, `1y`).
fn duration_round(d: i128) -> String {
    let u = d.unsigned_abs();
    let second = 1_000_000_000u128;
    let (minute, hour) = (60 * second, 3600 * second);
    let (day, month, year) = (24 * hour, 30 * 24 * hour, 365 * 24 * hour);
    match () {
        _ if u > year => format!("{}y", u / year),
        _ if u > month => format!("{}mo", u / month),
        _ if u > day => format!("{}d", u / day),
        _ if u > hour => format!("{}h", u / hour),
        _ if u > minute => format!("{}m", u / minute),
        _ if u > second => format!("{}s", u / second),
        _ => "0s".into(),
    }
}
