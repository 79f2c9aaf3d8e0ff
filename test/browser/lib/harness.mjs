// harness.mjs starts the real parts the browser tests need: the chat server
// (built from this checkout), host nginx with its own prefix in a temp dir,
// and Debian's Chromium through playwright-core. Everything listens on
// 127.0.0.1 on free ports and is torn down by the returned stop functions.

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, mkdir, writeFile, rm, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const STATIC_DIR = join(REPO, 'static');
export const ARTIFACTS = join(REPO, 'test/artifacts/browser');

// The Content-Security-Policy nginx sends in production; the page must work under it.
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** tempDir makes a fresh folder for one test run (prefixed for this part). */
export async function tempDir() {
  return mkdtemp(join(tmpdir(), 'mywebchat-web-'));
}

/** freePort asks the kernel for a free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** waitFor polls fn until it returns a truthy value or the time is up. */
export async function waitFor(what, fn, { timeout = 15000, every = 100 } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(every);
  }
}

/** getJSON fetches url and returns {status, body}. */
export async function getJSON(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: r.status, body: await r.json().catch(() => null) };
}

/** buildChatServer compiles ./chatserver into dir. */
export async function buildChatServer(dir) {
  const bin = join(dir, 'chatserver');
  await run('go', ['build', '-o', bin, './chatserver'], { cwd: REPO, env: { ...process.env, CGO_ENABLED: '0' } });
  return bin;
}

/**
 * startOneColor builds the chat server into dir and runs it alone as blue,
 * with a handover folder of its own (0700, as the agent makes it): the setup
 * of the tests that need one server and no swap.
 */
export async function startOneColor(dir) {
  const handoverDir = join(dir, 'handover');
  await mkdir(handoverDir, { mode: 0o700 });
  return startChat({ bin: await buildChatServer(dir), color: 'blue', handoverDir });
}

/**
 * startChat runs one chat server color and waits for its /healthz.
 * It returns {port, color, proc, logs(), exited, stop()}.
 */
export async function startChat({ bin, color, handoverDir, staticDir = STATIC_DIR, env = {} }) {
  const port = await freePort();
  let out = '';
  const proc = spawn(bin, [], {
    env: {
      PATH: process.env.PATH,
      CHAT_ADDR: `127.0.0.1:${port}`,
      APP_COLOR: color,
      APP_VERSION: `test-${color}`,
      CHAT_STATIC_DIR: staticDir,
      CHAT_HANDOVER_DIR: handoverDir,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  const chat = {
    port,
    color,
    proc,
    exited,
    logs: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await waitFor(`chat server ${color} healthy`, async () => {
      if (proc.exitCode !== null) throw new Error(`exited ${proc.exitCode}: ${out.slice(-2000)}`);
      const { status, body } = await getJSON(`http://127.0.0.1:${port}/healthz`);
      return status === 200 && body?.color === color;
    });
  } catch (err) {
    await chat.stop();
    throw err;
  }
  return chat;
}

/**
 * startNginx runs host nginx as a reverse proxy in its own prefix: static
 * files from the repo with the production CSP, /ws and /healthz to the
 * `upstream chat` defined in an included file. Returns {port, url,
 * switchTo(chatPort), stop()}.
 */
export async function startNginx({ dir, upstreamPort, staticDir = STATIC_DIR }) {
  const prefix = join(dir, 'nginx');
  await mkdir(join(prefix, 'logs'), { recursive: true });
  await mkdir(join(prefix, 'tmp'), { recursive: true });
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  const upstream = join(prefix, 'upstream.conf');
  const writeUpstream = (p) => writeFile(upstream, `upstream chat {\n    server 127.0.0.1:${p};\n    keepalive 8;\n}\n`);
  await writeUpstream(upstreamPort);
  await writeFile(
    conf,
    `# Test nginx for the browser tests (mirrors the production site's proxying).
daemon off;
master_process on;
worker_processes 1;
# The checkout may live under a folder only root can read (a CI clone under
# /root): the test's own nginx reads the page from there as root.
user root;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log ${prefix}/logs/access.log;
    client_body_temp_path ${prefix}/tmp/body;
    proxy_temp_path ${prefix}/tmp/proxy;
    sendfile on;
    server_tokens off;
    include ${upstream};
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ''      close;
    }
    server {
        listen 127.0.0.1:${port};
        root ${staticDir};
        add_header Content-Security-Policy "${CSP}" always;
        add_header X-Content-Type-Options nosniff always;
        add_header Referrer-Policy no-referrer always;
        location / {
            try_files $uri $uri/ =404;
        }
        location = /ws {
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 75s;
        }
        location = /healthz {
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
        }
    }
}
`,
  );
  const args = ['-p', prefix, '-c', conf];
  await run('nginx', [...args, '-t']);
  let out = '';
  const proc = spawn('nginx', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise((res) => proc.on('exit', res));
  const url = `http://127.0.0.1:${port}`;
  await waitFor('nginx', async () => {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${out}`);
    return (await fetch(`${url}/`, { signal: AbortSignal.timeout(2000) })).ok;
  });
  return {
    port,
    url,
    logs: async () => `${out}\n${await readFile(join(prefix, 'logs/error.log'), 'utf8').catch(() => '')}`,
    /** switchTo points the upstream at another chat server and reloads, as the deploy agent does. */
    async switchTo(chatPort) {
      await writeUpstream(chatPort);
      await run('nginx', [...args, '-t']);
      await run('nginx', [...args, '-s', 'reload']);
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGQUIT');
      await Promise.race([exited, sleep(5000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}

/** launchBrowser starts Debian's Chromium headless with a fresh profile. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/**
 * watchPage records what would be a visible problem: console errors, page
 * errors and CSP violations. Returns the list (filled as they happen).
 */
export function watchPage(page, label) {
  const problems = [];
  page.on('pageerror', (err) => problems.push(`${label} pageerror: ${err.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`${label} console: ${m.text()}`);
  });
  return problems;
}

export async function cleanup(dir) {
  await rm(dir, { recursive: true, force: true });
}
