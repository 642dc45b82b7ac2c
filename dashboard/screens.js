// The signed-in screens, one function per first path segment: sessions (with the live view),
// profiles and snapshots, API keys, webhooks, usage, audit log, team, billing, settings and
// invitation acceptance. Each renders into <main> through the public API only.

import { all, api, session } from "./api.js";
import { connectLive } from "./liveview.js";
import { connectSnippets, firstRun, snippetTabs } from "./onboarding.js";
import { duration, failureNotice, sessionFacts, source } from "./sessionfacts.js";
import { lastFrame, replaySection } from "./sessionend.js";
import { dailyUsage } from "./usagechart.js";
import {
  action, badge, bytes, confirmAction, dialog, field, form, h, link, reveal, section, select, table, toast, when,
} from "./ui.js";

const main = () => document.getElementById("main");

function title(text, ...extra) {
  document.title = `${text} · Driftstack`;
  main().append(h("div", { class: "title" }, h("h1", {}, text), extra));
}

/** Replaces the children of a container made once per screen. */
function slot(label) {
  return h("div", { "aria-label": label, "aria-live": "polite" });
}

// ---------------------------------------------------------------- sessions

/** Whether the signed-in person's role allows `scope` (`GET /v1/account/me`): what it does not
 * allow is not offered, rather than refused on submit. */
const can = (ctx, scope) => (ctx.me?.scopes || []).includes(scope);

/** A note in place of what the role cannot do. */
const cannot = (what) => h("p", { class: "hint" }, `Your role cannot ${what}.`);

const ACTIVE = new Set(["starting", "running", "active", "live"]);

/** The idle timeout: empty means the plan's default, which the hint states. */
function idleField(defaults) {
  const idle = defaults?.idle_timeout_seconds;
  return field("Idle timeout (seconds)",
    { name: "idle_timeout_seconds", type: "number", min: 1, max: idle, placeholder: idle != null ? String(idle) : "" },
    idle != null ? `Empty: your plan's ${idle} s. You may set less, not more.` : "Empty: your plan's default.");
}

async function sessions(ctx) {
  if (ctx.id) return sessionDetail(ctx);
  title("Sessions");
  const list = slot("Sessions");
  const toolbar = h("div", { class: "toolbar" });
  const more = h("button", { type: "button", hidden: true }, "Older sessions");
  const profiles = await all("/v1/profiles").catch(() => []);
  const profile = select({ name: "profile_id" }, [["", "No profile (clean browser)"], ...profiles.map((p) => [p.id, p.name])]);
  main().append(
    can(ctx, "sessions:write") ? section("Start a session", form(
      [field("Profile", profile),
        h("div", { class: "check" }, h("input", { type: "checkbox", name: "persist", id: "persist" }), h("label", { for: "persist" }, "Save the profile's state when the session ends")),
        h("div", { class: "check" }, h("input", { type: "checkbox", name: "record", id: "record" }), h("label", { for: "record" }, "Record the session for replay")),
        idleField(ctx.me?.session_defaults)],
      "Start session",
      async (v) => {
        const body = {};
        if (v.profile_id) {
          body.profile_id = v.profile_id;
          body.persist = v.persist;
        }
        if (v.idle_timeout_seconds) body.idle_timeout_seconds = Number(v.idle_timeout_seconds);
        if (v.record) body.record = true;
        const s = await api("POST", "/v1/sessions", body, { idempotent: true });
        ctx.go(`/sessions/${s.id}`);
      },
    )) : cannot("start sessions"),
    section("Recent sessions", toolbar, list, more),
  );
  // The first-run card stays until the account's first session appears (live, below).
  const card = firstRun(can(ctx, "keys:write"));
  card.hidden = true;
  main().prepend(card);
  // The newest page refreshes itself; older pages, once asked for, stay as they are.
  let after = null;
  const load = async (older = false) => {
    const q = new URLSearchParams({ limit: "50" });
    if (status.value) q.set("status", status.value);
    if (older && after) q.set("starting_after", after);
    const page = await api("GET", `/v1/sessions?${q}`);
    if (!older) card.hidden = page.data.length > 0 || status.value !== "";
    if (page.data.length) after = page.data[page.data.length - 1].id;
    more.hidden = !page.has_more;
    const rows = table([
      ["Session", (s) => link(`/sessions/${s.id}`, s.id)],
      ["Status", (s) => badge(s.status)],
      ["Started", (s) => when(s.created_at)],
      ["Ended", (s) => (s.ended_at ? [when(s.ended_at), " ", s.end_reason || ""] : "—")],
      ["Duration", (s) => duration(s)],
      ["Source", (s) => source(s)],
      ["Profile", (s) => s.options?.profile_id || "—"],
    ], page.data, older ? "No older sessions." : status.value ? "No live sessions." : "No sessions yet: start one above, or with an API key.");
    if (older) list.append(rows);
    else list.replaceChildren(rows);
  };
  const status = select({ name: "status", "aria-label": "Which sessions" }, [["", "All sessions"], ["live", "Live only"]]);
  status.addEventListener("change", () => { paged = false; load().catch(() => {}); });
  let paged = false;
  more.addEventListener("click", () => { paged = true; load(true).catch((e) => toast(e.message, "error")); });
  const find = h("input", { name: "find", placeholder: "ses_…", "aria-label": "Session id", size: 38 });
  toolbar.append(status, h("form", { class: "inline", onsubmit: (e) => {
    e.preventDefault();
    const id = find.value.trim();
    if (id) ctx.go(`/sessions/${encodeURIComponent(id)}`);
  } }, find, h("button", { type: "submit" }, "Open")));
  await load();
  ctx.every(3000, () => (paged ? null : load().catch(() => {})));
}

