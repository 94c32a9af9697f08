//! Unix seconds as a UTC calendar date and time (proleptic Gregorian), for the places that
//! print times: `adapterctl show`, the HTML pages, the Hub protocol's `lastModified`.

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// `unix` seconds in UTC (Howard Hinnant's `civil_from_days`).
pub fn civil(unix: i64) -> Civil {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Every value below is in range by construction (secs < 86,400, 1 ≤ month ≤ 12, …).
    let small = |v: i64| u32::try_from(v).unwrap_or(0);
    Civil {
        year,
        month: small(month),
        day: small(day),
        hour: small(secs / 3600),
        minute: small(secs % 3600 / 60),
        second: small(secs % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymdhms(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
        let c = civil(unix);
        (c.year, c.month, c.day, c.hour, c.minute, c.second)
    }

    #[test]
    fn dates() {
        assert_eq!(ymdhms(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(ymdhms(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(ymdhms(951_782_400 + 3661), (2000, 2, 29, 1, 1, 1));
        assert_eq!(ymdhms(1_732_806_000), (2024, 11, 28, 15, 0, 0));
        assert_eq!(ymdhms(1_764_979_200), (2025, 12, 6, 0, 0, 0));
        assert_eq!(ymdhms(-1), (1969, 12, 31, 23, 59, 59));
    }
}
