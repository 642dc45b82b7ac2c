// Human in the loop with real browsers, printing one JSON line.
//
//   node handoff.mjs person CONNECT_URL LIVE_URL BASE KEY SESSION_ID
//     The agent (stock playwright-core over the session's connect_url) waits for the handoff
//     with POST /wait {"handoff": "completed"}; a person in their own headless Chromium opens
//     the live link, clicks into the remote #code field on the screencast, types 123456 on the
//     keyboard and clicks Done. Prints what the agent's page then holds.
//
//   node handoff.mjs frame EMBED_URL
//     Opens a page that puts a live link in an <iframe>; prints whether the live page loaded
//     inside it (framing allowed) or was blocked.
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const executablePath = ['/usr/lib/chromium/chromium-headless-shell', '/usr/bin/chromium-headless-shell', '/usr/lib/chromium/chromium', '/usr/bin/chromium']
  .find((p) => fs.existsSync(p));
const [mode, ...args] = process.argv.slice(2);

async function person([connectUrl, liveUrl, base, key, sid]) {
  const agent = await chromium.connectOverCDP(connectUrl);
  const page = agent.contexts().flatMap((c) => c.pages())[0];
  const field = await page.locator('#code').boundingBox();
  const width = await page.evaluate(() => innerWidth);
  const waiting = fetch(`${base}/v1/sessions/${sid}/wait`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ handoff: 'completed', timeout_ms: 90000 }),
  });

  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  const human = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  await human.goto(liveUrl);
  await human.waitForFunction(() => Number(document.getElementById('screen').dataset.frames || 0) > 0, null, { timeout: 30000 });
  await human.waitForFunction(() => document.getElementById('status').textContent.includes('You are in control'), null, { timeout: 30000 });
  const reason = await human.textContent('#reason');
  const img = await human.locator('#screen').boundingBox();
  const scale = img.width / width;
  await human.mouse.click(img.x + (field.x + field.width / 2) * scale, img.y + (field.y + field.height / 2) * scale);
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'code', null, { timeout: 15000 });
  await human.keyboard.type('123456', { delay: 20 });
  await page.waitForFunction(() => document.querySelector('#code').value === '123456', null, { timeout: 15000 });
  await human.click('#done');
  await human.waitForFunction(() => document.getElementById('status').textContent.startsWith('Done'), null, { timeout: 15000 });
  const status = await human.textContent('#status');
  const waited = (await waiting).status;
  const value = await page.inputValue('#code');
  await browser.close();
  return { value, reason, status, waited };
}

async function frame([embedUrl]) {
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
  const page = await browser.newPage();
  await page.goto(embedUrl);
  await page.waitForFunction(() => window.loaded === true, null, { timeout: 30000 });
  const child = page.frames().find((f) => f !== page.mainFrame());
  let framed = false;
  let url = child ? child.url() : null;
  if (child && url.includes('/live/')) {
    try {
      framed = (await child.$('#status')) !== null;
    } catch {
      framed = false;
    }
  }
  await browser.close();
  return { framed, url };
}

const out = mode === 'person' ? await person(args) : await frame(args);
console.log(JSON.stringify(out));
process.exit(0);
