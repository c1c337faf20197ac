//! `--assert`: conditions on the report's figures that decide the exit code.
//!
//! Parsed when the flags are, so a typo in a name fails before any load is sent.

use std::fmt;

use tandem_proto::duration::parse_duration;

/// Latency figures, written `<kind>_<stat>` (`match_p99`, `msg_max`, ...), compared in ms.
const LATENCY_KINDS: &[&str] = &["match", "msg", "signal", "connect", "solve"];
const LATENCY_STATS: &[&str] = &["p50", "p90", "p99", "p999", "max"];

/// Plain numbers, compared as they are.
const COUNTS: &[&str] = &[
    "errors",
    "violations",
    "connection_failures",
    "skips_per_sec",
    "matches_per_sec",
    "msgs_per_sec",
    "matches",
    "skips",
    "leaves",
    "reconnects",
    "server_rss_per_user_kib",
    "server_cpu_per_skip_us",
];

/// How a figure is compared with the asserted value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// `NAME<VALUE`
    Below,
    /// `NAME=VALUE`
    Equal,
    /// `NAME>VALUE`
    Above,
}

/// One condition such as `match_p99<10ms`.
#[derive(Clone, Debug, PartialEq)]
pub struct Assertion {
    /// The figure's name, as in the JSON report (`match_p99`, `errors`, ...).
    pub name: String,
    /// How the figure is compared.
    pub comparison: Comparison,
    /// The bound: milliseconds for latency figures, the plain number otherwise.
    pub value: f64,
    /// The condition as the user wrote it, for messages.
    pub text: String,
}

impl Assertion {
    /// Whether `actual` (in the same unit as [`Assertion::value`]) meets the condition.
    pub fn holds(&self, actual: f64) -> bool {
        match self.comparison {
            Comparison::Below => actual < self.value,
            Comparison::Equal => actual == self.value,
            Comparison::Above => actual > self.value,
        }
    }

    /// Whether the figure is a latency (its value carries a duration unit).
    pub fn is_latency(name: &str) -> bool {
        name.split_once('_').is_some_and(|(kind, stat)| {
            LATENCY_KINDS.contains(&kind) && LATENCY_STATS.contains(&stat)
        })
    }
}

impl fmt::Display for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses one `NAME<VALUE`, `NAME=VALUE` or `NAME>VALUE`. Latency values take a unit
/// (`10ms`, `1s`; a bare number is seconds, as everywhere in tandem).
pub fn parse_assertion(text: &str) -> Result<Assertion, String> {
    let text = text.trim();
    let at = text
        .find(['<', '=', '>'])
        .ok_or_else(|| format!("`{text}`: expected NAME<VALUE, NAME=VALUE or NAME>VALUE"))?;
    let (name, rest) = text.split_at(at);
    let comparison = match &rest[..1] {
        "<" => Comparison::Below,
        "=" => Comparison::Equal,
        _ => Comparison::Above,
    };
    let name = name.trim();
    let raw = rest[1..].trim();
    let value = if Assertion::is_latency(name) {
        parse_duration(raw)?.as_secs_f64() * 1000.0
    } else if COUNTS.contains(&name) {
        raw.parse::<f64>()
            .map_err(|_| format!("`{text}`: `{raw}` is not a number"))?
    } else {
        return Err(format!(
            "`{text}`: unknown figure `{name}`; use {{match,msg,connect}}_{{p50,p90,p99,p999,max}} or one of {}",
            COUNTS.join(", ")
        ));
    };
    Ok(Assertion {
        name: name.to_owned(),
        comparison,
        value,
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_bounds_are_read_in_milliseconds() {
        let a = parse_assertion("match_p99<10ms").unwrap();
        assert_eq!(a.name, "match_p99");
        assert_eq!(a.comparison, Comparison::Below);
        assert!((a.value - 10.0).abs() < 1e-9);
        assert!(a.holds(9.5));
        assert!(!a.holds(10.0));
        assert!((parse_assertion("msg_max<2s").unwrap().value - 2000.0).abs() < 1e-9);
    }

    #[test]
    fn counts_compare_as_plain_numbers() {
        let a = parse_assertion("errors=0").unwrap();
        assert!(a.holds(0.0));
        assert!(!a.holds(1.0));
        let b = parse_assertion("skips_per_sec>100").unwrap();
        assert_eq!(b.comparison, Comparison::Above);
        assert!(b.holds(150.0));
    }

    #[test]
    fn unknown_names_and_bad_values_are_refused() {
        assert!(parse_assertion("match_p42<1ms").is_err());
        assert!(parse_assertion("latency<1ms").is_err());
        assert!(parse_assertion("errors=none").is_err());
        assert!(parse_assertion("errors").is_err());
    }
}
