//! Encoding and decoding the hottest client messages in both codecs.

use criterion::{black_box, Criterion, Throughput};
use tandem::ids::ChatId;
use tandem::protocol::{ClientMsg, Codec, Frame, ServerMsg};

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

criterion::criterion_group!(benches, codecs);
