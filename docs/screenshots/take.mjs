// Takes the screenshots in this folder: starts a Gatehouse release build on a
// free port with a throwaway database, walks the site in headless Chromium as a
// person would, and writes full-page PNGs. See README.md beside this file.
//
// Environment (all optional):
//   GATEHOUSE_BIN   the server binary      (default: ../../target/release/gatehouse)
//   GATEHOUSE_CWD   its working directory  (default: the repository root; it serves static/ from there)
//   SCREENSHOTS_DIR where the PNGs go      (default: this folder)
//   CHROMIUM        the browser            (default: /usr/bin/chromium)

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const bin = path.resolve(process.env.GATEHOUSE_BIN || path.join(root, 'target', 'release', 'gatehouse'));
const cwd = path.resolve(process.env.GATEHOUSE_CWD || root);
const outDir = path.resolve(process.env.SCREENSHOTS_DIR || here);

const USER = { name: 'Ada Lovelace', email: 'ada@example.com', password: 'analytical engine punch cards' };
const AGENTS = {
  desktop: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
  phone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  laptop: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0',
};

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function startServer() {
  const port = await freePort();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'gatehouse-screenshots-'));
  const base = `http://127.0.0.1:${port}`;
  const env = {
    ...process.env,
    APP_ENV: 'development',
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: base,
    DATABASE_URL: path.join(dataDir, 'gatehouse.db'),
    JWT_SECRET: randomBytes(32).toString('hex'),
    BCRYPT_COST: '4',
    RUST_LOG: 'warn',
  };
  const child = spawn(bin, [], { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] });
  let exited = null;
  child.once('exit', (code, signal) => { exited = signal || `exit code ${code}`; });
  child.once('error', (err) => { exited = err.message; });

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited) throw new Error(`${bin} stopped before answering (${exited})`);
    try {
      const res = await fetch(`${base}/login`);
      if (res.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill('SIGTERM');
      throw new Error(`${bin} did not answer on ${base} within 20 s`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  const stop = async () => {
    if (!exited) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))]);
      if (!exited) child.kill('SIGKILL');
    }
    await rm(dataDir, { recursive: true, force: true });
  };
  return { base, stop };
}

async function shot(page, name) {
  const file = path.join(outDir, name);
  await page.screenshot({ path: file, fullPage: true });
  const shown = path.relative(process.cwd(), file);
  console.log(`wrote ${shown.startsWith('..') ? file : shown}`);
}

/** Opens /login in a new page of `context` and submits it; the caller waits for the outcome. */
async function signIn(context, base, password, { remember = false } = {}) {
  const page = await context.newPage();
  await page.goto(`${base}/login`);
  await page.getByLabel('Email').fill(USER.email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  if (remember) await page.getByLabel('Keep me signed in on this device').check();
  await page.getByRole('button', { name: 'Sign in' }).click();
  return page;
}

async function main() {
  await mkdir(outDir, { recursive: true });
  const server = await startServer();
  try {
    await walk(server.base);
  } finally {
    await server.stop();
  }
}

/** Drives the browser through the site and writes the screenshots. */
async function walk(base) {
  // Playwright gives each launch a fresh, temporary user-data-dir.
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
  });
  const desktop = (extra = {}) => browser.newContext({
    viewport: { width: 1280, height: 800 }, userAgent: AGENTS.desktop, colorScheme: 'light', ...extra,
  });

  try {
    // Register through the site's own form, first with a weak password.
    const mine = await desktop();
    const page = await mine.newPage();
    await page.goto(`${base}/register`);
    await page.getByLabel('Name').fill(USER.name);
    await page.getByLabel('Email').fill(USER.email);
    await page.getByLabel('Password').fill('password1234');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForSelector('.field-error');
    await shot(page, 'register-weak-password.png');
    await page.getByLabel('Password').fill(USER.password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(`${base}/dashboard`);

    // A wrong password, in light and dark mode.
    for (const scheme of ['light', 'dark']) {
      const visitor = await desktop({ colorScheme: scheme });
      const login = await signIn(visitor, base, 'not my password');
      await login.waitForSelector('.flash.error');
      await shot(login, `sign-in-error-${scheme}.png`);
      await visitor.close();
    }

    // Two more devices sign in; one is then signed out from the account page,
    // which leaves two sessions, some activity and a message at the top.
    for (const [agent, remember] of [[AGENTS.phone, true], [AGENTS.laptop, false]]) {
      const device = await browser.newContext({ userAgent: agent });
      const signedIn = await signIn(device, base, USER.password, { remember });
      await signedIn.waitForURL(`${base}/dashboard`);
    }

    await page.goto(`${base}/account`);
    const laptopRow = page.getByRole('row').filter({ hasText: 'Firefox' });
    await laptopRow.getByRole('button', { name: 'Revoke' }).click();
    await page.waitForSelector('main .flash');
    await shot(page, 'account-1280.png');
    await page.setViewportSize({ width: 360, height: 740 });
    await shot(page, 'account-360.png');
    await page.setViewportSize({ width: 1280, height: 800 });

    await page.goto(`${base}/no-such-page`);
    await shot(page, 'not-found.png');

    // Signing out lands on /login with a message above the form.
    await page.goto(`${base}/dashboard`);
    await page.getByRole('banner').getByRole('button', { name: 'Sign out' }).click();
    await page.waitForSelector('main .flash');
    await shot(page, 'signed-out.png');
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
