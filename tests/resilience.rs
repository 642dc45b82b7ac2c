//! Resilience gates against the real binary: a bad-input corpus sent to every route of the
//! committed OpenAPI document (malformed JSON, wrong types, huge bodies, broken UTF-8, path
//! traversal and injection in ids, absurd limits, odd headers) must get 4xx problem+json answers
//! and leave no panic in the log; and a PostgreSQL outage under load must give 503 problems and
//! recover without restarting Driftstack.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Backend, Env, Server};

const NASTY_IDS: &[&str] = &[
    "..%2F..%2Fetc%2Fpasswd",
    "ses_00000000000000000000000000000000%00",
    "prof_%27%20OR%201%3D1--",
    "%E2%80%AE%F0%9F%98%80",
    "x",
];

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"))
        .expect("openapi.json");
    serde_json::from_str(&text).expect("json")
}

/// Every (method, path template, has body) of the spec, except the WebSocket routes.
fn operations() -> Vec<(String, String, bool)> {
    let doc = spec();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if path.ends_with("/cdp") || path.ends_with("/live") {
            continue;
        }
        for (method, op) in item.as_object().expect("item") {
            ops.push((
                method.clone(),
                path.clone(),
                op.get("requestBody").is_some(),
            ));
        }
    }
    ops
}

fn fill(path: &str, id: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e + 1)
            .unwrap_or(rest.len());
        out.push_str(id);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

