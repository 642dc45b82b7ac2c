// Types of the Driftstack client (index.js). Field names are the API's (openapi.json).

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  instance?: string;
  errors?: Record<string, string>;
}

export class DriftstackError extends Error {
  readonly status: number;
  readonly code: string | null;
  readonly errors: Record<string, string>;
  readonly problem: Problem;
}

export interface ClientOptions {
  baseUrl?: string;
  maxRetries?: number;
  pageSize?: number;
  fetch?: typeof fetch;
}

export interface Page<T> {
  data: T[];
  has_more: boolean;
}

export interface Viewport {
  width: number;
  height: number;
}

export interface SessionUsage {
  navigations: number;
  actions: number;
  captures: number;
  requests: number;
  bytes_received: number;
  bytes_sent: number;
  blocked_requests: number;
  egress_denied: number;
}

export interface Session {
  id: string;
  status: string;
  created_at: string;
  started_at?: string | null;
  ended_at?: string | null;
  end_reason?: string | null;
  expires_at: string;
  timeout_seconds: number;
  idle_timeout_seconds: number;
  runner_id: string;
  create_ms?: number | null;
  /** For Playwright's `chromium.connectOverCDP(url)` and Puppeteer's `connect({browserWSEndpoint})`. */
  connect_url?: string | null;
  options: Record<string, unknown>;
  usage: SessionUsage;
  /** `truncated`: the logs reached the plan's `max_session_log_bytes`; later entries were not kept. */
  logs: { truncated: boolean };
  /** `null` unless the session was created with `record: true`. */
  recording: { state: "recording" | "paused" | "complete"; truncated: boolean; bytes: number } | null;
  /** The latest handoff to a person; `null` when none was requested. */
  handoff: SessionHandoff | null;
}

export interface SessionHandoff {
  id: string;
  /** `requested` while the session is `waiting_for_human`. */
  state: "requested" | "completed" | "expired";
  reason: string;
  mode: "view" | "interact";
  live_link_id: string | null;
  requested_at: string;
  expires_at: string;
  ended_at: string | null;
}

export interface LiveLink {
  id: string;
  session_id: string;
  mode: "view" | "interact";
  /** One-time URL of the live page (410 once opened, revoked, expired or the session ended). */
  url: string;
  created_at: string;
  expires_at: string;
}

export interface Handoff {
  id: string;
  session_id: string;
  state: "requested" | "completed" | "expired";
  reason: string;
  mode: "view" | "interact";
  /** Send this to the person. */
  live_url: string;
  live_link_id: string;
  requested_at: string;
  expires_at: string;
}

export interface CreateSessionOptions {
  profile_id?: string;
  persist?: boolean;
  viewport?: Viewport;
  user_agent?: string;
  locale?: string;
  timezone?: string;
  timeout_seconds?: number;
  idle_timeout_seconds?: number;
  block?: string[];
  extra_headers?: Record<string, string>;
  proxy?: { server: string; username?: string; password?: string };
  /** Record the session for replay (rrweb); `GET …/recording`. */
  record?: boolean;
  record_options?: { mask_all_inputs?: boolean };
}

export interface NavigateOptions {
  wait_until?: "load" | "domcontentloaded" | "networkidle";
  timeout_ms?: number;
}

export interface NavigateResult {
  /** The URL after redirects. */
  url: string;
  /** HTTP status of the main document, when there was a response. */
  status?: number | null;
  title: string;
  elapsed_ms: number;
}

export type Action = { type: string; [key: string]: unknown };

export interface ActionsResult {
  results: Array<{ type?: string; value?: unknown; [key: string]: unknown }>;
  [key: string]: unknown;
}

export interface WaitCondition {
  timeout_ms: number;
  selector?: string;
  state?: "attached" | "visible" | "hidden";
  navigation?: boolean;
  network_idle?: boolean;
  /** Until the page's visible text contains this. */
  text?: string;
  /** Until the page's visible text no longer contains this. */
  text_gone?: string;
  /** Until the person the session was handed to clicks Done (see `waitForHandoff`). */
  handoff?: "completed";
}

