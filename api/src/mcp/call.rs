//! Running one MCP tool call: its arguments checked against the tool (unknown ones refused,
//! each a sentence), then the matching REST request(s), and the answer made small enough for a
//! model (a short text, structured content where it helps, an image for screenshots).

use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::rest::{Rest, ToolError};

/// What a tool call gives back.
pub struct Outcome {
    pub text: String,
    pub structured: Option<Value>,
    /// Base64 data and its MIME type.
    pub image: Option<(String, String)>,
}

impl Outcome {
    fn text(text: impl Into<String>) -> Self {
        Outcome {
            text: text.into(),
            structured: None,
            image: None,
        }
    }

    fn with(mut self, structured: Value) -> Self {
        self.structured = Some(structured);
        self
    }
}

/// The default time an element action may take over MCP: an agent with a stale ref should hear
/// so quickly rather than after the REST default.
const ACTION_TIMEOUT_MS: u64 = 10_000;

/// The largest image a tool result carries (base64 and JSON make it about 1.4× on the wire).
const MAX_IMAGE: usize = 10 << 20;

/// The arguments of one call, read field by field with sentences for every mistake.
struct Args<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    fn str(&self, field: &str) -> Result<Option<&'a str>, ToolError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ToolError::invalid(field, "must be a string")),
        }
    }

    fn required_str(&self, field: &str) -> Result<&'a str, ToolError> {
        self.str(field)?
            .ok_or_else(|| ToolError::invalid(field, "is required"))
    }

    fn bool(&self, field: &str) -> Result<Option<bool>, ToolError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ToolError::invalid(field, "must be true or false")),
        }
    }

    fn uint(&self, field: &str, min: u64, max: u64) -> Result<Option<u64>, ToolError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ToolError::invalid(
                    field,
                    format!("must be a whole number from {min} to {max}"),
                )),
            },
        }
    }

    fn number(&self, field: &str) -> Result<Option<f64>, ToolError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| ToolError::invalid(field, "must be a number")),
        }
    }

    /// The session the call acts on, checked before it goes into a path.
    fn session(&self) -> Result<String, ToolError> {
        let raw = self.required_str("session_id")?;
        raw.parse::<common::ids::SessionId>()
            .map(|id| id.to_string())
            .map_err(|_| ToolError::invalid("session_id", "is not a session id (ses_…)"))
    }

    /// How long one step may take (`timeout_ms`, default [`ACTION_TIMEOUT_MS`]).
    fn timeout(&self) -> Result<u64, ToolError> {
        Ok(self
            .uint("timeout_ms", 100, 120_000)?
            .unwrap_or(ACTION_TIMEOUT_MS))
    }

    /// The element a call must name.
    fn element(&self) -> Result<Target, ToolError> {
        self.target(true)?
            .ok_or_else(|| ToolError::internal("no target"))
    }

    /// The element a call acts on: a ref from the last snapshot or a selector, exactly one.
    fn target(&self, required: bool) -> Result<Option<Target>, ToolError> {
        match (self.str("ref")?, self.str("selector")?) {
            (Some(_), Some(_)) => Err(ToolError::invalid("ref", "give ref or selector, not both")),
            (Some(r), None) => {
                let valid = r.len() <= 8
                    && r.strip_prefix('e')
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if !valid {
                    return Err(ToolError::invalid(
                        "ref",
                        "must be a ref such as e12 from the last snapshot",
                    ));
                }
                Ok(Some(Target {
                    selector: format!("[data-ds-ref=\"{r}\"]"),
                    label: r.to_owned(),
                    is_ref: true,
                }))
            }
            (None, Some(s)) => Ok(Some(Target {
                selector: s.to_owned(),
                label: format!("`{s}`"),
                is_ref: false,
            })),
            (None, None) if required => Err(ToolError::invalid(
                "ref",
                "name the element: a ref from the last snapshot, or a selector",
            )),
            (None, None) => Ok(None),
        }
    }
}

struct Target {
    selector: String,
    label: String,
    is_ref: bool,
}

