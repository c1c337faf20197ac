//! Shared helpers: a server started in-process on an ephemeral port, and a real WebSocket
//! client. Every network await is bounded by a timeout, so a broken server fails a test
//! instead of hanging it.
#![allow(dead_code)]

pub mod cdp;
pub mod classifier;
pub mod nats;
pub mod process;
pub mod steps;
pub mod tls;
pub mod turn;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tandem_ids::ChatId;
use tandem_proto::{ClientMsg, Codec, Frame, Join, Matched, ServerMsg, Welcome};
use tandem_server::config::ServeArgs;
use tandem_server::RunningServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The cluster key every test cluster seals its envelopes with (`--cluster-key`).
pub const CLUSTER_KEY: &str = "dGFuZGVtIHRlc3QgY2x1c3RlciBrZXkgMzIgYnl0ZXM=";

/// How long any single network step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(5);

/// Args for a test server: ephemeral port, two workers and two shards, a data directory of
/// its own, no proof-of-work challenge and no text filter (tests/challenge.rs and
/// tests/filter.rs turn them on).
pub fn test_args() -> ServeArgs {
    ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        shards: Some(2),
        workers: Some(2),
        data_dir: data_dir(),
        challenge: false,
        filter_links: tandem_server::abuse::filter::LinkPolicy::Never,
        blast_chats: 0,
        ..ServeArgs::default()
    }
}

/// A fresh data directory under cargo's scratch directory for tests (inside `target/`).
pub fn data_dir() -> std::path::PathBuf {
    tempfile::Builder::new()
        .prefix("data-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}

/// Starts a node in this process; call inside an actix System (`#[actix_rt::test]`).
pub fn start_server() -> RunningServer {
    start_server_with(test_args())
}

/// Starts a node with these args (the listen address is replaced by an ephemeral port).
pub fn start_server_with(args: ServeArgs) -> RunningServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    RunningServer::start(&args, listener).unwrap()
}

/// A node whose per-connection rate limits do not get in the way of fast simulated users
/// (they skip every few hundred ms, far faster than people).
pub fn generous_server() -> RunningServer {
    start_server_with(generous_args())
}

/// Test args with rate limits that fast simulated users do not hit.
pub fn generous_args() -> ServeArgs {
    let mut args = test_args();
    args.joins_per_sec = 1_000;
    args.msgs_per_sec = 1_000;
    args.frames_per_sec = 10_000;
    args.flood_strikes = 10_000;
    args
}

/// Parses `tandem loadtest` flags exactly as the binary would (the first item is the program
/// name).
pub fn loadtest_args<'a>(
    flags: impl IntoIterator<Item = &'a str>,
) -> tandem_loadtest::LoadtestArgs {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: tandem_loadtest::LoadtestArgs,
    }
    <Cli as clap::Parser>::parse_from(flags).args
}

/// Runs the load generator with a bound on the whole run, so a hang fails the test.
pub async fn run_loadtest(
    args: &tandem_loadtest::LoadtestArgs,
) -> Result<tandem_loadtest::Report, tandem_loadtest::LoadtestError> {
    let bound = args.duration + 4 * args.step_timeout + Duration::from_secs(5);
    tokio::time::timeout(bound, tandem_loadtest::run(args))
        .await
        .expect("the load test did not finish in time")
}

/// A join that every test may use.
pub fn join() -> ClientMsg {
    join_with(|_| {})
}

/// A join with the adult confirmation, changed by `f`.
pub fn join_with(f: impl FnOnce(&mut Join)) -> ClientMsg {
    let mut join = Join {
        adult: true,
        ..Join::default()
    };
    f(&mut join);
    ClientMsg::Join(join)
}

/// The solution of `client`'s challenge (`welcome.challenge`), for its first `join`;
/// `None` when the node asks none.
pub fn proof_of(client: &Client) -> Option<String> {
    (client.welcome.challenge.as_ref()).map(tandem_server::abuse::challenge::solve)
}

/// A WebSocket client speaking the protocol.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub codec: Codec,
    pub welcome: Welcome,
}

impl Client {
    /// Connects with JSON and reads `welcome`.
    pub async fn connect(addr: SocketAddr) -> Client {
        Self::connect_with(addr, Codec::Json).await
    }

    /// Connects with a codec and reads `welcome`.
    pub async fn connect_with(addr: SocketAddr, codec: Codec) -> Client {
        Self::connect_full(addr, codec, &[]).await
    }

    /// Connects with JSON and extra request headers (as a proxy in front would add them).
    pub async fn connect_with_headers(addr: SocketAddr, headers: &[(&str, &str)]) -> Client {
        Self::connect_full(addr, Codec::Json, headers).await
    }

