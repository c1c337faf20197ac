//! Solving the node's proof-of-work challenge as any client must (`welcome.challenge`, an
//! ALTCHA v2 challenge), with ALTCHA's own solver; the solution goes in the first `join`.

use base64::Engine;
use tandem_proto::Challenge;

/// The longest a solve may take before the user gives up on it.
const SOLVE_TIMEOUT_MS: u64 = 60_000;

/// `join.proof` for `challenge`: base64 of ALTCHA's JSON payload, or `None` when it cannot
/// be solved (not an ALTCHA challenge, or not in time).
pub fn solve(challenge: &Challenge) -> Option<String> {
    let wire = serde_json::to_value(challenge).ok()?;
    let challenge: altcha::Challenge = serde_json::from_value(wire).ok()?;
    let mut options = altcha::SolveChallengeOptions::new(&challenge);
    options.timeout_ms = SOLVE_TIMEOUT_MS;
    let solution = altcha::solve_challenge(options).ok()??;
    let payload = serde_json::json!({ "challenge": challenge, "solution": solution });
    Some(base64::engine::general_purpose::STANDARD.encode(payload.to_string()))
}