async function sessionDetail(ctx) {
  const id = ctx.id;
  let s;
  try {
    s = await api("GET", `/v1/sessions/${id}`);
  } catch (err) {
    if (err.status !== 404 && err.status !== 422) throw err;
    title("Session not found");
    main().append(h("p", {}, `There is no session ${id} in this account.`), h("p", {}, link("/sessions", "All sessions")));
    return;
  }
  title(`Session ${id}`);
  const info = slot("Session details");
  const { names } = await whoIsWho(ctx);
  const showInfo = (s) => info.replaceChildren(...[failureNotice(s), sessionFacts(s, names)].filter(Boolean));
  showInfo(s);
  const live = ACTIVE.has(s.status) || !s.ended_at;
  // The page the session is on (its current tab), while it lives.
  const where = h("p", { class: "where", "aria-live": "polite" });
  const showWhere = async () => {
    const tabs = await api("GET", `/v1/sessions/${id}/tabs`);
    const t = tabs.data.find((x) => x.current);
    const others = tabs.data.length - 1;
    where.replaceChildren(...(t ? [h("strong", {}, t.title || "(untitled)"), " — ", h("code", {}, t.url),
      others > 0 ? ` (and ${others} other tab${others > 1 ? "s" : ""})` : ""] : []));
  };
  const screen = h("img", { class: "live", alt: "Live view of the session's page" });
  const liveState = h("p", { class: "hint", role: "status" }, live ? "Connecting to the live view…" : "The session has ended.");
  const liveControls = h("div", { class: "toolbar" });
  const url = h("input", { name: "url", type: "url", required: true, placeholder: "https://example.com" });
  const format = select({ name: "format" }, [["png", "PNG"], ["jpeg", "JPEG"], ["pdf", "PDF"], ["html", "HTML"], ["text", "Text"], ["markdown", "Markdown (main content)"], ["snapshot", "Snapshot (outline with refs)"]]);
  const extension = { text: "txt", markdown: "md", snapshot: "txt" };
  const drive = live && can(ctx, "sessions:write");
  const downloads = slot("Downloads");
  const showDownloads = async () => {
    const page = await api("GET", `/v1/sessions/${id}/downloads?limit=100`);
    downloads.replaceChildren(table([
      ["File", (d) => (d.state === "completed" ? action(d.filename, () => saveDownload(id, d)) : d.filename)],
      ["State", (d) => badge(d.state)],
      ["Size", (d) => bytes(d.size)],
      ["When", (d) => when(d.created_at)],
    ], page.data, "No downloads in this session."));
  };
  const frame = lastFrame(id);
  const controls = [
    drive ? section("Navigate", form([field("URL", url)], "Go", async (v) => {
      const r = await api("POST", `/v1/sessions/${id}/navigate`, { url: v.url });
      toast(`Loaded ${r.url || v.url} (${r.status ?? "?"})`);
    })) : null,
    drive ? section("Capture", form([field("Format", format)], "Capture", async (v) => {
      const r = await api("POST", `/v1/sessions/${id}/capture`, { format: v.format }, { raw: true });
      const blob = await r.blob();
      const a = h("a", { href: URL.createObjectURL(blob), download: `${id}.${extension[v.format] || v.format}` });
      document.body.append(a);
      a.click();
      a.remove();
      toast(`Captured ${bytes(blob.size)}.`);
    })) : null,
    drive ? h("div", { class: "actions" }, action("End session", async () => {
      if (!(await confirmAction("End this session?", endingText(s), "End session"))) return;
      await api("DELETE", `/v1/sessions/${id}`);
      toast("Session ended.");
      ctx.go(`/sessions/${id}`, true);
    }, { class: "danger" })) : null,
  ].filter(Boolean);
  // Loaded (and decoded) before the page is drawn, so it does not push the page down later.
  if (!live) await frame.load(s);
  main().append(...[
    info,
    live ? where : null,
    // The live view with its controls beside it (below it on a narrow screen).
    live ? h("div", { class: "live-grid" },
      section("Live view", liveState, liveControls, screen),
      controls.length ? h("div", { class: "live-side" }, ...controls) : null) : liveState,
    live && s.connect_url ? section("Connect Playwright or Puppeteer",
      h("p", { class: "hint" }, "The link carries a token valid for 15 minutes; reload this page for a fresh one."),
      snippetTabs("Connect to this session", connectSnippets(s.connect_url))) : null,
    live ? null : frame.box,
    s.recording ? replaySection(id, s.recording) : null,
    downloads,
  ].filter(Boolean));
  if (live) watch(s, screen, liveState, liveControls, ctx);
  await showDownloads().catch(() => {});
  if (live) await showWhere().catch(() => {});
  ctx.every(4000, async () => {
    const now = await api("GET", `/v1/sessions/${id}`).catch(() => null);
    if (now) showInfo(now);
    if (now && !live && !frame.shown) await frame.load(now);
    if (now && !now.ended_at) await showWhere().catch(() => {});
    await showDownloads().catch(() => {});
  });
}