    /// A JSON client on an open WebSocket, once it has read `welcome`.
    pub async fn welcomed(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        let mut client = Client {
            ws,
            codec: Codec::Json,
            welcome: placeholder_welcome(),
        };
        match client.recv().await {
            ServerMsg::Welcome(welcome) => client.welcome = welcome,
            other => panic!("expected welcome first, got {other:?}"),
        }
        client
    }

    async fn connect_full(addr: SocketAddr, codec: Codec, headers: &[(&str, &str)]) -> Client {
        let url = match codec {
            Codec::Json => format!("ws://{addr}/ws"),
            Codec::Bincode => format!("ws://{addr}/ws?codec=bincode"),
        };
        let request = ws_request(&url, headers);
        let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        let mut client = Client {
            ws,
            codec,
            welcome: placeholder_welcome(),
        };
        match client.recv().await {
            ServerMsg::Welcome(welcome) => client.welcome = welcome,
            other => panic!("expected welcome first, got {other:?}"),
        }
        client
    }

    /// Sends a message in this client's codec.
    pub async fn send(&mut self, msg: &ClientMsg) {
        let frame = match self.codec.encode(msg) {
            Frame::Text(text) => Message::text(text),
            Frame::Binary(bytes) => Message::binary(bytes),
        };
        self.send_raw(frame).await;
    }

    /// Sends any frame.
    pub async fn send_raw(&mut self, frame: Message) {
        tokio::time::timeout(STEP, self.ws.send(frame))
            .await
            .expect("send timed out")
            .expect("send failed");
    }

    /// The next protocol message (pings are answered by the library while reading).
    pub async fn recv(&mut self) -> ServerMsg {
        loop {
            let frame = tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("no message within the step timeout")
                .expect("connection ended")
                .expect("read failed");
            match frame {
                Message::Text(text) => return self.codec.decode_text(text.as_str()).unwrap(),
                Message::Binary(bytes) => return self.codec.decode_binary(&bytes).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(close) => panic!("closed by the server: {close:?}"),
                Message::Frame(_) => continue,
            }
        }
    }

