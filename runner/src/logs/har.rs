//! The network log's entry, as collected and stored, and its HAR 1.2 form: one HAR entry per
//! request with its timings. Bodies are not kept; header and query values are as redacted when
//! the entry was collected.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::redact;

/// One request of a session's page, once it finished or failed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NetworkEntry {
    pub request_id: String,
    pub method: String,
    /// Redacted ([`redact::url`]).
    pub url: String,
    pub resource_type: Option<String>,
    /// `None` when no response arrived (see `failure`).
    pub status: Option<u16>,
    pub status_text: Option<String>,
    pub mime_type: Option<String>,
    /// `http/1.1`, `h2`, …
    pub protocol: Option<String>,
    pub request_headers: Map<String, Value>,
    pub response_headers: Map<String, Value>,
    /// Bytes of the request body, when it had one.
    pub request_bytes: Option<u64>,
    /// Bytes received for it (headers and body, as encoded on the wire).
    pub response_bytes: u64,
    pub from_cache: bool,
    /// When it was sent (epoch milliseconds).
    pub started_at: i64,
    /// From sent to finished or failed.
    pub duration_ms: f64,
    pub timing: Option<Timing>,
    /// Why it failed (`net::ERR_…`), or was cancelled.
    pub failure: Option<String>,
    pub remote_address: Option<String>,
    /// Where a redirect sent it on.
    pub redirect_url: Option<String>,
}

/// HAR's phases of a request, in milliseconds; -1 where a phase did not happen.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Timing {
    pub blocked: f64,
    pub dns: f64,
    pub connect: f64,
    pub ssl: f64,
    pub send: f64,
    pub wait: f64,
    pub receive: f64,
}

impl Timing {
    /// The phases from Chromium's `ResourceTiming` (ms offsets from `request_time`, -1 when a
    /// phase did not happen) and the request's whole duration.
    pub fn from_offsets(
        dns: (f64, f64),
        connect: (f64, f64),
        ssl: (f64, f64),
        send: (f64, f64),
        headers_end: f64,
        total: f64,
    ) -> Self {
        let span = |(a, b): (f64, f64)| if a >= 0.0 && b >= a { b - a } else { -1.0 };
        let blocked = [dns.0, connect.0, send.0]
            .into_iter()
            .find(|t| *t >= 0.0)
            .unwrap_or(0.0);
        let send_span = span(send).max(0.0);
        Timing {
            blocked,
            dns: span(dns),
            connect: span(connect),
            ssl: span(ssl),
            send: send_span,
            wait: (headers_end - send.1).max(0.0),
            receive: (total - headers_end).max(0.0),
        }
    }

    /// When no timing was reported (a cached or failed request): all of it was waiting.
    pub fn waited(total: f64) -> Self {
        Timing {
            blocked: -1.0,
            dns: -1.0,
            connect: -1.0,
            ssl: -1.0,
            send: 0.0,
            wait: total.max(0.0),
            receive: 0.0,
        }
    }

    /// HAR's `time`: the phases' sum (`ssl` is inside `connect`).
    fn total(&self) -> f64 {
        [
            self.blocked,
            self.dns,
            self.connect,
            self.send,
            self.wait,
            self.receive,
        ]
        .into_iter()
        .filter(|t| *t >= 0.0)
        .sum()
    }
}

/// A HAR 1.2 document of `entries`, in the order given.
pub fn document(entries: &[NetworkEntry], creator_version: &str) -> Value {
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "Driftstack", "version": creator_version},
            "entries": entries.iter().map(entry).collect::<Vec<_>>(),
        }
    })
}

