// The live-link page (`/live/{token}`): exchanges the link's one-time token for a viewer
// credential, shows the session's live view, takes control when the link allows interaction and
// nobody holds it, and offers *Done* while the session is handed to this person.

import { connectLive } from "./liveview.js";

const $ = (id) => document.getElementById(id);
const status = (text) => { $("status").textContent = text; };

async function start() {
  const token = location.pathname.split("/").pop();
  let link;
  try {
    const r = await fetch("/v1/live-links/exchange", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
    });
    link = await r.json();
    if (!r.ok) {
      status(link.detail || "This live link cannot be opened.");
      return;
    }
  } catch {
    status("The live view is unavailable; check your connection and reload.");
    return;
  }
  if (link.handoff_reason) {
    $("reason").textContent = link.handoff_reason;
    $("reason").hidden = false;
  }
  const interact = link.mode === "interact";
  const control = $("control");
  const done = $("done");
  const tabs = $("tabs");
  let mine = false;
  let finished = false;
  const live = connectLive(link.live_url, $("screen"), {
    hello: () => {
      status(interact ? "Connected. Taking control…" : "Connected (view only).");
      if (interact) live.requestControl();
    },
    control: (m) => {
      mine = Boolean(m.controller?.you);
      if (finished) return;
      control.hidden = !interact || mine;
      control.textContent = "Take control";
      if (mine) status("You are in control: click and type in the page below.");
      else if (m.controller) status(`${m.controller.label} is in control; you are watching.`);
      else status(interact ? "Nobody is in control." : "Watching (view only).");
    },
    handoff: (m) => {
      done.hidden = !(interact && m.state === "requested");
      if (m.state === "completed" || m.state === "expired") {
        finished = true;
        control.hidden = true;
        status(m.state === "completed" ? "Done — thank you. You can close this page." : "The time for this handoff ran out.");
      }
    },
    tabs: (m) => {
      // Always say which site the page below is (a page can open a look-alike popup).
      const active = m.tabs.find((t) => t.active);
      let site = "";
      try { site = active ? new URL(active.url).host || active.url : ""; } catch { site = active?.url || ""; }
      $("site").textContent = site;
      $("tabs-label").hidden = m.tabs.length < 2;
      tabs.replaceChildren(...m.tabs.map((t) => {
        const o = document.createElement("option");
        o.value = t.id;
        o.textContent = t.title || t.url || "New tab";
        o.selected = t.active;
        return o;
      }));
    },
    error: (m) => status(m.detail),
    closed: (e) => { if (!finished) status(e.reason ? `The live view closed: ${e.reason}` : "The live view closed."); },
  });
  control.addEventListener("click", () => live.requestControl());
  done.addEventListener("click", () => live.done());
  tabs.addEventListener("change", () => live.switchTab(tabs.value));
}

start();