impl Target {
    /// A failed action on a ref says so in the agent's terms.
    fn explain(&self, mut err: ToolError) -> ToolError {
        if !self.is_ref {
            return err;
        }
        let stale = format!("`{}`", self.selector);
        let sentence = format!(
            "ref {} is not on the page (or not visible) any more: take a new snapshot",
            self.label
        );
        if let Some(Value::Object(failed)) = err.extra.get_mut("failed_action")
            && let Some(reason) = failed.get("reason").and_then(Value::as_str)
            && reason.contains(&stale)
        {
            failed.insert("reason".into(), Value::String(sentence));
        }
        err
    }
}

/// Runs the tool `name` with `arguments` for the caller behind `rest`.
pub async fn run(
    rest: &Rest,
    name: &str,
    arguments: &Map<String, Value>,
    known: &[String],
) -> Result<Outcome, ToolError> {
    if let Some(unknown) = arguments.keys().find(|k| !known.contains(k)) {
        return Err(ToolError::invalid(
            unknown,
            format!("is not an argument of {name}"),
        ));
    }
    let a = Args { map: arguments };
    match name {
        "session_create" => session_create(rest, arguments).await,
        "session_list" => session_list(rest, &a).await,
        "session_release" => {
            let id = a.session()?;
            rest.delete(&format!("/v1/sessions/{id}")).await?;
            Ok(Outcome::text(format!("Session {id} is released.")))
        }
        "navigate" => navigate(rest, &a).await,
        "back" | "forward" | "reload" => {
            let id = a.session()?;
            let timeout = a.timeout()?;
            actions(rest, &id, json!([{"type": name}]), timeout).await?;
            let done = match name {
                "back" => "Went back",
                "forward" => "Went forward",
                _ => "Reloaded the page",
            };
            Ok(Outcome::text(format!(
                "{done}; take a snapshot to see the page."
            )))
        }
        "snapshot" => {
            let id = a.session()?;
            let answer = rest
                .post(
                    &format!("/v1/sessions/{id}/capture"),
                    json!({"format": "snapshot"}),
                )
                .await?;
            Ok(Outcome::text(answer.text()))
        }
        "click" | "hover" => {
            let id = a.session()?;
            let target = a.element()?;
            let timeout = a.timeout()?;
            actions(
                rest,
                &id,
                json!([{"type": name, "selector": target.selector}]),
                timeout,
            )
            .await
            .map_err(|e| target.explain(e))?;
            let verb = if name == "click" {
                "Clicked"
            } else {
                "Hovered over"
            };
            Ok(Outcome::text(format!("{verb} {}.", target.label)))
        }
        "type" => {
            let id = a.session()?;
            let target = a.element()?;
            let text = a.required_str("text")?;
            let timeout = a.timeout()?;
            let mut steps =
                vec![json!({"type": "type", "selector": target.selector, "text": text})];
            let submit = a.bool("submit")?.unwrap_or(false);
            if submit {
                steps.push(json!({"type": "press", "key": "Enter"}));
            }
            actions(rest, &id, Value::Array(steps), timeout)
                .await
                .map_err(|e| target.explain(e))?;
            let and = if submit { " and pressed Enter" } else { "" };
            Ok(Outcome::text(format!(
                "Typed {} characters into {}{and}.",
                text.chars().count(),
                target.label
            )))
        }
        "press_key" => {
            let id = a.session()?;
            let key = a.required_str("key")?;
            let timeout = a.timeout()?;
            actions(rest, &id, json!([{"type": "press", "key": key}]), timeout).await?;
            Ok(Outcome::text(format!("Pressed {key}.")))
        }
        "select_option" => {
            let id = a.session()?;
            let target = a.element()?;
            let value = a.required_str("value")?;
            let timeout = a.timeout()?;
            actions(
                rest,
                &id,
                json!([{"type": "select", "selector": target.selector, "value": value}]),
                timeout,
            )
            .await
            .map_err(|e| target.explain(e))?;
            Ok(Outcome::text(format!(
                "Chose {value:?} in {}.",
                target.label
            )))
        }
        "scroll" => scroll(rest, &a).await,
        "screenshot" => screenshot(rest, &a).await,
        "extract" => extract(rest, &a).await,
        "wait_for" => wait_for(rest, &a).await,
        "downloads" => downloads(rest, &a).await,
        "evaluate" => evaluate(rest, &a).await,
        "tabs" => tabs(rest, &a).await,
        "handoff" => handoff(rest, &a).await,
        _ => Err(ToolError {
            status: 404,
            code: "unknown_tool".into(),
            detail: format!("There is no tool named {name:?}; tools/list names them."),
            extra: Map::new(),
        }),
    }
}