/** How long `s` has run (or ran), e.g. `4 min 12 s`. */
/** What ending `s` does, for the confirmation. */
function endingText(s) {
  const profile = s.options?.profile_id;
  if (!profile) return "The browser is closed. This session has no profile, so nothing is saved.";
  return s.options?.persist
    ? `The browser is closed and its state is saved to the profile ${profile}.`
    : `The browser is closed; the profile ${profile} is left as it was (this session does not save it).`;
}

/** Fetches a download with the signed-in credential and saves it under its own name. */
async function saveDownload(id, d) {
  const r = await api("GET", `/v1/sessions/${id}/downloads/${d.id}`, undefined, { raw: true });
  const blob = await r.blob();
  const a = h("a", { href: URL.createObjectURL(blob), download: d.filename });
  document.body.append(a);
  a.click();
  a.remove();
  toast(`Saved ${d.filename} (${bytes(blob.size)}).`);
}

/**
 * The live view over `GET /v1/sessions/{id}/live`: frames, and — once you take control — your
 * clicks, scrolls and keys go to the remote page (`liveview.js`). Switch tabs, hand control back.
 */
function watch(s, img, state, controls, ctx) {
  if (!s.connect_url) {
    state.textContent = "The live view is not available for this session.";
    return;
  }
  const token = new URL(s.connect_url).searchParams.get("token");
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${proto}//${location.host}/v1/sessions/${s.id}/live?token=${encodeURIComponent(token)}`;
  const take = h("button", { type: "button" }, "Take control");
  const release = h("button", { type: "button", hidden: true }, "Release control");
  const done = h("button", { type: "button", hidden: true }, "Complete handoff");
  const tabs = select({ name: "tab", "aria-label": "Tab", hidden: true }, []);
  controls.replaceChildren(take, release, done, tabs);
  let who = "Nobody is in control.";
  const live = connectLive(url, img, {
    frame: () => { if (state.dataset.live !== "1") { state.dataset.live = "1"; state.textContent = `Live. ${who}`; } },
    control: (m) => {
      const mine = Boolean(m.controller?.you);
      who = mine ? "You are in control: click and type in the page." : m.controller ? `${m.controller.label} is in control.` : "Nobody is in control.";
      state.textContent = `Live. ${who}`;
      take.hidden = mine;
      take.textContent = m.controller && !mine ? "Take over" : "Take control";
      release.hidden = !mine;
    },
    handoff: (m) => { done.hidden = m.state !== "requested"; },
    tabs: (m) => {
      tabs.hidden = m.tabs.length < 2;
      tabs.replaceChildren(...m.tabs.map((t) => h("option", { value: t.id, selected: t.active }, t.title || t.url || "New tab")));
    },
    error: (m) => toast(m.detail),
    closed: (e) => { state.textContent = e.reason ? `Live view closed: ${e.reason}` : "Live view closed."; },
  });
  take.addEventListener("click", () => (take.textContent === "Take over" ? live.takeOver() : live.requestControl()));
  release.addEventListener("click", () => live.release());
  done.addEventListener("click", async () => {
    await api("POST", `/v1/sessions/${s.id}/handoff/complete`);
    toast("Handoff completed.");
  });
  tabs.addEventListener("change", () => live.switchTab(tabs.value));
  ctx.onLeave(() => live.close());
}

// ---------------------------------------------------------------- profiles

async function profiles(ctx) {
  if (ctx.id) return profileDetail(ctx);
  title("Profiles");
  const list = slot("Profiles");
  main().append(
    can(ctx, "profiles:write") ? section("New profile", form(
      [field("Name", { name: "name", required: true, maxlength: 100 }),
        field("User agent", { name: "user_agent" }, "Optional; the browser's own when empty."),
        field("Locale", { name: "locale", placeholder: "en-US" }),
        field("Time zone", { name: "timezone", placeholder: "Europe/Berlin" })],
      "Create profile",
      async (v) => {
        const fingerprint = {};
        for (const k of ["user_agent", "locale", "timezone"]) if (v[k]) fingerprint[k] = v[k];
        const p = await api("POST", "/v1/profiles", { name: v.name, fingerprint }, { idempotent: true });
        ctx.go(`/profiles/${p.id}`);
      },
    )) : cannot("create profiles"),
    section("All profiles", list),
  );
  const rows = await all("/v1/profiles");
  list.replaceChildren(table([
    ["Name", (p) => link(`/profiles/${p.id}`, p.name)],
    ["State", (p) => (p.state ? `${p.state.cookies} cookies, ${p.state.origins} origins` : "empty")],
    ["Saved", (p) => when(p.state_saved_at)],
    ["In use by", (p) => (p.live_session_id ? link(`/sessions/${p.live_session_id}`, p.live_session_id) : "—")],
  ], rows, "No profiles yet."));
}

