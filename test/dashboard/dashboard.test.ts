/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core, against the
 * real service (API, worker, QEMU under TCG) with a tokens file. Everything on the page is
 * done with the keyboard (Tab, Enter, typing); nothing is clicked.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { startService, type Service } from '../support/service.ts';

const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
const TOKEN = 'dashboard-test-token';
/** Long enough under TCG (the VM boots for seconds) that `running` is on screen for a while. */
const RUN_AS_ROOT = 'echo hello from the dashboard test\nsleep 2\necho layer-done > /done';

let service: Service;
let dir: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
/** Console errors, page errors, failed requests and HTTP errors the page saw. */
let problems: string[];

beforeAll(async () => {
  process.env.BALER_VM_CACHE ??= '/work/main/.cache/vm';
  dir = await mkdtemp(join(tmpdir(), 'baler-dashboard-'));
  await writeFile(join(dir, 'tokens'), `dash ${TOKEN}\nother other-token\n`);
  service = await startService({ BALER_TOKENS_FILE: join(dir, 'tokens') });
  await mkdir(OUTPUT, { recursive: true });
  // launch() gives the browser a fresh, temporary profile (user-data dir) of its own.
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
  page = await context.newPage();
  problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (request) => {
    // Leaving a view closes its event streams on purpose (the list follows running builds).
    if (/\/events$/.test(new URL(request.url()).pathname) && request.failure()?.errorText === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
});

afterEach(async () => {
  await context?.close();
});

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${service.url}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...init.headers } });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const submit = async (spec: unknown) => (await api<{ id: string }>('/v1/builds?noCache=true', { method: 'POST', body: JSON.stringify(spec) })).id;

/** Press Tab until the focused element matches `selector` (keyboard only, like a user would). */
async function tabTo(selector: string, maxPresses = 40): Promise<void> {
  for (let i = 0; i < maxPresses; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
  }
  throw new Error(`${selector} not reached with ${maxPresses} Tab presses`);
}

/** The focused element shows a visible focus ring. */
const focusVisible = () =>
  page.evaluate(() => {
    const style = getComputedStyle(document.activeElement as Element);
    return style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  });