fn entry(e: &NetworkEntry) -> Value {
    let timing = e.timing.unwrap_or_else(|| Timing::waited(e.duration_ms));
    let version = http_version(e.protocol.as_deref());
    let mut out = json!({
        "startedDateTime": common::clock::rfc3339(e.started_at),
        "time": round(timing.total()),
        "request": {
            "method": e.method,
            "url": e.url,
            "httpVersion": version,
            "cookies": [],
            "headers": pairs(&e.request_headers),
            "queryString": query(&e.url),
            "headersSize": -1,
            "bodySize": e.request_bytes.map_or(if e.method == "GET" { 0 } else { -1 }, |b| b as i64),
        },
        "response": {
            "status": e.status.unwrap_or(0),
            "statusText": e.status_text.clone().unwrap_or_default(),
            "httpVersion": version,
            "cookies": [],
            "headers": pairs(&e.response_headers),
            "content": {
                "size": e.response_bytes,
                "mimeType": e.mime_type.clone().filter(|m| !m.is_empty()).unwrap_or_else(|| "x-unknown".into()),
            },
            "redirectURL": e.redirect_url.clone().unwrap_or_default(),
            "headersSize": -1,
            "bodySize": if e.status.is_some() { e.response_bytes as i64 } else { -1 },
        },
        "cache": {},
        "timings": {
            "blocked": round(timing.blocked),
            "dns": round(timing.dns),
            "connect": round(timing.connect),
            "ssl": round(timing.ssl),
            "send": round(timing.send),
            "wait": round(timing.wait),
            "receive": round(timing.receive),
        },
    });
    if let Some(obj) = out.as_object_mut() {
        if let Some(ip) = &e.remote_address {
            obj.insert("serverIPAddress".into(), json!(ip));
        }
        if let Some(t) = &e.resource_type {
            obj.insert("_resourceType".into(), json!(t));
        }
        if let Some(f) = &e.failure {
            obj.insert("_failure".into(), json!(f));
        }
        if e.from_cache {
            obj.insert("_fromCache".into(), json!(true));
        }
    }
    out
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn http_version(protocol: Option<&str>) -> String {
    match protocol.map(str::to_ascii_lowercase).as_deref() {
        Some("h2") | Some("http/2.0") => "HTTP/2.0".into(),
        Some("h3") | Some("http/3") => "HTTP/3".into(),
        Some("http/1.0") => "HTTP/1.0".into(),
        Some("data") | Some("blob") | Some("file") => "unknown".into(),
        _ => "HTTP/1.1".into(),
    }
}

fn pairs(headers: &Map<String, Value>) -> Vec<Value> {
    headers
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value.as_str().unwrap_or_default()}))
        .collect()
}

/// The (already redacted) URL's query as HAR pairs, decoded.
fn query(url: &str) -> Vec<Value> {
    let Some((_, q)) = url.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = if value == redact::REDACTED {
                value.to_owned()
            } else {
                redact::decode(value)
            };
            json!({"name": redact::decode(name), "value": value})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_add_up_to_the_time_and_missing_phases_are_minus_one() {
        let t = Timing::from_offsets(
            (-1.0, -1.0),
            (1.0, 3.0),
            (-1.0, -1.0),
            (3.0, 3.5),
            10.0,
            12.0,
        );
        assert_eq!(t.dns, -1.0);
        assert_eq!(t.ssl, -1.0);
        assert_eq!(
            (t.blocked, t.connect, t.send, t.wait, t.receive),
            (1.0, 2.0, 0.5, 6.5, 2.0)
        );
        assert_eq!(t.total(), 12.0);
    }

    #[test]
    fn an_entry_has_the_fields_har_requires() {
        let e = NetworkEntry {
            method: "GET".into(),
            url: "http://a.test/p?q=1&token=[redacted]".into(),
            status: Some(200),
            started_at: 1_700_000_000_123,
            duration_ms: 5.0,
            ..NetworkEntry::default()
        };
        let doc = document(&[e], "1");
        let entry = &doc["log"]["entries"][0];
        assert_eq!(entry["startedDateTime"], "2023-11-14T22:13:20.123Z");
        assert_eq!(
            entry["request"]["queryString"][1],
            json!({"name": "token", "value": "[redacted]"})
        );
        assert_eq!(entry["response"]["content"]["mimeType"], "x-unknown");
        assert_eq!(entry["time"], 5.0);
    }
}
