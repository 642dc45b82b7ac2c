//! `driftstack mcp --url URL`: a stdio MCP server for local clients (editors, desktop agents)
//! that relays each JSON-RPC message to a remote Driftstack's `/mcp` (streamable HTTP) with the
//! key from `DRIFTSTACK_API_KEY`, and writes the answers back, one message per line. Requests
//! run concurrently; stdout carries only protocol messages, diagnostics go to stderr.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The longest line read from stdin (one JSON-RPC message), and the largest answer read back.
const MAX_MESSAGE: usize = 16 << 20;
const MAX_ANSWER: usize = 64 << 20;

/// Requests in flight at once; more wait their turn.
const IN_FLIGHT: usize = 16;

/// The remote server and what was negotiated with it.
struct Remote {
    endpoint: String,
    key: String,
    http: reqwest::Client,
    /// `MCP-Protocol-Version` and `Mcp-Session-Id` once the server gave them.
    protocol: Mutex<Option<String>>,
    session: Mutex<Option<String>>,
}

/// Runs the bridge on its own runtime (no server state, no database) until stdin closes.
pub fn run_blocking(url: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(url, std::env::var("DRIFTSTACK_API_KEY").ok()))
}

/// Runs the bridge until stdin closes; the error is for the operator (bad URL, no key).
async fn run(url: &str, key: Option<String>) -> anyhow::Result<()> {
    let key = key
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| anyhow::anyhow!("set DRIFTSTACK_API_KEY to an API key (ds_live_…)"))?;
    let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("--url {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        anyhow::bail!("--url must be an http or https URL");
    }
    let endpoint = if parsed.path().trim_end_matches('/').ends_with("/mcp") {
        parsed.to_string()
    } else {
        format!("{}/mcp", parsed.as_str().trim_end_matches('/'))
    };
    let remote = Arc::new(Remote {
        endpoint,
        key,
        http: reqwest::Client::builder().build()?,
        protocol: Mutex::new(None),
        session: Mutex::new(None),
    });
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(line) = rx.recv().await {
            if out.write_all(line.as_bytes()).await.is_err()
                || out.write_all(b"\n").await.is_err()
                || out.flush().await.is_err()
            {
                break;
            }
        }
    });
    let mut input = BufReader::new(tokio::io::stdin());
    let mut tasks = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    loop {
        let line = match next_line(&mut input).await? {
            Line::End => break,
            Line::TooLong => {
                eprintln!("driftstack mcp: a message over 16 MiB was dropped");
                continue;
            }
            Line::Text(line) => line,
        };
        if line.trim().is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                let _ = tx.send(
                    json!({"jsonrpc": "2.0", "id": null,
                           "error": {"code": -32700, "message": "Parse error: not a JSON message"}})
                    .to_string(),
                );
                continue;
            }
        };
        let remote = remote.clone();
        let tx = tx.clone();
        // `initialize` settles the protocol version the later requests carry: it goes alone.
        if message["method"] == "initialize" {
            relay(&remote, message, &tx).await;
        } else {
            let slot = slots.clone().acquire_owned().await?;
            tasks.spawn(async move {
                relay(&remote, message, &tx).await;
                drop(slot);
            });
        }
        // Finished tasks are collected as we go, so a long session does not pile them up.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// Sends one message and forwards whatever comes back (a JSON answer, or the messages of an
