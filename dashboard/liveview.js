// The live view, shared by the dashboard's session page and the live-link page: JPEG frames
// from `GET /v1/sessions/{id}/live` into an <img>, and — when the viewer may interact and holds
// control — mouse, wheel, keyboard and paste on that image sent as the socket's input messages
// (docs/HANDOFF.md). Coordinates are scaled from the image to the page's CSS viewport.

const MODIFIERS = (e) => (e.altKey ? 1 : 0) | (e.ctrlKey ? 2 : 0) | (e.metaKey ? 4 : 0) | (e.shiftKey ? 8 : 0);
const BUTTONS = ["left", "middle", "right"];

/**
 * Connects `img` to the live socket at `url`.
 * `on` receives the server's messages by type: hello, control, tabs, handoff, error, closed.
 * Answers { send, requestControl, takeOver, release, switchTab, close }.
 */
export function connectLive(url, img, on = {}) {
  const ws = new WebSocket(url);
  ws.binaryType = "blob";
  let last = null;
  let frames = 0;
  let viewport = { width: 0, height: 0 };
  let mine = false;
  let mayInteract = false;
  const send = (message) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  };
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") {
      const src = URL.createObjectURL(event.data);
      img.src = src;
      if (last) URL.revokeObjectURL(last);
      last = src;
      frames += 1;
      img.dataset.frames = String(frames);
      on.frame?.(frames);
      return;
    }
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.type === "viewport") viewport = { width: message.width, height: message.height };
    if (message.type === "hello") mayInteract = message.mode === "interact";
    if (message.type === "control") {
      mine = Boolean(message.controller?.you);
      img.classList.toggle("controlled", mine);
      img.tabIndex = mine ? 0 : -1;
      if (mine) img.focus();
    }
    on[message.type]?.(message);
  };
  ws.onclose = (event) => on.closed?.(event);

  // Where on the page a pointer event on the image is, in CSS pixels.
  const point = (e) => {
    const box = img.getBoundingClientRect();
    const sx = viewport.width && box.width ? viewport.width / box.width : 1;
    const sy = viewport.height && box.height ? viewport.height / box.height : 1;
    return { x: Math.max(0, (e.clientX - box.left) * sx), y: Math.max(0, (e.clientY - box.top) * sy) };
  };
  const active = () => mayInteract && mine;
  img.addEventListener("mousedown", (e) => {
    if (!active()) return;
    e.preventDefault();
    img.focus();
    send({ type: "mouse", event: "down", ...point(e), button: BUTTONS[e.button] || "left", click_count: e.detail || 1, modifiers: MODIFIERS(e) });
  });
  img.addEventListener("mouseup", (e) => {
    if (!active()) return;
    send({ type: "mouse", event: "up", ...point(e), button: BUTTONS[e.button] || "left", click_count: e.detail || 1, modifiers: MODIFIERS(e) });
  });
  let moved = 0;
  img.addEventListener("mousemove", (e) => {
    if (!active() || e.timeStamp - moved < 30) return;
    moved = e.timeStamp;
    send({ type: "mouse", event: "move", ...point(e), modifiers: MODIFIERS(e) });
  });
  img.addEventListener("wheel", (e) => {
    if (!active()) return;
    e.preventDefault();
    send({ type: "mouse", event: "wheel", ...point(e), delta_x: e.deltaX, delta_y: e.deltaY, modifiers: MODIFIERS(e) });
  }, { passive: false });
  img.addEventListener("contextmenu", (e) => { if (active()) e.preventDefault(); });
  img.addEventListener("dragstart", (e) => e.preventDefault());
  const key = (kind) => (e) => {
    if (!active()) return;
    // Ctrl/Cmd+V is a paste: let the browser deliver the clipboard as a paste event.
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "v") return;
    e.preventDefault();
    const printable = e.key.length === 1 && !e.ctrlKey && !e.metaKey;
    const text = kind === "down" ? (printable ? e.key : e.key === "Enter" ? "\r" : undefined) : undefined;
    send({ type: "key", event: kind, key: e.key, code: e.code, text, modifiers: MODIFIERS(e) });
  };
  img.addEventListener("keydown", key("down"));
  img.addEventListener("keyup", key("up"));
  img.addEventListener("paste", (e) => {
    if (!active()) return;
    e.preventDefault();
    const text = e.clipboardData?.getData("text/plain") || "";
    if (text) send({ type: "paste", text: text.slice(0, 10000) });
  });

  return {
    send,
    requestControl: () => send({ type: "control", action: "request" }),
    takeOver: () => send({ type: "control", action: "take_over" }),
    release: () => send({ type: "control", action: "release" }),
    switchTab: (id) => send({ type: "tab", id }),
    done: () => send({ type: "done" }),
    close: () => ws.close(),
  };
}
