//! Collecting a session page's logs from its CDP events: `console.*` calls, uncaught errors, and
//! one network entry per request (assembled from its sent / response / finished-or-failed
//! events, redirects as entries of their own). Entries are redacted here, before they go
//! anywhere, and handed to the session's [`LogSink`] without waiting.

use std::collections::HashMap;

use chromiumoxide::cdp::{
    browser_protocol::network::{
        EventLoadingFailed, EventLoadingFinished, EventRequestWillBeSent, EventResponseReceived,
        Response,
    },
    js_protocol::runtime::{EventConsoleApiCalled, EventExceptionThrown, RemoteObject},
};
use futures::StreamExt;
use serde_json::{Value, json};

use super::SessionPage;
use crate::logs::{
    LogEntry, LogKind, LogSink,
    har::{NetworkEntry, Timing},
    redact,
};

/// The longest text kept of one console message or error.
const MAX_TEXT: usize = 8 * 1024;

impl SessionPage {
    /// Starts collecting the page's console messages, page errors and network log into `sink`
    /// (until the page is handed back).
    pub async fn follow_logs(&mut self, sink: LogSink) -> anyhow::Result<()> {
        let mut console = self.page.event_listener::<EventConsoleApiCalled>().await?;
        let mut errors = self.page.event_listener::<EventExceptionThrown>().await?;
        let out = sink.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                let entry = tokio::select! {
                    Some(ev) = console.next() => console_entry(&ev),
                    Some(ev) = errors.next() => error_entry(&ev),
                    else => break,
                };
                out.send(entry);
            }
        }));

        let mut sent = self.page.event_listener::<EventRequestWillBeSent>().await?;
        let mut responses = self.page.event_listener::<EventResponseReceived>().await?;
        let mut finished = self.page.event_listener::<EventLoadingFinished>().await?;
        let mut failed = self.page.event_listener::<EventLoadingFailed>().await?;
        self.tasks.push(tokio::spawn(async move {
            let mut open = Requests::default();
            let mut tick = tokio::time::interval(LATE_RESPONSE);
            loop {
                // A request's events are taken in the order they happen (sent, response, end)
                // as far as the listeners deliver them so; a request that ended before its
                // response was seen waits a moment for it.
                tokio::select! {
                    biased;
                    Some(ev) = sent.next() => open.sent(&ev, &sink),
                    Some(ev) = responses.next() => open.response(&ev, &sink),
                    Some(ev) = finished.next() => {
                        open.end(ev.request_id.inner(), *ev.timestamp.inner(), Some(ev.encoded_data_length), None, &sink);
                    }
                    Some(ev) = failed.next() => {
                        let why = if ev.canceled == Some(true) { "canceled".to_owned() } else { ev.error_text.clone() };
                        open.end(ev.request_id.inner(), *ev.timestamp.inner(), None, Some(why), &sink);
                    }
                    _ = tick.tick() => open.give_up_waiting(&sink),
                    else => break,
                }
            }
        }));
        Ok(())
    }
}

fn network(e: NetworkEntry) -> LogEntry {
    LogEntry {
        kind: LogKind::Network,
        at: e.started_at,
        data: serde_json::to_value(&e).unwrap_or(Value::Null),
    }
}

/// How long a request that finished before its response was seen waits for it.
const LATE_RESPONSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Requests between their first event and their last.
#[derive(Default)]
struct Requests {
    open: HashMap<String, Open>,
    /// Finished before their response was seen: (the request, when it ended, since when it
    /// waits).
    waiting: HashMap<String, (Open, f64, std::time::Instant)>,
}

struct Open {
    entry: NetworkEntry,
    /// When it was sent (CDP monotonic seconds).
    sent: f64,
    /// Chromium's timing of it: its `requestTime` and phase offsets.
    timing: Option<(
        f64,
        chromiumoxide::cdp::browser_protocol::network::ResourceTiming,
    )>,
}

/// Requests followed at once; past this, new ones are not logged until others end.
const MAX_OPEN: usize = 2048;

