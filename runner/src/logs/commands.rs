//! The CDP command log of a raw-CDP connection: for each command a client sends, its method, its
//! size and its answer's, the latency and the error if any — never its parameters or results.
//! Events the browser sends are not logged one by one (a client that enables `Network` gets
//! thousands; the network log already has what they say).

use std::{collections::HashMap, time::Instant};

use common::Clock;
use serde_json::json;

use super::{LogEntry, LogKind, LogSink};

/// Commands awaiting their answer that one connection follows; more go unlogged.
const MAX_PENDING: usize = 1024;

struct Pending {
    method: String,
    bytes: usize,
    sent: Instant,
    at: i64,
}

/// One connection's command log.
pub struct CommandLog {
    sink: LogSink,
    clock: Clock,
    pending: HashMap<i64, Pending>,
}

impl CommandLog {
    pub fn new(sink: LogSink, clock: Clock) -> Self {
        CommandLog {
            sink,
            clock,
            pending: HashMap::new(),
        }
    }

    /// A command the client sent and the relay passed on; logged when its answer comes.
    pub fn sent(&mut self, id: Option<i64>, method: &str, bytes: usize) {
        let Some(id) = id else { return };
        if self.pending.len() >= MAX_PENDING {
            return;
        }
        self.pending.insert(
            id,
            Pending {
                method: method.to_owned(),
                bytes,
                sent: Instant::now(),
                at: self.clock.now_ms(),
            },
        );
    }

    /// A command the relay refused itself (answered with `reply_bytes` of error).
    pub fn refused(&mut self, method: &str, bytes: usize, reply_bytes: usize, reason: &str) {
        let at = self.clock.now_ms();
        self.sink.send(entry(
            method,
            bytes,
            reply_bytes,
            0.0,
            Some(format!("refused: {reason}")),
            at,
        ));
    }

    /// A message from the browser: the answer to a pending command logs it.
    pub fn received(&mut self, message: &str) {
        let Some(id) = answer_id(message) else { return };
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        let error = is_error(message).then(|| error_message(message));
        let latency = p.sent.elapsed().as_secs_f64() * 1000.0;
        self.sink.send(entry(
            &p.method,
            p.bytes,
            message.len(),
            latency,
            error,
            p.at,
        ));
    }
}

fn entry(
    method: &str,
    request_bytes: usize,
    response_bytes: usize,
    latency_ms: f64,
    error: Option<String>,
    at: i64,
) -> LogEntry {
    LogEntry {
        kind: LogKind::Cdp,
        at,
        data: json!({
            "method": method,
            "direction": "client_to_browser",
            "request_bytes": request_bytes,
            "response_bytes": response_bytes,
            "latency_ms": (latency_ms * 1000.0).round() / 1000.0,
            "error": error,
        }),
    }
}

/// The `id` of an answer (`{"id":N,…}` as Chromium writes them); `None` for events.
fn answer_id(message: &str) -> Option<i64> {
    let rest = message.strip_prefix("{\"id\":")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit() && c != '-')
        .map_or(rest, |end| &rest[..end]);
    digits.parse().ok()
}

fn is_error(message: &str) -> bool {
    message
        .strip_prefix("{\"id\":")
        .and_then(|rest| rest.find(',').map(|i| &rest[i + 1..]))
        .is_some_and(|rest| rest.starts_with("\"error\""))
}

fn error_message(message: &str) -> String {
    serde_json::from_str::<serde_json::Value>(message)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "error".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_told_from_events_by_their_first_key() {
        assert_eq!(answer_id(r#"{"id":42,"result":{}}"#), Some(42));
        assert_eq!(
            answer_id(r#"{"method":"Page.loadEventFired","params":{}}"#),
            None
        );
        assert!(is_error(
            r#"{"id":3,"error":{"code":-32601,"message":"nope"}}"#
        ));
        assert!(!is_error(r#"{"id":3,"result":{"error":1}}"#));
        assert_eq!(
            error_message(r#"{"id":3,"error":{"code":-32601,"message":"nope"}}"#),
            "nope"
        );
    }
}
