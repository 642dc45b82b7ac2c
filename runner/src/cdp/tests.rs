//! Unit tests of the CDP allow-list and its parameter checks.

use super::*;

fn m(method: &str, params: Value) -> String {
    json!({"id": 1, "method": method, "params": params}).to_string()
}

fn session() -> Arc<SessionCdp> {
    Arc::new(SessionCdp::new(
        "/tmp/ds/browser-1/downloads".into(),
        "/tmp/ds/browser-1/uploads".into(),
        "CTX-OWN".into(),
    ))
}

#[test]
fn ordinary_commands_pass() {
    let s = session();
    let mut f = CdpFilter::new(s.clone());
    for method in [
        "Runtime.evaluate",
        "Page.captureScreenshot",
        "Target.getTargets",
        "Network.enable",
        "Browser.getVersion",
        "Emulation.setGeolocationOverride",
    ] {
        assert_eq!(f.judge(&m(method, json!({}))), Verdict::Forward, "{method}");
    }
    assert_eq!(
        f.judge(&m("Page.navigate", json!({"url": "https://example.com/"}))),
        Verdict::Forward
    );
    assert_eq!(
        f.judge(&m(
            "Target.createTarget",
            json!({"url": "about:blank", "browserContextId": "CTX-OWN"})
        )),
        Verdict::Forward
    );
    assert_eq!(
        f.judge(&m(
            "Tracing.start",
            json!({"transferMode": "ReturnAsStream"})
        )),
        Verdict::Forward
    );
}

#[test]
fn anything_not_listed_is_refused() {
    let s = session();
    let mut f = CdpFilter::new(s.clone());
    for method in [
        "Browser.crash",
        "Browser.crashGpuProcess",
        "Browser.executeBrowserCommand",
        "Browser.getBrowserCommandLine",
        "Browser.getHistograms",
        "SystemInfo.getInfo",
        "SystemInfo.getProcessInfo",
        "Extensions.loadUnpacked",
        "PWA.install",
        "Tethering.bind",
        "Target.exposeDevToolsProtocol",
        "Target.setRemoteLocations",
        "Target.sendMessageToTarget",
        "Storage.setStorageBucketTracking",
        "Made.up",
        "",
        "Page",
        "Page.",
        "Page.addCompilationCache",
        "Page.produceCompilationCache",
    ] {
        assert!(
            matches!(f.judge(&m(method, json!({}))), Verdict::Refuse(_)),
            "{method}"
        );
    }
    assert!(matches!(f.judge("not json"), Verdict::Refuse(_)));
}

#[test]
fn host_paths_and_local_schemes_are_refused() {
    let s = session();
    let mut f = CdpFilter::new(s.clone());
    for (method, params) in [
        ("Page.navigate", json!({"url": "file:///etc/passwd"})),
        ("Page.navigate", json!({"url": "chrome://settings"})),
        ("Page.navigate", json!({"url": " FILE:///etc/passwd"})),
        (
            "Target.createTarget",
            json!({"url": "view-source:http://x"}),
        ),
        (
            "Network.loadNetworkResource",
            json!({"url": "file:///etc/shadow"}),
        ),
        ("DOM.setFileInputFiles", json!({"files": ["/etc/passwd"]})),
        (
            "DOM.setFileInputFiles",
            json!({"files": ["/tmp/ds/browser-1/uploads/../../../master.key"]}),
        ),
        (
            "DOM.setFileInputFiles",
            json!({"files": ["/tmp/ds/browser-1/uploads"]}),
        ),
        (
            "Input.dispatchDragEvent",
            json!({"type": "drop", "x": 1, "y": 1, "data": {"items": [], "files": ["/var/lib/driftstack/master.key"], "dragOperationsMask": 1}}),
        ),
        (
            "Target.createBrowserContext",
            json!({"proxyServer": "http://10.0.0.1:80"}),
        ),
        ("Tracing.start", json!({"tracingBackend": "system"})),
        ("Tracing.start", json!({"perfettoConfig": "AAAA"})),
    ] {
        assert!(
            matches!(f.judge(&m(method, params.clone())), Verdict::Refuse(_)),
            "{method} {params}"
        );
    }
    // Drags without files and uploads inside the session's dir pass.
    assert_eq!(
        f.judge(&m(
            "Input.dispatchDragEvent",
            json!({"type": "dragOver", "x": 1, "y": 1, "data": {"items": [], "dragOperationsMask": 1}})
        )),
        Verdict::Forward
    );
    assert_eq!(
        f.judge(&m(
            "DOM.setFileInputFiles",
            json!({"files": ["/tmp/ds/browser-1/uploads/report.pdf"]})
        )),
        Verdict::Forward
    );
}

