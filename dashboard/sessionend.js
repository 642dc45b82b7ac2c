// What an ended session's page shows of what happened: the last frame of its page (taken as it
// ended) and the replay of its recording.

import { api } from "./api.js";
import { action, h, section } from "./ui.js";

/** How long after the end a missing frame may still be on its way (it is taken as the browser is given back). */
const FRAME_GRACE_MS = 20000;

/**
 * The last frame of an ended session (`GET /v1/sessions/{id}/last-frame`), fetched with the
 * signed-in credential and shown from a blob URL. `load(s)` (re)tries; `shown` once it is in or
 * known to be absent for good. A frame still being saved (just after the end) appears when the
 * page's poll finds it.
 */
export function lastFrame(id) {
  const img = h("img", { class: "last-frame", alt: "The session's page as the session ended", hidden: true });
  const note = h("p", { class: "hint", role: "status" }, "Loading the last frame…");
  const frame = {
    box: section("Last frame", note, img),
    shown: false,
    async load(s) {
      try {
        const r = await api("GET", `/v1/sessions/${id}/last-frame`, undefined, { raw: true });
        const blob = await r.blob();
        if (img.src) URL.revokeObjectURL(img.src);
        img.src = URL.createObjectURL(blob);
        await img.decode().catch(() => {});
        img.hidden = false;
        const taken = r.headers.get("x-frame-taken-at");
        note.textContent = taken ? `Taken ${new Date(taken).toLocaleString()}.` : "";
        frame.shown = true;
      } catch (err) {
        if (err.status !== 404 && err.status !== 409) {
          note.textContent = err.message;
          frame.shown = true;
          return;
        }
        const ended = Date.parse(s.ended_at || "");
        const late = !Number.isFinite(ended) || Date.now() - ended > FRAME_GRACE_MS;
        if (late || err.status === 404 && err.code !== "frame_not_found") frame.shown = true;
        note.textContent = frame.shown
          ? "No last frame was kept: the browser was gone, the recording was paused, or the plan's log retention has passed."
          : "The last frame is being saved…";
      }
    },
  };
  return frame;
}

/**
 * The replay of a recorded session: the vendored rrweb-player (loaded on first use) over the
 * session's recording. `data-time` on the player's box follows the replay's clock.
 */
export function replaySection(id, recording) {
  const box = h("div", { class: "replay", "data-time": "0" });
  const state = h("p", { class: "hint", role: "status" },
    recording.truncated ? "The recording reached the plan's limit and stops early." : "");
  const play = action("Play recording", async () => {
    await loadScript("/assets/rrweb-player.js");
    const events = await api("GET", `/v1/sessions/${id}/recording`);
    if (events.length < 2) {
      state.textContent = "Nothing recorded yet.";
      return;
    }
    box.replaceChildren();
    const player = new window.rrwebPlayer.Player({
      target: box,
      props: { events, width: 640, height: 400, autoPlay: true, showController: true },
    });
    player.addEventListener("ui-update-current-time", (e) => { box.dataset.time = String(e.payload); });
    // The player's icon buttons carry no names of their own.
    const names = ["Play or pause", "Full screen"];
    [...box.querySelectorAll("button")]
      .filter((b) => !b.textContent.trim() && !b.getAttribute("aria-label"))
      .forEach((b, i) => b.setAttribute("aria-label", names[i] || "Player control"));
    state.textContent = `${events.length} events`;
  });
  return section("Replay", h("div", { class: "actions" }, play), state, box);
}

/** Loads a classic script of this origin once. */
function loadScript(src) {
  if (document.querySelector(`script[src="${src}"]`)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const s = h("script", { src });
    s.addEventListener("load", () => resolve());
    s.addEventListener("error", () => reject(new Error(`could not load ${src}`)));
    document.head.append(s);
  });
}
