// Compiles only if index.d.ts describes the quickstart correctly (`npm run typecheck`).
import { Client, DriftstackError, verifyWebhook } from "../index.js";

async function quickstart(): Promise<Uint8Array> {
  const ds = new Client("ds_live_…", { baseUrl: "http://127.0.0.1:8080" });
  const session = await ds.sessions.create({ viewport: { width: 1280, height: 800 } });
  await ds.sessions.navigate(session.id, "https://example.com", { wait_until: "load" });
  const png = await ds.sessions.capture(session.id, { format: "png", full_page: true });
  await ds.sessions.release(session.id);
  for await (const p of ds.profiles.list()) p.state?.cookies.toFixed();
  const usage = await ds.usage.get();
  usage.meters.sessions.used.toFixed();
  try {
    await ds.sessions.get("ses_x");
  } catch (err) {
    if (err instanceof DriftstackError) err.errors["url"]?.toUpperCase();
  }
  const event = await verifyWebhook<{ profile_id: string }>("whsec_x", {}, "{}");
  event.data.profile_id.toUpperCase();
  return png;
}
void quickstart;
