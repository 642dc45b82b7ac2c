//! The MCP tools: their names, descriptions and input JSON Schemas. Names and schemas are part of
//! the public contract (docs/MCP.md lists each with an example): add, never rename.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};

use crate::permissions::{Scope, Scopes};
use serde_json::{Value, json};

/// The tools a key with `scopes` is offered: all of [`catalogue`], `evaluate` only with
/// `sessions:evaluate` (running script in a page is more than driving it).
pub fn catalogue_for(scopes: Scopes) -> Vec<Tool> {
    let evaluate = scopes.contains(Scope::SessionsEvaluate);
    catalogue()
        .iter()
        .filter(|t| evaluate || t.name != "evaluate")
        .cloned()
        .collect()
}

/// Every tool, in the order `tools/list` gives them (built once: every MCP request reads it).
pub fn catalogue() -> &'static [Tool] {
    static TOOLS: std::sync::LazyLock<Vec<Tool>> = std::sync::LazyLock::new(build);
    &TOOLS
}

fn build() -> Vec<Tool> {
    let session =
        || json!({"type": "string", "description": "The session (`ses_…`) from session_create."});
    let target = |verb: &str| {
        json!({
            "ref": {"type": "string", "pattern": "^e[0-9]{1,7}$",
                    "description": format!("The element to {verb}: its ref from the last snapshot, such as `e12`.")},
            "selector": {"type": "string", "description": format!("Or a CSS selector for the element to {verb}.")},
        })
    };
    let timeout = || {
        json!({"type": "integer", "minimum": 100, "maximum": 120000,
                            "description": "How long the step may take, in ms (default 10000)."})
    };
    let with = |base: Value, extra: Value| {
        let mut props = base.as_object().cloned().unwrap_or_default();
        props.extend(extra.as_object().cloned().unwrap_or_default());
        Value::Object(props)
    };
    vec![
        tool(
            "session_create",
            "Starts a headless Chromium session and returns its id; every other tool acts on a \
             session. Release it with session_release when done (it also ends by itself when idle).",
            json!({
                "profile_id": {"type": "string", "description": "Run on this saved browser identity (`prof_…`): its cookies and storage."},
                "persist": {"type": "boolean", "description": "With profile_id: save the session's state back into the profile at the end."},
                "viewport": {"type": "object", "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
                             "required": ["width", "height"], "additionalProperties": false,
                             "description": "The page size in CSS pixels (default 1280×720)."},
                "record": {"type": "boolean", "description": "Record the session for replay in the dashboard."},
                "locale": {"type": "string", "description": "A BCP 47 locale such as `en-US`."},
                "timezone": {"type": "string", "description": "An IANA time zone such as `Europe/Berlin`."},
                "timeout_seconds": {"type": "integer", "minimum": 1, "description": "The session's maximum lifetime (at most the plan's)."},
                "idle_timeout_seconds": {"type": "integer", "minimum": 1, "description": "End the session after this long without a tool call."},
            }),
            &[],
        ),
        tool(
            "session_list",
            "Lists the account's sessions, newest first.",
            json!({
                "status": {"type": "string", "enum": ["live", "all"], "description": "`live`: starting, active and closing sessions only; default all."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "At most this many (default 20)."},
            }),
            &[],
        ),
        tool(
            "session_release",
            "Ends a session and frees its browser.",
            json!({"session_id": session()}),
            &["session_id"],
        ),
        tool(
            "navigate",
            "Opens a URL in the session's page and waits for it to load.",
            json!({
                "session_id": session(),
                "url": {"type": "string", "description": "An http or https URL."},
                "wait_until": {"type": "string", "enum": ["load", "domcontentloaded", "networkidle"], "description": "When the page counts as loaded (default load)."},
                "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 120000, "description": "Default 30000."},
            }),
            &["session_id", "url"],
        ),
        tool(
            "back",
            "Goes back one page in the tab's history.",
            json!({"session_id": session(), "timeout_ms": timeout()}),
            &["session_id"],
        ),
        tool(
            "forward",
            "Goes forward one page in the tab's history.",
            json!({"session_id": session(), "timeout_ms": timeout()}),
            &["session_id"],
        ),
        tool(
            "reload",
            "Loads the page again.",
            json!({"session_id": session(), "timeout_ms": timeout()}),
            &["session_id"],
        ),
        tool(
            "snapshot",
            "The page as compact text: one line per landmark, heading, text and control, indented \
             by nesting, each control tagged with a ref such as `[e12] button \"Sign in\"`. The main \
             way to see the page: take one after every navigation or change, then act by ref.",
            json!({"session_id": session()}),
            &["session_id"],
        ),
        tool(
            "click",
            "Clicks an element (by ref from the last snapshot, or by selector) once it is visible.",
            with(
                json!({"session_id": session(), "timeout_ms": timeout()}),
                target("click"),
            ),
            &["session_id"],
        ),
        tool(
            "type",
            "Clicks a text field and types text into it key by key; `submit` then presses Enter.",
            with(
                json!({
                    "session_id": session(),
                    "text": {"type": "string", "description": "What to type (at most 10000 characters)."},
                    "submit": {"type": "boolean", "description": "Press Enter afterwards (default false)."},
                    "timeout_ms": timeout(),
                }),
                target("type into"),
            ),
            &["session_id", "text"],
        ),
        tool(
            "press_key",
            "Presses one key in the page, such as `Enter`, `Tab`, `Escape`, `ArrowDown` or `a`.",
            json!({"session_id": session(), "key": {"type": "string", "description": "The key's name."}, "timeout_ms": timeout()}),
            &["session_id", "key"],
        ),
        tool(
            "hover",
            "Moves the mouse over an element.",
            with(
                json!({"session_id": session(), "timeout_ms": timeout()}),
                target("hover"),
            ),
            &["session_id"],
        ),
        tool(
            "select_option",
            "Chooses the option with this value in a <select> element.",
            with(
                json!({
                    "session_id": session(),
                    "value": {"type": "string", "description": "The option's value (the snapshot lists them)."},
                    "timeout_ms": timeout(),
                }),
                target("choose in"),
            ),
            &["session_id", "value"],
        ),
        tool(
            "scroll",
            "Scrolls an element into view, or the page by x/y pixels (default: down by 600).",
            with(
                json!({
                    "session_id": session(),
                    "x": {"type": "number", "description": "Pixels to the right (negative: left)."},
                    "y": {"type": "number", "description": "Pixels down (negative: up)."},
                    "timeout_ms": timeout(),
                }),
                target("scroll into view"),
            ),
            &["session_id"],
        ),
        tool(
            "screenshot",
            "A picture of the page: the viewport (default), the full page, or one element.",
            with(
                json!({
                    "session_id": session(),
                    "full_page": {"type": "boolean", "description": "The whole scrollable page."},
                    "format": {"type": "string", "enum": ["png", "jpeg"], "description": "Default png; jpeg is smaller."},
                }),
                target("capture"),
            ),
            &["session_id"],
        ),
        tool(
            "extract",
            "The page's content as text: its main content as Markdown (default), its visible text, \
             or its HTML, cut to max_chars.",
            json!({
                "session_id": session(),
                "format": {"type": "string", "enum": ["markdown", "text", "html"], "description": "Default markdown."},
                "max_chars": {"type": "integer", "minimum": 100, "maximum": 200000, "description": "Cut the result here (default 20000)."},
            }),
            &["session_id"],
        ),
        tool(
            "wait_for",
            "Waits until text appears or disappears, an element reaches a state, a navigation \
             happens, a handoff is completed, or (alone) a number of milliseconds passes.",
            json!({
                "session_id": session(),
                "text": {"type": "string", "description": "Wait until the page's text contains this."},
                "text_gone": {"type": "string", "description": "Wait until the page's text no longer contains this."},
                "selector": {"type": "string", "description": "Wait for an element matching this CSS selector."},
                "state": {"type": "string", "enum": ["attached", "visible", "hidden"], "description": "With selector (default attached)."},
                "navigation": {"type": "boolean", "description": "Wait for a page load that began after the last command."},
                "handoff": {"type": "boolean", "description": "Wait until the person a handoff went to is done (alone)."},
                "time_ms": {"type": "integer", "minimum": 1, "maximum": 30000, "description": "Just wait this long (alone)."},
                "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 120000, "description": "Give up after this long (default 10000)."},
            }),
            &["session_id"],
        ),
        tool(
            "tabs",
            "The session's tabs (pages its sites opened count): `list` them, `select` the one \
             every other tool acts on, or `close` one (not the current one).",
            json!({
                "session_id": session(),
                "action": {"type": "string", "enum": ["list", "select", "close"], "description": "Default list."},
                "tab_id": {"type": "string", "description": "With select and close: the tab's id from list."},
            }),
            &["session_id"],
        ),
        tool(
            "evaluate",
            "Evaluates a JavaScript expression in the page (promises are awaited) and returns its \
             JSON value, cut to 20000 characters. Offered only to keys with `sessions:evaluate`.",
            json!({
                "session_id": session(),
                "expression": {"type": "string", "description": "The expression (1–100000 characters)."},
                "timeout_ms": timeout(),
            }),
            &["session_id", "expression"],
        ),
        tool(
            "downloads",
            "Lists the files the session's page downloaded (name, size, state, SHA-256).",
            json!({"session_id": session()}),
            &["session_id"],
        ),
        tool(
            "handoff",
            "Asks a person to take over the session (a CAPTCHA, a login, a judgement call): returns \
             a live link to share; then wait_for with `handoff: true` waits until they are done.",
            json!({
                "session_id": session(),
                "reason": {"type": "string", "description": "What the person should do (1–500 characters), shown to them."},
                "timeout_seconds": {"type": "integer", "minimum": 30, "maximum": 86400, "description": "Then the handoff expires (default 900)."},
            }),
            &["session_id", "reason"],
        ),
    ]
}

fn tool(
    name: &'static str,
    description: &'static str,
    properties: Value,
    required: &[&str],
) -> Tool {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), properties);
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    schema.insert("additionalProperties".into(), json!(false));
    Tool::new(name, description, Arc::new(schema))
}
