//! The live view's client messages (JSON text frames) and the CDP `Input.*` commands they become.
//! Coordinates are CSS pixels of the page's viewport (the size the `viewport` message reports;
//! the JPEG frames may be scaled down from it). Every field is checked: a message that is not
//! one of these answers an `invalid_message` error and is not sent on.

use serde::Deserialize;
use serde_json::{Value, json};

/// The largest text one `text` or `paste` message may insert.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// The largest client message.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Coordinates beyond this are refused (no viewport is that large).
const MAX_COORDINATE: f64 = 20_000.0;
/// A wheel step beyond this is refused.
const MAX_WHEEL: f64 = 10_000.0;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Ask for, give up or take over control.
    Control {
        action: ControlAction,
    },
    Mouse(Mouse),
    Key(Key),
    /// Insert text at the focus, as typing would (IME-style, one event).
    Text {
        text: String,
    },
    /// Paste text at the focus.
    Paste {
        text: String,
    },
    /// Watch (and control) another tab of the session.
    Tab {
        id: String,
    },
    /// The person is done: completes the session's handoff.
    Done,
}

#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ControlAction {
    Request,
    Release,
    TakeOver,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mouse {
    pub event: MouseEvent,
    pub x: f64,
    pub y: f64,
    #[serde(default)]
    pub button: Option<Button>,
    #[serde(default)]
    pub click_count: Option<u8>,
    #[serde(default)]
    pub delta_x: Option<f64>,
    #[serde(default)]
    pub delta_y: Option<f64>,
    /// Alt 1, Ctrl 2, Meta 4, Shift 8 (CDP's bits).
    #[serde(default)]
    pub modifiers: Option<u8>,
}

#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum MouseEvent {
    Move,
    Down,
    Up,
    Click,
    Wheel,
}

#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Button {
    Left,
    Middle,
    Right,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub event: KeyEvent,
    /// The DOM `key` (`a`, `Enter`, `ArrowLeft`).
    pub key: String,
    /// The DOM `code` (`KeyA`, `Enter`).
    #[serde(default)]
    pub code: Option<String>,
    /// What the key types, if anything (`a`, `\r`).
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub modifiers: Option<u8>,
}

#[derive(Debug, Deserialize, PartialEq, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum KeyEvent {
    Down,
    Up,
}

/// A message as text, or why it is refused (a sentence for the client).
pub fn parse(text: &str) -> Result<ClientMessage, String> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(format!("messages are limited to {MAX_MESSAGE_BYTES} bytes"));
    }
    let raw: Value =
        serde_json::from_str(text).map_err(|_| "messages must be JSON objects".to_owned())?;
    let kind = raw["type"].as_str().unwrap_or("").to_owned();
    let message: ClientMessage = serde_json::from_value(raw).map_err(|_| {
        if kind.is_empty() {
            "a message needs a \"type\"".to_owned()
        } else {
            format!(
                "a \"{kind}\" message has missing, unknown or mistyped fields (see docs/HANDOFF.md)"
            )
        }
    })?;
    check(&message)?;
    Ok(message)
}

fn check(message: &ClientMessage) -> Result<(), String> {
    match message {
        ClientMessage::Mouse(m) => {
            let coordinate = |v: f64| v.is_finite() && (0.0..=MAX_COORDINATE).contains(&v);
            if !coordinate(m.x) || !coordinate(m.y) {
                return Err(format!("x and y must be 0–{MAX_COORDINATE} CSS pixels"));
            }
            let wheel = |v: Option<f64>| v.is_none_or(|v| v.is_finite() && v.abs() <= MAX_WHEEL);
            if !wheel(m.delta_x) || !wheel(m.delta_y) {
                return Err(format!("delta_x and delta_y must be within ±{MAX_WHEEL}"));
            }
            if m.click_count.is_some_and(|c| c == 0 || c > 3) {
                return Err("click_count must be 1–3".into());
            }
        }
        ClientMessage::Key(k) => {
            if k.key.is_empty() || k.key.chars().count() > 32 {
                return Err("key must be 1–32 characters (a DOM key name)".into());
            }
            if k.code.as_ref().is_some_and(|c| c.chars().count() > 32) {
                return Err("code must be at most 32 characters".into());
            }
            if k.text.as_ref().is_some_and(|t| t.chars().count() > 4) {
                return Err(
                    "a key's text is at most 4 characters; send longer text as \"text\"".into(),
                );
            }
        }
        ClientMessage::Text { text } | ClientMessage::Paste { text } => {
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(format!("text is limited to {MAX_TEXT_CHARS} characters"));
            }
        }
        ClientMessage::Tab { id } => {
            if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err("id must be a tab id from a \"tabs\" message".into());
            }
        }
        ClientMessage::Control { .. } | ClientMessage::Done => {}
    }
    Ok(())
}

/// The CDP commands (method, params) an input message becomes.
pub fn commands(message: &ClientMessage) -> Vec<(&'static str, Value)> {
    match message {
        ClientMessage::Mouse(m) => mouse(m),
        ClientMessage::Key(k) => vec![key(k)],
        ClientMessage::Text { text } | ClientMessage::Paste { text } => {
            vec![("Input.insertText", json!({"text": text}))]
        }
        _ => Vec::new(),
    }
}

