// The dashboard's only way to the server: the public /v1 API with the dashboard bearer token.
// Everything the UI does, an API key with the matching scopes can do too.
//
// Owns the tokens (in sessionStorage, so they end with the tab), refreshing them once on a 401,
// the step-up prompt (a 403 `step_up_required` opens it, then the request is sent again), and
// turning problem+json answers into `Problem` errors that views show.

const store = window.sessionStorage;

/** An RFC 9457 problem answer, thrown by `api`. `errors` holds field-level messages (422). */
export class Problem extends Error {
  constructor(problem, status) {
    super(problem.detail || problem.title || `The server answered ${status}.`);
    this.status = status;
    this.code = problem.code || null;
    this.errors = problem.errors || {};
    this.retryAfter = null;
  }
}

let stepUp = null;
let signedOut = null;

/** `handler()` resolves to true once the user stepped up, false if they gave up. */
export function onStepUp(handler) {
  stepUp = handler;
}

/** Called when the refresh token no longer works. */
export function onSignedOut(handler) {
  signedOut = handler;
}

export const session = {
  get access() {
    return store.getItem("ds.access");
  },
  get refresh() {
    return store.getItem("ds.refresh");
  },
  get account() {
    return store.getItem("ds.account");
  },
  set account(id) {
    if (id) store.setItem("ds.account", id);
    else store.removeItem("ds.account");
  },
  get user() {
    try {
      return JSON.parse(store.getItem("ds.user"));
    } catch {
      return null;
    }
  },
  /** Keeps a `TokenResponse`. */
  keep(tokens) {
    store.setItem("ds.access", tokens.access_token);
    store.setItem("ds.refresh", tokens.refresh_token);
    if (tokens.user) store.setItem("ds.user", JSON.stringify(tokens.user));
  },
  clear() {
    for (const k of ["ds.access", "ds.refresh", "ds.user", "ds.account"]) store.removeItem(k);
  },
  get signedIn() {
    return Boolean(store.getItem("ds.refresh"));
  },
};

async function problemOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = { title: response.statusText };
  }
  const p = new Problem(body, response.status);
  p.retryAfter = response.headers.get("retry-after");
  return p;
}

let refreshing = null;

/** Trades the refresh token for a new pair; concurrent callers share one trade. */
async function refresh() {
  refreshing ??= (async () => {
    const r = await fetch("/v1/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refresh }),
    });
    if (!r.ok) {
      session.clear();
      signedOut?.();
      throw await problemOf(r);
    }
    session.keep(await r.json());
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/**
 * Sends one API request. `body` is sent as JSON when given. Options: `raw` returns the Response
 * (for downloads), `idempotent` adds an `Idempotency-Key`, `anonymous` sends no credential.
 */
export async function api(method, path, body, options = {}) {
  const send = () => {
    const headers = { accept: "application/json, application/problem+json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (options.idempotent) headers["idempotency-key"] = crypto.randomUUID();
    if (!options.anonymous && session.access) headers.authorization = `Bearer ${session.access}`;
    if (!options.anonymous && session.account) headers["x-account-id"] = session.account;
    return fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  let r = await send();
  // Only an expired or unknown token (`unauthorized`) is refreshed and sent again: a wrong code
  // or password (`invalid_code`, `invalid_credentials`) sent twice would count twice.
  if (r.status === 401 && !options.anonymous && session.refresh) {
    const problem = await problemOf(r.clone());
    if (problem.code === "unauthorized") {
      await refresh();
      r = await send();
    }
  }
  if (r.status === 403 && stepUp) {
    const problem = await problemOf(r.clone());
    if (problem.code === "step_up_required") {
      if (!(await stepUp())) {
        throw new Problem({ code: "step_up_required", detail: "Not confirmed, so nothing was changed." }, 403);
      }
      r = await send();
    }
  }
  if (!r.ok) throw await problemOf(r);
  if (options.raw) return r;
  if (r.status === 204) return null;
  const type = r.headers.get("content-type") || "";
  return type.includes("json") ? r.json() : r.text();
}

/** Every item of a cursor-paginated list (up to `max`). */
export async function all(path, max = 500) {
  const items = [];
  let after = null;
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${sep}limit=100${after ? `&starting_after=${after}` : ""}`);
    items.push(...page.data);
    if (!page.has_more || page.data.length === 0 || items.length >= max) return items;
    after = page.data[page.data.length - 1].id;
  }
}
