import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChatClient, CONNECT_TIMEOUT_MS, MOVE_TIMEOUT_MS } from '../../static/js/client.js';
import { FakeClock, MemoryStorage, fakeCrypto, fakeSockets, seqRandom } from './fakes.mjs';

// setup builds a client with fake sockets, clock and storage, and records
// every callback in `events`.
function setup({ storage = new MemoryStorage(), random = seqRandom(0.5) } = {}) {
  const clock = new FakeClock();
  const { WebSocket, made } = fakeSockets();
  const events = [];
  const rec = (kind) => (...args) => events.push([kind, ...args]);
  const client = new ChatClient(
    {
      url: 'ws://127.0.0.1:1/ws?room=lobby',
      name: 'mina',
      sid: 'sid1',
      storage,
      outboxKey: 'ob',
      WebSocket,
      timers: clock,
      random,
      crypto: fakeCrypto(),
    },
    {
      status: rec('status'),
      welcome: rec('welcome'),
      resumed: rec('resumed'),
      msg: (m, info) => events.push(['msg', m.seq, m.text, info]),
      ack: rec('ack'),
      failed: rec('failed'),
      presence: rec('presence'),
      moved: rec('moved'),
      error: (f) => events.push(['error', f.code]),
    },
  );
  const of = (kind) => events.filter((e) => e[0] === kind);
  return { client, clock, made, events, of, storage };
}

// join opens socket ws and plays a welcome + replay + resumed.
function join(ws, { epoch = 'e1', resume = 'reset', msgs = [], seq = 0 } = {}) {
  ws.open();
  ws.serve({ t: 'welcome', epoch, seq, resume, color: 'blue', version: 'v1', online: 2 });
  for (const m of msgs) ws.serve({ t: 'msg', from: 'zed', x: 0.1, y: 0.1, ts: 1, ...m });
  ws.serve({ t: 'resumed', seq });
}

test('hello carries name and sid, and epoch/last_seq only when resuming', () => {
  const { client, made, clock } = setup();
  client.start();
  assert.equal(made.length, 1);
  assert.equal(made[0].url, 'ws://127.0.0.1:1/ws?room=lobby');
  made[0].open();
  assert.deepEqual(made[0].sent, [{ t: 'hello', name: 'mina', sid: 'sid1', caps: ['move'] }]);
  made[0].serve({ t: 'welcome', epoch: 'e1', seq: 2, resume: 'reset', online: 1 });
  made[0].serve({ t: 'msg', seq: 1, cid: 'a', from: 'zed', text: 'one', x: 0, y: 0 });
  made[0].serve({ t: 'msg', seq: 2, cid: 'b', from: 'zed', text: 'two', x: 0, y: 0 });
  made[0].serve({ t: 'resumed', seq: 2 });
  made[0].drop(1012, '{"retry_ms":100}');
  clock.advance(100);
  assert.equal(made.length, 2);
  made[1].open();
  assert.deepEqual(made[1].sent, [{ t: 'hello', name: 'mina', sid: 'sid1', caps: ['move'], epoch: 'e1', last_seq: 2 }]);
});

test('a replayed msg is never shown twice, and replay is flagged', () => {
  const { client, made, clock, of } = setup();
  client.start();
  join(made[0], { msgs: [{ seq: 1, cid: 'a', text: 'old' }], seq: 1 });
  made[0].serve({ t: 'msg', seq: 2, cid: 'b', from: 'zed', text: 'live', x: 0, y: 0 });
  made[0].drop(1012, '{"retry_ms":0}');
  clock.advance(0);
  // The new server replays from last_seq, overlapping on purpose.
  join(made[1], { resume: 'ok', msgs: [{ seq: 2, cid: 'b', text: 'live' }, { seq: 3, cid: 'c', text: 'missed' }], seq: 3 });
  assert.deepEqual(
    of('msg').map((e) => [e[1], e[2], e[3].replay]),
    [
      [1, 'old', true],
      [2, 'live', false],
      [3, 'missed', true],
    ],
  );
});

