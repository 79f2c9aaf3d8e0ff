import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RoomState,
  SeenSet,
  backoffMS,
  cleanName,
  cleanText,
  parseRetryMS,
  randomID,
  reconnectPlan,
  roomFromLocation,
  tabSID,
  wsURL,
} from '../../static/js/protocol.js';
import { MemoryStorage, fakeCrypto } from './fakes.mjs';

test('roomFromLocation', async (t) => {
  const cases = [
    { name: 'default', loc: { search: '', hash: '' }, want: 'lobby' },
    { name: 'query', loc: { search: '?room=cats', hash: '' }, want: 'cats' },
    { name: 'hash', loc: { search: '', hash: '#dogs-2' }, want: 'dogs-2' },
    { name: 'query wins over hash', loc: { search: '?room=a', hash: '#b' }, want: 'a' },
    { name: 'upper case folded', loc: { search: '?room=Cats', hash: '' }, want: 'cats' },
    { name: 'invalid query falls to hash', loc: { search: '?room=no%20spaces', hash: '#ok' }, want: 'ok' },
    { name: 'too long', loc: { search: `?room=${'a'.repeat(33)}`, hash: '' }, want: 'lobby' },
    { name: 'max length', loc: { search: `?room=${'a'.repeat(32)}`, hash: '' }, want: 'a'.repeat(32) },
    { name: 'markup refused', loc: { search: '', hash: '#<b>x</b>' }, want: 'lobby' },
    { name: 'bad escape', loc: { search: '', hash: '#%E0%A4%A' }, want: 'lobby' },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assert.equal(roomFromLocation(c.loc), c.want));
  }
});

test('wsURL follows the page scheme and host', () => {
  assert.equal(wsURL({ protocol: 'http:', host: '127.0.0.1:8080' }, 'lobby'), 'ws://127.0.0.1:8080/ws?room=lobby');
  assert.equal(wsURL({ protocol: 'https:', host: 'chat.example.org' }, 'a-b'), 'wss://chat.example.org/ws?room=a-b');
});

test('cleanText and cleanName apply the server limits in code points', () => {
  assert.equal(cleanText('  hi  '), 'hi');
  assert.equal(cleanText('   '), '');
  assert.equal(cleanText('😀'.repeat(280)), '😀'.repeat(280)); // 560 UTF-16 units, 280 code points
  assert.equal(cleanText('x'.repeat(281)), '');
  assert.equal(cleanName('  mina  '), 'mina');
  assert.equal(cleanName('a\n\tb'), 'a b');
  assert.equal(cleanName('n'.repeat(25)), '');
  assert.equal(cleanName(null), '');
});

test('parseRetryMS', async (t) => {
  const cases = [
    ['{"retry_ms":800}', 800],
    ['{"retry_ms":0}', 0],
    ['{"retry_ms":12.6}', 13],
    ['{"retry_ms":999999}', 20000],
    ['{"retry_ms":-5}', -1],
    ['{"retry_ms":"800"}', -1],
    ['going away', -1],
    ['', -1],
    ['null', -1],
  ];
  for (const [reason, want] of cases) {
    await t.test(reason || 'empty', () => assert.equal(parseRetryMS(reason), want));
  }
});

test('backoffMS is full jitter under a doubling cap of 500 ms..20 s', () => {
  const caps = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000];
  caps.forEach((cap, attempt) => {
    assert.equal(backoffMS(attempt, () => 0), 0, `attempt ${attempt} low end`);
    const hi = backoffMS(attempt, () => 0.999999);
    assert.ok(hi < cap && hi >= cap - 1, `attempt ${attempt}: got ${hi}, want just under ${cap}`);
  });
  assert.ok(backoffMS(1000, () => 0.999999) < 20000);
});