/// event stream); a failure of the HTTP exchange becomes a JSON-RPC error for a request.
async fn relay(remote: &Remote, message: Value, tx: &tokio::sync::mpsc::UnboundedSender<String>) {
    let id = message.get("id").cloned();
    let fail = |text: String| {
        eprintln!("driftstack mcp: {text}");
        if let Some(id) = &id {
            let _ = tx.send(
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": text}})
                    .to_string(),
            );
        }
    };
    let mut req = remote
        .http
        .post(&remote.endpoint)
        .bearer_auth(&remote.key)
        .header("accept", "application/json, text/event-stream")
        .json(&message);
    if let Some(v) = remote.protocol.lock().ok().and_then(|p| p.clone()) {
        req = req.header("mcp-protocol-version", v);
    }
    if let Some(s) = remote.session.lock().ok().and_then(|s| s.clone()) {
        req = req.header("mcp-session-id", s);
    }
    let response = match req.send().await {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot reach {}: {e}", remote.endpoint)),
    };
    let status = response.status();
    if let Some(s) = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        && let Ok(mut slot) = remote.session.lock()
    {
        *slot = Some(s.to_owned());
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match read_capped(response).await {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    if !status.is_success() {
        // A problem+json (401, 403, 429…): its code and sentence for the client.
        let problem: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let text = match (problem["code"].as_str(), problem["detail"].as_str()) {
            (Some(code), Some(detail)) => format!("{code}: {detail}"),
            _ => format!("the server answered HTTP {status}"),
        };
        return fail(text);
    }
    let messages: Vec<String> = if content_type.starts_with("text/event-stream") {
        events(&body)
    } else if body.trim().is_empty() {
        Vec::new()
    } else {
        vec![body]
    };
    for m in messages {
        let Ok(v) = serde_json::from_str::<Value>(&m) else {
            continue;
        };
        if let Some(version) = v["result"]["protocolVersion"].as_str()
            && message["method"] == "initialize"
            && let Ok(mut slot) = remote.protocol.lock()
        {
            *slot = Some(version.to_owned());
        }
        let _ = tx.send(v.to_string());
    }
}

enum Line {
    Text(String),
    TooLong,
    End,
}

/// The next line of `input` without its newline, read at most [`MAX_MESSAGE`] bytes at a time (a
/// longer line is skipped to its end); bytes that are not UTF-8 become U+FFFD and then a parse
/// error for the client.
async fn next_line(input: &mut (impl AsyncBufRead + Unpin)) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let n = (&mut *input)
        .take(MAX_MESSAGE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.len() > MAX_MESSAGE && buf.last() != Some(&b'\n') {
        // Skip the rest of the line.
        loop {
            let mut rest = Vec::new();
            let m = (&mut *input)
                .take(MAX_MESSAGE as u64)
                .read_until(b'\n', &mut rest)
                .await?;
            if m == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
        return Ok(Line::TooLong);
    }
    Ok(Line::Text(String::from_utf8_lossy(&buf).into_owned()))
}

/// The body of `response`, refused past [`MAX_ANSWER`] bytes.
async fn read_capped(mut response: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err("the server's answer is over 64 MiB".to_owned());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(format!("the answer broke off: {e}")),
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The `data` of each event in a complete event-stream body.
fn events(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut data = String::new();
    for line in body.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !data.is_empty() {
                out.push(std::mem::take(&mut data));
            }
        } else if let Some(rest) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Line, MAX_MESSAGE, events, next_line};

    #[tokio::test]
    async fn lines_are_read_within_the_limit_and_bad_bytes_are_not_fatal() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"a\":1}\n");
        input.extend(std::iter::repeat_n(b'x', MAX_MESSAGE + 10));
        input.extend_from_slice(b"\n\xff\xfe\n");
        let mut reader = tokio::io::BufReader::new(&input[..]);
        assert!(matches!(next_line(&mut reader).await, Ok(Line::Text(t)) if t == "{\"a\":1}\n"));
        assert!(matches!(next_line(&mut reader).await, Ok(Line::TooLong)));
        assert!(
            matches!(next_line(&mut reader).await, Ok(Line::Text(t)) if t.contains('\u{fffd}'))
        );
        assert!(matches!(next_line(&mut reader).await, Ok(Line::End)));
    }

    #[test]
    fn an_event_stream_gives_each_events_data() {
        let body =
            "id: 1\nretry: 3000\ndata:\n\ndata: {\"a\":1}\n\n: ping\ndata: {\"b\":\ndata: 2}\n";
        assert_eq!(events(body), vec!["{\"a\":1}", "{\"b\":\n2}"]);
    }
}