async function profileDetail(ctx) {
  const id = ctx.id;
  const p = await api("GET", `/v1/profiles/${id}`);
  title(p.name);
  const write = can(ctx, "profiles:write");
  const snaps = slot("Snapshots");
  const loadSnaps = async () => {
    const rows = await all(`/v1/profiles/${id}/snapshots`);
    snaps.replaceChildren(table([
      ["Snapshot", (s) => s.name || s.id],
      ["Taken", (s) => when(s.created_at)],
      ["Source", (s) => s.source],
      ["State", (s) => `${s.state.cookies} cookies, ${s.state.local_storage_items} storage items, ${bytes(s.state.bytes)}`],
      ["", (s) => (!write ? "" : h("div", { class: "actions" },
        action("Restore", async () => {
          if (!(await confirmAction("Restore this snapshot?", "It becomes the profile's current state.", "Restore"))) return;
          await api("POST", `/v1/profiles/${id}/snapshots/${s.id}/restore`);
          toast("Snapshot restored.");
          ctx.go(`/profiles/${id}`, true);
        }),
        action("Delete", async () => {
          if (!(await confirmAction("Delete this snapshot?", "This cannot be undone.", "Delete"))) return;
          await api("DELETE", `/v1/profiles/${id}/snapshots/${s.id}`);
          await loadSnaps();
        }, { class: "danger" })))],
    ], rows, "No snapshots yet."));
  };
  main().append(
    h("dl", { class: "facts" },
      h("dt", {}, "Id"), h("dd", {}, p.id),
      h("dt", {}, "State"), h("dd", {}, p.state ? `${p.state.cookies} cookies over ${Object.keys(p.state.cookies_by_domain).length} domains, ${p.state.origins} origins, ${bytes(p.state.bytes)}` : "empty"),
      h("dt", {}, "Saved"), h("dd", {}, when(p.state_saved_at)),
      h("dt", {}, "Last save error"), h("dd", {}, p.last_save_error || "—"),
      h("dt", {}, "User agent"), h("dd", {}, p.fingerprint.user_agent || "browser default"),
      h("dt", {}, "Locale / time zone"), h("dd", {}, `${p.fingerprint.locale || "default"} / ${p.fingerprint.timezone || "default"}`),
      h("dt", {}, "In use by"), h("dd", {}, p.live_session_id ? link(`/sessions/${p.live_session_id}`, p.live_session_id) : "—")),
    !write ? null : h("div", { class: "actions" },
      action("Clone", async () => {
        const c = await api("POST", `/v1/profiles/${id}/clone`, {}, { idempotent: true });
        toast(`Cloned as ${c.name}.`);
        ctx.go(`/profiles/${c.id}`);
      }),
      action("Delete profile", async () => {
        if (!(await confirmAction("Delete this profile?", "Its state and every snapshot are deleted.", "Delete"))) return;
        await api("DELETE", `/v1/profiles/${id}`);
        ctx.go("/profiles");
      }, { class: "danger" })),
    section("Snapshots",
      !write ? null : form([field("Snapshot name", { name: "name", maxlength: 100 })], "Take snapshot", async (v, f) => {
        await api("POST", `/v1/profiles/${id}/snapshots`, v.name ? { name: v.name } : {}, { idempotent: true });
        f.reset();
        toast("Snapshot taken.");
        await loadSnaps();
      }),
      snaps),
  );
  await loadSnaps();
}

// ---------------------------------------------------------------- API keys

const SCOPES = ["account:read", "account:write", "keys:read", "keys:write", "sessions:read", "sessions:write",
  "sessions:evaluate", "profiles:read", "profiles:write", "usage:read", "audit:read", "webhooks:read", "webhooks:write",
  "team:read", "team:write", "billing:read", "billing:write"];

async function keys(ctx) {
  title("API keys");
  const list = slot("API keys");
  const scopeBoxes = h("fieldset", { class: "scopes" }, h("legend", {}, "Scopes (none ticked: the default set)"),
    SCOPES.map((s) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "scopes", value: s, "data-multi": "1" }), s)));
  const load = async () => {
    const rows = await all("/v1/api-keys");
    list.replaceChildren(table([
      ["Name", (k) => k.name],
      ["Key", (k) => h("code", { class: "nowrap" }, `${k.prefix}…${k.last4}`)],
      ["Mode", (k) => k.mode],
      ["Scopes", (k) => (k.scopes.length ? k.scopes.join(", ") : "all scopes")],
      ["Status", (k) => badge(k.status)],
      ["Created", (k) => when(k.created_at)],
      ["Expires", (k) => (k.expires_at ? when(k.expires_at) : "never")],
      ["Last used", (k) => when(k.last_used_at)],
      // A key that still works can always be revoked (an expiring one too: the old key of a
      // rotation may be the leaked one); one already replaced by a rotation is not rotated again.
      ["", (k) => (can(ctx, "keys:write") && (k.status === "active" || k.status === "expiring") ? h("div", { class: "actions" },
        k.rotated_to ? null : action("Rotate", async () => {
          const grace = await rotateGrace();
          if (grace === null) return;
          const n = await api("POST", `/v1/api-keys/${k.id}/rotate`, { grace_seconds: grace }, { idempotent: true });
          await reveal("New API key", "API key", n.key);
          await load();
        }),
        action("Revoke", async () => {
          if (!(await confirmAction("Revoke this key?", "It stops working at once.", "Revoke"))) return;
          await api("DELETE", `/v1/api-keys/${k.id}`);
          await load();
        }, { class: "danger" })) : "")],
    ], rows, "No keys yet."));
  };
  main().append(
    !can(ctx, "keys:write") ? cannot("create or revoke keys") : section("Create a key", form(
      [field("Name", { name: "name", maxlength: 100, required: true }),
        field("Mode", select({ name: "mode" }, [["live", "Live"], ["test", "Test"]])),
        scopeBoxes,
        field("Expires in (days)", { name: "expires_in_days", type: "number", min: 1 }, "Optional; never when empty.")],
      "Create key",
      async (v, f) => {
        const body = { name: v.name, mode: v.mode };
        if (v.scopes?.length) body.scopes = v.scopes;
        if (v.expires_in_days) body.expires_in_days = Number(v.expires_in_days);
        const k = await api("POST", "/v1/api-keys", body, { idempotent: true });
        f.reset();
        await reveal("Your new API key", "API key", k.key);
        await load();
      },
    )),
    section("Keys", list),
  );
  await load();
}

