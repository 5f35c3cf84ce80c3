/**
 * The studio in a real browser: Debian's chromium driven by playwright-core (no browser is downloaded).
 * `causalfusion serve` runs as a child process on a free port; the page generates, streams the AR steps,
 * paints a mask with the mouse, edits (the returned PNG's kept pixels are checked against the original),
 * generates from a prompt and captions it, and shows a bad request's one-line message. The screenshot in
 * the README is taken here: UPDATE_SCREENSHOTS=1 writes it to docs/images/studio.png.
 */
import * as fs from 'fs';
import * as path from 'path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { DEFAULT_MODEL_DIR } from '../model-folder';
import { expectKeptPixels, fromDataUrl, grayPixels, startServe, type ServeProcess } from './studio.test-util';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.resolve(__dirname, '../../../../docs/images/studio.png');
const haveChromium = fs.existsSync(CHROMIUM);
// where there is no chromium, say so once and skip (CI installs it: .ci/run)
if (!haveChromium) process.stderr.write(`studio browser test skipped: ${CHROMIUM} is absent (apt-get install chromium)\n`);

jest.setTimeout(120_000);

let serve: ServeProcess;
let browser: Browser;
let page: Page;

(haveChromium ? describe : describe.skip)('the studio in chromium', () => {
  beforeAll(async () => {
    [serve, browser] = await Promise.all([
      startServe(['--port', '0', '--threads', '1']),
      chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] }),
    ]);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });
  afterAll(async () => {
    await browser?.close();
    if (serve) expect(await serve.stop()).toBe(0);
  });

  /** Wait for the page to finish a request. */
  const idle = () => page.waitForSelector('body[data-state="idle"]');
  /** The newest result's PNG. */
  const newest = async () => fromDataUrl((await page.getAttribute('#history li:first-child a', 'href'))!);

  it("generates, paints a mask, edits (kept pixels identical), captions, shows a bad request's message", async () => {
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(serve.url);
    await idle();
    expect(await page.locator('#model option').allTextContents()).toEqual([
      expect.stringMatching(/^mnist \(shipped, class-conditional\)$/),
      expect.stringMatching(/^mnist-compositions \(shipped, text-to-image \+ captions\)$/),
    ]);

    // text-to-image with the multimodal model, then its caption
    await page.selectOption('#model', '1');
    await page.fill('#prompt', 'a large 3 to the left of a small 8');
    await page.fill('#steps', '20');
    await page.click('#generate');
    await idle();
    expect(await page.locator('#history li').count()).toBe(1);
    expect(await page.locator('#frames figure').count()).toBe(4);
    await page.click('#caption');
    await idle();
    expect(await page.textContent('#error')).toBe('');
    expect(await page.textContent('#captions')).toMatch(/^(a|an|the) [a-z0-9 ]+$/);

    // a class-conditional sample, watched AR step by AR step
    await page.selectOption('#model', '0');
    await page.selectOption('#class', '3');
    await page.fill('#arSteps', '4');
    // steps and sampler are the model's own defaults (its meta.json "sampling"), filled in by the page
    const { sampling } = JSON.parse(fs.readFileSync(path.join(DEFAULT_MODEL_DIR, 'meta.json'), 'utf8'));
    expect([await page.inputValue('#steps'), await page.inputValue('#sampler')]).toEqual([sampling?.steps ?? '50', sampling?.sampler ?? 'ddpm']);
    await page.fill('#seed', '1');
    await page.click('#generate');
    await idle();
    expect(await page.locator('#frames figure').count()).toBe(4);
    const original = await newest();
    expect(await grayPixels(original)).toMatchObject({ width: 32, height: 32 });
    expect(await page.getAttribute('#download', 'href')).toBe(`data:image/png;base64,${original.toString('base64')}`);

    // paint the upper left of the digit with the mouse, and regenerate it as a 5
    const box = (await page.locator('#mask').boundingBox())!;
    await page.mouse.move(box.x + box.width * 0.15, box.y + box.height * 0.15);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.4, box.y + box.height * 0.35, { steps: 8 });
    await page.mouse.up();
    const mask = fromDataUrl(await page.evaluate<string>('maskPixels.toDataURL("image/png")'));
    await page.selectOption('#editClass', '5');
    await page.click('#edit');
    await idle();
    expect(await page.textContent('#error')).toBe('');
    expect(await page.locator('#history li').count()).toBe(3);
    const edited = await newest();
    const regenerated = await expectKeptPixels(original, edited, mask, 16, 4);
    expect(await page.textContent('#history li:first-child')).toContain(`regenerated ${regenerated} of 16 tokens`);
    const shot = await page.screenshot();
    expect((await grayPixels(shot)).width).toBe(1280);
    if (process.env.UPDATE_SCREENSHOTS) fs.writeFileSync(SCREENSHOT, shot);

    // a bad request: the CLI's one-line message on the page, and the page still works
    await page.fill('#seed', '-1');
    await page.click('#generate');
    await idle();
    expect(await page.textContent('#error')).toBe("error: --seed: expected a non-negative integer, got '-1'");
    await page.fill('#seed', '2');
    await page.fill('#steps', '2');
    await page.click('#generate');
    await idle();
    expect(await page.textContent('#error')).toBe('');
    expect(pageErrors).toEqual([]);
    // one log line per request the page made
    expect(serve.stdout()).toMatch(/ POST \/api\/sample 400 \d+ms --seed: expected a non-negative integer, got '-1'\n/);
    expect(serve.stdout().match(/ POST \/api\/(sample|generate|edit|caption) /g)).toHaveLength(6);
  });
});
