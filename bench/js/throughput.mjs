// Raw puppeteer-core throughput: N concurrent workers on one already running browser, each doing
// back-to-back cycles of new context → page → goto(load) → PNG → close context, as someone
// driving Chromium themselves would. The same job `bench --perf` sends through Driftstack.
//
//   node throughput.mjs --url URL --chromium BIN --concurrency 4 --cycles 40
//
// Uses the puppeteer-core that ../shared/bench/run-baseline.sh installs (same version and flags
// as the project's baseline). Prints one JSON line: cycles, errors, seconds, cycles_per_s.
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../../../shared/bench/package.json'));
const puppeteer = require('puppeteer-core');

const arg = (name, dflt) => {
  const i = process.argv.indexOf('--' + name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const url = arg('url');
const executablePath = arg('chromium', '/usr/bin/chromium');
const concurrency = Number(arg('concurrency', '1'));
const total = Number(arg('cycles', '40'));
if (!url) { console.error('usage: node throughput.mjs --url URL'); process.exit(2); }

// The baseline's flags (../shared/bench/baseline.mjs).
const FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

const dir = mkdtempSync(join(tmpdir(), 'ds-throughput-'));
const browser = await puppeteer.launch({ executablePath, args: [...FLAGS, `--user-data-dir=${dir}`], headless: true });
const cycle = async () => {
  const ctx = await browser.createBrowserContext();
  try {
    const page = await ctx.newPage();
    await page.goto(url, { waitUntil: 'load' });
    await page.screenshot({ type: 'png' });
  } finally {
    await ctx.close();
  }
};
for (let i = 0; i < 3; i++) await cycle(); // warm-up, as the baseline does

let started = 0, done = 0, errors = 0;
const t0 = performance.now();
const worker = async () => {
  while (started < total) {
    started++;
    try { await cycle(); done++; } catch { errors++; }
  }
};
await Promise.all(Array.from({ length: concurrency }, worker));
const seconds = (performance.now() - t0) / 1000;
await browser.close();
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ concurrency, cycles: done, errors, seconds: +seconds.toFixed(3),
  cycles_per_s: +(done / seconds).toFixed(2) }));
