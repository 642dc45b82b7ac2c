// Getting started: ready-to-run snippets with this server's address filled in (curl, the Python
// and TypeScript SDKs, Playwright, Puppeteer, an MCP client), the first-run card on Sessions, and
// copyable code blocks (also used by the session page for its connect_url).

import { h, link } from "./ui.js";

/** A code block with a Copy button. */
export function codeBlock(label, code) {
  const status = h("span", { role: "status", class: "hint" });
  return h("div", { class: "code" },
    h("pre", { tabindex: "0", "aria-label": label }, h("code", {}, code)),
    h("button", {
      type: "button",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(code);
          status.textContent = "Copied.";
        } catch {
          status.textContent = "Select the text and press Ctrl+C.";
        }
      },
    }, "Copy"),
    status);
}

/** Tabs of code blocks: `[name, code]` pairs, one shown at a time. */
export function snippetTabs(label, snippets) {
  const panels = snippets.map(([name, code], i) =>
    h("div", { role: "tabpanel", id: `snip-${i}`, hidden: i !== 0 }, codeBlock(`${name} snippet`, code)));
  const tabs = snippets.map(([name], i) => h("button", {
    type: "button", role: "tab", "aria-selected": i === 0 ? "true" : "false", "aria-controls": `snip-${i}`,
    onclick: () => {
      tabs.forEach((t, j) => t.setAttribute("aria-selected", j === i ? "true" : "false"));
      panels.forEach((p, j) => { p.hidden = j !== i; });
    },
  }, name));
  return h("div", { class: "snippets" }, h("div", { role: "tablist", "aria-label": label }, tabs), panels);
}

/** Starting a session from code, for this server. */
export function startSnippets(origin = location.origin) {
  return [
    ["curl", `curl -s -X POST ${origin}/v1/sessions \\
  -H "Authorization: Bearer $DRIFTSTACK_API_KEY" \\
  -H "Content-Type: application/json" -d '{}'`],
    ["Python", `import os
from driftstack import Client

ds = Client(os.environ["DRIFTSTACK_API_KEY"], base_url="${origin}")
session = ds.sessions.create()
ds.sessions.navigate(session["id"], "https://example.com")
open("page.png", "wb").write(ds.sessions.capture(session["id"], format="png"))
ds.sessions.release(session["id"])`],
    ["TypeScript", `import { Client } from "driftstack";

const ds = new Client(process.env.DRIFTSTACK_API_KEY, { baseUrl: "${origin}" });
const session = await ds.sessions.create();
await ds.sessions.navigate(session.id, "https://example.com");
await ds.sessions.release(session.id);`],
    ["Playwright", `import { chromium } from "playwright-core";
import { Client } from "driftstack";

const ds = new Client(process.env.DRIFTSTACK_API_KEY, { baseUrl: "${origin}" });
const session = await ds.sessions.create();
const browser = await chromium.connectOverCDP(session.connect_url);
const page = browser.contexts()[0].pages()[0];
await page.goto("https://example.com");
await browser.close();
await ds.sessions.release(session.id);`],
    ["Puppeteer", `import puppeteer from "puppeteer-core";
import { Client } from "driftstack";

const ds = new Client(process.env.DRIFTSTACK_API_KEY, { baseUrl: "${origin}" });
const session = await ds.sessions.create();
const browser = await puppeteer.connect({ browserWSEndpoint: session.connect_url });
const [page] = await browser.pages();
await page.goto("https://example.com");
await browser.disconnect();
await ds.sessions.release(session.id);`],
    ["MCP", `{
  "mcpServers": {
    "driftstack": {
      "type": "http",
      "url": "${origin}/mcp",
      "headers": { "Authorization": "Bearer ds_live_…" }
    }
  }
}`],
  ];
}

/** Connecting Playwright or Puppeteer to one live session. */
export function connectSnippets(connectUrl) {
  return [
    ["Playwright", `const browser = await chromium.connectOverCDP("${connectUrl}");
const page = browser.contexts()[0].pages()[0];`],
    ["Puppeteer", `const browser = await puppeteer.connect({ browserWSEndpoint: "${connectUrl}" });
const [page] = await browser.pages();`],
  ];
}

/** The first-run card: a key, a snippet, and the session appearing below. */
export function firstRun(canKeys) {
  return h("section", { class: "card onboarding", "aria-labelledby": "first-run" },
    h("h2", { id: "first-run" }, "Start your first session from code"),
    h("ol", {},
      h("li", {}, canKeys ? [link("/keys", "Create an API key"), " and put it in ", h("code", {}, "DRIFTSTACK_API_KEY"), "."]
        : ["Ask an admin for an API key and put it in ", h("code", {}, "DRIFTSTACK_API_KEY"), "."]),
      h("li", {}, "Run one of these (the SDKs are in the repository's ", h("code", {}, "sdk/"), " folder):"),
      h("li", { class: "plain" }, snippetTabs("Ways to start a session", startSnippets())),
      h("li", {}, "Watch it appear in the list below, live, and open it to see its page."),
    ),
    h("p", { class: "hint" }, "Every route and field: ", h("a", { href: "/docs/" }, "API reference"), "."));
}
