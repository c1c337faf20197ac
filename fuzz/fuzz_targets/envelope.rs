//! A payload from NATS, any bytes: opened with the cluster key (a seal that is not the
//! key's is refused, never a panic; what opens is decoded), and decoded as the inter-node
//! envelope as if it had come unsealed. Neither ever panics. An envelope that decodes
//! encodes again, and that encoding decodes to the same envelope; with any byte after it,
//! it is refused. Sealing any payload opens to the same payload, and not with a byte added.

#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tandem_fuzz::SUBJECT;
use tandem_server::cluster::seal::{Seal, SealError};
use tandem_server::cluster::wire::{decode, encode, WireError};

fuzz_target!(|data: &[u8]| {
    static SEAL: OnceLock<Seal> = OnceLock::new();
    let seal = SEAL.get_or_init(tandem_fuzz::seal);
    let now = Instant::now();

    check_decode(data, now);
    if let Ok(payload) = seal.open(SUBJECT, data) {
        check_decode(&payload, now);
    }

    let sealed = seal.seal(SUBJECT, data);
    assert_eq!(seal.open(SUBJECT, &sealed).as_deref(), Ok(data));
    let mut longer = sealed;
    longer.push(data.first().copied().unwrap_or(0));
    assert_eq!(seal.open(SUBJECT, &longer), Err(SealError::Forged));
});

/// What holds for a payload that decodes, received at `now`.
fn check_decode(payload: &[u8], now: Instant) {
    let Ok(first) = decode(payload, now) else {
        return;
    };
    let bytes = encode(&first.envelope, now, first.sent_at_us)
        .expect("an envelope from the wire goes back on the wire");
    let second = decode(&bytes, now).expect("an encoded envelope decodes");
    assert_eq!(second.sent_at_us, first.sent_at_us);
    assert_eq!(
        format!("{:?}", second.envelope),
        format!("{:?}", first.envelope),
        "the envelope changed on its trip"
    );
    assert_eq!(
        encode(&second.envelope, now, second.sent_at_us).as_deref(),
        Some(bytes.as_slice()),
        "the envelope's encoding changed on its trip"
    );
    for extra in [0, 0xff, payload[payload.len() - 1]] {
        let mut longer = bytes.clone();
        longer.push(extra);
        assert!(
            matches!(decode(&longer, now), Err(WireError::Trailing(1))),
            "a byte after the envelope is refused"
        );
        let mut longer = payload.to_vec();
        longer.push(extra);
        assert!(
            matches!(decode(&longer, now), Err(WireError::Trailing(1))),
            "a byte after the envelope is refused"
        );
    }
}
