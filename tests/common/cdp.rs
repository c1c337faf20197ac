//! A thin Chrome DevTools Protocol client for the browser tests: it launches Debian's
//! headless Chromium on a free port with a throw-away profile, opens pages (each in its own
//! browser context, so they share no cookies or storage, like different people), evaluates
//! JavaScript, presses keys, and takes screenshots. About as much of CDP as the tests need,
//! over tokio-tungstenite, instead of a browser-automation crate and its build time.
//!
//! The browser and every process it started are killed when the [`Browser`] is dropped, and
//! its profile directory is removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// How long one DevTools command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How often `wait_for` looks again.
const POLL: Duration = Duration::from_millis(50);

/// Installed by `scripts/test` (Debian's `chromium` package); `TANDEM_CHROMIUM` overrides.
fn chromium_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TANDEM_CHROMIUM") {
        return path.into();
    }
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!(
        "the browser tests need Chromium: `apt-get install chromium` (scripts/test does it), \
         or set TANDEM_CHROMIUM to its path"
    );
}

/// Makes `home/.pki/nssdb`, the NSS database Chromium on Linux reads its user's trust from,
/// holding `ca` as trusted to issue server certificates (`-t C,,`).
fn trust_in_nss(home: &Path, ca: &Path) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    let ca = ca.to_str().unwrap();
    for args in [
        &["-N", "-d", &db, "--empty-password"][..],
        &[
            "-A",
            "-d",
            &db,
            "-n",
            "tandem test CA",
            "-t",
            "C,,",
            "-i",
            ca,
        ][..],
    ] {
        let out = Command::new("certutil")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("certutil on PATH: `apt-get install libnss3-tools` (scripts/test does it)");
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Points WebRTC at loopback: Chromium gathers loopback candidates only with
/// `--allow-loopback-in-peer-connection`, and this drops every other remote candidate the
/// page is told about, so connectivity checks are sent to 127.0.0.1 or ::1 (answers may come
/// back from another of this machine's own addresses; nothing leaves the machine). It wraps
/// the browser's API in the test browser only; the page's code is untouched.
const LOOPBACK_ONLY: &str = r#"
(() => {
  const add = RTCPeerConnection.prototype.addIceCandidate;
  RTCPeerConnection.prototype.addIceCandidate = function (candidate, ...rest) {
    const text = candidate && (candidate.candidate ?? '');
    if (text && !/ (127\.0\.0\.1|::1) /.test(text)) return Promise.resolve();
    return add.call(this, candidate, ...rest);
  };
})();
"#;

/// A running headless Chromium.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    port: u16,
    session: Cdp,
}

impl Browser {
    /// Launches Chromium with a fake camera and microphone, whose permission prompts are
    /// answered "allow".
    pub async fn launch() -> Browser {
        Self::launch_with(true).await
    }

    /// Launches Chromium with a fake camera and microphone; `allow_media` answers their
    /// permission prompts "allow" (else the permissions set with [`Self::set_permission`]
    /// decide, as a user's earlier answer would).
    pub async fn launch_with(allow_media: bool) -> Browser {
        Self::launch_full(allow_media, None).await
    }

    /// Launches Chromium (fake camera and microphone, allowed) trusting the certificate
    /// authority in `ca` (PEM) for https, as a user who installed it would: the browser runs
    /// with a home directory of its own whose NSS database (`~/.pki/nssdb`, made with
    /// `certutil` from Debian's `libnss3-tools`) holds the CA as a trusted issuer of server
    /// certificates. Nothing else about certificate checking is relaxed.
    pub async fn launch_trusting(ca: &Path) -> Browser {
        Self::launch_full(true, Some(ca)).await
    }