    /// Reads until the server closes; returns the close code. Protocol messages before the
    /// close are returned too, in order.
    pub async fn recv_until_close(&mut self) -> (Vec<ServerMsg>, Option<CloseCode>) {
        let mut before = Vec::new();
        loop {
            let frame = tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("no close within the step timeout");
            match frame {
                None | Some(Err(_)) => return (before, None),
                Some(Ok(Message::Close(close))) => return (before, close.map(|c| c.code)),
                Some(Ok(Message::Text(text))) => {
                    before.push(self.codec.decode_text(text.as_str()).unwrap())
                }
                Some(Ok(Message::Binary(bytes))) => {
                    before.push(self.codec.decode_binary(&bytes).unwrap())
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Joins and expects `waiting`.
    pub async fn join(&mut self) {
        self.send(&join()).await;
        assert_eq!(self.recv().await, ServerMsg::Waiting);
    }

    /// Expects `matched` next.
    pub async fn matched(&mut self) -> Matched {
        match self.recv().await {
            ServerMsg::Matched(matched) => matched,
            other => panic!("expected matched, got {other:?}"),
        }
    }

    /// Sends a chat line.
    pub async fn say(&mut self, chat: ChatId, text: &str) {
        self.send(&ClientMsg::Msg {
            chat,
            text: text.to_owned(),
        })
        .await;
    }

    /// Expects an `error` with this code next.
    pub async fn expect_error(&mut self, code: tandem_proto::ErrorCode) -> String {
        match self.recv().await {
            ServerMsg::Error {
                code: got, message, ..
            } if got == code => message,
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    /// Round trip: sends `ping` and reads until `pong`, returning what came before it.
    pub async fn drain(&mut self) -> Vec<ServerMsg> {
        self.send(&ClientMsg::Ping).await;
        let mut before = Vec::new();
        loop {
            match self.recv().await {
                ServerMsg::Pong => return before,
                other => before.push(other),
            }
        }
    }
}

/// Two clients that joined and were paired; returns them with their chat id.
pub async fn pair(addr: SocketAddr) -> (Client, Client, ChatId) {
    let mut a = Client::connect(addr).await;
    let mut b = Client::connect(addr).await;
    a.join().await;
    b.join().await;
    let ma = a.matched().await;
    let mb = b.matched().await;
    assert_eq!(ma.chat, mb.chat);
    (a, b, ma.chat)
}

/// A plain HTTP GET over a real socket: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = http_get_with(addr, path, &[]).await;
    (status, body)
}

/// A plain HTTP GET with extra request headers: (status, head lower-cased, body).
pub async fn http_get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    http_request(addr, "GET", path, headers, None).await
}

/// Any HTTP request over a real socket, with a JSON body if given: (status, head
/// lower-cased, body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json: Option<&str>,
) -> (u16, String, String) {
    let mut stream = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(json) = json {
        request.push_str("content-type: application/json\r\n");
        request.push_str(&format!("content-length: {}\r\n", json.len()));
    } else if method != "GET" {
        request.push_str("content-length: 0\r\n");
    }
    request.push_str("\r\n");
    request.push_str(json.unwrap_or_default());
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    parse_response(&response)
}

/// An HTTP/1.1 response as (status, head in lower case, body).
pub fn parse_response(response: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn placeholder_welcome() -> Welcome {
    Welcome {
        session: tandem_ids::SessionId(0),
        client_id: String::new(),
        ice_servers: Vec::new(),
        limits: tandem_proto::Limits {
            max_frame_bytes: 0,
            max_text_chars: 0,
            joins_per_sec: 0,
            msgs_per_sec: 0,
            signals_per_sec: 0,
            snapshot_interval_ms: 0,
        },
        proto: 0,
        node: String::new(),
        challenge: None,
    }
}

/// What a handshake led to: a session (`welcome` read), or a refusal (the frames before the
/// close, and its code).
pub enum Opened {
    Welcome(Box<Client>),
    Refused(Vec<ServerMsg>, Option<CloseCode>),
}

impl Opened {
    /// The client, or a panic naming the refusal.
    pub fn client(self) -> Client {
        match self {
            Self::Welcome(client) => *client,
            Self::Refused(msgs, close) => panic!("refused: {msgs:?} {close:?}"),
        }
    }

    /// The refusal, or a panic.
    pub fn refusal(self) -> (Vec<ServerMsg>, Option<CloseCode>) {
        match self {
            Self::Welcome(client) => panic!("welcomed as {}", client.welcome.client_id),
            Self::Refused(msgs, close) => (msgs, close),
        }
    }
}

/// Opens `/ws` with this query (`?client_id=...&device=...`, or empty) and these request
/// headers, and reads what comes first.
pub async fn open(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> Opened {
    let request = ws_request(&format!("ws://{addr}/ws{query}"), headers);
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    let mut client = Client {
        ws,
        codec: Codec::Json,
        welcome: placeholder_welcome(),
    };
    let first = tokio::time::timeout(STEP, client.ws.next())
        .await
        .expect("nothing within the step timeout");
    match first {
        Some(Ok(Message::Text(text))) => match client.codec.decode_text(text.as_str()).unwrap() {
            ServerMsg::Welcome(welcome) => {
                client.welcome = welcome;
                Opened::Welcome(Box::new(client))
            }
            other => {
                let (mut rest, close) = client.recv_until_close().await;
                rest.insert(0, other);
                Opened::Refused(rest, close)
            }
        },
        Some(Ok(Message::Close(close))) => Opened::Refused(Vec::new(), close.map(|c| c.code)),
        other => panic!("unexpected first frame: {other:?}"),
    }
}

/// Connects with JSON from a chosen loopback source address (as a user elsewhere would be),
/// and reads `welcome`.
pub async fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let stream = tokio::time::timeout(STEP, socket.connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    let url = format!("ws://{addr}/ws");
    let stream = MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::client_async(url, stream))
        .await
        .expect("handshake timed out")
        .expect("handshake failed");
    Client::welcomed(ws).await
}

/// Opens `/ws` with these headers: the open socket, or the refusal's HTTP status and body.
pub async fn try_handshake(
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, (u16, String)> {
    let request = ws_request(&format!("ws://{addr}/ws"), headers);
    let outcome = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake timed out");
    match outcome {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("handshake failed: {other}"),
    }
}

/// Sends `report` for `chat` and returns the report's id from `reported` (lines, the end of
/// the chat and a new wait may come first).
pub async fn report(client: &mut Client, chat: ChatId, reason: &str, note: Option<&str>) -> String {
    client
        .send(&ClientMsg::Report {
            chat,
            reason: reason.into(),
            note: note.map(Into::into),
        })
        .await;
    loop {
        match client.recv().await {
            ServerMsg::Reported { report } => return report,
            ServerMsg::Msg { .. }
            | ServerMsg::Typing { .. }
            | ServerMsg::Ended { .. }
            | ServerMsg::Waiting => {}
            other => panic!("expected reported, got {other:?}"),
        }
    }
}

/// A WebSocket handshake request for `url` with these extra headers.
pub fn ws_request(
    url: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = name.parse().unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    request
}