impl Requests {
    fn sent(&mut self, ev: &EventRequestWillBeSent, sink: &LogSink) {
        let id = ev.request_id.inner().clone();
        // A redirect: the previous hop ends with the redirect's response.
        if let Some(redirect) = &ev.redirect_response
            && let Some(mut hop) = self.open.remove(&id)
        {
            apply_response(&mut hop, redirect);
            hop.entry.redirect_url = Some(redact::url(&ev.request.url));
            let entry = finish(hop, *ev.timestamp.inner(), None);
            sink.send(network(entry));
        }
        if self.open.len() >= MAX_OPEN {
            return;
        }
        let request_bytes = ev.request.post_data_entries.as_ref().map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.bytes.as_ref())
                .map(|b| {
                    // Base64 text: three bytes for every four characters.
                    let s: &str = b.as_ref();
                    (s.len() as u64 / 4) * 3
                })
                .sum()
        });
        let entry = NetworkEntry {
            request_id: id.clone(),
            method: ev.request.method.clone(),
            url: redact::url(&ev.request.url),
            resource_type: ev.r#type.as_ref().map(|t| t.as_ref().to_owned()),
            request_headers: redact::headers(ev.request.headers.inner()),
            request_bytes,
            started_at: (*ev.wall_time.inner() * 1000.0) as i64,
            ..NetworkEntry::default()
        };
        self.open.insert(
            id,
            Open {
                entry,
                sent: *ev.timestamp.inner(),
                timing: None,
            },
        );
    }

    fn response(&mut self, ev: &EventResponseReceived, sink: &LogSink) {
        let id = ev.request_id.inner();
        if let Some(open) = self.open.get_mut(id) {
            apply_response(open, &ev.response);
        } else if let Some((mut open, at, _)) = self.waiting.remove(id) {
            let bytes = open.entry.response_bytes;
            apply_response(&mut open, &ev.response);
            open.entry.response_bytes = bytes.max(open.entry.response_bytes);
            sink.send(network(finish(open, at, None)));
        }
    }

    fn end(
        &mut self,
        id: &str,
        at: f64,
        encoded: Option<f64>,
        failure: Option<String>,
        sink: &LogSink,
    ) {
        let Some(mut open) = self.open.remove(id) else {
            return;
        };
        if let Some(bytes) = encoded {
            open.entry.response_bytes = bytes.max(0.0) as u64;
        }
        if failure.is_none() && open.entry.status.is_none() {
            self.waiting
                .insert(id.to_owned(), (open, at, std::time::Instant::now()));
            return;
        }
        sink.send(network(finish(open, at, failure)));
    }

    /// Logs the requests whose response never came, as they are.
    fn give_up_waiting(&mut self, sink: &LogSink) {
        let late: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, (_, _, since))| since.elapsed() >= LATE_RESPONSE)
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            if let Some((open, at, _)) = self.waiting.remove(&id) {
                sink.send(network(finish(open, at, None)));
            }
        }
    }
}

fn apply_response(open: &mut Open, r: &Response) {
    let e = &mut open.entry;
    e.status = u16::try_from(r.status).ok();
    e.status_text = Some(r.status_text.clone());
    e.mime_type = Some(r.mime_type.clone());
    e.protocol = r.protocol.clone();
    e.response_headers = redact::headers(r.headers.inner());
    e.response_bytes = r.encoded_data_length.max(0.0) as u64;
    e.from_cache = r.from_disk_cache == Some(true) || r.from_service_worker == Some(true);
    e.remote_address = r.remote_ip_address.clone();
    open.timing = r.timing.as_ref().map(|t| (t.request_time, t.clone()));
}

fn finish(open: Open, at: f64, failure: Option<String>) -> NetworkEntry {
    let mut e = open.entry;
    e.duration_ms = ((at - open.sent) * 1000.0).max(0.0);
    e.failure = failure;
    e.timing = open.timing.map(|(start, t)| {
        let total = ((at - start) * 1000.0).max(0.0);
        Timing::from_offsets(
            (t.dns_start, t.dns_end),
            (t.connect_start, t.connect_end),
            (t.ssl_start, t.ssl_end),
            (t.send_start, t.send_end),
            t.receive_headers_end,
            total,
        )
    });
    e
}

fn console_entry(ev: &EventConsoleApiCalled) -> LogEntry {
    let text: Vec<String> = ev.args.iter().map(describe).collect();
    let frame = ev.stack_trace.as_ref().and_then(|s| s.call_frames.first());
    LogEntry {
        kind: LogKind::Console,
        at: *ev.timestamp.inner() as i64,
        data: json!({
            "level": serde_json::to_value(&ev.r#type).unwrap_or(Value::Null),
            "text": capped(redact::text(&text.join(" "))),
            "url": frame.map(|f| redact::url(&f.url)),
            "line": frame.map(|f| f.line_number + 1),
            "column": frame.map(|f| f.column_number + 1),
        }),
    }
}

fn error_entry(ev: &EventExceptionThrown) -> LogEntry {
    let d = &ev.exception_details;
    let text = d
        .exception
        .as_ref()
        .and_then(|e| e.description.clone())
        .unwrap_or_else(|| d.text.clone());
    LogEntry {
        kind: LogKind::Page,
        at: *ev.timestamp.inner() as i64,
        data: json!({
            "level": "error",
            "text": capped(redact::text(&text)),
            "url": d.url.as_deref().map(redact::url),
            "line": d.line_number + 1,
            "column": d.column_number + 1,
        }),
    }
}

/// A console argument as text: strings as they are, other values as JSON, objects by their
/// description.
fn describe(arg: &RemoteObject) -> String {
    match &arg.value {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => arg
            .unserializable_value
            .as_ref()
            .map(|u| u.inner().clone())
            .or_else(|| arg.description.clone())
            .unwrap_or_else(|| {
                serde_json::to_value(&arg.r#type)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            }),
    }
}

fn capped(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}