    async fn launch_full(allow_media: bool, trusted_ca: Option<&Path>) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "tandem-chromium-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let mut command = Command::new(chromium_path());
        if let Some(ca) = trusted_ca {
            let home = profile.join("home");
            trust_in_nss(&home, ca);
            command.env("HOME", &home);
        }
        command
            .args([
                "--headless=new",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "--no-sandbox",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-sync",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--disable-breakpad",
                "--metrics-recording-only",
                "--password-store=basic",
                "--use-mock-keychain",
                "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                "--use-fake-device-for-media-stream",
                "--allow-loopback-in-peer-connection",
                "--disable-features=WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--window-size=1280,800",
                "--hide-scrollbars",
            ])
            .args(allow_media.then_some("--use-fake-ui-for-media-stream"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that dropping the browser kills its helpers too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("could not start Chromium");

        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break (port.parse::<u16>().unwrap(), path.to_owned());
                }
            }
            assert!(
                Instant::now() < deadline,
                "Chromium did not open its DevTools port"
            );
            tokio::time::sleep(POLL).await;
        };
        let session = Cdp::connect(&format!("ws://127.0.0.1:{port}{path}")).await;
        Browser {
            child,
            profile,
            port,
            session,
        }
    }

    /// A new page in a fresh browser context (its own cookies and storage), loaded from `url`.
    pub async fn page(&self, name: &str, url: &str) -> Page {
        let context = self
            .session
            .call("Target.createBrowserContext", json!({}))
            .await["browserContextId"]
            .clone();
        let target = self
            .session
            .call(
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context}),
            )
            .await["targetId"]
            .as_str()
            .unwrap()
            .to_owned();
        let cdp = Cdp::connect(&format!(
            "ws://127.0.0.1:{}/devtools/page/{target}",
            self.port
        ))
        .await;
        let page = Page {
            name: name.to_owned(),
            context,
            cdp,
        };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            page.cdp.call(domain, json!({})).await;
        }
        page.cdp
            .call(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({"source": LOOPBACK_ONLY}),
            )
            .await;
        page.cdp
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        page.goto(url).await;
        page
    }
}

