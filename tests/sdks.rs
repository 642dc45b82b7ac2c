//! The Python and TypeScript clients (sdk/python, sdk/typescript) against the real binary: their
//! own test suites (pytest; Node's test runner) run with this server's address, an API key and a
//! page to load, and the TypeScript declarations are type-checked with `tsc`. Each suite also
//! checks that every route its client names is in the committed openapi.json (the drift check).
//! `scripts/test` prepares the tools (a venv with pytest and the SDK installed by
//! `pip install ./sdk/python`; `npm ci` in sdk/typescript).

mod support;

use std::process::Command;

use support::{Backend, Env, pages};

/// Runs a tool, fails with its output unless it succeeds, and returns its stdout.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    eprintln!(
        "{what}: {}",
        stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    );
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_typescript_clients_pass_their_suites_against_the_server() {
    let root = env!("CARGO_MANIFEST_DIR");
    let site = pages::start().await;
    let mut env = Env::new(Backend::Sqlite);
    env.set("DRIFTSTACK_POOL_SIZE", "1");
    let s = env.start();
    let page = site.url("/");

    let python = std::env::var("DRIFTSTACK_SDK_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/driftstack/sdk-python-venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&python).exists(),
        "pytest is not installed: run scripts/test (it prepares {python})"
    );
    let report = run(
        "pytest sdk/python",
        Command::new(&python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "sdk/python/tests",
            ])
            .current_dir(root)
            // The working copy, not a stale install.
            .env("PYTHONPATH", format!("{root}/sdk/python"))
            .env("DRIFTSTACK_URL", &s.base)
            .env("DRIFTSTACK_API_KEY", s.key())
            .env("DRIFTSTACK_PAGE_URL", &page),
    );

    // Nothing may skip itself for want of the server.
    assert!(
        report.contains(" passed") && !report.contains("skipped"),
        "{report}"
    );

    let report = run(
        "node --test sdk/typescript",
        Command::new("node")
            .args(["--test", "test/"])
            .current_dir(format!("{root}/sdk/typescript"))
            .env("DRIFTSTACK_URL", &s.base)
            .env("DRIFTSTACK_API_KEY", s.key())
            .env("DRIFTSTACK_PAGE_URL", &page),
    );
    assert!(
        report.contains("# fail 0") && report.contains("# skipped 0"),
        "{report}"
    );
    let tsc = format!("{root}/sdk/typescript/node_modules/.bin/tsc");
    assert!(
        std::path::Path::new(&tsc).exists(),
        "TypeScript is not installed: run scripts/test (it runs npm ci in sdk/typescript)"
    );
    run(
        "tsc sdk/typescript",
        Command::new(&tsc)
            .args(["-p", "test/tsconfig.json"])
            .current_dir(format!("{root}/sdk/typescript")),
    );
    assert!(!s.log().contains("panicked"), "a panic in the server log");
}
