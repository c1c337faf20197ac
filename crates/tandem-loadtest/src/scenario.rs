//! `--scenario FILE`: a run's profile and behaviour settings in one JSON object, named like
//! the flags (`{"clients": 2000, "dwell": "0.5s..3s", "video_share": 0.2}`), so a realistic
//! mix can be kept in a file and replayed. Flags given on the command line win over the file.
//!
//! This module only reads the file and overrides [`LoadtestArgs`]; each value goes through
//! the same parser as its flag, so a scenario accepts exactly what the command line accepts.
//! Which flags came from the command line is recorded while clap parses
//! ([`GivenFlags`](super::GivenFlags)).

use std::path::Path;

use tandem_proto::duration::parse_duration;

use super::args::{parse_dwell, LoadtestArgs};
use super::profile::{parse_count_range, parse_header_name, parse_langs, parse_share};

/// The keys a scenario may hold: each is a flag's name with `_` for `-`.
pub const SCENARIO_KEYS: [&str; 17] = [
    "clients",
    "duration",
    "ramp",
    "dwell",
    "msgs_per_chat",
    "signals_per_chat",
    "leave_share",
    "reconnect_share",
    "seed",
    "video_share",
    "langs",
    "interest_tags",
    "interests_per_user",
    "interest_wait_ms",
    "countries",
    "country_header",
    "filter_share",
];

/// Why a scenario file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The file is not a JSON object.
    #[error("{path}: not a JSON object of settings: {reason}")]
    Malformed { path: String, reason: String },
    /// A key that names no setting.
    #[error("{path}: unknown key `{key}` (known: {})", SCENARIO_KEYS.join(", "))]
    UnknownKey { path: String, key: String },
    /// A value its flag would refuse.
    #[error("{path}: `{key}`: {reason}")]
    BadValue {
        path: String,
        key: String,
        reason: String,
    },
}

impl LoadtestArgs {
    /// These args with `--scenario` applied (a copy of them without one): every key of the
    /// file sets its setting, unless the command line gave that flag.
    pub fn with_scenario(&self) -> Result<LoadtestArgs, ScenarioError> {
        let mut args = self.clone();
        if let Some(path) = &self.scenario {
            let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
                path: path.display().to_string(),
                source,
            })?;
            apply(&mut args, path, &text)?;
        }
        Ok(args)
    }
}