it('the static files are public, with a strict Content-Security-Policy; the API is not', async () => {
  for (const path of ['/', '/app.js', '/style.css', '/config.json']) {
    const res = await fetch(`${service.url}${path}`);
    expect(res.status, path).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
  }
  expect(await (await fetch(`${service.url}/config.json`)).json()).toEqual({ tokens: true });
  expect((await fetch(`${service.url}/v1/builds`)).status).toBe(401);
  // Paths that are no file stay the API's (401 without a token, then 404), not a file server's.
  expect((await fetch(`${service.url}/no-such-file.js`)).status).toBe(401);
  expect((await fetch(`${service.url}/no-such-file.js`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
});

it('with the keyboard only: sign in, open a build, watch it run and turn green, read its log and layers, download it', async () => {
  const id = await submit({ name: 'dashboard/live', tag: 'v1', contents: [{ text: 'from contents\n', to: '/etc/motd' }], runAsRoot: RUN_AS_ROOT });

  await page.goto(`${service.url}/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await tabTo('#token');
  expect(await focusVisible()).toBe(true);
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');

  // The list, with the build on it; open it from there.
  await page.getByRole('heading', { name: 'Recent builds' }).waitFor();
  const link = `a[href="#/builds/${id}"]`;
  await page.locator(link).waitFor();
  expect(await page.locator(`tr[data-build="${id}"] .status`).textContent()).toMatch(/^(queued|running)$/);
  await tabTo(link);
  expect(await focusVisible()).toBe(true);
  await page.keyboard.press('Enter');

  // Live: the page shows `running`, then (without a reload) `succeeded`, in green.
  const build = page.locator(`article.build[data-build="${id}"]`);
  await page.getByRole('heading', { name: 'dashboard/live:v1' }).waitFor();
  await page.locator(`article.build[data-build="${id}"][data-status="running"]`).waitFor({ timeout: 120_000 });
  await page.locator(`article.build[data-build="${id}"][data-status="succeeded"]`).waitFor({ timeout: 180_000 });
  expect(await build.getAttribute('data-live')).toBe('events');
  const badge = build.locator('.status');
  expect(await badge.textContent()).toBe('succeeded');
  expect(await badge.evaluate((el) => getComputedStyle(el).backgroundColor)).toBe('rgb(26, 127, 55)');
  // Screen readers were told.
  await page.waitForFunction(() => document.getElementById('announcer')?.textContent?.includes('is succeeded'));

  // The log, as the service has it.
  await page.waitForFunction(() => document.querySelector('pre.log')?.textContent?.includes('hello from the dashboard test'));
  const log = await (await fetch(`${service.url}/v1/builds/${id}/logs`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  expect(await build.locator('pre.log').textContent()).toBe(log);

  // The layer table: every layer of the result, its digest and size, none from a cache.
  const record = await api<{ result: { layers: Array<{ diffId: string; size: number }>; archive: { size: number } } }>(`/v1/builds/${id}`);
  const rows = build.locator('table.layers tbody tr');
  expect(await rows.count()).toBe(record.result.layers.length);
  for (const [i, layer] of record.result.layers.entries()) {
    const cells = rows.nth(i).locator('td');
    expect(await cells.nth(1).locator('code').getAttribute('title')).toBe(layer.diffId);
    expect(await cells.nth(2).getAttribute('data-bytes')).toBe(String(layer.size));
    expect(await cells.nth(3).textContent()).toBe('no');
  }
  // Finished: nothing to cancel.
  expect(await build.getByRole('button', { name: 'Cancel build' }).getAttribute('aria-disabled')).toBe('true');

  await page.screenshot({ path: join(OUTPUT, 'dashboard.png'), fullPage: true });

  // Download the image (the token goes in a header, so the page fetches it), by keyboard.
  await tabTo('a[data-format="docker-archive"]');
  const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
  const saved = join(OUTPUT, 'dashboard-image.tar.gz');
  await download.saveAs(saved);
  const head = await fetch(`${service.url}/v1/builds/${id}/image`, { method: 'HEAD', headers: { authorization: `Bearer ${TOKEN}` } });
  expect(head.headers.get('content-disposition')).toBe(`attachment; filename="${download.suggestedFilename()}"`);
  expect((await stat(saved)).size).toBe(record.result.archive.size);
  await rm(saved);

  expect(problems).toEqual([]);
}, 300_000);

it('with the keyboard only: cancel a build from its page', async () => {
  const id = await submit({ name: 'dashboard/cancel', runAsRoot: 'sleep 300' });
  await page.goto(`${service.url}/#/builds/${id}`);
  await tabTo('#token');
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');

  const build = page.locator(`article.build[data-build="${id}"]`);
  await page.getByRole('heading', { name: 'dashboard/cancel:latest' }).waitFor();
  expect(await build.getAttribute('data-status')).toMatch(/^(queued|running)$/);
  await tabTo('button.danger');
  await page.keyboard.press('Enter');
  await page.locator(`article.build[data-build="${id}"][data-status="cancelled"]`).waitFor();
  expect((await api<{ status: string }>(`/v1/builds/${id}`)).status).toBe('cancelled');
  expect(problems).toEqual([]);
}, 120_000);

it('a refused token brings the form back, saying why', async () => {
  await page.goto(`${service.url}/`);
  await tabTo('#token');
  await page.keyboard.type('not-a-token');
  await page.keyboard.press('Enter');
  await page.getByRole('alert').filter({ hasText: 'unknown or revoked token' }).waitFor();
  expect(await page.locator('#token').isVisible()).toBe(true);
  // The browser reports the refused call itself; nothing else went wrong.
  expect(problems.filter((p) => !/\/v1\/builds\?limit=20/.test(p) && !/status of 401/.test(p))).toEqual([]);
});

it('without an events route (an older service) the page polls; a build-cache hit shows its layers as cached', async () => {
  const spec = { name: 'dashboard/cached', contents: [{ text: 'same\n', to: '/same' }] };
  const first = await submit(spec);
  for (let i = 0; (await api<{ status: string }>(`/v1/builds/${first}`)).status !== 'succeeded'; i++) {
    expect(i).toBeLessThan(600);
    await new Promise((r) => setTimeout(r, 100));
  }
  const hit = await api<{ id: string; cached?: boolean }>('/v1/builds', { method: 'POST', body: JSON.stringify(spec) });
  expect(hit.cached).toBe(true);

  // The events route answers 404, as on a service that predates it (the only thing mocked here).
  await page.route('**/v1/builds/*/events', (route) => route.fulfill({ status: 404, contentType: 'application/problem+json', body: '{"type":"about:blank","title":"Not Found","status":404}' }));
  await page.goto(`${service.url}/#/builds/${hit.id}`);
  await tabTo('#token');
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');

  const build = page.locator(`article.build[data-build="${hit.id}"][data-status="succeeded"]`);
  await build.waitFor();
  await page.locator(`article.build[data-live="polling"]`).waitFor();
  await page.waitForFunction((from) => document.querySelector('pre.log')?.textContent?.includes(`identical to build ${from}`), first);
  const cells = build.locator('table.layers tbody tr td:nth-child(4)');
  expect(await cells.allTextContents()).toEqual([`yes, build ${first}`]);
  expect(await build.locator('dl.facts').textContent()).toContain(first);
  // The mocked 404 is reported by the browser; nothing else went wrong.
  expect(problems.filter((p) => !/\/events$/.test(p) && !/status of 404/.test(p))).toEqual([]);
});
