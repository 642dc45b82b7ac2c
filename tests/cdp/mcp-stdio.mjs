// A local MCP client (the official TypeScript SDK) driving a session through the stdio bridge
// `driftstack mcp --url URL` (tests/mcp.rs). Usage: node mcp-stdio.mjs BIN URL KEY READ_KEY SITE
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import assert from "node:assert/strict";

const [bin, url, key, readKey, site] = process.argv.slice(2);

async function connect(apiKey) {
  const transport = new StdioClientTransport({
    command: bin,
    args: ["mcp", "--url", url],
    env: { DRIFTSTACK_API_KEY: apiKey, PATH: process.env.PATH ?? "" },
    stderr: "inherit",
  });
  const client = new Client({ name: "driftstack-stdio-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

const text = (r) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
const refOf = (snap, pattern) => {
  const m = snap.match(new RegExp(`\\[(e\\d+)\\] ${pattern}`));
  assert.ok(m, `no /${pattern}/ in:\n${snap}`);
  return m[1];
};

const client = await connect(key);
const { tools } = await client.listTools();
assert.ok(tools.some((t) => t.name === "snapshot") && tools.length >= 19, "the tools are listed");
const call = async (name, args, ok = true) => {
  const r = await client.callTool({ name, arguments: args });
  assert.equal(Boolean(r.isError), !ok, `${name}: ${text(r)}`);
  return r;
};

const created = await call("session_create", { viewport: { width: 800, height: 600 } });
const sid = created.structuredContent.session_id;
await call("navigate", { session_id: sid, url: `${site}/signin` });
let snap = text(await call("snapshot", { session_id: sid }));
await call("type", { session_id: sid, ref: refOf(snap, 'textbox "Email"'), text: "stdio@example.com" });
await call("type", { session_id: sid, ref: refOf(snap, 'textbox "Password"'), text: "pw", submit: true });
await call("wait_for", { session_id: sid, text: "Signed in as stdio@example.com" });
snap = text(await call("snapshot", { session_id: sid }));
assert.match(snap, /heading "Welcome back"/);

const shot = await call("screenshot", { session_id: sid });
const image = shot.content.find((c) => c.type === "image");
const png = Buffer.from(image.data, "base64");
assert.equal(png.subarray(0, 8).toString("hex"), "89504e470d0a1a0a", "a PNG");
assert.deepEqual([png.readUInt32BE(16), png.readUInt32BE(20)], [800, 600]);

const md = text(await call("extract", { session_id: sid, format: "markdown" }));
assert.match(md, /^# Welcome back/m);
const refused = await call("navigate", { session_id: sid, url: "http://10.255.255.1/" }, false);
assert.equal(refused.structuredContent.code, "egress_denied");
await call("session_release", { session_id: sid });
await client.close();

// A read-only key lists sessions but cannot start one.
const reader = await connect(readKey);
const denied = await reader.callTool({ name: "session_create", arguments: {} });
assert.equal(denied.isError, true);
assert.equal(denied.structuredContent.code, "missing_permission");
assert.match(text(denied), /sessions:write/);
const listed = await reader.callTool({ name: "session_list", arguments: { limit: 5 } });
assert.ok(!listed.isError && text(listed).includes(sid), text(listed));
await reader.close();
console.log(JSON.stringify({ ok: true, session_id: sid }));
