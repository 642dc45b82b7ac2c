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
    /// Applies a `Target.*` event.
    pub fn apply(&mut self, method: &str, params: &Value) -> Change {
        match method {
            "Target.targetCreated" | "Target.targetInfoChanged" => {
                let info = &params["targetInfo"];
                if info["type"] != "page" {
                    return Change::None;
                }
                let Some(id) = info["targetId"].as_str() else {
                    return Change::None;
                };
                let tab = Tab {
                    id: id.to_owned(),
                    url: info["url"].as_str().unwrap_or("").to_owned(),
                    title: info["title"].as_str().unwrap_or("").to_owned(),
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
        json!({"targetInfo": {"targetId": id, "type": kind, "url": url, "title": ""}})
    }

    #[test]
    fn pages_are_tracked_in_order_and_others_ignored() {
        let mut t = Tabs::default();
        assert_eq!(
            t.apply("Target.targetCreated", &created("A", "page", "about:blank")),
            Change::Opened("A".into())
        );
        assert_eq!(
            t.apply("Target.targetCreated", &created("W", "service_worker", "")),
            Change::None
        );
        assert_eq!(
            t.apply(
                "Target.targetCreated",
                &created("B", "page", "https://b.test/")
            ),
            Change::Opened("B".into())
        );
        assert_eq!(
            t.apply(
                "Target.targetInfoChanged",
                &created("A", "page", "https://a.test/")
            ),
            Change::Updated
        );
        assert_eq!(t.newest(), Some("B"));
        assert_eq!(
            t.apply("Target.targetDestroyed", &json!({"targetId": "B"})),
            Change::Closed("B".into())
        );
        assert_eq!(t.newest(), Some("A"));
        assert_eq!(t.message("A")["tabs"][0]["url"], "https://a.test/");
        assert_eq!(t.message("A")["tabs"][0]["active"], true);
    }
}