async fn check(s: &Server, what: &str, r: support::Reply) {
    assert!(r.status < 500, "{what}: answered {} {}", r.status, r.text());
    if r.status >= 400 {
        let ct = r.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/problem+json"),
            "{what}: {} with content-type {ct}",
            r.status
        );
        let body = r.text();
        for leak in ["panicked", "sqlx", "SELECT ", "INSERT ", "/root/", "src/"] {
            assert!(
                !body.contains(leak),
                "{what}: the answer leaks {leak:?}: {body}"
            );
        }
    }
    let _ = s;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_corpus_gets_problems_and_no_panics() {
    let mut env = Env::new(Backend::Sqlite);
    env.set("DRIFTSTACK_AUTH_IP_PER_MINUTE", "1000000");
    env.set("DRIFTSTACK_MAX_BODY_BYTES", "1048576");
    let s = env.start();
    let key = s.key().to_owned();
    let huge = vec![b'['; 3 << 20];
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", b"{\"name\":".to_vec()),
        ("an array", b"[]".to_vec()),
        ("a string", b"\"hello\"".to_vec()),
        ("a number", b"12345678901234567890123".to_vec()),
        ("wrong types", br#"{"name": 5, "url": [], "email": {}, "limit": -1, "plan": null, "actions": "x", "timeout_seconds": -5, "viewport": {"width": "wide"}}"#.to_vec()),
        ("huge numbers", br#"{"timeout_seconds": 1e308, "idle_timeout_seconds": 18446744073709551616, "timeout_ms": -1}"#.to_vec()),
        ("broken UTF-8", b"{\"name\": \"\xff\xfe\xfd\"}".to_vec()),
        ("escaped NUL and lone surrogate", br#"{"name": "a\u0000b\ud800", "email": "\u202e@x"}"#.to_vec()),
        ("deep nesting", format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()),
        ("huge body", huge),
    ];
    for (method, template, has_body) in operations() {
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        for id in NASTY_IDS {
            let path = fill(&template, id);
            let what = format!("{method} {path}");
            if template.contains('{') {
                let r = s
                    .send(s.http.request(m.clone(), s.url(&path)).bearer_auth(&key))
                    .await;
                check(&s, &what, r).await;
                continue;
            }
            // Plain paths: only reads get junk queries (an empty POST may be valid and act).
            if method != "get" {
                continue;
            }
            // Absurd query values on the plain path.
            for q in [
                "?limit=-1",
                "?limit=99999999999999999999",
                "?starting_after=..%2F..%2Fx",
                "?since=%00&until=yesterday",
                "?status=%27%3B--",
            ] {
                let r = s
                    .send(
                        s.http
                            .request(m.clone(), s.url(&format!("{path}{q}")))
                            .bearer_auth(&key),
                    )
                    .await;
                check(&s, &format!("{what}{q}"), r).await;
            }
        }
        if !has_body {
            continue;
        }
        let path = fill(&template, "x");
        for (label, body) in &bodies {
            // An oversized body gets its own connection: the server may close it after the 413.
            let client = if *label == "huge body" {
                reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .expect("client")
            } else {
                s.http.clone()
            };
            let req = client
                .request(m.clone(), s.url(&path))
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .header("idempotency-key", "ünïcödé-ключ")
                .header("x-account-id", "../../acct")
                .body(body.clone());
            match req.send().await {
                Ok(resp) => {
                    let r = support::Reply::read(Ok(resp)).await;
                    check(&s, &format!("{method} {path} with {label}"), r).await;
                }
                // Refusing an oversized body early (413 by its Content-Length) may close the
                // connection before the client finished sending it.
                Err(e) if *label == "huge body" && e.is_request() => {}
                Err(e) => panic!("{method} {path} with {label}: {e}"),
            }
        }
        // The wrong content type.
        let r = s
            .send(
                s.http
                    .request(m.clone(), s.url(&path))
                    .bearer_auth(&key)
                    .header("content-type", "text/plain")
                    .body("name=x"),
            )
            .await;
        check(&s, &format!("{method} {path} as text/plain"), r).await;
    }
    // Odd credentials.
    for auth in [
        "Bearer ",
        "Bearer ds_live_",
        "Basic Zm9vOmJhcg==",
        "Bearer dsat_%00",
        &format!("Bearer {}", "x".repeat(10_000)),
    ] {
        let r = s
            .send(
                s.http
                    .get(s.url("/v1/sessions"))
                    .header("authorization", auth),
            )
            .await;
        check(&s, &format!("auth {:.20}", auth), r).await;
    }
    let log = s.log();
    assert!(!log.contains("panicked"), "a panic in the log");
}

/// Runs a command, panicking with its output on failure.
fn run(cmd: &mut std::process::Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private PostgreSQL cluster (its own data dir and port) that the test can stop and start.
struct PrivatePg {
    bin: std::path::PathBuf,
    data: support::TempDir,
    port: u16,
}

impl PrivatePg {
    fn bin_dir() -> Option<std::path::PathBuf> {
        let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("pg_ctl").exists())
            .collect();
        versions.sort();
        versions.pop()
    }

    fn user() -> Option<String> {
        // PostgreSQL refuses to run as root; use the postgres account then.
        if unsafe_is_root() {
            Some("postgres".into())
        } else {
            None
        }
    }

    fn cmd(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        match Self::user() {
            Some(u) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", &u, "--"]).arg(path);
                c
            }
            None => std::process::Command::new(path),
        }
    }

    fn start_new() -> PrivatePg {
        let bin = Self::bin_dir().expect("PostgreSQL binaries in /usr/lib/postgresql");
        let data = support::TempDir::new("pg");
        if let Some(u) = Self::user() {
            run(std::process::Command::new("chown").args([
                "-R",
                &u,
                &data.path().display().to_string(),
            ]));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let pg = PrivatePg { bin, data, port };
        let dir = pg.dir();
        run(pg
            .cmd("initdb")
            .args(["-D", &dir, "-A", "trust", "-U", "postgres"]));
        pg.start();
        pg
    }

    fn dir(&self) -> String {
        self.data.path().join("cluster").display().to_string()
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.data.path().display()
        );
        run(self
            .cmd("pg_ctl")
            .args(["-D", &self.dir(), "-o", &opts, "-w", "-l"])
            .arg(self.data.path().join("pg.log"))
            .arg("start"));
    }

    fn stop(&self) {
        run(self
            .cmd("pg_ctl")
            .args(["-D", &self.dir(), "-m", "immediate", "-w", "stop"]));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .args(["-D", &self.dir(), "-m", "immediate", "stop"])
            .output();
    }
}

fn unsafe_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_gives_503s_and_recovers_without_a_restart() {
    let pg = PrivatePg::start_new();
    let mut env = Env::new(Backend::Sqlite);
    env.set("DATABASE_URL", &pg.url());
    env.set("DRIFTSTACK_MASTER_KEY", &support::test_master_key());
    env.set("DRIFTSTACK_EMBEDDED_RUNNER", "false");
    let s = env.start();
    let key = s.key().to_owned();
    let r = s
        .post(&key, "/v1/profiles", serde_json::json!({"name": "before"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Warm the key cache's expiry out of the picture: reads below need the database.
    pg.stop();
    let mut statuses = Vec::new();
    for i in 0..6 {
        let r = if i % 2 == 0 {
            s.get(&key, "/v1/profiles").await
        } else {
            s.post(&key, "/v1/profiles", serde_json::json!({"name": "during"}))
                .await
        };
        if r.status >= 500 {
            assert_eq!(r.status, 503, "{}", r.text());
            r.assert_problem(503, "service_unavailable");
            assert!(r.header("retry-after").is_some());
        }
        statuses.push(r.status);
    }
    assert!(statuses.contains(&503), "{statuses:?}");
    assert_eq!(s.get(&key, "/readyz").await.status, 503);
    pg.start();
    let recovered = support::eventually(Duration::from_secs(30), async || {
        s.get(&key, "/v1/profiles").await.status == 200
    })
    .await;
    assert!(
        recovered,
        "requests succeed again without restarting Driftstack"
    );
    let r = s
        .post(&key, "/v1/profiles", serde_json::json!({"name": "after"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(!s.log().contains("panicked"));
}
