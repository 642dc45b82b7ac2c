# Shared helpers for scripts/run and scripts/test: install what a fresh Debian machine lacks.
# Sourced, not executed.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: need root (or sudo) to run: $*" >&2; return 1; fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Debian's chromium and chromium-headless-shell (the runner's default: lighter and faster, see
# docs/PERFORMANCE.md).
ensure_chromium() {
  if [ -n "${DRIFTSTACK_CHROMIUM:-}" ] && [ -x "$DRIFTSTACK_CHROMIUM" ]; then return; fi
  local missing=()
  [ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
  [ -x /usr/lib/chromium/chromium-headless-shell ] || missing+=(chromium-headless-shell)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian's ${missing[*]}…" >&2
    apt_install "${missing[@]}"
  fi
}

# The browser sandbox (docs/SECURITY.md): bubblewrap, and setpriv (util-linux) to drop root.
# Without them the server refuses to start unless DRIFTSTACK_BROWSER_SANDBOX=off.
ensure_sandbox() {
  if [ "${DRIFTSTACK_BROWSER_SANDBOX:-on}" = off ]; then return; fi
  local missing=()
  command -v bwrap >/dev/null || [ -x /usr/bin/bwrap ] || missing+=(bubblewrap)
  command -v setpriv >/dev/null || [ -x /usr/bin/setpriv ] || missing+=(util-linux)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} for the browser sandbox…" >&2
    apt_install "${missing[@]}"
  fi
}

# Node.js and the stock Playwright/Puppeteer clients the CDP tests drive (no browser download).
ensure_node_clients() {
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -d tests/cdp/node_modules/puppeteer-core ] || [ ! -d tests/cdp/node_modules/playwright-core ] || [ ! -d tests/cdp/node_modules/har-validator ] || [ ! -d tests/cdp/node_modules/api-smart-diff ] || [ ! -d tests/cdp/node_modules/@modelcontextprotocol/sdk ]; then
    (cd tests/cdp && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --silent --no-audit --no-fund)
  fi
}

# A PostgreSQL server on 127.0.0.1:5432 for the test suite: start the local cluster, or install one.
ensure_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then return; fi
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "installing PostgreSQL…" >&2
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version main"; then
    as_root pg_createcluster "$version" main >/dev/null
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 -q || { echo "error: PostgreSQL did not start" >&2; return 1; }
  # A fresh install asks for a password on TCP; give the postgres role the one the tests use.
  as_root su postgres -c "psql -q -c \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
}

# localstripe (PyPI) in its own venv, for the billing tests' fake Stripe. The tests start it bound
# to 127.0.0.1 (its own launcher listens on every interface).
ensure_localstripe() {
  local venv="${DRIFTSTACK_LOCALSTRIPE_VENV:-$HOME/.cache/driftstack/localstripe-venv}"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import localstripe' 2>/dev/null; then
    echo "installing localstripe into $venv…" >&2
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q 'localstripe==1.15.10'
  fi
  export DRIFTSTACK_LOCALSTRIPE_PYTHON="$venv/bin/python"
}

# Schemathesis (PyPI) in its own venv, for the API fuzzing gate.
ensure_schemathesis() {
  local venv="${DRIFTSTACK_SCHEMATHESIS_VENV:-$HOME/.cache/driftstack/schemathesis-venv}"
  if [ ! -x "$venv/bin/schemathesis" ]; then
    echo "installing schemathesis into $venv…" >&2
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q 'schemathesis==4.32.5'
  fi
  export DRIFTSTACK_SCHEMATHESIS="$venv/bin/schemathesis"
}

# The SDKs' own test tools: pytest in a venv (where `pip install ./sdk/python` must work, as the
# README promises) and TypeScript for type-checking sdk/typescript. tests/sdks.rs runs both
# suites against the real binary. The same venv holds kubernetes-validate (tests/deploy.rs) and
# moto's S3 server (tests/cluster.rs).
ensure_sdk_tools() {
  local venv="${DRIFTSTACK_SDK_VENV:-$HOME/.cache/driftstack/sdk-python-venv}"
  if [ ! -x "$venv/bin/pytest" ]; then
    echo "installing pytest into $venv…" >&2
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q 'pytest==9.2.0'
  fi
  # Validates deploy/kubernetes offline against the bundled Kubernetes schemas (tests/deploy.rs).
  if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    "$venv/bin/pip" install -q 'kubernetes-validate==1.37.0'
  fi
  # A local S3-compatible server (moto's server mode) for profile blobs shared by runners
  # (tests/cluster.rs).
  if [ ! -x "$venv/bin/moto_server" ]; then
    "$venv/bin/pip" install -q 'moto[server]==5.2.5'
  fi
  # The official MCP Python SDK, a client of the built-in MCP server (tests/mcp.rs).
  if ! "$venv/bin/python" -c 'import mcp' 2>/dev/null; then
    "$venv/bin/pip" install -q 'mcp==2.3.0'
  fi
  "$venv/bin/pip" install -q --no-deps --force-reinstall ./sdk/python
  export DRIFTSTACK_SDK_PYTHON="$venv/bin/python"
  command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
  if [ ! -x sdk/typescript/node_modules/.bin/tsc ]; then
    (cd sdk/typescript && npm ci --silent --no-audit --no-fund)
  fi
}
