//! A client's frame, any bytes: as a JSON text frame (when UTF-8) and as a bincode binary
//! frame, and as a `signal`'s data on its own. Decoding never panics; a message that decodes
//! means the same after a trip through either codec; a `join` goes on through the node's
//! preferences check, which never panics either; a video still's image headers are read
//! without a panic, whether it came as a `snapshot` message or as a JSON connection's binary
//! frame. A `signal` is relayed as JSON that serde_json accepts, with its data as the sender
//! wrote it, and the signal scanner accepts what serde_json accepts.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use tandem_match::Lang;
use tandem_proto::{
    ClientMsg, Codec, Frame, ServerMsg, SignalData, SignalError, WireMessage, MAX_SIGNAL_BYTES,
};
use tandem_server::abuse::snapshots::check_image;
use tandem_server::session::{preferences, JoinRules};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(msg) = Codec::Json.decode_text::<ClientMsg>(text) {
            if let ClientMsg::Signal { .. } = msg {
                assert!(is_json(text), "a signal that is not JSON was accepted");
            }
            check(&msg);
        }
        check_signal_data(text);
    }
    if let Ok(msg) = Codec::Bincode.decode_binary::<ClientMsg>(data) {
        check(&msg);
    }
    // The same bytes as a JSON connection's binary frame: a video still, whose image headers
    // the node reads.
    if let Ok((_, image)) = tandem_proto::snapshot_frame(data) {
        let _ = check_image(image);
    }
});

/// What holds for every message a client frame decodes to.
fn check(msg: &ClientMsg) {
    assert_eq!(&round_trip(msg), msg);
    match msg {
        ClientMsg::Join(join) => {
            static RULES: OnceLock<JoinRules> = OnceLock::new();
            let rules = RULES.get_or_init(tandem_fuzz::join_rules);
            let _ = preferences(join, rules, Lang::EN);
        }
        ClientMsg::Signal { chat, data } => {
            assert!(is_json(data.get()), "signal data that is not JSON");
            // What the partner receives.
            let relayed = ServerMsg::Signal {
                chat: *chat,
                data: data.clone(),
            };
            let Frame::Text(text) = Codec::Json.encode(&relayed) else {
                unreachable!("JSON frames are text")
            };
            assert!(is_json(&text), "a relayed signal that is not JSON");
            assert_eq!(round_trip(&relayed), relayed);
        }
        ClientMsg::Snapshot { image, .. } => {
            let _ = check_image(image);
        }
        _ => {}
    }
}

/// `msg` after a trip through each codec, which must give the same message back.
fn round_trip<M: WireMessage + PartialEq + std::fmt::Debug>(msg: &M) -> M {
    let mut back = None;
    for codec in [Codec::Json, Codec::Bincode] {
        let decoded: M = match codec.encode(msg) {
            Frame::Text(text) => codec.decode_text(&text),
            Frame::Binary(bytes) => codec.decode_binary(&bytes),
        }
        .unwrap_or_else(|err| panic!("{codec:?} cannot read back what it wrote: {err}"));
        assert_eq!(&decoded, msg, "{codec:?} changed the message");
        back = Some(decoded);
    }
    back.expect("two codecs")
}

/// Whether serde_json accepts `text` as one JSON value (as it does when it skips a value:
/// escapes need only be well formed).
fn is_json(text: &str) -> bool {
    serde_json::from_str::<&RawValue>(text).is_ok()
}

/// The signal scanner against serde_json: what it accepts is JSON, kept as it was written,
/// and JSON within the size bound is accepted unless it is nested too deep.
fn check_signal_data(text: &str) {
    match SignalData::parse(text) {
        Ok(data) => {
            assert!(is_json(text), "the scanner accepted what is not JSON");
            assert_eq!(data.get(), text.trim_matches([' ', '\t', '\n', '\r']));
        }
        Err(SignalError::NotJson) => assert!(!is_json(text), "the scanner refused JSON"),
        Err(SignalError::TooLarge) => assert!(text.len() > MAX_SIGNAL_BYTES),
        Err(SignalError::TooDeep) => {}
    }
}