test('a reset to a new epoch does not show again what was already shown', () => {
  const { client, made, clock, of } = setup();
  client.start();
  join(made[0], { msgs: [{ seq: 1, cid: 'a', text: 'one' }], seq: 1 });
  made[0].drop(1006);
  clock.advance(1000);
  join(made[1], { epoch: 'e2', resume: 'reset', msgs: [{ seq: 1, cid: 'a', text: 'one' }, { seq: 2, cid: 'n', text: 'new' }], seq: 2 });
  assert.deepEqual(of('msg').map((e) => e[2]), ['one', 'new']);
  assert.equal(client.room.epoch, 'e2');
  assert.equal(client.room.lastSeq, 2);
});

test('sends wait for resumed, survive a swap, and are resent with the same cid', () => {
  const storage = new MemoryStorage();
  const { client, made, clock, of } = setup({ storage });
  client.start();
  const early = client.send(' early ', 0.25, 0.5);
  assert.equal(early.text, 'early');
  made[0].open();
  assert.equal(made[0].sent.length, 1, 'only hello before the room is live');
  made[0].serve({ t: 'welcome', epoch: 'e1', seq: 0, resume: 'reset', online: 1 });
  made[0].serve({ t: 'resumed', seq: 0 });
  assert.deepEqual(made[0].sent[1], { t: 'send', cid: early.cid, text: 'early', x: 0.25, y: 0.5 });
  made[0].serve({ t: 'ack', cid: early.cid, seq: 1 });
  assert.deepEqual(of('ack'), [['ack', early.cid, 1]]);

  // Sent while draining: refused with error draining, kept, sent again after the swap.
  const late = client.send('late', 0.5, 0.5);
  made[0].serve({ t: 'error', code: 'draining', cid: late.cid, retry_ms: 300 });
  assert.equal(client.outbox.has(late.cid), true);
  assert.ok(storage.getItem('ob').includes(late.cid), 'mirrored to sessionStorage');
  made[0].drop(1012, '{"retry_ms":250}');
  clock.advance(249);
  assert.equal(made.length, 1, 'waits the retry_ms the server asked for');
  clock.advance(1);
  assert.equal(made.length, 2);
  const gap = client.send('in the gap', 0.5, 0.5);
  join(made[1], { resume: 'ok', seq: 1 });
  const sends = made[1].sent.filter((f) => f.t === 'send');
  assert.deepEqual(sends.map((f) => f.cid), [late.cid, gap.cid], 'oldest first, same cids');
  // The msg echo arrives before the ack: it counts as the ack.
  made[1].serve({ t: 'msg', seq: 2, cid: late.cid, from: 'mina', text: 'late', x: 0.5, y: 0.5 });
  made[1].serve({ t: 'ack', cid: late.cid, seq: 2 });
  assert.deepEqual(of('ack').at(-1), ['ack', late.cid, 2]);
  assert.equal(of('ack').filter((e) => e[1] === late.cid).length, 1, 'acked once');
  assert.deepEqual(of('msg').at(-1)[3], { own: true, replay: false });
  made[1].serve({ t: 'ack', cid: gap.cid, seq: 3 });
  assert.equal(client.outbox.size, 0);
  assert.equal(storage.getItem('ob'), null);
});

test('an unacked send survives a reload of the tab', () => {
  const storage = new MemoryStorage();
  const first = setup({ storage });
  first.client.start();
  const item = first.client.send('keep me', 0.1, 0.9);
  first.client.stop();
  const second = setup({ storage });
  second.client.start();
  join(second.made[0], { seq: 4 });
  assert.deepEqual(second.made[0].sent.filter((f) => f.t === 'send').map((f) => f.cid), [item.cid]);
  // A replay of it (accepted before the reload) acks it and is marked own.
  second.made[0].serve({ t: 'msg', seq: 5, cid: item.cid, from: 'mina', text: 'keep me', x: 0.1, y: 0.9 });
  assert.equal(second.client.outbox.size, 0);
  assert.equal(second.of('msg')[0][3].own, true);
});

