// The TypeScript/JavaScript client against a running Driftstack, started by tests/sdks.rs, which
// passes DRIFTSTACK_URL, DRIFTSTACK_API_KEY and DRIFTSTACK_PAGE_URL.
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";

import { Client, DriftstackError, verifyWebhook, WebhookVerificationError } from "../index.js";

const url = process.env.DRIFTSTACK_URL;
const key = process.env.DRIFTSTACK_API_KEY;
const page = process.env.DRIFTSTACK_PAGE_URL;
const live = { skip: !url || !key ? "DRIFTSTACK_URL and DRIFTSTACK_API_KEY are set by tests/sdks.rs" : false };
const client = () => new Client(key, { baseUrl: url });

test("the quickstart gives a PNG", live, async () => {
  const ds = client();
  const session = await ds.sessions.create();
  assert.match(session.connect_url, /^ws:\/\//);
  const loaded = await ds.sessions.navigate(session.id, page);
  assert.equal(loaded.status, 200);
  const png = await ds.sessions.capture(session.id, { format: "png" });
  assert.deepEqual([...png.slice(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  const closed = await ds.sessions.release(session.id);
  assert.equal(closed.status, "closed");
});

test("an upload reaches a file input", live, async () => {
  const ds = client();
  const session = await ds.sessions.create();
  try {
    await ds.sessions.navigate(session.id, page);
    await ds.sessions.actions(session.id, [
      { type: "evaluate", expression: "document.body.insertAdjacentHTML('beforeend', '<input id=f type=file>')" },
    ]);
    const up = await ds.sessions.upload(session.id, "hello.txt", new TextEncoder().encode("hi from js"));
    assert.match(up.id, /^upl_/);
    assert.equal(up.size, 10);
    const done = await ds.sessions.actions(session.id, [
      { type: "set_files", selector: "#f", uploads: [up.id] },
      { type: "evaluate", expression: "document.querySelector('#f').files[0].text()" },
    ]);
    assert.equal(done.results[1].value, "hi from js");
    const listed = [];
    for await (const d of ds.sessions.downloads(session.id)) listed.push(d);
    assert.deepEqual(listed, []);
    await ds.sessions.actions(session.id, [{ type: "evaluate", expression: "console.log('from js')" }]);
    let said = [];
    for (let i = 0; i < 50 && !said.includes("from js"); i++) {
      said = [];
      for await (const e of ds.sessions.logs(session.id, "console")) said.push(e.data.text);
      if (!said.includes("from js")) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(said.includes("from js"), JSON.stringify(said));
    assert.equal((await ds.sessions.har(session.id)).log.version, "1.2");
    await assert.rejects(ds.sessions.recording(session.id), (err) => err.status === 404);
    await assert.rejects(ds.sessions.setRecording(session.id, false), (err) => err.status === 409);
  } finally {
    await ds.sessions.release(session.id);
  }
});

test("an ended session gives its last frame", live, async () => {
  const ds = client();
  const session = await ds.sessions.create();
  await assert.rejects(ds.sessions.lastFrame(session.id), (err) => err.status === 409 && err.code === "session_live");
  await ds.sessions.release(session.id);
  let jpeg = null;
  for (let i = 0; i < 50 && !jpeg; i++) {
    try {
      jpeg = await ds.sessions.lastFrame(session.id);
    } catch (err) {
      assert.equal(err.code, "frame_not_found", String(err));
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  assert.deepEqual([...jpeg.slice(0, 3)], [0xff, 0xd8, 0xff]);
});

test("a handoff is completed and waited for", live, async () => {
  const ds = client();
  const session = await ds.sessions.create();
  try {
    const link = await ds.sessions.createLiveLink(session.id, { mode: "interact", expires_in_seconds: 120 });
    assert.match(link.url, /\/live\/lvt_/);
    await ds.sessions.revokeLiveLink(session.id, link.id);
    const handoff = await ds.sessions.handOff(session.id, "approve the payment", { timeout_seconds: 300 });
    assert.equal(handoff.state, "requested");
    assert.equal((await ds.sessions.get(session.id)).status, "waiting_for_human");
    await assert.rejects(ds.sessions.waitForHandoff(session.id, 0.5), (err) => err.code === "timeout");
    const done = await ds.sessions.completeHandoff(session.id);
    assert.equal(done.handoff.state, "completed");
    await ds.sessions.waitForHandoff(session.id, 5);
  } finally {
    await ds.sessions.release(session.id);
  }
});

test("problems are typed errors", live, async () => {
  const ds = client();
  await assert.rejects(ds.sessions.get("ses_00000000000000000000000000000000"), (err) => {
    assert.ok(err instanceof DriftstackError);
    assert.equal(err.status, 404);
    return true;
  });
  await assert.rejects(ds.profiles.create(""), (err) => err.status === 422 && "name" in err.errors);
});

test("profiles, snapshots and pagination", live, async () => {
  const ds = client();
  const small = new Client(key, { baseUrl: url, pageSize: 2 });
  const made = [];
  for (let i = 0; i < 5; i += 1) made.push(await ds.profiles.create(`js ${i}`));
  const seen = [];
  for await (const p of small.profiles.list()) seen.push(p.id);
  for (const p of made) assert.ok(seen.includes(p.id));
  assert.equal(new Set(seen).size, seen.length);
  const snap = await ds.profiles.snapshot(made[0].id, "first");
  const snaps = [];
  for await (const s of ds.profiles.snapshots(made[0].id)) snaps.push(s.id);
  assert.deepEqual(snaps, [snap.id]);
  assert.equal((await ds.profiles.restore(made[0].id, snap.id)).id, made[0].id);
  const clone = await ds.profiles.clone(made[0].id, "js clone");
  assert.equal(clone.name, "js clone");
  for (const p of [...made, clone]) await ds.profiles.delete(p.id);
});

test("usage", live, async () => {
  const usage = await client().usage.get();
  assert.ok("session_minutes" in usage.meters);
});

test("webhooks arrive signed and verify", live, async () => {
  const ds = client();
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200).end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const endpoint = await ds.webhooks.createEndpoint(`http://127.0.0.1:${server.address().port}/hook`, { event_types: ["profile.created"] });
    assert.match(endpoint.secret, /^whsec_/);
    const profile = await ds.profiles.create("hooked");
    const deadline = Date.now() + 20000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(received.length > 0, "the event arrives");
    const { headers, body } = received[0];
    const event = await verifyWebhook(endpoint.secret, headers, body);
    assert.equal(event.type, "profile.created");
    assert.equal(event.data.profile_id, profile.id);
    await assert.rejects(verifyWebhook(endpoint.secret, headers, Buffer.concat([body, Buffer.from(" ")])), WebhookVerificationError);
    await assert.rejects(verifyWebhook(endpoint.secret, headers, body, { now: Date.now() / 1000 + 3600 }), WebhookVerificationError);
    await ds.webhooks.deleteEndpoint(endpoint.id);
    await ds.profiles.delete(profile.id);
  } finally {
    server.close();
  }
});

test("POSTs retry on 503 with the same Idempotency-Key", async () => {
  const keys = [];
  const server = http.createServer((req, res) => {
    keys.push(req.headers["idempotency-key"]);
    if (keys.length === 1) {
      res.writeHead(503, { "retry-after": "0", "content-type": "application/problem+json" });
      res.end(JSON.stringify({ title: "busy", status: 503 }));
      return;
    }
    res.writeHead(201, { "content-type": "application/json" }).end('{"id":"ses_x"}');
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const c = new Client("ds_test_x", { baseUrl: `http://127.0.0.1:${server.address().port}` });
    assert.equal((await c.sessions.create()).id, "ses_x");
    assert.equal(keys.length, 2);
    assert.ok(keys[0] && keys[0] === keys[1]);
  } finally {
    server.close();
  }
});