/** Asks how long the old key of a rotation keeps working: the seconds, or null when cancelled. */
function rotateGrace() {
  return dialog("Rotate this key?", (close) => {
    const choice = select({ name: "grace", "aria-label": "The old key keeps working" }, [
      ["86400", "for 24 hours (time to deploy the new one)"],
      ["3600", "for 1 hour"],
      ["0", "not at all: it leaked, stop it now"]]);
    return h("div", {},
      h("p", {}, "A new key replaces it. The old key keeps working:"),
      choice,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "danger", onclick: () => close(Number(choice.value)) }, "Rotate"),
        h("button", { type: "button", onclick: () => close(null) }, "Cancel")));
  });
}

// ---------------------------------------------------------------- webhooks

async function webhooks(ctx) {
  title("Webhooks");
  const write = can(ctx, "webhooks:write");
  const endpoints = slot("Endpoints");
  const deliveries = slot("Deliveries");
  const catalog = await api("GET", "/v1/webhooks/events");
  const types = catalog.data || catalog;
  const typeBoxes = h("fieldset", { class: "scopes" }, h("legend", {}, "Events (none ticked: all)"),
    types.map((t) => h("label", { class: "check", title: t.description },
      h("input", { type: "checkbox", name: "event_types", value: t.type, "data-multi": "1" }), t.type)));
  const loadEndpoints = async () => {
    const rows = await all("/v1/webhooks/endpoints");
    endpoints.replaceChildren(table([
      ["URL", (e) => h("code", {}, e.url)],
      ["Events", (e) => (e.event_types.length ? e.event_types.join(", ") : "all")],
      ["State", (e) => (e.enabled ? badge(e.failing_since ? "failing" : "enabled") : [badge("disabled"), " ", e.disabled_reason || ""])],
      ["", (e) => (!write ? "" : h("div", { class: "actions" },
        action("Send test", async () => {
          await api("POST", `/v1/webhooks/endpoints/${e.id}/test`, undefined, { idempotent: true });
          toast("Test event queued.");
          setTimeout(() => loadDeliveries().catch(() => {}), 1000);
        }),
        action("Rotate secret", async () => {
          const r = await api("POST", `/v1/webhooks/endpoints/${e.id}/rotate-secret`, undefined, { idempotent: true });
          await reveal("New signing secret", "signing secret", r.secret);
          await loadEndpoints();
        }),
        action(e.enabled ? "Disable" : "Enable", async () => {
          await api("PATCH", `/v1/webhooks/endpoints/${e.id}`, { enabled: !e.enabled });
          await loadEndpoints();
        }),
        action("Delete", async () => {
          if (!(await confirmAction("Delete this endpoint?", "Its pending deliveries are dropped.", "Delete"))) return;
          await api("DELETE", `/v1/webhooks/endpoints/${e.id}`);
          await loadEndpoints();
        }, { class: "danger" })))],
    ], rows, "No endpoints yet."));
  };
  const status = select({ name: "status", "aria-label": "Delivery status" }, [["", "Any status"], ["pending", "Pending"], ["failed", "Failed"], ["dead", "Dead"], ["delivered", "Delivered"]]);
  const loadDeliveries = async () => {
    const q = status.value ? `&status=${status.value}` : "";
    const page = await api("GET", `/v1/webhooks/deliveries?limit=50${q}`);
    deliveries.replaceChildren(table([
      ["Event", (d) => [d.event_type, h("br"), h("code", { class: "hint" }, d.event_id)]],
      ["Status", (d) => badge(d.status)],
      ["Attempts", (d) => String(d.attempts)],
      ["Last answer", (d) => (d.last_status_code != null ? String(d.last_status_code) : "—")],
      ["Created", (d) => when(d.created_at)],
      ["", (d) => h("div", { class: "actions" },
        action("Attempts", () => showAttempts(d.id)),
        !write ? null : action("Replay", async () => {
          await api("POST", `/v1/webhooks/deliveries/${d.id}/replay`, undefined, { idempotent: true });
          toast("Delivery queued again.");
          await loadDeliveries();
        }))],
    ], page.data, "No deliveries yet."));
  };
  const since = new Date(Date.now() - 86400000).toISOString().slice(0, 16);
  main().append(
    !write ? cannot("add endpoints or replay deliveries") : section("Add an endpoint", form(
      [field("URL", { name: "url", type: "url", required: true, placeholder: "https://example.com/hooks" }),
        field("Description", { name: "description", maxlength: 200 }), typeBoxes],
      "Add endpoint",
      async (v, f) => {
        const body = { url: v.url };
        if (v.description) body.description = v.description;
        if (v.event_types?.length) body.event_types = v.event_types;
        const e = await api("POST", "/v1/webhooks/endpoints", body, { idempotent: true });
        f.reset();
        await reveal("Signing secret", "signing secret", e.secret);
        await loadEndpoints();
      },
    )),
    section("Endpoints", endpoints),
    section("Delivery log", h("div", { class: "toolbar" }, status, action("Refresh", loadDeliveries)), deliveries),
    !write ? null : section("Replay failed and dead deliveries", form(
      [field("Since", { name: "since", type: "datetime-local", value: since, required: true })],
      "Replay all",
      async (v) => {
        const r = await api("POST", "/v1/webhooks/replay", { since: new Date(v.since).toISOString(), status: ["failed", "dead"] }, { idempotent: true });
        toast(`${r.replayed} deliveries queued again.`);
        await loadDeliveries();
      },
    )),
    section("Event catalog", table([["Event", (t) => h("code", {}, t.type)], ["What it means", (t) => t.description]], types)),
  );
  status.addEventListener("change", () => loadDeliveries());
  await Promise.all([loadEndpoints(), loadDeliveries()]);
}

