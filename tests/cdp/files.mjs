// Downloads and uploads through connect_url with a stock client, printing one JSON line.
// Usage: node files.mjs playwright|puppeteer CONNECT_URL PAGE_URL UPLOAD_PATH [FOREIGN_PATH]
// Clicks `#report` (a download) and gives `#pick` (a file input) the uploaded file by its path;
// with FOREIGN_PATH, also tries a path that is not this session's upload (it must be refused).
const [client, connectUrl, pageUrl, uploadPath, foreignPath] = process.argv.slice(2);
const out = {};
const readPicked = () => (async () => {
  const f = document.querySelector('#pick').files[0];
  return f ? { name: f.name, text: await f.text() } : null;
})();

if (client === 'playwright') {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.connectOverCDP(connectUrl);
  const context = browser.contexts()[0];
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(pageUrl);
  const download = page.waitForEvent('download', { timeout: 5000 }).then(() => true, () => false);
  await page.click('#report');
  out.download_event = await download;
  await page.setInputFiles('#pick', uploadPath);
  out.picked = await page.evaluate(readPicked);
  if (foreignPath) {
    out.foreign = await page.setInputFiles('#pick', foreignPath).then(() => 'accepted', (e) => `refused: ${String(e.message).split('\n')[0]}`);
  }
  await browser.close().catch(() => {});
} else {
  const puppeteer = (await import('puppeteer-core')).default;
  const browser = await puppeteer.connect({ browserWSEndpoint: connectUrl, defaultViewport: null });
  const page = (await browser.pages())[0] ?? (await browser.newPage());
  await page.goto(pageUrl);
  const input = await page.$('#pick');
  await input.uploadFile(uploadPath);
  out.picked = await page.evaluate(readPicked);
  if (foreignPath) {
    out.foreign = await input.uploadFile(foreignPath).then(() => 'accepted', (e) => `refused: ${String(e.message).split('\n')[0]}`);
  }
  await page.click('#report');
  await browser.disconnect();
}
console.log(JSON.stringify(out));
