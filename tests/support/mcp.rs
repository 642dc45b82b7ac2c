//! A bare MCP client over streamable HTTP (JSON-RPC POSTs to `/mcp`), for tests that need to
//! choose each request's node or send what a well-behaved SDK never would.

#![allow(dead_code)]

use serde_json::{Value, json};

/// One POST to `{base}/mcp` with `key` (none: no `Authorization`): the HTTP status and body.
pub async fn post(base: &str, key: Option<&str>, message: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&message);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let response = req.send().await.expect("POST /mcp");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// `initialize` as a client would open an MCP session.
pub async fn initialize(base: &str, key: &str) -> Value {
    let (status, body) = post(
        base,
        Some(key),
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "driftstack-tests", "version": "1"}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["result"].clone()
}

/// A `tools/call`: the JSON-RPC result (a tool error has `isError: true`).
pub async fn call(base: &str, key: &str, tool: &str, arguments: Value) -> Value {
    let (status, body) = post(
        base,
        Some(key),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": tool, "arguments": arguments}}),
    )
    .await;
    assert_eq!(status, 200, "{tool}: {body}");
    body["result"].clone()
}

/// Starts a session with `session_create` and answers its id.
pub async fn session(base: &str, key: &str, arguments: Value) -> String {
    let created = call(base, key, "session_create", arguments).await;
    created["structuredContent"]["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no session id in {created}"))
        .to_owned()
}

/// The text of a tool result.
pub fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tool error's `code` (panics on a success).
pub fn error_code(result: &Value) -> String {
    assert_eq!(result["isError"], true, "expected a tool error: {result}");
    result["structuredContent"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
