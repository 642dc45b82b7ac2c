//! The breaking-change guard (docs/VERSIONING.md): `openapi.json` against the last released spec
//! (`docs/api/v1.json`) with the `api-smart-diff` npm package (tests/cdp/api-diff.mjs) — no
//! breaking change unless it is listed as accepted; and the guard itself, on fixture specs made
//! from ours: a removed field and a tightened pattern fail it, an added optional field passes.

mod support;

use serde_json::{Value, json};
use support::TempDir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn spec() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{ROOT}/openapi.json")).expect("spec"))
        .expect("json")
}

/// The guard's verdict on `after` against `before` (files), with `accepted` breaks.
fn diff(before: &str, after: &str, accepted: Option<&str>) -> Value {
    let mut args = vec![before, after];
    args.extend(accepted);
    support::cdp::node("api-diff.mjs", &args)
}

fn breaking(verdict: &Value) -> Vec<String> {
    verdict["breaking"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|b| {
            format!(
                "{} ({})",
                b["path"].as_str().unwrap_or(""),
                b["description"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn the_spec_breaks_nothing_of_the_released_v1() {
    let verdict = diff(
        &format!("{ROOT}/docs/api/v1.json"),
        &format!("{ROOT}/openapi.json"),
        Some(&format!("{ROOT}/docs/api/accepted-breaks.json")),
    );
    assert!(
        breaking(&verdict).is_empty(),
        "breaking changes to /v1 that are not announced and accepted \
         (docs/VERSIONING.md; list them in docs/api/accepted-breaks.json once announced):\n{}",
        breaking(&verdict).join("\n")
    );
}

#[test]
fn the_guard_fails_removed_fields_and_tightened_patterns_and_passes_added_optional_fields() {
    let dir = TempDir::new("api-diff");
    let write = |name: &str, v: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, v.to_string()).expect("write");
        path.display().to_string()
    };
    let base = spec();
    let before = write("before.json", &base);

    let mut removed = base.clone();
    removed["components"]["schemas"]["SessionResponse"]["properties"]
        .as_object_mut()
        .expect("properties")
        .remove("create_ms");
    let verdict = diff(&before, &write("removed.json", &removed), None);
    let found = breaking(&verdict);
    assert!(
        found.iter().any(|b| b.contains("create_ms")),
        "a removed (optional) field: {found:?}"
    );

    let mut tightened = base.clone();
    tightened["components"]["schemas"]["UpdateMeRequest"]["properties"]["name"]["pattern"] =
        json!("^[a-z]+$");
    let found = breaking(&diff(&before, &write("tightened.json", &tightened), None));
    assert!(
        found.iter().any(|b| b.contains("pattern")),
        "a tightened pattern: {found:?}"
    );

    let mut added = base.clone();
    added["components"]["schemas"]["CreateLiveLinkRequest"]["properties"]["label"] =
        json!({"type": "string", "description": "An optional new field."});
    let verdict = diff(&before, &write("added.json", &added), None);
    assert!(
        breaking(&verdict).is_empty(),
        "an added optional field: {verdict}"
    );
    assert!(
        verdict["non_breaking"].as_u64().unwrap_or(0) > 0,
        "{verdict}"
    );

    // A new value of an enum in responses is additive (clients tolerate unknown values,
    // docs/VERSIONING.md); taking one away is not (clients may send it).
    let mut widened = base.clone();
    widened["components"]["schemas"]["Scope"]["enum"]
        .as_array_mut()
        .expect("the Scope enum")
        .push(json!("future:scope"));
    let verdict = diff(&before, &write("widened.json", &widened), None);
    assert!(
        breaking(&verdict).is_empty(),
        "a new response enum value: {verdict}"
    );
    let mut narrowed = base.clone();
    narrowed["components"]["schemas"]["Scope"]["enum"]
        .as_array_mut()
        .expect("the Scope enum")
        .retain(|v| v != "billing:read");
    let found = breaking(&diff(&before, &write("narrowed.json", &narrowed), None));
    assert!(!found.is_empty(), "a removed enum value passed the guard");

    // An announced break, once accepted, passes.
    let accepted = write(
        "accepted.json",
        &json!({"accepted": [{"path": "components/schemas/SessionResponse/properties/create_ms",
                              "announced": "2026-12-01", "reason": "test"}]}),
    );
    let verdict = diff(&before, &write("removed2.json", &removed), Some(&accepted));
    let left = breaking(&verdict);
    assert!(
        left.iter().all(|b| !b.contains("create_ms")),
        "an accepted break is let through: {left:?}"
    );
    assert!(verdict["accepted"].as_u64().unwrap_or(0) >= 1, "{verdict}");
}