async function showAttempts(id) {
  const d = await api("GET", `/v1/webhooks/deliveries/${id}`);
  await dialog(`Delivery ${d.id}`, (close) => h("div", {},
    table([
      ["#", (a) => String(a.attempt)],
      ["When", (a) => when(a.started_at)],
      ["Answer", (a) => (a.status_code != null ? String(a.status_code) : a.error || "—")],
      ["Time", (a) => `${a.duration_ms} ms`],
      ["Response", (a) => h("code", { class: "excerpt" }, a.response_excerpt || "")],
    ], d.attempt_log || [], "No attempt yet."),
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => close() }, "Close"))));
}

// ---------------------------------------------------------------- usage

async function usage() {
  title("Usage");
  const [u, daily] = await Promise.all([api("GET", "/v1/usage"), api("GET", "/v1/usage/daily")]);
  const labels = {
    sessions: ["Sessions", String],
    session_minutes: ["Session minutes", (n) => n.toFixed(1)],
    api_calls: ["API calls", String],
    data_transfer_bytes: ["Data transfer", bytes],
    download_bytes: ["Downloads", bytes],
    recording_bytes: ["Recordings", bytes],
  };
  main().append(
    h("p", {}, `Tier ${tierName(u.tier)}, period ${new Date(u.period_start).toLocaleDateString()} – ${new Date(u.period_end).toLocaleDateString()}.`),
    h("div", { class: "meters" },
      Object.entries(labels).map(([k, [label, fmt]]) => chart(label, u.meters[k], fmt)),
      chart("Concurrent sessions", { used: u.concurrency.active, limit: u.concurrency.limit }, String)),
    dailyUsage(daily),
  );
}

/** One meter against its cap, as a bar (an accessible <meter> plus an SVG). */
function chart(label, m, fmt) {
  const limit = m.limit ?? null;
  const share = limit ? Math.min(1, m.used / limit) : 0;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 100 8");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "bar");
  const bg = document.createElementNS(svg.namespaceURI, "rect");
  Object.entries({ x: 0, y: 0, width: 100, height: 8, rx: 2, class: "bar-bg" }).forEach(([k, v]) => bg.setAttribute(k, v));
  const fg = document.createElementNS(svg.namespaceURI, "rect");
  Object.entries({ x: 0, y: 0, width: limit ? share * 100 : 0, height: 8, rx: 2, class: share >= 0.9 ? "bar-hot" : "bar-fg" })
    .forEach(([k, v]) => fg.setAttribute(k, v));
  svg.append(bg, fg);
  // Without a cap there is nothing to fill: the number alone, no empty bar.
  return h("figure", { class: "meter" },
    h("figcaption", {}, h("strong", {}, label), " ", limit != null ? `${fmt(m.used)} of ${fmt(limit)}` : `${fmt(m.used)} (no cap)`,
      m.percent_used != null ? ` (${Math.round(m.percent_used)} %)` : ""),
    limit != null ? svg : null);
}

// ---------------------------------------------------------------- audit log

/** Who is who: members by email, keys by name (what the role may read of them). */
async function whoIsWho(ctx) {
  const [members, keys] = await Promise.all([
    can(ctx, "team:read") ? all("/v1/team/members").catch(() => []) : [],
    can(ctx, "keys:read") ? all("/v1/api-keys").catch(() => []) : [],
  ]);
  const names = new Map([...members.map((m) => [m.user_id, m.email]), ...keys.map((k) => [k.id, `key “${k.name}”`])]);
  return { members, names };
}