impl Browser {
    /// Sets a permission (`camera`, `microphone`) for `origin` in the page's context, as a
    /// user answering the browser's prompt would: `granted` or `denied`.
    pub async fn set_permission(&self, page: &Page, name: &str, setting: &str, origin: &str) {
        self.session
            .call(
                "Browser.setPermission",
                json!({"permission": {"name": name}, "setting": setting, "origin": origin,
                       "browserContextId": page.context}),
            )
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: the browser, its renderers, GPU and utility processes.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One page (a tab).
pub struct Page {
    /// For failure messages: which of the test's users this is.
    pub name: String,
    /// The browser context it lives in (its own cookies, storage and permissions).
    context: Value,
    cdp: Cdp,
}

impl Page {
    /// Navigates and waits until the document has loaded.
    pub async fn goto(&self, url: &str) {
        self.cdp.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(
            "the page to load",
            &format!(
                "document.readyState === 'complete' && location.href.startsWith({})",
                // The page may drop its query and fragment once read (`#pass=…`).
                json!(url.split(['?', '#']).next().unwrap())
            ),
            Duration::from_secs(15),
        )
        .await;
    }

    /// Evaluates `expression` (awaiting a promise) and returns its value; a thrown exception
    /// is an `Err` with its description.
    pub async fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let reply = self
            .cdp
            .try_call(
                "Runtime.evaluate",
                json!({
                    "expression": expression,
                    "awaitPromise": true,
                    "returnByValue": true,
                    "userGesture": true,
                }),
            )
            .await?;
        if let Some(details) = reply.get("exceptionDetails") {
            let text = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("exception");
            return Err(text.to_owned());
        }
        Ok(reply["result"]["value"].clone())
    }

    /// Evaluates `expression`; panics if it throws.
    pub async fn eval(&self, expression: &str) -> Value {
        match self.try_eval(expression).await {
            Ok(value) => value,
            Err(error) => panic!("[{}] `{expression}` threw: {error}", self.name),
        }
    }

    /// Polls `expression` until it is truthy and returns its value; panics after `timeout`
    /// with `what` was awaited and the page's console.
    pub async fn wait_for(&self, what: &str, expression: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            match self.try_eval(expression).await {
                Ok(value) if truthy(&value) => return value,
                Ok(value) => last = value,
                Err(error) => last = Value::String(format!("threw: {error}")),
            }
            if Instant::now() >= deadline {
                panic!(
                    "[{}] timed out after {timeout:?} waiting for {what} (`{expression}`, last {last})\nconsole:\n{}",
                    self.name,
                    self.console().join("\n")
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Presses and releases a key (`Escape`, `Enter`) as a keyboard would: Enter also types
    /// its character, so that it submits forms unless the page stops it.
    pub async fn press(&self, key: &str) {
        let (code, text) = match key {
            "Escape" => (27, ""),
            "Enter" => (13, "\r"),
            _ => (0, ""),
        };
        let down = if text.is_empty() {
            "rawKeyDown"
        } else {
            "keyDown"
        };
        for (kind, text) in [(down, text), ("keyUp", "")] {
            self.cdp
                .call(
                    "Input.dispatchKeyEvent",
                    json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code,
                           "text": text, "unmodifiedText": text}),
                )
                .await;
        }
    }

    /// Focuses the element and types `text` into it (an `input` event, as from a keyboard).
    pub async fn type_into(&self, selector: &str, text: &str) {
        self.eval(&format!(
            "document.querySelector({}).focus()",
            json!(selector)
        ))
        .await;
        self.cdp
            .call("Input.insertText", json!({"text": text}))
            .await;
    }

    /// Clicks an element (through the DOM, like a user activating it).
    pub async fn click(&self, selector: &str) {
        self.eval(&format!(
            "(() => {{ const el = document.querySelector({0}); if (!el) throw new Error('no ' + {0}); el.click(); }})()",
            json!(selector)
        ))
        .await;
    }

    /// Saves a PNG of the viewport.
    pub async fn screenshot(&self, path: &Path) {
        let reply = self
            .cdp
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(reply["data"].as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Sends these headers with every request of the page, the WebSocket handshake included
    /// (as a proxy in front of the node would add them).
    pub async fn extra_headers(&self, headers: Value) {
        self.cdp.call("Network.enable", json!({})).await;
        self.cdp
            .call("Network.setExtraHTTPHeaders", json!({"headers": headers}))
            .await;
    }

    /// The browser's cookies for the page's current URL, as `Network.getCookies` gives them
    /// (name, value, `secure`, `httpOnly`, …).
    pub async fn cookies(&self) -> Vec<Value> {
        let url = self.eval("location.href").await;
        let reply = self
            .cdp
            .call("Network.getCookies", json!({"urls": [url]}))
            .await;
        reply["cookies"].as_array().cloned().unwrap_or_default()
    }

    /// Records the headers of every response the page receives from now on, as the network
    /// stack got them (what scripts may not read, such as `Strict-Transport-Security`,
    /// included): see [`Self::response_headers`].
    pub async fn record_responses(&self) {
        self.cdp.call("Network.enable", json!({})).await;
    }

    /// The headers, names lower-cased, of the last response recorded for `url`.
    pub fn response_headers(&self, url: &str) -> Option<HashMap<String, String>> {
        let responses = self.cdp.responses.lock();
        let request = responses.iter().rev().find_map(|(method, params)| {
            (method == "Network.responseReceived" && params["response"]["url"] == url)
                .then(|| params["requestId"].clone())
        })?;
        // The raw headers when the browser reported them, else those it gave the page.
        let raw = responses.iter().rev().find_map(|(method, params)| {
            (method == "Network.responseReceivedExtraInfo" && params["requestId"] == request)
                .then(|| params["headers"].clone())
        });
        let headers = raw.or_else(|| {
            responses.iter().rev().find_map(|(method, params)| {
                (method == "Network.responseReceived" && params["requestId"] == request)
                    .then(|| params["response"]["headers"].clone())
            })
        })?;
        let headers = headers.as_object()?.iter();
        Some(
            headers
                .map(|(name, value)| {
                    let value = value.as_str().unwrap_or_default().to_owned();
                    (name.to_ascii_lowercase(), value)
                })
                .collect(),
        )
    }

    /// Sets the viewport (for a phone-sized screenshot).
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
            )
            .await;
    }

    /// What the page logged: console calls, uncaught exceptions and browser messages
    /// (CSP violations among them).
    pub fn console(&self) -> Vec<String> {
        self.cdp.events.lock().clone()
    }

    /// Console errors, uncaught exceptions and browser errors (CSP violations, failed loads).
    pub fn problems(&self) -> Vec<String> {
        self.console()
            .into_iter()
            .filter(|line| line.starts_with("error") || line.starts_with("exception"))
            .collect()
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// One DevTools WebSocket: commands matched to replies by id; events kept as log lines.
struct Cdp {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: AtomicU64,
    events: Arc<Mutex<Vec<String>>>,
    /// The parameters of the `Network.responseReceived` and
    /// `Network.responseReceivedExtraInfo` events, with their method, once the Network
    /// domain is enabled.
    responses: Arc<Mutex<Vec<(String, Value)>>>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for Cdp {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let (ws, _) = tokio::time::timeout(CALL_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("DevTools connect timed out")
            .expect("DevTools connect failed");
        let (mut sink, mut stream) = ws.split();
        let (out, mut queue) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Arc::default();
        let events: Arc<Mutex<Vec<String>>> = Arc::default();
        let responses: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let writer = tokio::spawn(async move {
            while let Some(message) = queue.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let reader = {
            let pending = Arc::clone(&pending);
            let events = Arc::clone(&events);
            let responses = Arc::clone(&responses);
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    if let Some(id) = value["id"].as_u64() {
                        if let Some(reply) = pending.lock().remove(&id) {
                            let result = match value.get("error") {
                                Some(error) => Err(error.to_string()),
                                None => Ok(value["result"].clone()),
                            };
                            let _ = reply.send(result);
                        }
                    } else if let Some(line) = describe_event(&value) {
                        events.lock().push(line);
                    } else if let Some(
                        method @ ("Network.responseReceived" | "Network.responseReceivedExtraInfo"),
                    ) = value["method"].as_str()
                    {
                        let params = value["params"].clone();
                        responses.lock().push((method.to_owned(), params));
                    }
                }
            })
        };
        Cdp {
            out,
            pending,
            next_id: AtomicU64::new(1),
            events,
            responses,
            tasks: [writer, reader],
        }
    }

    async fn try_call(&self, method: &str, params: Value) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.pending.lock().insert(id, reply);
        let request = json!({"id": id, "method": method, "params": params});
        self.out
            .send(Message::text(request.to_string()))
            .map_err(|_| "DevTools connection closed".to_owned())?;
        match tokio::time::timeout(CALL_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(format!("{method}: DevTools connection closed")),
            Err(_) => Err(format!("{method}: no reply within {CALL_TIMEOUT:?}")),
        }
    }

    async fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .await
            .unwrap_or_else(|error| panic!("{method} failed: {error}"))
    }
}

/// A log line for the events worth keeping: `<level>: <text>`.
fn describe_event(event: &Value) -> Option<String> {
    let params = &event["params"];
    match event["method"].as_str()? {
        "Runtime.consoleAPICalled" => {
            let level = params["type"].as_str().unwrap_or("log");
            let text: Vec<String> = params["args"]
                .as_array()?
                .iter()
                .map(|arg| {
                    arg["value"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| arg["description"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| arg["value"].to_string())
                })
                .collect();
            Some(format!("{level}: {}", text.join(" ")))
        }
        "Runtime.exceptionThrown" => {
            let details = &params["exceptionDetails"];
            let text = details["exception"]["description"]
                .as_str()
                .or(details["text"].as_str())
                .unwrap_or("?");
            Some(format!("exception: {text}"))
        }
        "Log.entryAdded" => {
            let entry = &params["entry"];
            Some(format!(
                "{}: [{}] {} {}",
                entry["level"].as_str().unwrap_or("log"),
                entry["source"].as_str().unwrap_or("?"),
                entry["text"].as_str().unwrap_or(""),
                entry["url"].as_str().unwrap_or("")
            ))
        }
        _ => None,
    }
}