test('rate_limited pauses sending for retry_ms, then resends in order', () => {
  const { client, made, clock } = setup();
  client.start();
  join(made[0], { seq: 0 });
  const a = client.send('a', 0, 0);
  const b = client.send('b', 0, 0);
  made[0].serve({ t: 'ack', cid: a.cid, seq: 1 });
  made[0].serve({ t: 'error', code: 'rate_limited', cid: b.cid, retry_ms: 800 });
  const c = client.send('c', 0, 0);
  const count = () => made[0].sent.filter((f) => f.t === 'send').length;
  assert.equal(count(), 2, 'nothing sent while rate limited');
  clock.advance(800);
  assert.deepEqual(made[0].sent.slice(-2).map((f) => f.cid), [b.cid, c.cid]);
});

test('too_long drops the message and reports it', () => {
  const { client, made, of } = setup();
  client.start();
  join(made[0]);
  const a = client.send('x', 0, 0);
  made[0].serve({ t: 'error', code: 'too_long', cid: a.cid });
  assert.deepEqual(of('failed'), [['failed', a.cid, 'too_long']]);
  assert.equal(client.outbox.size, 0);
  made[0].serve({ t: 'error', code: 'bad_request' });
  assert.deepEqual(of('error'), [['error', 'bad_request']]);
});

test('unsendable text is refused locally', () => {
  const { client } = setup();
  assert.equal(client.send('   ', 0, 0), null);
  assert.equal(client.send('x'.repeat(281), 0, 0), null);
  // 280 quotes escape to 560 bytes: still under the frame limit.
  assert.notEqual(client.send('"'.repeat(280), 0, 0), null);
  const odd = client.send('ok', Number.NaN, 7);
  assert.deepEqual([odd.x, odd.y], [0.5, 1]);
});

test('abnormal closes back off with growing jitter caps; a success resets it', () => {
  const { client, made, clock } = setup({ random: () => 0.999 });
  client.start();
  const caps = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000];
  for (const cap of caps) {
    const n = made.length;
    made.at(-1).drop(1006);
    const delays = clock.pending().filter((d) => d !== 2000 && d !== CONNECT_TIMEOUT_MS);
    assert.ok(delays.some((d) => d > cap * 0.99 && d < cap), `want a retry just under ${cap}, got ${clock.pending()}`);
    clock.advance(cap);
    assert.equal(made.length, n + 1);
  }
  join(made.at(-1));
  assert.equal(client.attempt, 0);
});

test('a socket that never opens is given up after the connect timeout', () => {
  const { client, made, clock } = setup();
  client.start();
  clock.advance(CONNECT_TIMEOUT_MS);
  assert.equal(made[0].readyState, 3);
  clock.advance(500);
  assert.equal(made.length, 2);
});

test('1008 never reconnects', () => {
  const { client, made, clock, of } = setup();
  client.start();
  join(made[0]);
  made[0].drop(1008, 'origin');
  clock.advance(60000);
  assert.equal(made.length, 1);
  assert.equal(of('status').at(-1)[1], 'offline');
});

test('announced closes without retry_ms wait a random 0–1000 ms', () => {
  const { client, made, clock } = setup({ random: seqRandom(0.73) });
  client.start();
  join(made[0]);
  made[0].drop(1001, '');
  clock.advance(729);
  assert.equal(made.length, 1);
  clock.advance(1);
  assert.equal(made.length, 2);
});

