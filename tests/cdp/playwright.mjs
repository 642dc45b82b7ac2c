// Connects stock playwright-core to a session's connect_url, drives its existing page and prints
// one JSON line with what it saw. Usage: node playwright.mjs CONNECT_URL PAGE_URL
import { chromium } from 'playwright-core';

const [connectUrl, pageUrl] = process.argv.slice(2);
const browser = await chromium.connectOverCDP(connectUrl);
const pages = browser.contexts().flatMap((c) => c.pages());
const page = pages[0];
const marker = await page.evaluate(() => window.__marker || null);
await page.goto(pageUrl);
const title = await page.title();
await page.fill('#name', 'from playwright');
const value = await page.inputValue('#name');
const png = await page.screenshot();
console.log(JSON.stringify({ contexts: browser.contexts().length, pages: pages.length, marker, title, value, pngBytes: png.length }));
process.exit(0);