#[test]
fn other_contexts_are_refused_and_created_ones_learned() {
    let s = session();
    let mut f = CdpFilter::new(s.clone());
    for method in [
        "Storage.getCookies",
        "Target.createTarget",
        "Browser.setDownloadBehavior",
        "Target.disposeBrowserContext",
        "Browser.grantPermissions",
    ] {
        assert!(
            matches!(
                f.judge(&m(method, json!({"browserContextId": "CTX-OTHER"}))),
                Verdict::Refuse(_)
            ),
            "{method}"
        );
    }
    assert_eq!(
        f.judge(&m(
            "Storage.getCookies",
            json!({"browserContextId": "CTX-OWN"})
        )),
        Verdict::Forward
    );
    let create = json!({"id": 42, "method": "Target.createBrowserContext", "params": {}});
    assert_eq!(f.judge(&create.to_string()), Verdict::Forward);
    // A reply to another id teaches nothing.
    f.observe_reply(&json!({"id": 41, "result": {"browserContextId": "CTX-X"}}).to_string());
    assert!(matches!(
        f.judge(&m(
            "Storage.getCookies",
            json!({"browserContextId": "CTX-X"})
        )),
        Verdict::Refuse(_)
    ));
    f.observe_reply(&json!({"id": 42, "result": {"browserContextId": "CTX-NEW"}}).to_string());
    assert_eq!(
        f.judge(&m(
            "Storage.getCookies",
            json!({"browserContextId": "CTX-NEW"})
        )),
        Verdict::Forward
    );
    // Known to the session, so to a later connection too.
    let mut again = CdpFilter::new(s.clone());
    assert_eq!(
        again.judge(&m(
            "Target.disposeBrowserContext",
            json!({"browserContextId": "CTX-NEW"})
        )),
        Verdict::Forward
    );
}

#[test]
fn downloads_are_contained_in_the_session_dir() {
    let s = session();
    let mut f = CdpFilter::new(s.clone());
    // Every behaviour but `deny` becomes `allowAndName` into the session's dir: files named by
    // GUID are the ones the runner follows and limits.
    for behavior in ["allowAndName", "allow", "default"] {
        let v = f.judge(&m(
            "Browser.setDownloadBehavior",
            json!({"behavior": behavior, "downloadPath": "/etc", "eventsEnabled": true}),
        ));
        let Verdict::Rewrite(text) = v else {
            panic!("expected a rewrite: {v:?}")
        };
        let rewritten: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            rewritten["params"]["downloadPath"],
            "/tmp/ds/browser-1/downloads"
        );
        assert_eq!(
            rewritten["params"]["behavior"], "allowAndName",
            "{behavior}"
        );
        assert_eq!(rewritten["params"]["eventsEnabled"], true);
        assert_eq!(rewritten["id"], 1);
    }
    // The page-level command names no context: it may only deny.
    for behavior in ["deny", "allow"] {
        let v = f.judge(&m(
            "Page.setDownloadBehavior",
            json!({"behavior": behavior, "downloadPath": "/etc"}),
        ));
        let Verdict::Rewrite(text) = v else {
            panic!("expected a rewrite: {v:?}")
        };
        assert!(
            !text.contains("/etc") && text.contains("\"deny\""),
            "{text}"
        );
    }
    // Params that are not an object are refused, never indexed into.
    for params in [json!(1), json!("x"), json!([1])] {
        assert!(matches!(
            f.judge(&m("Page.setDownloadBehavior", params)),
            Verdict::Refuse(_)
        ));
    }
}