test('the reconnecting hint shows only after 2 s without the room', () => {
  const { client, made, clock, of } = setup();
  client.start();
  join(made[0]);
  assert.deepEqual(of('status').map((e) => e[1]), ['online']);

  // A deploy: back within 2 s, nothing shows.
  made[0].drop(1012, '{"retry_ms":900}');
  clock.advance(900);
  clock.advance(800);
  join(made[1], { resume: 'ok' });
  clock.advance(5000);
  assert.deepEqual(of('status').map((e) => e[1]), ['online']);

  // A draining server's retry_ms is not counted: 2 s of grace start after it.
  made[1].drop(1012, '{"retry_ms":1500}');
  clock.advance(1500);
  assert.equal(made.length, 3);
  made[2].drop(1006); // and the new color is not ready yet either
  clock.advance(1999);
  assert.deepEqual(of('status').map((e) => e[1]), ['online']);
  clock.advance(1);
  assert.deepEqual(of('status').map((e) => e[1]), ['online', 'reconnecting']);
  assert.equal(made.length, 4, 'the backoff retry already went out');
  join(made[3], { resume: 'ok' });
  assert.deepEqual(of('status').map((e) => e[1]), ['online', 'reconnecting', 'online']);

  // A real outage: the hint appears at 2 s and goes when the room is back.
  const before = of('status').length;
  made.at(-1).drop(1006);
  clock.advance(1999);
  assert.equal(of('status').length, before);
  clock.advance(1);
  assert.deepEqual(of('status').slice(before).map((e) => e[1]), ['reconnecting']);
  clock.advance(500);
  join(made.at(-1), { resume: 'ok' });
  assert.deepEqual(of('status').slice(before).map((e) => e[1]), ['reconnecting', 'online']);
});

test('presence and welcome reach the page; unknown frames are ignored', () => {
  const { client, made, of } = setup();
  client.start();
  join(made[0]);
  made[0].serve({ t: 'presence', online: 5 });
  made[0].serve({ t: 'surprise', x: 1 });
  made[0].onmessage({ data: 'not json' });
  assert.deepEqual(of('presence').map((e) => e[1]), [2, 5]);
  assert.equal(of('welcome')[0][1].color, 'blue');
});

test('nudge skips a pending backoff; stop closes for good', () => {
  const { client, made, clock } = setup();
  client.start();
  made[0].drop(1006);
  assert.equal(made.length, 1);
  client.nudge();
  assert.equal(made.length, 2);
  client.stop();
  assert.equal(made[1].readyState, 3);
  clock.advance(60000);
  assert.equal(made.length, 2);
});

test('rename says hello again on a fresh socket and resumes without repeats', () => {
  const { client, made, clock, of } = setup();
  client.start();
  join(made[0], { msgs: [{ seq: 1, cid: 'a', text: 'one' }], seq: 1 });
  client.rename('mina2');
  assert.equal(made[0].readyState, 3);
  clock.advance(0);
  assert.equal(made.length, 2);
  made[1].open();
  assert.deepEqual(made[1].sent[0], { t: 'hello', name: 'mina2', sid: 'sid1', caps: ['move'], epoch: 'e1', last_seq: 1 });
  made[1].serve({ t: 'welcome', epoch: 'e1', seq: 1, resume: 'ok', online: 1 });
  made[1].serve({ t: 'resumed', seq: 1 });
  clock.advance(5000);
  assert.deepEqual(of('msg').map((e) => e[2]), ['one']);
  assert.deepEqual(of('status').map((e) => e[1]), ['online'], 'no hint for a rename');
});