export interface CaptureOptions {
  /** `markdown`: the main content; `snapshot`: an outline with element refs (`data-ds-ref`). */
  format?: "png" | "jpeg" | "webp" | "pdf" | "html" | "text" | "markdown" | "snapshot";
  full_page?: boolean;
  selector?: string;
  quality?: number;
  timeout_ms?: number;
}

export interface StateSummary {
  cookies: number;
  cookies_by_domain: Record<string, number>;
  origins: number;
  local_storage_items: number;
  bytes: number;
}

export interface Fingerprint {
  user_agent?: string | null;
  viewport?: Viewport | null;
  locale?: string | null;
  timezone?: string | null;
  geolocation?: { latitude: number; longitude: number; accuracy?: number | null } | null;
  extra_headers?: Record<string, string>;
}

export interface Profile {
  id: string;
  name: string;
  fingerprint: Fingerprint & { extra_header_names: string[] };
  state?: StateSummary | null;
  state_saved_at?: string | null;
  live_session_id?: string | null;
  last_save_error?: string | null;
  created_at: string;
  updated_at: string;
}

export interface Snapshot {
  id: string;
  profile_id: string;
  name?: string | null;
  source: string;
  session_id?: string | null;
  state: StateSummary;
  created_at: string;
}

export interface Meter {
  used: number;
  limit?: number | null;
  percent_used?: number | null;
}

export interface UsageReport {
  tier: string;
  period_start: string;
  period_end: string;
  meters: { sessions: Meter; session_minutes: Meter; api_calls: Meter; data_transfer_bytes: Meter; download_bytes: Meter; recording_bytes: Meter };
  concurrency: { active: number; limit?: number | null };
}

export interface Endpoint {
  id: string;
  url: string;
  description: string;
  event_types: string[];
  enabled: boolean;
  disabled_reason?: string | null;
  failing_since?: string | null;
  /** The signing secret: only in the answers that create or rotate it. */
  secret?: string | null;
  created_at: string;
  updated_at: string;
}

export interface Delivery {
  id: string;
  event_id: string;
  endpoint_id: string;
  event_type: string;
  status: "pending" | "failed" | "delivered" | "dead";
  attempts: number;
  last_status_code?: number | null;
  next_attempt_at?: string | null;
  delivered_at?: string | null;
  created_at: string;
  attempt_log?: Array<{ attempt: number; started_at: string; duration_ms: number; status_code?: number | null; error?: string | null; response_excerpt?: string | null }> | null;
}

export interface WebhookEvent<T = Record<string, unknown>> {
  id: string;
  type: string;
  created_at: string;
  account_id: string;
  data: T;
}

export class Client {
  constructor(apiKey: string, options?: ClientOptions);
  readonly sessions: Sessions;
  readonly profiles: Profiles;
  readonly usage: Usage;
  readonly webhooks: Webhooks;
  request<T = unknown>(method: string, route: string, options?: { body?: unknown; query?: Record<string, unknown>; raw?: boolean }): Promise<T>;
  paginate<T = unknown>(route: string, query?: Record<string, unknown>): AsyncIterable<T>;
}