async fn actions(rest: &Rest, id: &str, steps: Value, timeout_ms: u64) -> Result<Value, ToolError> {
    rest.post(
        &format!("/v1/sessions/{id}/actions"),
        json!({"actions": steps, "timeout_ms": timeout_ms}),
    )
    .await?
    .json()
}

async fn session_create(rest: &Rest, arguments: &Map<String, Value>) -> Result<Outcome, ToolError> {
    // The REST API checks every field (and names the wrong ones).
    let s = rest
        .post("/v1/sessions", Value::Object(arguments.clone()))
        .await?
        .json()?;
    let id = s["id"].as_str().unwrap_or_default();
    let status = s["status"].as_str().unwrap_or_default();
    Ok(Outcome::text(format!(
        "Session {id} is {status} (ends by itself at {} or after {} s without a call). Use its id \
         with navigate, then snapshot.",
        s["expires_at"].as_str().unwrap_or("its timeout"),
        s["idle_timeout_seconds"]
    ))
    .with(json!({
        "session_id": id,
        "status": status,
        "expires_at": s["expires_at"],
        "idle_timeout_seconds": s["idle_timeout_seconds"],
    })))
}

async fn session_list(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let limit = a.uint("limit", 1, 100)?.unwrap_or(20);
    let mut query = format!("limit={limit}");
    if let Some(status) = a.str("status")? {
        if !["live", "all"].contains(&status) {
            return Err(ToolError::invalid("status", "must be live or all"));
        }
        query.push_str(&format!("&status={status}"));
    }
    let page = rest.get(&format!("/v1/sessions?{query}")).await?.json()?;
    let sessions: Vec<Value> = page["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|s| {
                    json!({"session_id": s["id"], "status": s["status"],
                           "created_at": s["created_at"], "ended_at": s["ended_at"]})
                })
                .collect()
        })
        .unwrap_or_default();
    let mut text = if sessions.is_empty() {
        "No sessions.".to_owned()
    } else {
        sessions
            .iter()
            .map(|s| {
                format!(
                    "{} {} created {}",
                    s["session_id"].as_str().unwrap_or_default(),
                    s["status"].as_str().unwrap_or_default(),
                    s["created_at"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    if page["has_more"] == json!(true) {
        text.push_str("\n… more exist (raise limit, or status: live)");
    }
    Ok(Outcome::text(text).with(json!({"sessions": sessions, "has_more": page["has_more"]})))
}

async fn navigate(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let id = a.session()?;
    let mut body = json!({"url": a.required_str("url")?});
    if let Some(w) = a.str("wait_until")? {
        body["wait_until"] = json!(w);
    }
    if let Some(t) = a.uint("timeout_ms", 100, 120_000)? {
        body["timeout_ms"] = json!(t);
    }
    let n = rest
        .post(&format!("/v1/sessions/{id}/navigate"), body)
        .await?
        .json()?;
    let status = n["status"]
        .as_u64()
        .map_or_else(|| "no HTTP status".to_owned(), |s| format!("HTTP {s}"));
    Ok(Outcome::text(format!(
        "Opened {} ({status}), title {:?}, in {} ms. Take a snapshot to see it.",
        n["url"].as_str().unwrap_or_default(),
        n["title"].as_str().unwrap_or_default(),
        n["elapsed_ms"]
    ))
    .with(json!({"url": n["url"], "status": n["status"], "title": n["title"]})))
}

async fn scroll(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let id = a.session()?;
    let target = a.target(false)?;
    let (x, y) = (a.number("x")?, a.number("y")?);
    let timeout = a.timeout()?;
    let step = match &target {
        Some(t) => {
            if x.is_some() || y.is_some() {
                return Err(ToolError::invalid("x", "give an element or x/y, not both"));
            }
            json!({"type": "scroll", "selector": t.selector})
        }
        None => {
            json!({"type": "scroll", "x": x.unwrap_or(0.0), "y": y.unwrap_or(if x.is_some() { 0.0 } else { 600.0 })})
        }
    };
    let done = actions(rest, &id, json!([step]), timeout).await;
    let done = match &target {
        Some(t) => done.map_err(|e| t.explain(e))?,
        None => done?,
    };
    let at = &done["results"][0]["value"];
    Ok(Outcome::text(format!(
        "Scrolled; the page is now at x={}, y={}.",
        at[0], at[1]
    )))
}

async fn screenshot(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let id = a.session()?;
    let target = a.target(false)?;
    let format = a.str("format")?.unwrap_or("png");
    if !["png", "jpeg"].contains(&format) {
        return Err(ToolError::invalid("format", "must be png or jpeg"));
    }
    let mut body = json!({"format": format});
    if a.bool("full_page")? == Some(true) {
        body["full_page"] = json!(true);
    }
    if let Some(t) = &target {
        body["selector"] = json!(t.selector);
    }
    let answer = rest
        .post(&format!("/v1/sessions/{id}/capture"), body)
        .await
        .map_err(|e| match &target {
            Some(t) => t.explain(e),
            None => e,
        })?;
    let mime = answer
        .content_type
        .split(';')
        .next()
        .unwrap_or("image/png")
        .to_owned();
    let size = answer.body.len();
    if size > MAX_IMAGE {
        return Err(ToolError {
            status: 413,
            code: "capture_too_large".into(),
            detail: format!(
                "The screenshot is {} MiB, more than a tool result may carry ({} MiB): take the \
                 viewport or one element, or use jpeg.",
                size >> 20,
                MAX_IMAGE >> 20
            ),
            extra: Map::new(),
        });
    }
    let data = base64::engine::general_purpose::STANDARD.encode(&answer.body);
    Ok(Outcome {
        text: format!("A {format} screenshot ({size} bytes)."),
        structured: None,
        image: Some((data, mime)),
    })
}

async fn extract(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let id = a.session()?;
    let format = a.str("format")?.unwrap_or("markdown");
    if !["markdown", "text", "html"].contains(&format) {
        return Err(ToolError::invalid(
            "format",
            "must be markdown, text or html",
        ));
    }
    let max = a.uint("max_chars", 100, 200_000)?.unwrap_or(20_000) as usize;
    let answer = rest
        .post(
            &format!("/v1/sessions/{id}/capture"),
            json!({"format": format}),
        )
        .await?;
    let text = answer.text();
    let total = text.chars().count();
    if total <= max {
        return Ok(Outcome::text(text));
    }
    let mut cut: String = text.chars().take(max).collect();
    cut.push_str(&format!(
        "\n\n… (cut at {max} of {total} characters; raise max_chars for more)"
    ));
    Ok(Outcome::text(cut))
}

async fn wait_for(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let id = a.session()?;
    let time = a.uint("time_ms", 1, 30_000)?;
    let mut body = Map::new();
    for field in ["text", "text_gone", "selector", "state"] {
        if let Some(v) = a.str(field)? {
            body.insert(field.into(), json!(v));
        }
    }
    if a.bool("navigation")? == Some(true) {
        body.insert("navigation".into(), json!(true));
    }
    if a.bool("handoff")? == Some(true) {
        body.insert("handoff".into(), json!("completed"));
    }
    if let Some(ms) = time {
        if !body.is_empty() {
            return Err(ToolError::invalid(
                "time_ms",
                "is a wait of its own: do not combine it with other conditions",
            ));
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(Outcome::text(format!("Waited {ms} ms.")));
    }
    if body.is_empty() {
        return Err(ToolError::invalid(
            "text",
            "name what to wait for: text, text_gone, selector, navigation, handoff or time_ms",
        ));
    }
    let timeout = a.timeout()?;
    body.insert("timeout_ms".into(), json!(timeout));
    let done = rest
        .post(&format!("/v1/sessions/{id}/wait"), Value::Object(body))
        .await?
        .json()?;
    Ok(Outcome::text(format!(
        "Done after {} ms.",
        done["waited_ms"]
    )))
}

async fn tabs(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let id = a.session()?;
    let action = a.str("action")?.unwrap_or("list");
    let tab = || -> Result<&str, ToolError> {
        let t = a
            .required_str("tab_id")
            .map_err(|_| ToolError::invalid("tab_id", "is required to select or close a tab"))?;
        if crate::routes::sessions::is_tab_id(t) {
            Ok(t)
        } else {
            Err(ToolError::invalid(
                "tab_id",
                "is not a tab id from the list",
            ))
        }
    };
    let page = match action {
        "list" => {
            if a.str("tab_id")?.is_some() {
                return Err(ToolError::invalid("tab_id", "is not used to list tabs"));
            }
            rest.get(&format!("/v1/sessions/{id}/tabs")).await?.json()?
        }
        "select" => rest
            .post(
                &format!("/v1/sessions/{id}/tabs/{}/select", tab()?),
                json!({}),
            )
            .await?
            .json()?,
        "close" => {
            let t = tab()?;
            rest.delete(&format!("/v1/sessions/{id}/tabs/{t}")).await?;
            rest.get(&format!("/v1/sessions/{id}/tabs")).await?.json()?
        }
        _ => {
            return Err(ToolError::invalid(
                "action",
                "must be list, select or close",
            ));
        }
    };
    let tabs: Vec<Value> = page["data"].as_array().cloned().unwrap_or_default();
    let text = tabs
        .iter()
        .map(|t| {
            format!(
                "{}{} {:?} {}",
                if t["current"] == true { "* " } else { "  " },
                t["id"].as_str().unwrap_or_default(),
                t["title"].as_str().unwrap_or_default(),
                t["url"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(
        Outcome::text(format!("Tabs (* is the one the tools act on):\n{text}"))
            .with(json!({"tabs": tabs})),
    )
}

async fn evaluate(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let id = a.session()?;
    let expression = a.required_str("expression")?;
    let timeout = a.timeout()?;
    let done = actions(
        rest,
        &id,
        json!([{"type": "evaluate", "expression": expression}]),
        timeout,
    )
    .await?;
    let value = done["results"][0]["value"].clone();
    let mut text = value.to_string();
    if text.chars().count() > 20_000 {
        text = text.chars().take(20_000).collect();
        text.push_str("… (cut at 20000 characters)");
    }
    Ok(Outcome::text(text))
}

async fn downloads(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let id = a.session()?;
    let page = rest
        .get(&format!("/v1/sessions/{id}/downloads?limit=50"))
        .await?
        .json()?;
    let files: Vec<Value> = page["data"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|f| {
                    json!({"download_id": f["id"], "filename": f["filename"], "size": f["size"],
                           "state": f["state"], "sha256": f["sha256"]})
                })
                .collect()
        })
        .unwrap_or_default();
    let text = if files.is_empty() {
        "No downloads in this session.".to_owned()
    } else {
        files
            .iter()
            .map(|f| {
                format!(
                    "{} {:?} {} bytes {}",
                    f["download_id"].as_str().unwrap_or_default(),
                    f["filename"].as_str().unwrap_or_default(),
                    f["size"],
                    f["state"].as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Outcome::text(text).with(json!({"downloads": files})))
}

async fn handoff(rest: &Rest, a: &Args<'_>) -> Result<Outcome, ToolError> {
    let id = a.session()?;
    let mut body = json!({"reason": a.required_str("reason")?});
    if let Some(t) = a.uint("timeout_seconds", 30, 86_400)? {
        body["timeout_seconds"] = json!(t);
    }
    let h = rest
        .post(&format!("/v1/sessions/{id}/handoff"), body)
        .await?
        .json()?;
    Ok(Outcome::text(format!(
        "Share this link with the person: {}\nIt expires at {}. Then wait_for with handoff: true.",
        h["live_url"].as_str().unwrap_or_default(),
        h["expires_at"].as_str().unwrap_or_default()
    ))
    .with(json!({"handoff_id": h["id"], "live_url": h["live_url"], "expires_at": h["expires_at"]})))
}
