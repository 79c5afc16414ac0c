//! Durations with units (`10s`, `2m`, `5ms`, `1m30s`, `250us`, Go's `time.ParseDuration`
//! syntax) wherever a time is given. A plain number keeps the unit the option always had
//! (µs for `--horizon`, seconds for `--timeout`), so older commands and files mean the same.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Parses a duration with units into µs: one or more `<number><unit>` terms, unit one of
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, optionally signed (`-1s`).
pub fn parse_us(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (sign, mut rest) = match t.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, t.strip_prefix('+').unwrap_or(t)),
    };
    if rest.is_empty() {
        return Err(format!("'{text}' is not a duration"));
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("'{text}' is not a duration (e.g. 500ms, 10s, 2m, 1m30s)"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let per_unit = match &rest[..unit_len] {
            "ns" => 1e-3,
            "us" | "µs" | "μs" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" => 60e6,
            "h" => 3600e6,
            "" => return Err(format!("'{text}': missing unit (ns, us, ms, s, m, h)")),
            u => return Err(format!("'{text}': unknown unit '{u}' (ns, us, ms, s, m, h)")),
        };
        total += number * per_unit;
        rest = &rest[unit_len..];
    }
    Ok(sign * total)
}

/// A plain number, or a duration with units converted to `unit_us`.
fn parse_in(text: &str, unit_us: f64) -> Result<f64, String> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(v) => Ok(v),
        Err(_) => parse_us(t).map(|us| us / unit_us),
    }
}

/// A time in µs: plain numbers are µs, `5ms`/`10s`/`2m` are converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Micros(pub u64);

impl FromStr for Micros {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let v = parse_in(text, 1.0)?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("'{text}' must be a duration ≥ 0"));
        }
        if v >= u64::MAX as f64 {
            return Err(format!("'{text}' is too long"));
        }
        Ok(Micros(v.round() as u64))
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => match n.as_u64() {
                Some(v) => Ok(Micros(v)),
                None => Err(D::Error::custom(format!("expected a whole number of µs ≥ 0, got {n}"))),
            },
            serde_json::Value::String(t) => t.parse().map_err(D::Error::custom),
            other => Err(D::Error::custom(format!("expected µs or a duration such as 5ms, got {other}"))),
        }
    }
}

/// A time in seconds: plain numbers are seconds, `500ms`/`2m` are converted; may be negative
/// (`--timeout -1` = none).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Seconds(pub f64);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        parse_in(text, 1e6).map(Seconds)
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => Ok(Seconds(n.as_f64().unwrap_or(f64::NAN))),
            serde_json::Value::String(t) => t.parse().map_err(D::Error::custom),
            other => Err(D::Error::custom(format!("expected seconds or a duration such as 2m, got {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations() {
        assert_eq!(parse_us("500ms").unwrap(), 500_000.0);
        assert_eq!(parse_us("1m30s").unwrap(), 90e6);
        assert_eq!(parse_us("1.5h").unwrap(), 5400e6);
        assert_eq!(parse_us("250us").unwrap(), 250.0);
        assert_eq!(parse_us("250µs").unwrap(), 250.0);
        assert_eq!(parse_us("-1s").unwrap(), -1e6);
        for bad in ["", "5", "5 parsecs", "ms", "1x"] {
            assert!(parse_us(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_numbers_keep_their_unit() {
        assert_eq!("5000".parse::<Micros>().unwrap(), Micros(5000));
        assert_eq!("5ms".parse::<Micros>().unwrap(), Micros(5000));
        assert_eq!("10s".parse::<Micros>().unwrap(), Micros(10_000_000));
        assert!("-5".parse::<Micros>().is_err());
        assert_eq!("2m".parse::<Seconds>().unwrap(), Seconds(120.0));
        assert_eq!("-1".parse::<Seconds>().unwrap(), Seconds(-1.0));
        assert_eq!("300".parse::<Seconds>().unwrap(), Seconds(300.0));
        let m: Micros = serde_json::from_str("\"1s\"").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "1000000");
        let s: Seconds = serde_json::from_str("2.5").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "2.5");
    }
}