export class Sessions {
  create(options?: CreateSessionOptions): Promise<Session>;
  get(id: string): Promise<Session>;
  list(filter?: { status?: "live" | "all" }): AsyncIterable<Session>;
  navigate(id: string, url: string, options?: NavigateOptions): Promise<NavigateResult>;
  actions(id: string, actions: Action[], options?: { timeout_ms?: number }): Promise<ActionsResult>;
  wait(id: string, condition: WaitCondition): Promise<{ waited_ms: number }>;
  capture(id: string, options?: CaptureOptions): Promise<Uint8Array>;
  downloads(id: string): AsyncIterable<Download>;
  download(id: string, downloadId: string): Promise<Uint8Array>;
  upload(id: string, filename: string, content: Uint8Array | string): Promise<Upload>;
  logs(id: string, type?: LogType): AsyncIterable<LogEntry>;
  recording(id: string): Promise<Array<{ type: number; timestamp: number; data: unknown }>>;
  lastFrame(id: string): Promise<Uint8Array>;
  setRecording(id: string, record: boolean): Promise<Session>;
  createLiveLink(id: string, options?: { mode?: "view" | "interact"; expires_in_seconds?: number }): Promise<LiveLink>;
  revokeLiveLink(id: string, linkId: string): Promise<void>;
  handOff(id: string, reason: string, options?: { mode?: "view" | "interact"; timeout_seconds?: number }): Promise<Handoff>;
  completeHandoff(id: string): Promise<Session>;
  waitForHandoff(id: string, timeoutSeconds?: number): Promise<void>;
  har(id: string): Promise<{ log: { version: "1.2"; creator: { name: string; version: string }; entries: Record<string, unknown>[] } }>;
  release(id: string): Promise<Session>;
}

export type LogType = "console" | "page" | "network" | "cdp";

export interface LogEntry {
  id: string;
  type: LogType;
  at: string;
  data: Record<string, unknown>;
}

export interface Download {
  id: string;
  filename: string;
  size: number;
  mime_type: string | null;
  sha256: string | null;
  state: "in_progress" | "completed" | "failed" | "too_large";
  url: string | null;
  source_url: string;
  created_at: string;
  completed_at: string | null;
}

export interface Upload {
  id: string;
  filename: string;
  size: number;
  path: string;
  created_at: string;
}

export class Profiles {
  create(name: string, fingerprint?: Fingerprint): Promise<Profile>;
  list(): AsyncIterable<Profile>;
  get(id: string): Promise<Profile>;
  update(id: string, fields: { name?: string; fingerprint?: Fingerprint }): Promise<Profile>;
  delete(id: string): Promise<unknown>;
  clone(id: string, name?: string): Promise<Profile>;
  snapshot(id: string, name?: string): Promise<Snapshot>;
  snapshots(id: string): AsyncIterable<Snapshot>;
  deleteSnapshot(id: string, snapshotId: string): Promise<unknown>;
  restore(id: string, snapshotId: string): Promise<Profile>;
}

export class Usage {
  get(): Promise<UsageReport>;
  checkFeature(feature: string): Promise<Record<string, unknown>>;
}

export class Webhooks {
  createEndpoint(url: string, options?: { description?: string; event_types?: string[] }): Promise<Endpoint>;
  endpoints(): AsyncIterable<Endpoint>;
  getEndpoint(id: string): Promise<Endpoint>;
  updateEndpoint(id: string, fields: { url?: string; description?: string; event_types?: string[]; enabled?: boolean }): Promise<Endpoint>;
  deleteEndpoint(id: string): Promise<unknown>;
  rotateSecret(id: string, graceSeconds?: number): Promise<Endpoint>;
  sendTest(id: string): Promise<Record<string, unknown>>;
  eventTypes(): Promise<unknown>;
  deliveries(filters?: { status?: string; endpoint_id?: string; event_type?: string; since?: string; until?: string }): AsyncIterable<Delivery>;
  getDelivery(id: string): Promise<Delivery>;
  replay(id: string): Promise<Delivery>;
  replayAll(options: { since: string; until?: string; status?: Array<"failed" | "dead">; endpoint_id?: string }): Promise<{ replayed: number }>;
}

export class WebhookVerificationError extends Error {}

export function verifyWebhook<T = Record<string, unknown>>(
  secret: string,
  headers: Headers | Record<string, string>,
  body: string | Uint8Array | ArrayBuffer,
  options?: { toleranceSeconds?: number; now?: number },
): Promise<WebhookEvent<T>>;