#[test]
fn a_context_the_client_created_may_not_download() {
    let s = session();
    let mut f = CdpFilter::new(s.clone());
    f.observe_reply(r#"{"id":7,"result":{"browserContextId":"CTX-EXTRA"}}"#);
    assert_eq!(
        f.judge(&m("Target.createBrowserContext", json!({}))),
        Verdict::Forward
    );
    f.observe_reply(r#"{"id":1,"result":{"browserContextId":"CTX-EXTRA"}}"#);
    let v = f.judge(&m(
        "Browser.setDownloadBehavior",
        json!({"behavior": "allow", "browserContextId": "CTX-EXTRA", "downloadPath": "/tmp/x"}),
    ));
    match v {
        Verdict::Rewrite(text) => assert!(
            text.contains("\"deny\"") && !text.contains("/tmp/x"),
            "{text}"
        ),
        // Not even known as this session's: refused outright, which is as good.
        Verdict::Refuse(_) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_context_limit_holds_across_connections() {
    let s = session();
    let mut first = CdpFilter::new(s.clone());
    for _ in 0..MAX_EXTRA_CONTEXTS - 1 {
        assert_eq!(
            first.judge(&m("Target.createBrowserContext", json!({}))),
            Verdict::Forward
        );
    }
    drop(first);
    let mut second = CdpFilter::new(s.clone());
    assert_eq!(
        second.judge(&m("Target.createBrowserContext", json!({}))),
        Verdict::Forward
    );
    assert!(matches!(
        second.judge(&m("Target.createBrowserContext", json!({}))),
        Verdict::Refuse(_)
    ));
    assert_eq!(
        second.judge(&m("Browser.close", json!({}))),
        Verdict::EndSession
    );
}

#[test]
fn oversized_messages_are_refused_unparsed() {
    let s = session();
    let mut f = CdpFilter::new(s.clone());
    let big = format!(
        "{{\"id\":1,\"method\":\"Runtime.evaluate\",\"params\":{{\"expression\":\"{}\"}}}}",
        "x".repeat(MAX_MESSAGE_BYTES)
    );
    assert!(matches!(f.judge(&big), Verdict::Refuse(_)));
    let reply: Value = serde_json::from_str(&error_reply(&big, "too big")).expect("json");
    assert!(reply["id"].is_null());
}

#[test]
fn replies_keep_id_and_session() {
    let msg = json!({"id": 7, "sessionId": "S", "method": "Browser.crash"}).to_string();
    let reply: Value = serde_json::from_str(&error_reply(&msg, "no")).expect("json");
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["sessionId"], "S");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|s| s.contains("no"))
    );
}

#[test]
fn the_session_context_is_the_default_one() {
    let s = session();
    let mut f = CdpFilter::new(s.clone());
    for method in [
        "Browser.grantPermissions",
        "Storage.getCookies",
        "Target.createTarget",
    ] {
        let v = f.judge(&m(method, json!({"permissions": ["geolocation"]})));
        let Verdict::Rewrite(text) = v else {
            panic!("{method}: expected a rewrite: {v:?}")
        };
        let msg: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(msg["params"]["browserContextId"], "CTX-OWN", "{method}");
    }
    // Without params at all too.
    let v = f.judge(&json!({"id": 3, "method": "Storage.getCookies"}).to_string());
    assert!(matches!(v, Verdict::Rewrite(t) if t.contains("CTX-OWN")));
}

#[test]
fn the_recorder_world_and_binding_are_reserved() {
    let mut f = CdpFilter::new(session());
    for (method, params) in [
        (
            "Page.createIsolatedWorld",
            json!({"frameId": "F", "worldName": "driftstack-recorder"}),
        ),
        (
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": "1", "worldName": "Driftstack-x"}),
        ),
        ("Runtime.addBinding", json!({"name": "__driftstackRecord"})),
        (
            "Runtime.addBinding",
            json!({"name": "b", "executionContextName": "driftstack-recorder"}),
        ),
        (
            "Runtime.removeBinding",
            json!({"name": "__driftstackRecord"}),
        ),
    ] {
        assert!(
            matches!(f.judge(&m(method, params.clone())), Verdict::Refuse(r) if r.contains("reserved")),
            "{method} {params} was not refused"
        );
    }
    for (method, params) in [
        (
            "Page.createIsolatedWorld",
            json!({"frameId": "F", "worldName": "__playwright_utility_world__"}),
        ),
        (
            "Runtime.addBinding",
            json!({"name": "__playwright__binding__"}),
        ),
    ] {
        assert_eq!(f.judge(&m(method, params)), Verdict::Forward);
    }
}

#[test]
fn long_method_names_are_refused_and_not_remembered() {
    let mut f = CdpFilter::new(session());
    let long = "Page.".to_owned() + &"x".repeat(200);
    assert!(matches!(f.judge(&m(&long, json!({}))), Verdict::Refuse(r) if r.len() < 100));
    assert_eq!(f.last_command().1, "");
    assert!(matches!(f.judge("not json"), Verdict::Refuse(_)));
    assert_eq!(f.last_command(), (None, ""));
}
