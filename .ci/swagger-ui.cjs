// Opens Swagger UI of a running gateway in headless Chromium, authorizes with a bearer token,
// and sends POST /clients with "Try it out". Exits non-zero unless the page shows the operation
// and the answer is 207. Usage: node swagger-ui.cjs BASE_URL TOKEN SCREENSHOT.png
const { chromium } = require('playwright-core');

const [base, token, screenshot] = process.argv.slice(2);

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 2000 } });
    await page.goto(`${base}/swagger-ui/`);
    const op = page.locator('#operations-clients-createClient');
    await op.waitFor({ timeout: 30000 });
    const path = (await op.locator('.opblock-summary-path').textContent()).trim();
    if (path !== '/clients') throw new Error(`operation path is ${path}`);

    await page.locator('.auth-wrapper .authorize').click();
    await page.locator('.modal-ux input').first().fill(token);
    await page.locator('.modal-ux .auth-btn-wrapper .authorize').click();
    await page.locator('.modal-ux .btn-done').click();

    await op.locator('.opblock-summary').click();
    await op.locator('.try-out__btn').click();
    await op.locator('.execute').click();
    const status = op.locator('.live-responses-table tbody .response .response-col_status').first();
    await status.waitFor({ timeout: 30000 });
    const code = (await status.textContent()).trim();
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: false });
    if (!code.startsWith('207')) throw new Error(`Try it out answered ${code}, not 207`);
    console.log(`swagger-ui: POST /clients shown; Try it out answered ${code}`);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(`swagger-ui check failed: ${e.message}`);
  process.exit(1);
});