test('reconnectPlan', async (t) => {
  const r = () => 0.5;
  const cases = [
    { name: 'restart with retry_ms', code: 1012, reason: '{"retry_ms":350}', want: { reconnect: true, delay: 350, announced: true } },
    { name: 'overload with retry_ms', code: 1013, reason: '{"retry_ms":90}', want: { reconnect: true, delay: 90, announced: true } },
    { name: 'going away without reason', code: 1001, reason: '', want: { reconnect: true, delay: 500, announced: true } },
    { name: 'abnormal, first attempt', code: 1006, reason: '', attempt: 0, want: { reconnect: true, delay: 250, announced: false } },
    { name: 'abnormal, later attempt', code: 1006, reason: '', attempt: 3, want: { reconnect: true, delay: 2000, announced: false } },
    { name: 'normal close backs off too', code: 1000, reason: '', attempt: 1, want: { reconnect: true, delay: 500, announced: false } },
    { name: 'policy close never', code: 1008, reason: '{"retry_ms":1}', want: { reconnect: false, delay: 0, announced: false } },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assert.deepEqual(reconnectPlan(c.code, c.reason, c.attempt ?? 0, r), c.want));
  }
});

test('RoomState applies each seq once', () => {
  const s = new RoomState();
  assert.deepEqual(s.helloFields(), {});
  s.welcome({ epoch: 'e1', resume: 'reset', seq: 3 });
  assert.equal(s.apply({ seq: 2 }), true);
  assert.equal(s.apply({ seq: 3 }), true);
  assert.equal(s.apply({ seq: 3 }), false, 'a replayed seq is not applied twice');
  assert.equal(s.apply({ seq: 1 }), false);
  assert.equal(s.apply({ seq: '4' }), false, 'a seq must be a number');
  s.resumed(3);
  assert.deepEqual(s.helloFields(), { epoch: 'e1', last_seq: 3 });
  // Resume ok: the position carries on.
  s.welcome({ epoch: 'e1', resume: 'ok', seq: 5 });
  assert.equal(s.apply({ seq: 4 }), true);
  // Reset within the same epoch keeps the position: no old message comes back.
  s.welcome({ epoch: 'e1', resume: 'reset', seq: 9 });
  assert.equal(s.apply({ seq: 4 }), false);
  assert.equal(s.apply({ seq: 9 }), true);
  // A new epoch restarts the numbering.
  s.welcome({ epoch: 'e2', resume: 'reset', seq: 1 });
  assert.deepEqual(s.helloFields(), { epoch: 'e2', last_seq: 0 });
  assert.equal(s.apply({ seq: 1 }), true);
  s.resumed(7);
  assert.equal(s.lastSeq, 7);
  s.resumed(2);
  assert.equal(s.lastSeq, 7, 'resumed never moves backwards');
});

test('SeenSet forgets the oldest beyond its cap', () => {
  const s = new SeenSet(2);
  s.add('a');
  s.add('b');
  s.add('a');
  s.add('c');
  assert.equal(s.has('a'), false);
  assert.equal(s.has('b'), true);
  assert.equal(s.has('c'), true);
});

test('tabSID is kept per tab and regenerated when invalid', () => {
  const st = new MemoryStorage();
  const c = fakeCrypto();
  const a = tabSID(st, c);
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.equal(tabSID(st, c), a);
  st.setItem('mywebchat.sid', '<script>');
  const b = tabSID(st, c);
  assert.notEqual(b, '<script>');
  assert.match(b, /^[0-9a-f]{32}$/);
  const broken = { getItem() { throw new Error('disabled'); }, setItem() { throw new Error('disabled'); } };
  assert.match(tabSID(broken, c), /^[0-9a-f]{32}$/);
});

test('randomID is hex of the requested size', () => {
  assert.match(randomID(globalThis.crypto, 12), /^[0-9a-f]{24}$/);
  assert.notEqual(randomID(globalThis.crypto), randomID(globalThis.crypto));
});

test('tabSID works without storage at all', () => {
  assert.match(tabSID(null, fakeCrypto()), /^[0-9a-f]{32}$/);
});
