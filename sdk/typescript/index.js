// A thin client for the Driftstack API, for Node 18+ and browsers (fetch and Web Crypto only).
// Types are in index.d.ts. Every method maps to one route of openapi.json (test/spec.test.mjs
// checks that each route it names exists). Problems become `DriftstackError`s; GETs, DELETEs and
// POSTs (which carry an automatic Idempotency-Key) are retried on 429/503 after `retry-after`
// and on network errors.

export class DriftstackError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "DriftstackError";
    this.status = status;
    this.code = problem.code ?? null;
    this.errors = problem.errors ?? {};
    this.problem = problem;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function retryDelay(header, attempt) {
  const seconds = Number(header);
  if (header !== null && Number.isFinite(seconds)) return Math.min(seconds, 60) * 1000;
  return Math.min(500 * 2 ** (attempt - 1), 8000);
}

const path = (template, ids) =>
  template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(String(ids[name])));

const compact = (fields) =>
  Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== null));

export class Client {
  constructor(apiKey, { baseUrl = "http://127.0.0.1:8080", maxRetries = 3, pageSize = 100, fetch: f } = {}) {
    this.apiKey = apiKey;
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.maxRetries = maxRetries;
    this.pageSize = pageSize;
    this.fetch = f ?? globalThis.fetch.bind(globalThis);
    this.sessions = new Sessions(this);
    this.profiles = new Profiles(this);
    this.usage = new Usage(this);
    this.webhooks = new Webhooks(this);
  }