test('a move: held at once, sends queued until go, then sent in order on the same socket', () => {
  const storage = new MemoryStorage();
  const { client, made, clock, of, events } = setup({ storage });
  client.start();
  join(made[0], { msgs: [{ seq: 1, cid: 'a', text: 'one' }], seq: 1 });
  const before = client.send('before', 0.1, 0.1);
  made[0].serve({ t: 'msg', seq: 2, cid: 'b', from: 'zed', text: 'two', x: 0, y: 0 });
  made[0].serve({ t: 'hold' });
  assert.deepEqual(made[0].sent.at(-1), { t: 'held' }, 'held answers hold at once');
  const sentAtHeld = made[0].sent.length;

  const during = [client.send('during 1', 0.2, 0.2), client.send('during 2', 0.3, 0.3)];
  // A rate_limited retry falling due while held sends nothing either.
  made[0].serve({ t: 'error', code: 'rate_limited', cid: before.cid, retry_ms: 100 });
  clock.advance(100);
  assert.equal(made[0].sent.length, sentAtHeld, 'no frame between held and go');
  assert.ok(storage.getItem('ob').includes(during[1].cid), 'queued sends are in the mirrored outbox');

  made[0].serve({ t: 'go', color: 'green', version: 'v2' });
  assert.deepEqual(
    made[0].sent.slice(sentAtHeld).map((f) => [f.t, f.cid]),
    [
      ['send', before.cid],
      ['send', during[0].cid],
      ['send', during[1].cid],
    ],
    'queued sends go out in order after go',
  );
  // The new color carries on where the old one stopped.
  made[0].serve({ t: 'msg', seq: 3, cid: before.cid, from: 'mina', text: 'before', x: 0.1, y: 0.1 });
  made[0].serve({ t: 'msg', seq: 4, cid: 'c', from: 'zed', text: 'four', x: 0, y: 0 });
  assert.deepEqual(of('msg').map((e) => [e[1], e[3].replay]), [
    [1, true],
    [2, false],
    [3, false],
    [4, false],
  ]);
  assert.equal(client.room.lastSeq, 4);
  const after = client.send('after', 0.4, 0.4);
  assert.deepEqual(made[0].sent.at(-1).cid, after.cid, 'sends go straight out after go');

  // Nothing of the move reaches the person: one socket, one welcome, one resumed, status online.
  assert.equal(made.length, 1);
  assert.equal(client.sockets, 1);
  assert.equal(of('welcome').length, 1);
  assert.equal(of('resumed').length, 1);
  assert.deepEqual(of('status').map((e) => e[1]), ['online']);
  assert.deepEqual(of('moved'), [['moved', { color: 'green', version: 'v2' }]]);
  clock.advance(MOVE_TIMEOUT_MS * 2);
  assert.equal(made.length, 1, 'a completed move arms no timeout');
  assert.equal(events.filter((e) => e[0] === 'error').length, 0);
});

test('a move without go is given up: the socket is dropped and resumed, the queued send goes then', () => {
  const { client, made, clock, of } = setup({ random: seqRandom(0) });
  client.start();
  join(made[0], { seq: 3 });
  made[0].serve({ t: 'hold' });
  const queued = client.send('queued', 0.5, 0.5);
  clock.advance(MOVE_TIMEOUT_MS - 1);
  assert.equal(made[0].readyState, 1, 'still waiting for go');
  clock.advance(1);
  assert.equal(made[0].readyState, 3, 'given up');
  clock.advance(0);
  assert.equal(made.length, 2);
  made[1].open();
  assert.deepEqual(made[1].sent[0], { t: 'hello', name: 'mina', sid: 'sid1', caps: ['move'], epoch: 'e1', last_seq: 3 });
  made[1].serve({ t: 'welcome', epoch: 'e1', seq: 3, resume: 'ok', online: 1 });
  made[1].serve({ t: 'resumed', seq: 3 });
  assert.deepEqual(made[1].sent.filter((f) => f.t === 'send').map((f) => f.cid), [queued.cid]);
  assert.equal(of('moved').length, 0);
});

test('a move cut short by a close falls back to the resume', () => {
  const { client, made, clock } = setup();
  client.start();
  join(made[0], { seq: 1 });
  made[0].serve({ t: 'hold' });
  const queued = client.send('queued', 0.5, 0.5);
  made[0].drop(1012, '{"retry_ms":50}');
  clock.advance(50);
  join(made[1], { resume: 'ok', seq: 1 });
  assert.deepEqual(made[1].sent.filter((f) => f.t === 'send').map((f) => f.cid), [queued.cid]);
  clock.advance(MOVE_TIMEOUT_MS);
  assert.equal(made.length, 2, 'the old move timer is gone with its socket');
  // A stray go (no hold on this socket) changes nothing.
  made[1].serve({ t: 'go', color: 'x', version: 'y' });
  assert.equal(client.held, false);
});