async function audit(ctx) {
  title("Audit log");
  if (!can(ctx, "audit:read")) {
    main().append(cannot("read the audit log: owners and admins can"));
    return;
  }
  const list = slot("Audit entries");
  let after = null;
  let filters = {};
  const more = h("button", { type: "button" }, "Load more");
  const { members, names } = await whoIsWho(ctx);
  const byEmail = new Map(members.map((m) => [m.email.toLowerCase(), m.user_id]));
  const actorOf = (a) => (names.has(a.id) ? [names.get(a.id), " ", h("code", { class: "hint" }, a.id)] : `${a.type} ${a.id}`);
  const load = async (reset) => {
    if (reset) {
      after = null;
      list.replaceChildren();
    }
    const q = new URLSearchParams({ limit: "50", ...filters });
    if (after) q.set("starting_after", after);
    const page = await api("GET", `/v1/audit-log?${q}`);
    if (page.data.length) after = page.data[page.data.length - 1].id;
    list.append(table([
      ["When", (e) => when(e.created_at)],
      ["Action", (e) => h("code", { class: "nowrap" }, e.action)],
      ["Actor", (e) => actorOf(e.actor)],
      ["IP", (e) => e.ip || "—"],
      ["Details", (e) => h("code", { class: "excerpt" }, JSON.stringify(e.data))],
    ], page.data, reset ? "No entries match." : "No more entries."));
    more.hidden = !page.has_more;
  };
  more.addEventListener("click", () => load(false));
  main().append(
    form(
      [field("Action", { name: "action", placeholder: "api_key.created" }),
        field("Actor", { name: "actor", placeholder: "an email, usr_… or key_…" }),
        field("Since", { name: "since", type: "datetime-local" }),
        field("Until", { name: "until", type: "datetime-local" })],
      "Filter",
      async (v) => {
        filters = {};
        if (v.action) filters.action = v.action;
        if (v.actor) filters.actor = byEmail.get(v.actor.trim().toLowerCase()) || v.actor.trim();
        if (v.since) filters.since = new Date(v.since).toISOString();
        if (v.until) filters.until = new Date(v.until).toISOString();
        await load(true);
      },
    ),
    list,
    more,
  );
  await load(true);
}

// ---------------------------------------------------------------- team

const ROLES = [["viewer", "Viewer"], ["developer", "Developer"], ["admin", "Admin"], ["owner", "Owner"]];

async function team(ctx) {
  title("Team");
  const write = can(ctx, "team:write");
  const members = slot("Members");
  const invites = slot("Invitations");
  const load = async () => {
    const [m, i] = await Promise.all([all("/v1/team/members"), all("/v1/team/invites")]);
    members.replaceChildren(table([
      ["Name", (x) => x.name || "—"],
      ["Email", (x) => x.email],
      ["Role", (x) => (!write ? x.role : select({
        "aria-label": `Role of ${x.email}`, value: x.role,
        onchange: async (e) => {
          try {
            await api("PATCH", `/v1/team/members/${x.user_id}`, { role: e.target.value });
            toast(`${x.email} is now ${e.target.value}.`);
          } catch (err) {
            toast(err.message, "error");
            e.target.value = x.role;
          }
        },
      }, ROLES))],
      ["Two-factor", (x) => (x.mfa_enabled ? "on" : "off")],
      ["Joined", (x) => when(x.joined_at)],
      ["", (x) => (!write ? "" : action("Remove", async () => {
        if (!(await confirmAction(`Remove ${x.email}?`, "They lose access to this account at once.", "Remove"))) return;
        await api("DELETE", `/v1/team/members/${x.user_id}`);
        await load();
      }, { class: "danger" }))],
    ], m));
    invites.replaceChildren(table([
      ["Email", (x) => x.email],
      ["Role", (x) => x.role],
      ["Status", (x) => badge(x.status)],
      ["Expires", (x) => when(x.expires_at)],
      ["", (x) => (write && x.status === "pending" ? action("Revoke", async () => {
        await api("DELETE", `/v1/team/invites/${x.id}`);
        await load();
      }, { class: "danger" }) : "")],
    ], i, "No invitations."));
  };
  main().append(
    !write ? cannot("invite people or change roles") : section("Invite someone", form(
      [field("Email", { name: "email", type: "email", required: true }), field("Role", select({ name: "role", value: "developer" }, ROLES))],
      "Send invitation",
      async (v, f) => {
        await api("POST", "/v1/team/invites", v, { idempotent: true });
        f.reset();
        toast(`Invitation sent to ${v.email}.`);
        await load();
      },
    )),
    section("Members", members),
    section("Invitations", invites),
  );
  await load();
}

async function acceptInvite(ctx) {
  title("Join an account");
  const token = ctx.params.get("token");
  if (!token) {
    main().append(h("p", {}, "Open the link from the invitation mail."));
    return;
  }
  const r = await api("POST", "/v1/team/invites/accept", { token });
  session.account = r.account_id;
  ctx.refreshMe?.();
  main().append(h("p", { role: "status", class: "notice" }, `You joined as ${r.role}.`), h("p", {}, link("/sessions", "Go to the account")));
}

// ---------------------------------------------------------------- billing

/** What a plan's feature slugs mean, for people. */
const FEATURES = {
  sessions: "browser sessions", raw_cdp: "Playwright and Puppeteer (raw CDP)", profiles: "saved profiles",
  webhooks: "webhooks", team: "team members", live_keys: "live API keys",
};

/** A tier's name for people (`self_hosted` → `Self-hosted`). */
function tierName(tier) {
  return { trial: "Trial", starter: "Starter", pro: "Pro", self_hosted: "Self-hosted" }[tier] || tier;
}