fn mouse(m: &Mouse) -> Vec<(&'static str, Value)> {
    let button = match m.button.unwrap_or(Button::Left) {
        Button::Left => "left",
        Button::Middle => "middle",
        Button::Right => "right",
    };
    let event = |kind: &str, button: &str| {
        json!({
            "type": kind, "x": m.x, "y": m.y, "button": button,
            "clickCount": m.click_count.unwrap_or(1),
            "modifiers": m.modifiers.unwrap_or(0),
        })
    };
    match m.event {
        MouseEvent::Move => vec![("Input.dispatchMouseEvent", event("mouseMoved", "none"))],
        MouseEvent::Down => vec![("Input.dispatchMouseEvent", event("mousePressed", button))],
        MouseEvent::Up => vec![("Input.dispatchMouseEvent", event("mouseReleased", button))],
        MouseEvent::Click => vec![
            ("Input.dispatchMouseEvent", event("mouseMoved", "none")),
            ("Input.dispatchMouseEvent", event("mousePressed", button)),
            ("Input.dispatchMouseEvent", event("mouseReleased", button)),
        ],
        MouseEvent::Wheel => vec![(
            "Input.dispatchMouseEvent",
            json!({
                "type": "mouseWheel", "x": m.x, "y": m.y,
                "deltaX": m.delta_x.unwrap_or(0.0), "deltaY": m.delta_y.unwrap_or(0.0),
                "modifiers": m.modifiers.unwrap_or(0),
            }),
        )],
    }
}

fn key(k: &Key) -> (&'static str, Value) {
    let text = k.text.as_deref().filter(|t| !t.is_empty());
    let kind = match (k.event, text) {
        (KeyEvent::Down, Some(_)) => "keyDown",
        (KeyEvent::Down, None) => "rawKeyDown",
        (KeyEvent::Up, _) => "keyUp",
    };
    let mut params = json!({
        "type": kind,
        "key": k.key,
        "code": k.code.clone().unwrap_or_default(),
        "modifiers": k.modifiers.unwrap_or(0),
        "windowsVirtualKeyCode": virtual_key_code(&k.key),
    });
    if let (KeyEvent::Down, Some(text)) = (k.event, text) {
        params["text"] = json!(text);
        params["unmodifiedText"] = json!(text);
    }
    ("Input.dispatchKeyEvent", params)
}

/// The Windows virtual key code Chromium wants for editing keys (Enter, Backspace, arrows…);
/// letters and digits map to their upper-case code point.
fn virtual_key_code(key: &str) -> u32 {
    match key {
        "Backspace" => 8,
        "Tab" => 9,
        "Enter" => 13,
        "Shift" => 16,
        "Control" => 17,
        "Alt" => 18,
        "Escape" => 27,
        " " => 32,
        "PageUp" => 33,
        "PageDown" => 34,
        "End" => 35,
        "Home" => 36,
        "ArrowLeft" => 37,
        "ArrowUp" => 38,
        "ArrowRight" => 39,
        "ArrowDown" => 40,
        "Delete" => 46,
        _ => {
            let mut chars = key.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphanumeric() => c.to_ascii_uppercase() as u32,
                _ => 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_into_input_commands() {
        let click = parse(r#"{"type":"mouse","event":"click","x":10,"y":20.5}"#).expect("click");
        let cmds = commands(&click);
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[1].1["type"], "mousePressed");
        assert_eq!(cmds[1].1["x"], 10.0);
        let key = parse(r#"{"type":"key","event":"down","key":"a","code":"KeyA","text":"a"}"#)
            .expect("key");
        assert_eq!(commands(&key)[0].1["type"], "keyDown");
        assert_eq!(commands(&key)[0].1["windowsVirtualKeyCode"], 65);
        let enter = parse(r#"{"type":"key","event":"down","key":"Enter"}"#).expect("enter");
        assert_eq!(commands(&enter)[0].1["type"], "rawKeyDown");
        let text = parse(r#"{"type":"paste","text":"hello"}"#).expect("paste");
        assert_eq!(
            commands(&text),
            vec![("Input.insertText", json!({"text": "hello"}))]
        );
        assert_eq!(
            parse(r#"{"type":"control","action":"take_over"}"#),
            Ok(ClientMessage::Control {
                action: ControlAction::TakeOver
            })
        );
    }

    #[test]
    fn bad_messages_are_refused_with_a_sentence() {
        for bad in [
            "not json",
            r#"{"x":1}"#,
            r#"{"type":"mouse","event":"click","x":-1,"y":0}"#,
            r#"{"type":"mouse","event":"click","x":1e9,"y":0}"#,
            r#"{"type":"mouse","event":"wheel","x":1,"y":1,"delta_y":1e12}"#,
            r#"{"type":"mouse","event":"fly","x":1,"y":1}"#,
            r#"{"type":"key","event":"down","key":""}"#,
            r#"{"type":"key","event":"down","key":"a","text":"too long"}"#,
            r#"{"type":"tab","id":"../x"}"#,
            r#"{"type":"text","text":"a","extra":1}"#,
            r#"{"type":"evaluate","expression":"1"}"#,
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(!err.contains("serde") && !err.contains("line 1"), "{err}");
        }
        let long = format!(
            r#"{{"type":"text","text":"{}"}}"#,
            "x".repeat(MAX_TEXT_CHARS + 1)
        );
        assert!(parse(&long).is_err());
    }
}
