// Connects stock puppeteer-core to a session's connect_url, drives its existing page and prints
// one JSON line with what it saw. Usage: node puppeteer.mjs CONNECT_URL PAGE_URL
import puppeteer from 'puppeteer-core';

const [connectUrl, pageUrl] = process.argv.slice(2);
const browser = await puppeteer.connect({ browserWSEndpoint: connectUrl, defaultViewport: null });
const pages = (await browser.pages()).filter((p) => !p.url().startsWith('chrome'));
const page = pages[0];
const before = await page.evaluate(() => window.__marker || null);
await page.goto(pageUrl, { waitUntil: 'load' });
const title = await page.title();
await page.evaluate(() => { window.__marker = 'set-by-puppeteer'; });
const png = await page.screenshot({ type: 'png' });
let refused = null;
try {
  await page.goto('file:///etc/passwd');
} catch (e) {
  refused = String(e.message);
}
await browser.disconnect();
console.log(JSON.stringify({ pages: pages.length, before, title, pngBytes: png.length, refused }));
