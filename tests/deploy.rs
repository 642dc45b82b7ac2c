//! The Kubernetes manifests in deploy/kubernetes: validated strictly against the Kubernetes
//! schemas (offline, kubernetes-validate) and checked to fit together and to fit the binary
//! (deploy/kubernetes/check.py says what exactly).

mod support;

#[test]
fn kubernetes_manifests_validate_and_fit_the_binary() {
    let python = support::tool("python");
    let out = std::process::Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/kubernetes/check.py"
        ))
        .output()
        .expect("run check.py");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("resources checked, 0 problems"), "{report}");
}
