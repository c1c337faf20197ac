//! Which flags a run was given on the command line, so that a `--scenario` file does not
//! override them.

use std::collections::BTreeSet;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command, FromArgMatches};

/// The ids of the arguments given on the command line (not defaulted), as clap parsed them.
///
/// It adds no flag of its own: flattened into [`LoadtestArgs`], it only reads the matches.
/// Built by hand (`LoadtestArgs { .. }` in Rust), it is empty, so the scenario wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GivenFlags(pub BTreeSet<String>);

impl GivenFlags {
    /// Whether the argument with this id (the field name, e.g. `clients`) was given.
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

impl FromArgMatches for GivenFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(
            matches
                .ids()
                .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                .map(|id| id.as_str().to_owned())
                .collect(),
        ))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for GivenFlags {
    fn augment_args(cmd: Command) -> Command {
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        cmd
    }
}