  /**
   * Sends one request; resolves to the decoded JSON, or a Uint8Array with `{raw: true}`.
   * `content` sends raw bytes instead of a JSON body (file uploads; not idempotent).
   */
  async request(method, route, { body, query, raw = false, content } = {}) {
    const url = new URL(this.baseUrl + route);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    const headers = { authorization: `Bearer ${this.apiKey}`, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (content !== undefined) headers["content-type"] = "application/octet-stream";
    else if (method === "POST") headers["idempotency-key"] = crypto.randomUUID();
    for (let attempt = 1; ; attempt += 1) {
      let response;
      try {
        const payload = content !== undefined ? content : body === undefined ? undefined : JSON.stringify(body);
        response = await this.fetch(url, { method, headers, body: payload });
      } catch (err) {
        if (attempt <= this.maxRetries) {
          await sleep(retryDelay(null, attempt));
          continue;
        }
        throw new DriftstackError(0, { title: "connection failed", detail: String(err) });
      }
      if ((response.status === 429 || response.status === 503) && attempt <= this.maxRetries) {
        await sleep(retryDelay(response.headers.get("retry-after"), attempt));
        continue;
      }
      if (!response.ok) {
        let problem;
        try {
          problem = await response.json();
        } catch {
          problem = { title: response.statusText };
        }
        throw new DriftstackError(response.status, problem);
      }
      if (raw) return new Uint8Array(await response.arrayBuffer());
      const text = await response.text();
      return text ? JSON.parse(text) : null;
    }
  }

  /** Every item of a cursor-paginated list, fetched a page at a time. */
  async *paginate(route, query = {}) {
    const params = { ...query, limit: this.pageSize };
    for (;;) {
      const page = await this.request("GET", route, { query: params });
      yield* page.data;
      if (!page.has_more || page.data.length === 0) return;
      params.starting_after = page.data[page.data.length - 1].id;
    }
  }
}

export class Sessions {
  constructor(client) {
    this.c = client;
  }
  /** `POST /v1/sessions` */
  create(options = {}) {
    return this.c.request("POST", "/v1/sessions", { body: compact(options) });
  }
  /** `GET /v1/sessions/{id}` */
  get(id) {
    return this.c.request("GET", path("/v1/sessions/{id}", { id }));
  }
  /** `GET /v1/sessions` */
  list({ status } = {}) {
    return this.c.paginate("/v1/sessions", { status });
  }
  /** `POST /v1/sessions/{id}/navigate` */
  navigate(id, url, options = {}) {
    return this.c.request("POST", path("/v1/sessions/{id}/navigate", { id }), { body: compact({ url, ...options }) });
  }
  /** `POST /v1/sessions/{id}/actions` */
  actions(id, actions, options = {}) {
    return this.c.request("POST", path("/v1/sessions/{id}/actions", { id }), { body: compact({ actions, ...options }) });
  }
  /** `POST /v1/sessions/{id}/wait` */
  wait(id, condition) {
    return this.c.request("POST", path("/v1/sessions/{id}/wait", { id }), { body: compact(condition) });
  }
  /** `POST /v1/sessions/{id}/capture` */
  capture(id, options = { format: "png" }) {
    return this.c.request("POST", path("/v1/sessions/{id}/capture", { id }), { body: compact({ format: "png", ...options }), raw: true });
  }
  /** `GET /v1/sessions/{id}/downloads`: the session's downloads, oldest first. */
  downloads(id) {
    return this.c.paginate(path("/v1/sessions/{id}/downloads", { id }));
  }
  /** `GET /v1/sessions/{id}/downloads/{download_id}`: a completed download's bytes. */
  download(id, downloadId) {
    return this.c.request("GET", path("/v1/sessions/{id}/downloads/{download_id}", { id, download_id: downloadId }), { raw: true });
  }
  /** `GET /v1/sessions/{id}/logs`: log entries (`console`, `page`, `network`, `cdp`; all when `type` is omitted), oldest first. */
  logs(id, type) {
    return this.c.paginate(path("/v1/sessions/{id}/logs", { id }), type ? { type } : {});
  }
  /** `GET /v1/sessions/{id}/har`: the network log as a HAR 1.2 document. */
  har(id) {
    return this.c.request("GET", path("/v1/sessions/{id}/har", { id }));
  }
  /** `GET /v1/sessions/{id}/recording`: a recorded session's rrweb events so far. */
  recording(id) {
    return this.c.request("GET", path("/v1/sessions/{id}/recording", { id }));
  }
  /** `GET /v1/sessions/{id}/last-frame`: a JPEG of the page as the ended session ended. */
  lastFrame(id) {
    return this.c.request("GET", path("/v1/sessions/{id}/last-frame", { id }), { raw: true });
  }
  /** `PATCH /v1/sessions/{id}`: pauses (`false`) or resumes (`true`) the session's recording. */
  setRecording(id, record) {
    return this.c.request("PATCH", path("/v1/sessions/{id}", { id }), { body: { record } });
  }
  /** `POST /v1/sessions/{id}/live-links`: a one-time URL to the live view (`view` or `interact`). */
  createLiveLink(id, options = {}) {
    return this.c.request("POST", path("/v1/sessions/{id}/live-links", { id }), { body: compact({ mode: "view", ...options }) });
  }
  /** `DELETE /v1/sessions/{id}/live-links/{link_id}`: the link stops working; its viewers are disconnected. */
  revokeLiveLink(id, linkId) {
    return this.c.request("DELETE", path("/v1/sessions/{id}/live-links/{link_id}", { id, link_id: linkId }));
  }
  /** `POST /v1/sessions/{id}/handoff`: hands the session to a person; send them `live_url`. */
  handOff(id, reason, options = {}) {
    return this.c.request("POST", path("/v1/sessions/{id}/handoff", { id }), { body: compact({ reason, ...options }) });
  }
  /** `POST /v1/sessions/{id}/handoff/complete`: ends the handoff from the API. */
  completeHandoff(id) {
    return this.c.request("POST", path("/v1/sessions/{id}/handoff/complete", { id }));
  }
  /**
   * `POST /v1/sessions/{id}/wait` with `{handoff: "completed"}`, repeated until the person clicks
   * Done or `timeoutSeconds` pass (a `timeout` error); an expired handoff throws `handoff_expired`.
   */
  async waitForHandoff(id, timeoutSeconds = 900) {
    const deadline = Date.now() + timeoutSeconds * 1000;
    for (;;) {
      const left = deadline - Date.now();
      const step = Math.round(Math.max(100, Math.min(left, 120000)));
      try {
        await this.wait(id, { handoff: "completed", timeout_ms: step });
        return;
      } catch (err) {
        if (err.code !== "timeout" || Date.now() >= deadline) throw err;
      }
    }
  }
  /** `POST /v1/sessions/{id}/uploads`: places `content` (bytes) in the session as `filename`. */
  upload(id, filename, content) {
    return this.c.request("POST", path("/v1/sessions/{id}/uploads", { id }), { query: { filename }, content });
  }
  /** `DELETE /v1/sessions/{id}` */
  release(id) {
    return this.c.request("DELETE", path("/v1/sessions/{id}", { id }));
  }
}

export class Profiles {
  constructor(client) {
    this.c = client;
  }
  /** `POST /v1/profiles` */
  create(name, fingerprint) {
    return this.c.request("POST", "/v1/profiles", { body: compact({ name, fingerprint }) });
  }
  /** `GET /v1/profiles` */
  list() {
    return this.c.paginate("/v1/profiles");
  }
  /** `GET /v1/profiles/{id}` */
  get(id) {
    return this.c.request("GET", path("/v1/profiles/{id}", { id }));
  }
  /** `PATCH /v1/profiles/{id}` */
  update(id, fields) {
    return this.c.request("PATCH", path("/v1/profiles/{id}", { id }), { body: compact(fields) });
  }
  /** `DELETE /v1/profiles/{id}` */
  delete(id) {
    return this.c.request("DELETE", path("/v1/profiles/{id}", { id }));
  }
  /** `POST /v1/profiles/{id}/clone` */
  clone(id, name) {
    return this.c.request("POST", path("/v1/profiles/{id}/clone", { id }), { body: compact({ name }) });
  }
  /** `POST /v1/profiles/{id}/snapshots` */
  snapshot(id, name) {
    return this.c.request("POST", path("/v1/profiles/{id}/snapshots", { id }), { body: compact({ name }) });
  }
  /** `GET /v1/profiles/{id}/snapshots` */
  snapshots(id) {
    return this.c.paginate(path("/v1/profiles/{id}/snapshots", { id }));
  }
  /** `DELETE /v1/profiles/{id}/snapshots/{sid}` */
  deleteSnapshot(id, sid) {
    return this.c.request("DELETE", path("/v1/profiles/{id}/snapshots/{sid}", { id, sid }));
  }
  /** `POST /v1/profiles/{id}/snapshots/{sid}/restore` */
  restore(id, sid) {
    return this.c.request("POST", path("/v1/profiles/{id}/snapshots/{sid}/restore", { id, sid }));
  }
}

export class Usage {
  constructor(client) {
    this.c = client;
  }
  /** `GET /v1/usage` */
  get() {
    return this.c.request("GET", "/v1/usage");
  }
  /** `GET /v1/usage/features/{feature}/check` */
  checkFeature(feature) {
    return this.c.request("GET", path("/v1/usage/features/{feature}/check", { feature }));
  }
}

export class Webhooks {
  constructor(client) {
    this.c = client;
  }
  /** `POST /v1/webhooks/endpoints` */
  createEndpoint(url, options = {}) {
    return this.c.request("POST", "/v1/webhooks/endpoints", { body: compact({ url, ...options }) });
  }
  /** `GET /v1/webhooks/endpoints` */
  endpoints() {
    return this.c.paginate("/v1/webhooks/endpoints");
  }
  /** `GET /v1/webhooks/endpoints/{id}` */
  getEndpoint(id) {
    return this.c.request("GET", path("/v1/webhooks/endpoints/{id}", { id }));
  }
  /** `PATCH /v1/webhooks/endpoints/{id}` */
  updateEndpoint(id, fields) {
    return this.c.request("PATCH", path("/v1/webhooks/endpoints/{id}", { id }), { body: compact(fields) });
  }
  /** `DELETE /v1/webhooks/endpoints/{id}` */
  deleteEndpoint(id) {
    return this.c.request("DELETE", path("/v1/webhooks/endpoints/{id}", { id }));
  }
  /** `POST /v1/webhooks/endpoints/{id}/rotate-secret` */
  rotateSecret(id, graceSeconds) {
    return this.c.request("POST", path("/v1/webhooks/endpoints/{id}/rotate-secret", { id }), { body: compact({ grace_seconds: graceSeconds }) });
  }
  /** `POST /v1/webhooks/endpoints/{id}/test` */
  sendTest(id) {
    return this.c.request("POST", path("/v1/webhooks/endpoints/{id}/test", { id }));
  }
  /** `GET /v1/webhooks/events` */
  eventTypes() {
    return this.c.request("GET", "/v1/webhooks/events");
  }
  /** `GET /v1/webhooks/deliveries` */
  deliveries(filters = {}) {
    return this.c.paginate("/v1/webhooks/deliveries", filters);
  }
  /** `GET /v1/webhooks/deliveries/{id}` */
  getDelivery(id) {
    return this.c.request("GET", path("/v1/webhooks/deliveries/{id}", { id }));
  }
  /** `POST /v1/webhooks/deliveries/{id}/replay` */
  replay(id) {
    return this.c.request("POST", path("/v1/webhooks/deliveries/{id}/replay", { id }));
  }
  /** `POST /v1/webhooks/replay` */
  replayAll(options) {
    return this.c.request("POST", "/v1/webhooks/replay", { body: compact(options) });
  }
}

export class WebhookVerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

const b64decode = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const b64encode = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));

