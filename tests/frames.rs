//! Hostile WebSocket framing over raw sockets, against an in-process node: a frame header
//! that lies about its length, floods of fragments, messages over the limit and malformed
//! control frames are refused as soon as their header is read, with the documented close
//! code, and the node's memory does not follow what the attacker sends.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::process::NodeProcess;
use common::{start_server, STEP};
use tandem_server::gateway::frames::client_frame_header as header;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw client: the upgrade done by hand, frames written and read by hand.
async fn upgraded(addr: SocketAddr) -> TcpStream {
    upgrade(TcpStream::connect(addr).await.unwrap(), addr).await
}

/// A raw client whose receive buffer is as small as the kernel allows, so that a client
/// that does not read shuts its window at once.
async fn upgraded_small(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1).unwrap();
    upgrade(socket.connect(addr).await.unwrap(), addr).await
}

async fn upgrade(mut stream: TcpStream, addr: SocketAddr) -> TcpStream {
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tokio::time::timeout(STEP, stream.read_exact(&mut byte))
            .await
            .expect("the upgrade answer")
            .unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(fin, opcode, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// Reads server frames until the close frame: its code (`None`: the socket ended first).
async fn close_code(stream: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + 2 * STEP;
    loop {
        // Whole frames at the front of `buf`.
        while buf.len() >= 2 {
            let length = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            let (len, at) = length;
            if buf.len() < at + len {
                break;
            }
            if buf[0] & 0x0f == 0x8 {
                return Some(u16::from_be_bytes([buf[at], buf[at + 1]]));
            }
            buf.drain(..at + len);
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .expect("a close frame in time");
        match read {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the kernel still has a TCP connection from `local` port to `remote` port on
/// 127.0.0.1, in any state but TIME_WAIT (/proc/net/tcp).
fn tcp_connection(local: u16, remote: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |address: &str| u16::from_str_radix(address.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3
            && port(fields[1]) == Some(local)
            && port(fields[2]) == Some(remote)
            && fields[3] != "06"
    })
}

#[actix_rt::test]
async fn a_frame_header_that_declares_a_terabyte_closes_1009_at_once_and_costs_no_memory() {
    // The node in a process of its own, so that its memory is measured apart from this
    // test's and the other tests'.
    let args = ["--shards", "2", "--workers", "2", "--data-dir"].map(String::from);
    let mut args = args.to_vec();
    args.push(common::data_dir().display().to_string());
    let node = NodeProcess::start(&args, Stdio::null).await;
    let mut stream = upgraded(node.addr).await;
    let before = node.rss_kib();
    stream.write_all(&header(true, 0x1, 1 << 40)).await.unwrap();
    // Then 64 MiB of payload as fast as the socket takes it, while the node is closing.
    let zeros = vec![0u8; 1 << 20];
    let mut sent = 0usize;
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_secs(1), stream.write_all(&zeros)).await {
            Ok(Ok(())) => sent += zeros.len(),
            _ => break,
        }
    }
    let grown = node.rss_kib().saturating_sub(before);
    assert!(
        grown < 8 * 1024,
        "the node grew by {grown} KiB while {sent} bytes of a lying frame were sent"
    );
    assert_eq!(close_code(&mut stream).await, Some(1009));
}

#[actix_rt::test]
async fn fragments_over_the_limit_in_bytes_or_count_close_1009_and_malformed_frames_1002() {
    let server = start_server();
    let addr = server.addr;

    // 40,000 + 30,000 bytes: each frame is legal, the message is not.
    let mut stream = upgraded(addr).await;
    let mut bytes = frame(false, 0x1, &vec![b'a'; 40_000]);
    bytes.extend(frame(true, 0x0, &vec![b'a'; 30_000]));
    stream.write_all(&bytes).await.unwrap();
    assert_eq!(
        close_code(&mut stream).await,
        Some(1009),
        "a message over 64 KiB"
    );

    // Empty continuations, interleaved with pings, cannot pile up.
    let mut stream = upgraded(addr).await;
    let mut bytes = frame(false, 0x1, b"");
    for _ in 0..200 {
        bytes.extend(frame(false, 0x0, b""));
        bytes.extend(frame(true, 0x9, b"p"));
    }
    let _ = stream.write_all(&bytes).await;
    assert_eq!(
        close_code(&mut stream).await,
        Some(1009),
        "a flood of fragments"
    );

    for (what, bad) in [
        ("a long ping", frame(true, 0x9, &[0u8; 126])),
        ("a fragmented ping", frame(false, 0x9, b"p")),
        ("a continuation of nothing", frame(true, 0x0, b"x")),
        ("a reserved opcode", frame(true, 0x3, b"x")),
    ] {
        let mut stream = upgraded(addr).await;
        stream.write_all(&bad).await.unwrap();
        assert_eq!(close_code(&mut stream).await, Some(1002), "{what}");
    }

    // A legal fragmented message still arrives whole.
    let mut client = common::Client::connect(addr).await;
    client
        .send_raw(tokio_tungstenite::tungstenite::Message::Text(
            r#"{"type":"ping"}"#.into(),
        ))
        .await;
    assert!(matches!(client.recv().await, tandem_proto::ServerMsg::Pong));
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn unsolicited_pongs_keep_no_connection_alive() {
    let server = common::start_server_with(tandem_server::config::ServeArgs {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_millis(500),
        ..common::test_args()
    });
    let mut stream = upgraded(server.addr).await;
    // Never answers the server's pings; sends pongs of its own, twenty a second.
    let (mut read, mut write) = stream.split();
    let pongs = async {
        loop {
            if write.write_all(&frame(true, 0xa, b"alive")).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let closed = async {
        let mut all = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let started = tokio::time::Instant::now();
    let received = tokio::select! {
        received = closed => received,
        () = pongs => panic!("the pongs stopped before the node closed"),
    };
    assert!(
        started.elapsed() < 3 * STEP / 5,
        "closed by the heartbeat, not kept alive"
    );
    // The last frame the node sent is a close with 1001 (going away: heartbeat).
    let close = received
        .windows(4)
        .rposition(|w| w[0] == 0x88)
        .expect("a close frame");
    assert_eq!(
        u16::from_be_bytes([received[close + 2], received[close + 3]]),
        1001
    );
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_client_that_never_reads_is_dropped_once_its_queue_holds_a_mebibyte() {
    let server = common::generous_server();
    let addr = server.addr;
    // The reader joins by hand and then never reads again.
    let mut sink = upgraded(addr).await;
    let join = br#"{"type":"join","adult":true}"#;
    sink.write_all(&frame(true, 0x1, join)).await.unwrap();
    let mut talker = common::Client::connect(addr).await;
    talker.join().await;
    let chat = talker.matched().await.chat;
    let line = "x".repeat(tandem_engine::session::MAX_TEXT_CHARS);
    let mut sent = 0usize;
    let ended = loop {
        talker.say(chat, &line).await;
        sent += line.len();
        // Now and then, see whether the node gave up on the reader.
        if sent.is_multiple_of(64 * line.len()) {
            let drained = talker.drain().await;
            if let Some(ended) = drained.iter().find_map(|m| match m {
                tandem_proto::ServerMsg::Ended { reason, .. } => Some(*reason),
                _ => None,
            }) {
                break ended;
            }
        }
        assert!(
            sent < 64 << 20,
            "still relaying after {sent} bytes to a client that never reads"
        );
    };
    assert_eq!(ended, tandem_proto::EndReason::PartnerDisconnected);
    let (_, metrics) = common::http_get(addr, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("cause=\"slow_consumer\"") && !l.ends_with(" 0")),
        "{metrics}"
    );
    drop(sink);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_client_that_never_reads_loses_its_tcp_connection_too_not_only_its_session() {
    let server = common::start_server_with(tandem_server::config::ServeArgs {
        heartbeat_interval: Duration::from_millis(500),
        heartbeat_timeout: Duration::from_secs(2),
        ..common::generous_args()
    });
    let addr = server.addr;
    let mut sink = upgraded_small(addr).await;
    let sink_port = sink.local_addr().unwrap().port();
    assert!(
        tcp_connection(addr.port(), sink_port),
        "the connection is in the kernel's table"
    );
    let join = br#"{"type":"join","adult":true}"#;
    sink.write_all(&frame(true, 0x1, join)).await.unwrap();
    let mut talker = common::Client::connect(addr).await;
    talker.join().await;
    let chat = talker.matched().await.chat;
    // Lines until the node gives up on the reader (its queue, or its silence).
    let line = "x".repeat(tandem_engine::session::MAX_TEXT_CHARS);
    loop {
        for _ in 0..16 {
            talker.say(chat, &line).await;
        }
        let drained = talker.drain().await;
        if drained
            .iter()
            .any(|m| matches!(m, tandem_proto::ServerMsg::Ended { .. }))
        {
            break;
        }
    }
    // What the node sent stays unacknowledged: the kernel aborts the connection once the
    // heartbeat timeout has passed (it may have already), although the client keeps its
    // socket open.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2) + 2 * STEP;
    while tcp_connection(addr.port(), sink_port) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node still holds the connection of a client that never reads"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(sink);
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_client_that_leaves_without_a_close_frame_is_no_protocol_error() {
    let server = start_server();
    let addr = server.addr;
    let gone = upgraded(addr).await;
    let reset = upgraded(addr).await;
    let deadline = tokio::time::Instant::now() + STEP;
    while server.node.registry().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "two sessions");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One closes its socket; the other resets it (as a lost network or a killed tab may).
    drop(gone);
    // SO_LINGER of zero makes the close a reset; the block on drop it may cost is nothing here.
    #[allow(deprecated)]
    reset.set_linger(Some(Duration::ZERO)).unwrap();
    drop(reset);
    while !server.node.registry().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "both sessions gone");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (_, metrics) = common::http_get(addr, "/metrics").await;
    let protocol = metrics
        .lines()
        .find(|l| l.starts_with("tandem_server_closes_total{") && l.contains("cause=\"protocol\""))
        .expect("the series");
    assert!(protocol.ends_with(" 0"), "{protocol}");
    server.shutdown().await.unwrap();
}

#[actix_rt::test]
async fn a_client_that_closes_first_is_answered_and_its_connection_ends_at_once() {
    // Lingering is a minute here: a connection that ended by it would outlast the test.
    let server = common::start_server_with(tandem_server::config::ServeArgs {
        close_linger: Duration::from_secs(60),
        ..common::test_args()
    });
    let mut stream = upgraded(server.addr).await;
    stream
        .write_all(&frame(true, 0x8, &1000u16.to_be_bytes()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut stream).await, Some(1000));
    // Nothing but the end of the connection follows the answering Close.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(STEP, stream.read_to_end(&mut rest))
        .await
        .expect("the connection ends without waiting for the client");
    assert!(read.is_ok() && rest.is_empty(), "{read:?} {rest:?}");
    server.shutdown().await.unwrap();
}
