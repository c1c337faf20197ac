//! Encoding and decoding the hottest client messages in both codecs.

use criterion::{black_box, Criterion, Throughput};
use tandem_ids::ChatId;
use tandem_proto::{ClientMsg, Codec, Frame, ServerMsg};

fn codecs(c: &mut Criterion) {
    let msg = ClientMsg::Msg {
        chat: ChatId(0x1234_5678_9abc_def0),
        text: "hey, where are you from?".into(),
    };
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    for codec in [Codec::Json, Codec::Bincode] {
        let frame = codec.encode(&msg);
        group.bench_function(format!("decode_msg_{codec:?}").to_lowercase(), |b| {
            b.iter(|| {
                let decoded: ClientMsg = match &frame {
                    Frame::Text(text) => codec.decode_text(black_box(text)).unwrap(),
                    Frame::Binary(bytes) => codec.decode_binary(black_box(bytes)).unwrap(),
                };
                black_box(decoded)
            })
        });
        let out = ServerMsg::Msg {
            chat: ChatId(0x1234_5678_9abc_def0),
            text: "hey, where are you from?".into(),
        };
        group.bench_function(format!("encode_msg_{codec:?}").to_lowercase(), |b| {
            b.iter(|| black_box(codec.encode(black_box(&out))))
        });
    }
    group.finish();
}

/// Relaying a `signal` of 16 KiB (decoding the client's frame, encoding the partner's): flat
/// (one string) and deep (arrays nested 32 deep, side by side) should cost the same.
fn signals(c: &mut Criterion) {
    let part = format!("{}{}", "[".repeat(31), "]".repeat(31));
    let deep = format!("[{}]", vec![part.as_str(); 16_000 / 63].join(","));
    let flat = format!("\"{}\"", "a".repeat(deep.len() - 2));
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(deep.len() as u64));
    for (name, data) in [("flat", flat), ("deep", deep)] {
        let frame = format!(r#"{{"type":"signal","chat":"123456789abcdef0","data":{data}}}"#);
        group.bench_function(format!("relay_signal_16k_{name}"), |b| {
            b.iter(|| {
                let Ok(ClientMsg::Signal { chat, data }) =
                    Codec::Json.decode_text::<ClientMsg>(black_box(&frame))
                else {
                    panic!("a signal");
                };
                black_box(Codec::Json.encode(&ServerMsg::Signal { chat, data }))
            })
        });
    }
    group.finish();
}

criterion::criterion_group!(benches, codecs, signals);
