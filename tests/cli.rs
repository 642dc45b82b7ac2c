//! Tests of the binary's command line that need no server: configuration errors and the
//! OpenAPI document.

mod support;

use support::{Backend, Env};

#[test]
fn bad_configuration_stops_with_one_line_naming_the_variable() {
    for (var, value) in [
        ("DRIFTSTACK_LISTEN", "not-an-address"),
        ("DRIFTSTACK_POOL_SIZE", "lots"),
        ("DRIFTSTACK_MASTER_KEY", "tooshort"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("DRIFTSTACK_EGRESS_ALLOW", "10.0.0.0/99"),
    ] {
        let mut env = Env::new(Backend::Sqlite);
        env.set(var, value);
        let out = env.command(&["serve"]).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].starts_with(&format!("error: {var}: ")), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_port_in_use_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let mut env = Env::new(Backend::Sqlite);
    env.set("DRIFTSTACK_LISTEN", &addr);
    let out = env.command(&["serve"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DRIFTSTACK_LISTEN"));
}

#[test]
fn committed_openapi_matches_the_binary() {
    let env = Env::new(Backend::Sqlite);
    let out = env.command(&["openapi"]).output().expect("run");
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json");
    assert!(
        printed == committed,
        "openapi.json is stale: run `scripts/openapi` (or `driftstack openapi > openapi.json`)"
    );
    let doc: serde_json::Value = serde_json::from_str(&printed).expect("json");
    // Every operation documents the permission it needs (or says it needs none).
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let text = format!("{} {}", op["summary"], op["description"]);
            let public =
                ["/healthz", "/readyz", "/v1/version", "/metrics"].contains(&path.as_str());
            assert!(
                public || text.contains("Requires `"),
                "{method} {path} does not state its permission"
            );
        }
    }
}
