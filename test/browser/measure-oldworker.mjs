// measure-oldworker.mjs: what a page sees when the nginx worker that still
// holds its moved connection exits (worker_shutdown_timeout after a reload).
// A deploy moves the page's socket from blue to green; nginx was reloaded
// for the switch, so the connection stays on the old worker generation,
// which is given a short worker_shutdown_timeout here. The script prints the
// close code the page sees, how long until it is online again, and whether
// the room's log is complete and free of duplicates afterwards.
//
//   cd test/browser && node measure-oldworker.mjs [timeout_s]

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join as pathJoin } from 'node:path';
import { buildChatServer, cleanup, getJSON, launchBrowser, startChat, startNginx, tempDir, waitFor } from './lib/harness.mjs';
import { join, logEntries, sendAt, typeInFocused, waitForText } from './lib/page.mjs';

const exec = promisify(execFile);
const shutdownTimeout = Number(process.argv[2] ?? 3);
const dir = await tempDir();
const prefix = pathJoin(dir, 'nginx');
const args = ['-p', prefix, '-c', pathJoin(prefix, 'nginx.conf')];
const handover = pathJoin(dir, 'handover');
await mkdir(handover, { mode: 0o700 });
const bin = await buildChatServer(dir);
const sock = (c) => pathJoin(dir, `${c}.sock`);
const blue = await startChat({ bin, color: 'blue', handoverDir: handover, env: { CHAT_SOCKET: sock('blue') } });
const nginx = await startNginx({ dir, upstreamPort: blue.port });
let green;
let browser;
async function pointAt(s) {
  await writeFile(pathJoin(prefix, 'upstream.conf'), `upstream chat {\n    server unix:${s};\n    keepalive 8;\n}\n`);
  await exec('nginx', [...args, '-t']);
  await exec('nginx', [...args, '-s', 'reload']);
}
try {
  const conf = await readFile(pathJoin(prefix, 'nginx.conf'), 'utf8');
  await writeFile(pathJoin(prefix, 'nginx.conf'), conf.replace('worker_processes 1;', `worker_processes 1;\nworker_shutdown_timeout ${shutdownTimeout}s;`));
  await pointAt(sock('blue'));
  browser = await launchBrowser();
  const ctx = await browser.newContext();
  await ctx.addInitScript(() => {
    const Native = window.WebSocket;
    window.__closes = [];
    window.WebSocket = class extends Native {
      constructor(...a) {
        super(...a);
        this.addEventListener('close', (e) => window.__closes.push({ code: e.code, at: Date.now() }));
      }
    };
  });
  const page = await ctx.newPage();
  const url = `${nginx.url}/?room=ow-${Date.now().toString(36)}`;
  await join(page, url, 'alice');
  await sendAt(page, 300, 300, 'one');
  await waitForText(page, 'one');
  green = await startChat({ bin, color: 'green', handoverDir: handover, env: { CHAT_SOCKET: sock('green') } });
  await pointAt(sock('green'));
  const reload = Date.now();
  await waitFor('nginx serves green', async () => (await getJSON(`${nginx.url}/healthz`)).body?.color === 'green');
  blue.proc.kill('SIGTERM');
  await blue.exited;
  await page.mouse.click(500, 200);
  await typeInFocused(page, 'two');
  await waitForText(page, 'two');
  const moved = await page.evaluate(() => window.__closes.length);
  await waitFor('the old worker drops the connection', async () => (await page.evaluate(() => window.__closes.length)) > moved, { timeout: (shutdownTimeout + 10) * 1000 });
  const [close] = await page.evaluate(() => window.__closes);
  // A message typed right after the drop waits in the outbox and is acked
  // once the page has reconnected and resumed.
  await sendAt(page, 400, 250, 'three');
  await waitForText(page, 'three', 30000);
  const back = Date.now();
  const es = await logEntries(page);
  console.log(JSON.stringify({
    worker_shutdown_timeout_s: shutdownTimeout,
    closes_during_move: moved,
    close_code: close.code,
    close_after_reload_ms: close.at - reload,
    typed_after_drop_acked_ms: back - close.at,
    log: es.map((e) => [e.seq, e.text]),
  }));
} finally {
  await browser?.close().catch(() => {});
  await nginx.stop();
  await blue.stop();
  await green?.stop();
  await cleanup(dir);
}