async function billing(ctx) {
  title("Billing");
  const b = await api("GET", "/v1/billing");
  main().append(h("dl", { class: "facts" },
    h("dt", {}, "Tier"), h("dd", {}, tierName(b.tier)),
    h("dt", {}, "Plan"), h("dd", {}, b.plan || "none"),
    h("dt", {}, "Status"), h("dd", {}, b.status || "—"),
    h("dt", {}, "Renews"), h("dd", {}, when(b.current_period_end)),
    h("dt", {}, "Features"), h("dd", {}, b.features.map((f) => FEATURES[f] || f).join(", ") || "—")));
  if (!b.enabled) {
    main().append(h("p", { class: "note" }, "Billing is off on this server: every account has its plan's limits, and nothing is charged."));
    return;
  }
  const back = `${location.origin}/billing`;
  main().append(
    section("Plans", table([
      ["Plan", (p) => p.display_name],
      ["Price", (p) => (p.price_cents != null ? `$${(p.price_cents / 100).toFixed(2)}${p.billing === "monthly" ? " / month" : " once"}` : "—")],
      ["Live keys", (p) => (p.live_keys ? "yes" : "no")],
      ["", (p) => (!can(ctx, "billing:write") ? "" : action(p.id === b.plan ? "Current plan" : "Choose", async () => {
        const r = await api("POST", "/v1/billing/checkout", { plan: p.id, success_url: `${back}?checkout=done`, cancel_url: back }, { idempotent: true });
        location.assign(r.checkout_url);
      }, { disabled: p.id === b.plan }))],
    ], b.plans)),
    b.portal_available && can(ctx, "billing:write") ? action("Manage billing", async () => {
      const r = await api("POST", "/v1/billing/portal", { return_url: back });
      location.assign(r.portal_url);
    }) : null,
  );
}

// ---------------------------------------------------------------- settings

async function settings(ctx) {
  title("Settings");
  const me = await api("GET", "/v1/account/me");
  const mfa = slot("Two-factor authentication");
  main().append(
    !can(ctx, "account:write") ? section("Account", h("p", {}, me.name), cannot("change the account's settings")) : section("Account", form(
      [field("Account name", { name: "name", value: me.name, maxlength: 100, required: true }),
        field("Region", select({ name: "region", value: me.region || "" }, [["", "Not set"], ["us-east", "US East"], ["us-west", "US West"], ["eu-central", "EU Central"], ["eu-west", "EU West"], ["ap-southeast", "Asia Pacific South-East"]]))],
      "Save",
      async (v) => {
        const body = { name: v.name };
        if (v.region) body.region = v.region;
        await api("PATCH", "/v1/account/me", body);
        ctx.refreshMe?.();
        toast("Saved.");
      },
    )),
    section("Two-factor authentication", mfa),
  );
  const user = session.user;
  const showCodes = (codes) =>
    mfa.replaceChildren(
      h("p", { role: "status", class: "notice" }, "Two-factor authentication is on. Keep these recovery codes somewhere safe: each works once, and they are shown only now."),
      h("ul", { class: "codes", "aria-label": "Recovery codes" }, codes.map((c) => h("li", {}, h("code", {}, c)))),
      h("div", { class: "actions" }, h("button", { type: "button", onclick: () => ctx.go("/settings", true) }, "Done")),
    );
  if (user?.mfa_enabled) {
    mfa.append(
      h("p", {}, "Two-factor authentication is on."),
      h("div", { class: "actions" },
        action("New recovery codes", async () => showCodes((await api("POST", "/v1/account/2fa/recovery-codes")).recovery_codes)),
        action("Turn off", async () => {
          if (!(await confirmAction("Turn off two-factor?", "Sign-ins will need only your password.", "Turn off"))) return;
          await api("DELETE", "/v1/account/2fa/totp");
          session.keep({ ...tokensNow(), user: { ...user, mfa_enabled: false } });
          ctx.go("/settings", true);
        }, { class: "danger" })),
    );
    return;
  }
  mfa.append(
    h("p", {}, "Protect sign-ins with an authenticator app."),
    action("Set up two-factor", async () => {
      const e = await api("POST", "/v1/account/2fa/totp");
      const code = h("input", { name: "code", autocomplete: "one-time-code", inputmode: "numeric", required: true, maxlength: 6 });
      mfa.replaceChildren(
        h("p", {}, "Scan this code with your authenticator app, or type the secret."),
        h("img", { src: e.qr_code, alt: "QR code of the authenticator secret", class: "qr", width: 200, height: 200 }),
        h("p", {}, "Secret: ", h("code", { class: "totp-secret" }, e.secret)),
        form([field("Code from the app", code)], "Turn on", async (v) => {
          const r = await api("POST", "/v1/account/2fa/totp/verify", { code: v.code });
          session.keep({ ...tokensNow(), user: { ...user, mfa_enabled: true } });
          showCodes(r.recovery_codes);
        }),
      );
      code.focus();
    }, { class: "primary" }),
  );
}

function tokensNow() {
  return { access_token: session.access, refresh_token: session.refresh };
}

export const screens = {
  sessions,
  profiles,
  keys,
  webhooks,
  usage,
  audit,
  team,
  billing,
  settings,
  "accept-invite": acceptInvite,
};
