//! The session's tabs as the live view knows them, from the browser's target-discovery events:
//! every page target (the session's own, and those its page or its CDP clients opened), in the
//! order they appeared.

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct Tab {
    pub id: String,
    pub url: String,
    pub title: String,
}

/// The longest URL or title a `tabs` message carries.
const MAX_TEXT: usize = 200;

fn bounded(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[derive(Debug, Default)]
pub struct Tabs {
    tabs: Vec<Tab>,
}

/// What an event changed.
#[derive(Debug, PartialEq)]
pub enum Change {
    None,
    /// A tab opened (the view follows it).
    Opened(String),
    /// A tab's url or title changed.
    Updated,
    /// A tab closed.
    Closed(String),
}

impl Tabs {
    /// Applies a `Target.*` event; pages of browser contexts that `owned` refuses are not the
    /// session's (a reused browser hosts the next session in another context) and are ignored.
    pub fn apply(&mut self, method: &str, params: &Value, owned: impl Fn(&str) -> bool) -> Change {
        match method {
            "Target.targetCreated" | "Target.targetInfoChanged" => {
                let info = &params["targetInfo"];
                let context = info["browserContextId"].as_str().unwrap_or("");
                if info["type"] != "page" || !owned(context) {
                    return Change::None;
                }
                let Some(id) = info["targetId"].as_str() else {
                    return Change::None;
                };
                // Redacted like the logs (secret query values, fragments), and bounded: the page
                // chooses both.
                let tab = Tab {
                    id: id.to_owned(),
                    url: bounded(&runner::logs::redact::url(
                        info["url"].as_str().unwrap_or(""),
                    )),
                    title: bounded(info["title"].as_str().unwrap_or("")),
                };
                match self.tabs.iter_mut().find(|t| t.id == id) {
                    Some(t) if *t == tab => Change::None,
                    Some(t) => {
                        *t = tab;
                        Change::Updated
                    }
                    None => {
                        self.tabs.push(tab);
                        Change::Opened(id.to_owned())
                    }
                }
            }
            "Target.targetDestroyed" => {
                let id = params["targetId"].as_str().unwrap_or("");
                let before = self.tabs.len();
                self.tabs.retain(|t| t.id != id);
                if self.tabs.len() < before {
                    Change::Closed(id.to_owned())
                } else {
                    Change::None
                }
            }
            _ => Change::None,
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.tabs.iter().any(|t| t.id == id)
    }

    /// The newest tab left.
    pub fn newest(&self) -> Option<&str> {
        self.tabs.last().map(|t| t.id.as_str())
    }

    /// The `tabs` message for a viewer watching `active`.
    pub fn message(&self, active: &str) -> Value {
        let tabs: Vec<Value> = self
            .tabs
            .iter()
            .map(|t| json!({"id": t.id, "url": t.url, "title": t.title, "active": t.id == active}))
            .collect();
        json!({"type": "tabs", "tabs": tabs})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(id: &str, kind: &str, url: &str) -> Value {
        json!({"targetInfo": {"targetId": id, "type": kind, "url": url, "title": "", "browserContextId": "C1"}})
    }

    fn ours(context: &str) -> bool {
        context == "C1"
    }

    #[test]
    fn another_contexts_pages_and_secrets_stay_out() {
        let mut t = Tabs::default();
        let other = json!({"targetInfo": {"targetId": "X", "type": "page", "url": "https://next.test/", "title": "", "browserContextId": "C2"}});
        assert_eq!(t.apply("Target.targetCreated", &other, ours), Change::None);
        let secret = created("A", "page", "https://a.test/cb?token=abc#frag");
        t.apply("Target.targetCreated", &secret, ours);
        let long = json!({"targetInfo": {"targetId": "A", "type": "page", "url": "https://a.test/", "title": "t".repeat(5000), "browserContextId": "C1"}});
        t.apply("Target.targetInfoChanged", &long, ours);
        let m = t.message("A");
        assert!(
            !m.to_string().contains("abc") && !m.to_string().contains("next.test"),
            "{m}"
        );
        assert!(m["tabs"][0]["title"].as_str().unwrap_or("").chars().count() <= MAX_TEXT + 1);
    }

    #[test]
    fn pages_are_tracked_in_order_and_others_ignored() {
        let mut t = Tabs::default();
        assert_eq!(
            t.apply(
                "Target.targetCreated",
                &created("A", "page", "about:blank"),
                ours
            ),
            Change::Opened("A".into())
        );
        assert_eq!(
            t.apply(
                "Target.targetCreated",
                &created("W", "service_worker", ""),
                ours
            ),
            Change::None
        );
        assert_eq!(
            t.apply(
                "Target.targetCreated",
                &created("B", "page", "https://b.test/"),
                ours
            ),
            Change::Opened("B".into())
        );
        assert_eq!(
            t.apply(
                "Target.targetInfoChanged",
                &created("A", "page", "https://a.test/"),
                ours
            ),
            Change::Updated
        );
        assert_eq!(t.newest(), Some("B"));
        assert_eq!(
            t.apply("Target.targetDestroyed", &json!({"targetId": "B"}), ours),
            Change::Closed("B".into())
        );
        assert_eq!(t.newest(), Some("A"));
        assert_eq!(t.message("A")["tabs"][0]["url"], "https://a.test/");
        assert_eq!(t.message("A")["tabs"][0]["active"], true);
    }
}