/// Applies the scenario `text` (read from `path`) to `args`.
fn apply(args: &mut LoadtestArgs, path: &Path, text: &str) -> Result<(), ScenarioError> {
    let path_name = || path.display().to_string();
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|err| ScenarioError::Malformed {
            path: path_name(),
            reason: err.to_string(),
        })?;
    // Every key is checked first, so an unknown one is refused whatever the flags say.
    if let Some(key) = object
        .keys()
        .find(|key| !SCENARIO_KEYS.contains(&key.as_str()))
    {
        return Err(ScenarioError::UnknownKey {
            path: path_name(),
            key: key.clone(),
        });
    }
    for (key, value) in &object {
        let value = match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Number(number) => number.to_string(),
            other => {
                return Err(ScenarioError::BadValue {
                    path: path_name(),
                    key: key.clone(),
                    reason: format!("{other} is neither a number nor a string"),
                })
            }
        };
        set(args, key, &value).map_err(|reason| ScenarioError::BadValue {
            path: path_name(),
            key: key.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// Sets one setting from its text, unless its flag was given on the command line.
fn set(args: &mut LoadtestArgs, key: &str, value: &str) -> Result<(), String> {
    if args.given.contains(key) {
        return Ok(());
    }
    fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
        value
            .parse()
            .map_err(|_| format!("`{value}` is not a whole number in range"))
    }
    let profile = &mut args.profile;
    match key {
        "clients" => args.clients = number(value)?,
        "duration" => args.duration = parse_duration(value)?,
        "ramp" => args.ramp = parse_duration(value)?,
        "dwell" => args.dwell = parse_dwell(value)?,
        "msgs_per_chat" => args.msgs_per_chat = number(value)?,
        "signals_per_chat" => args.signals_per_chat = number(value)?,
        "leave_share" => args.leave_share = parse_share(value)?,
        "reconnect_share" => args.reconnect_share = parse_share(value)?,
        "seed" => args.seed = Some(number(value)?),
        "video_share" => profile.video_share = parse_share(value)?,
        "langs" => profile.langs = parse_langs(value)?,
        "interest_tags" => profile.interest_tags = number(value)?,
        "interests_per_user" => profile.interests_per_user = parse_count_range(value)?,
        "interest_wait_ms" => profile.interest_wait_ms = Some(number(value)?),
        "countries" => {
            let countries: u16 = number(value)?;
            if countries > 40 {
                return Err(format!("{countries} is more than the 40 codes known"));
            }
            profile.countries = countries;
        }
        "country_header" => profile.country_header = parse_header_name(value)?,
        "filter_share" => profile.filter_share = parse_share(value)?,
        _ => unreachable!("keys are checked against SCENARIO_KEYS first"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    fn parse(flags: &[&str]) -> LoadtestArgs {
        Cli::parse_from(std::iter::once("loadtest").chain(flags.iter().copied())).args
    }

    fn applied(flags: &[&str], text: &str) -> Result<LoadtestArgs, ScenarioError> {
        let mut args = parse(flags);
        apply(&mut args, Path::new("s.json"), text).map(|()| args)
    }

    #[test]
    fn only_flags_typed_on_the_command_line_count_as_given() {
        let args = parse(&["--clients", "7", "--video-share=0.5"]);
        assert!(args.given.contains("clients") && args.given.contains("video_share"));
        assert!(!args.given.contains("duration") && !args.given.contains("dwell"));
        assert!(LoadtestArgs::default().given.0.is_empty());
    }

    #[test]
    fn a_scenario_sets_what_the_command_line_did_not() {
        let text = r#"{"clients": 2000, "dwell": "0.5s..3s", "video_share": 0.2,
            "langs": "en:0.8,de:0.2", "interest_tags": 500, "signals_per_chat": 4,
            "leave_share": 0.1, "duration": 30}"#;
        let args = applied(&["--clients", "9"], text).unwrap();
        assert_eq!(args.clients, 9, "the flag wins");
        assert_eq!(args.duration, Duration::from_secs(30));
        assert_eq!(args.dwell, parse_dwell("0.5s..3s").unwrap());
        assert_eq!(args.profile.video_share, 0.2);
        assert_eq!(args.profile.langs, parse_langs("en:0.8,de:0.2").unwrap());
        assert_eq!(args.profile.interest_tags, 500);
        assert_eq!((args.signals_per_chat, args.leave_share), (4, 0.1));
    }

    #[test]
    fn a_bad_scenario_is_refused_with_its_reason() {
        let unknown = applied(&[], r#"{"clients": 5, "clinets": 5}"#).unwrap_err();
        assert!(matches!(&unknown, ScenarioError::UnknownKey { key, .. } if key == "clinets"));
        assert!(unknown.to_string().contains("`clinets`"), "{unknown}");
        // Unknown keys are refused even when the flag of a known one is given.
        assert!(applied(&["--clients", "1"], r#"{"x": 1}"#).is_err());
        assert!(matches!(
            applied(&[], "[1, 2]"),
            Err(ScenarioError::Malformed { .. })
        ));
        assert!(matches!(
            applied(&[], "{\"clients\": 5"),
            Err(ScenarioError::Malformed { .. })
        ));
        for bad in [
            r#"{"video_share": 1.5}"#,
            r#"{"clients": -1}"#,
            r#"{"dwell": "3s..1s"}"#,
            r#"{"countries": 41}"#,
            r#"{"langs": ["en"]}"#,
        ] {
            assert!(
                matches!(applied(&[], bad), Err(ScenarioError::BadValue { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_committed_example_is_a_valid_scenario() {
        let text = include_str!("scenarios/realistic.json");
        let args = applied(&[], text).unwrap();
        assert!(args.clients > 0 && args.signals_per_chat > 0);
    }
}
