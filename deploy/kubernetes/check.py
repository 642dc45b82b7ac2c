#!/usr/bin/env python3
"""Checks the Kubernetes manifests (run by tests/deploy.rs; needs kubernetes-validate and PyYAML,
which scripts/test installs into its venv):

1. every resource validates, strictly, against the Kubernetes 1.37 schemas bundled with
   kubernetes-validate (no cluster, no network);
2. they fit together and fit the binary: selectors match pod labels, Services target declared
   ports, the HPA scales the API Deployment, probes hit /healthz and /readyz, every container
   has resource requests, API pods run `serve` with the embedded runner off and runner pods run
   `runner`, and every DRIFTSTACK_* variable set is one the server reads (api/src/config.rs).
"""

import pathlib
import re
import subprocess
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FILES = ["secret.yaml", "api.yaml", "runner.yaml"]
KNOWN = set(re.findall(r'"((?:DRIFTSTACK_[A-Z_]+)|DATABASE_URL|METRICS_TOKEN)"',
                       (ROOT / "api/src/config.rs").read_text()))
# Variables the manifests define only to build others (the downward API).
LOCAL = {"POD_NAME", "POD_NAMESPACE", "POD_IP"}

problems = []


def check(ok, message):
    if not ok:
        problems.append(message)


validator = pathlib.Path(sys.executable).with_name("kubernetes-validate")
done = subprocess.run(
    [str(validator), "--strict", "--quiet", "-k", "1.37.0", *[str(HERE / f) for f in FILES]],
    capture_output=True, text=True,
)
check(done.returncode == 0, f"kubernetes-validate: {done.stdout}{done.stderr}")

docs = [d for f in FILES for d in yaml.safe_load_all((HERE / f).read_text()) if d]
kustomized = yaml.safe_load((HERE / "kustomization.yaml").read_text())["resources"]
check(sorted(kustomized) == sorted(FILES), f"kustomization.yaml lists {kustomized}")
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
check(len(workloads) == 2, "one API Deployment and one runner StatefulSet")
secret_names = {s["metadata"]["name"] for s in by_kind.get("Secret", [])}
secret_keys = {k for s in by_kind.get("Secret", []) for k in s.get("stringData", {})}
check(secret_keys >= {"DATABASE_URL", "DRIFTSTACK_MASTER_KEY", "DRIFTSTACK_CLUSTER_TOKEN"},
      f"the Secret holds the shared settings: {secret_keys}")
for w in workloads:
    name = w["metadata"]["name"]
    labels = w["spec"]["template"]["metadata"]["labels"]
    check(w["spec"]["selector"]["matchLabels"].items() <= labels.items(), f"{name}: selector")
    for c in w["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        for var in env:
            check(var in KNOWN or var in LOCAL, f"{name}: {var} is not read by the server")
        for ref in c.get("envFrom", []):
            check(ref["secretRef"]["name"] in secret_names, f"{name}: unknown Secret")
        check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}: liveness /healthz")
        check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness /readyz")
        requests = c.get("resources", {}).get("requests", {})
        check({"cpu", "memory"} <= requests.keys(), f"{name}: resource requests")
        ports = {p["name"] for p in c.get("ports", [])}
        check("http" in ports, f"{name}: a port named http")
        listen = env.get("DRIFTSTACK_LISTEN", "")
        check(listen.endswith(":8080") and 8080 in [p["containerPort"] for p in c["ports"]],
              f"{name}: listens where the port says")
        if w["kind"] == "Deployment":
            check(c["args"] == ["serve"] and env.get("DRIFTSTACK_EMBEDDED_RUNNER") == "false",
                  f"{name}: API pods run serve without browsers")
        else:
            check(c["args"] == ["runner"], f"{name}: runner pods run `runner`")
            check("DRIFTSTACK_DATA_DIR" in env, f"{name}: a data dir keeps the runner id")
            sc = c.get("securityContext", {})
            check(env.get("DRIFTSTACK_BROWSER_SANDBOX", "on") != "off",
                  f"{name}: browsers run in the sandbox")
            check(sc.get("runAsNonRoot") is True and sc.get("allowPrivilegeEscalation") is False
                  and sc.get("capabilities", {}).get("drop") == ["ALL"],
                  f"{name}: runner pods run non-root without capabilities")
            check(sc.get("seccompProfile", {}).get("type") in ("Unconfined", "Localhost"),
                  f"{name}: the seccomp profile lets the sandbox create user namespaces")
public = [
    {e.get("value") for c in w["spec"]["template"]["spec"]["containers"]
     for e in c.get("env", []) if e["name"] == "DRIFTSTACK_PUBLIC_URL"}
    for w in workloads
]
check(all(len(p) == 1 for p in public) and len(set().union(*public)) == 1,
      f"API and runner pods hand out links under one public URL: {public}")
for svc in by_kind.get("Service", []):
    sel = svc["spec"]["selector"]
    matched = [w for w in workloads if sel.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
    check(len(matched) == 1, f"service {svc['metadata']['name']} selects one workload")
    for p in svc["spec"]["ports"]:
        check(p["targetPort"] == "http", f"service {svc['metadata']['name']}: targets the http port")
for hpa in by_kind.get("HorizontalPodAutoscaler", []):
    target = hpa["spec"]["scaleTargetRef"]
    check(any(w["kind"] == target["kind"] and w["metadata"]["name"] == target["name"] for w in workloads),
          "the HPA scales an existing workload")
    check(target["name"] == "driftstack-api", "the HPA scales the API, not the runners")

for p in problems:
    print(p)
print(f"{len(docs)} resources checked, {len(problems)} problems")
sys.exit(1 if problems else 0)