/**
 * Checks a delivery's Standard Webhooks signature with the endpoint's `whsec_…` secret and
 * resolves to the parsed event. `headers` is a Headers object or a plain object; `body` the raw
 * request body (string or bytes), exactly as received.
 */
export async function verifyWebhook(secret, headers, body, { toleranceSeconds = 300, now = Date.now() / 1000 } = {}) {
  const get = (name) => (typeof headers.get === "function" ? headers.get(name) : headers[name] ?? headers[name.toLowerCase()]);
  const id = get("webhook-id");
  const timestamp = Number(get("webhook-timestamp"));
  const signatures = get("webhook-signature");
  if (!id || !Number.isInteger(timestamp) || !signatures) throw new WebhookVerificationError("missing or malformed webhook headers");
  if (Math.abs(now - timestamp) > toleranceSeconds) throw new WebhookVerificationError("the timestamp is too old or too new");
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : new Uint8Array(body);
  const key = await crypto.subtle.importKey("raw", b64decode(secret.startsWith("whsec_") ? secret.slice(6) : secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + bytes.length);
  signed.set(prefix);
  signed.set(bytes, prefix.length);
  const expected = b64encode(await crypto.subtle.sign("HMAC", key, signed));
  const match = signatures.split(" ").some((candidate) => {
    const [version, value] = candidate.split(",", 2);
    if (version !== "v1" || !value || value.length !== expected.length) return false;
    let diff = 0;
    for (let i = 0; i < value.length; i += 1) diff |= value.charCodeAt(i) ^ expected.charCodeAt(i);
    return diff === 0;
  });
  if (!match) throw new WebhookVerificationError("no signature matches");
  return JSON.parse(new TextDecoder().decode(bytes));
}
