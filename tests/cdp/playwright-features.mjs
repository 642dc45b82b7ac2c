// Tries the everyday Playwright features over connectOverCDP and prints one JSON line:
// {feature: "ok" | "error: …"}. Usage: node playwright-features.mjs CONNECT_URL PAGE_URL
import { chromium } from 'playwright-core';

const [connectUrl, pageUrl] = process.argv.slice(2);
const origin = new URL(pageUrl).origin;
const browser = await chromium.connectOverCDP(connectUrl);
const context = browser.contexts()[0];
const page = context.pages()[0] ?? (await context.newPage());
const results = {};
async function feature(name, f) {
  try {
    const r = await f();
    results[name] = r === undefined || r === true ? 'ok' : `error: unexpected ${JSON.stringify(r)}`;
  } catch (e) {
    results[name] = `error: ${String(e.message).split('\n')[0]}`;
  }
}

await feature('goto', async () => (await page.goto(pageUrl)).ok());
await feature('geolocation', async () => {
  await context.grantPermissions(['geolocation'], { origin });
  await context.setGeolocation({ latitude: 52.52, longitude: 13.4 });
  const lat = await page.evaluate(() => new Promise((ok, no) =>
    navigator.geolocation.getCurrentPosition((p) => ok(p.coords.latitude), (e) => no(new Error(e.message)))));
  return lat === 52.52;
});
await feature('clear_permissions', async () => { await context.clearPermissions(); });
await feature('cookies', async () => {
  await context.addCookies([{ name: 'pw', value: '1', url: origin }]);
  const cookies = await context.cookies(origin);
  await page.goto(pageUrl);
  const seen = await page.evaluate(() => document.cookie);
  return cookies.some((c) => c.name === 'pw') && seen.includes('pw=1');
});
await feature('clear_cookies', async () => { await context.clearCookies(); return (await context.cookies()).length === 0; });
await feature('extra_headers', async () => { await page.setExtraHTTPHeaders({ 'x-test': '1' }); });
await feature('route', async () => {
  await page.route('**/routed', (r) => r.fulfill({ body: 'routed!', contentType: 'text/plain' }));
  await page.goto(`${origin}/routed`);
  const text = await page.textContent('body');
  await page.unroute('**/routed');
  return text === 'routed!';
});
await feature('emulate_media', async () => {
  await page.emulateMedia({ colorScheme: 'dark' });
  return page.evaluate(() => matchMedia('(prefers-color-scheme: dark)').matches);
});
await feature('viewport', async () => {
  await page.setViewportSize({ width: 700, height: 500 });
  return page.evaluate(() => innerWidth === 700);
});
await feature('keyboard_mouse', async () => {
  await page.goto(pageUrl);
  await page.click('#name');
  await page.keyboard.type('typed');
  return (await page.inputValue('#name')) === 'typed';
});
await feature('upload_buffer', async () => {
  await page.setContent('<input type="file" id="f">');
  await page.setInputFiles('#f', { name: 'a.txt', mimeType: 'text/plain', buffer: Buffer.from('abc') });
  return page.evaluate(() => document.getElementById('f').files[0].size === 3);
});
await feature('dialog', async () => {
  page.once('dialog', (d) => d.accept());
  await page.evaluate(() => alert('hi'));
});
await feature('screenshot', async () => (await page.screenshot()).length > 100);
await feature('pdf', async () => (await page.pdf()).length > 100);
await feature('new_page', async () => {
  const p2 = await context.newPage();
  await p2.goto(pageUrl);
  const ok = (await p2.title()) === 'Index';
  await p2.close();
  return ok;
});
await feature('new_context', async () => {
  const c2 = await browser.newContext();
  const p3 = await c2.newPage();
  await p3.goto(pageUrl);
  await c2.addCookies([{ name: 'c2', value: '1', url: origin }]);
  const ok = (await c2.cookies()).length === 1;
  await c2.close();
  return ok;
});
await feature('cdp_session', async () => {
  const s = await context.newCDPSession(page);
  const { result } = await s.send('Runtime.evaluate', { expression: '1+1' });
  return result.value === 2;
});
await feature('init_script', async () => {
  await context.addInitScript(() => { window.__init = 'yes'; });
  await page.goto(pageUrl);
  return (await page.evaluate(() => window.__init)) === 'yes';
});
await feature('offline', async () => { await context.setOffline(true); await context.setOffline(false); });
await feature('tracing', async () => {
  await browser.startTracing(page);
  const buf = await browser.stopTracing();
  return buf.length > 0;
});
await feature('accessibility', async () => {
  await page.goto(pageUrl);
  const snap = await page.locator('body').ariaSnapshot();
  return snap.length > 0;
});
console.log(JSON.stringify(results));
process.exit(0);
