// What the session page and list say about one session: its facts (status, who started it and
// from where, duration, idle time left, traffic), why it failed, and durations as words.

import { badge, bytes, h, when } from "./ui.js";

/** Wall time of a session so far (or in all, once ended), as words. */
export function duration(s) {
  const start = Date.parse(s.started_at || s.created_at);
  const end = s.ended_at ? Date.parse(s.ended_at) : Date.now();
  if (!Number.isFinite(start) || !Number.isFinite(end)) return "—";
  return span(Math.max(0, Math.round((end - start) / 1000)));
}

function span(secs) {
  if (secs < 60) return `${secs} s`;
  const mins = Math.floor(secs / 60);
  return mins < 60 ? `${mins} min ${secs % 60} s` : `${Math.floor(mins / 60)} h ${mins % 60} min`;
}

const SOURCES = { api: "API", mcp: "MCP tool call", dashboard: "Dashboard" };

/** Where a session was started from, as a word. */
export function source(s) {
  return SOURCES[s.source] || "—";
}

/** Who started it: a key's name or a member's email when `names` knows the id, else the id. */
function starter(s, names) {
  if (!s.created_by) return "—";
  const name = names.get(s.created_by);
  return name ? [name, " ", h("code", {}, s.created_by)] : h("code", {}, s.created_by);
}

/** How long until the session ends by idleness, while it is live on the node that answered. */
function idleLeft(s) {
  if (s.ended_at) return "—";
  if (!s.idle_expires_at) return `${span(s.idle_timeout_seconds)} after the last command`;
  const left = Math.max(0, Math.round((Date.parse(s.idle_expires_at) - Date.now()) / 1000));
  return `${span(left)} (of ${span(s.idle_timeout_seconds)})`;
}

/** Why the session failed, as a notice (nothing for a session that did not fail). */
export function failureNotice(s) {
  if (s.status !== "failed") return null;
  const text = s.failure
    || (s.end_reason === "start_failed" ? "The session could not be started." : "The session failed.");
  return h("p", { class: "note error", role: "alert" }, h("strong", {}, "Why it failed: "), text);
}

/** The session's facts as a definition list; `names` maps key and user ids to names. */
export function sessionFacts(s, names = new Map()) {
  const fact = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
  return h("dl", { class: "facts" },
    fact("Status", badge(s.status), s.end_reason ? ` (${s.end_reason})` : ""),
    fact("Started by", starter(s, names)),
    fact("Source", source(s)),
    fact("Created", when(s.created_at)),
    fact("Expires", when(s.expires_at)),
    fact("Duration", duration(s)),
    fact("Idle timeout left", idleLeft(s)),
    fact("Navigations", String(s.usage.navigations)),
    fact("Data", `${bytes(s.usage.bytes_received)} in, ${bytes(s.usage.bytes_sent)} out`),
    fact("Start time", s.create_ms != null ? `${s.create_ms} ms` : "—"));
}
