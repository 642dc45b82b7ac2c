// Tries the everyday Puppeteer features over puppeteer.connect and prints one JSON line:
// {feature: "ok" | "error: …"}. Usage: node puppeteer-features.mjs CONNECT_URL PAGE_URL
import puppeteer from 'puppeteer-core';

const [connectUrl, pageUrl] = process.argv.slice(2);
const origin = new URL(pageUrl).origin;
const browser = connectUrl.startsWith('ws')
  ? await puppeteer.connect({ browserWSEndpoint: connectUrl, defaultViewport: null })
  : await puppeteer.connect({ browserURL: connectUrl, defaultViewport: null });
const page = (await browser.pages()).filter((p) => !p.url().startsWith('chrome'))[0] ?? (await browser.newPage());
const results = {};
async function feature(name, f) {
  try {
    const r = await f();
    results[name] = r === undefined || r === true ? 'ok' : `error: unexpected ${JSON.stringify(r)}`;
  } catch (e) {
    results[name] = `error: ${String(e.message).split('\n')[0]}`;
  }
}

await feature('goto', async () => (await page.goto(pageUrl, { waitUntil: 'load' })).ok());
await feature('geolocation', async () => {
  await page.browserContext().overridePermissions(origin, ['geolocation']);
  await page.setGeolocation({ latitude: 48.85, longitude: 2.35 });
  const lat = await page.evaluate(() => new Promise((ok, no) =>
    navigator.geolocation.getCurrentPosition((p) => ok(p.coords.latitude), (e) => no(new Error(e.message)))));
  return lat === 48.85;
});
await feature('cookies', async () => {
  await page.setCookie({ name: 'pp', value: '1', url: origin });
  await page.goto(pageUrl);
  return (await page.evaluate(() => document.cookie)).includes('pp=1');
});
await feature('interception', async () => {
  await page.setRequestInterception(true);
  const handler = (req) => (req.url().endsWith('/intercepted')
    ? req.respond({ status: 200, contentType: 'text/plain', body: 'intercepted!' })
    : req.continue());
  page.on('request', handler);
  await page.goto(`${origin}/intercepted`);
  const text = await page.evaluate(() => document.body.textContent);
  page.off('request', handler);
  await page.setRequestInterception(false);
  return text === 'intercepted!';
});
await feature('emulate', async () => {
  await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: 'dark' }]);
  await page.setViewport({ width: 640, height: 480 });
  return page.evaluate(() => innerWidth === 640 && matchMedia('(prefers-color-scheme: dark)').matches);
});
await feature('keyboard', async () => {
  await page.goto(pageUrl);
  await page.click('#name');
  await page.keyboard.type('typed');
  return page.$eval('#name', (e) => e.value === 'typed');
});
await feature('dialog', async () => {
  page.once('dialog', (d) => d.accept());
  await page.evaluate(() => alert('hi'));
});
await feature('screenshot', async () => (await page.screenshot()).length > 100);
await feature('pdf', async () => (await page.pdf()).length > 100);
await feature('metrics', async () => typeof (await page.metrics()).JSHeapUsedSize === 'number');
await feature('tracing', async () => {
  await page.tracing.start();
  await page.goto(pageUrl);
  const buf = await page.tracing.stop();
  return buf.length > 0;
});
await feature('coverage', async () => {
  await page.coverage.startJSCoverage();
  await page.goto(pageUrl);
  await page.coverage.stopJSCoverage();
});
await feature('accessibility', async () => (await page.accessibility.snapshot()) !== null);
await feature('new_page', async () => {
  const p2 = await browser.newPage();
  await p2.goto(pageUrl);
  const ok = (await p2.title()) === 'Index';
  await p2.close();
  return ok;
});
await feature('new_context', async () => {
  const c2 = await browser.createBrowserContext();
  const p3 = await c2.newPage();
  await p3.goto(pageUrl);
  const ok = (await p3.title()) === 'Index';
  await c2.close();
  return ok;
});
await feature('cdp_session', async () => {
  const s = await page.createCDPSession();
  const { result } = await s.send('Runtime.evaluate', { expression: '1+1' });
  return result.value === 2;
});
await browser.disconnect();
console.log(JSON.stringify(results));
