import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OUTBOX_CAP, Outbox } from '../../static/js/outbox.js';
import { MemoryStorage } from './fakes.mjs';

const item = (n) => ({ cid: `c${n}`, text: `t${n}`, x: 0.1, y: 0.2 });

test('outbox keeps order, dedupes by cid and mirrors to storage', () => {
  const st = new MemoryStorage();
  const o = new Outbox(st, 'k');
  o.add(item(1));
  o.add(item(2));
  o.add(item(1));
  assert.deepEqual(o.pending().map((m) => m.cid), ['c1', 'c2']);
  assert.deepEqual(JSON.parse(st.getItem('k')).map((m) => m.cid), ['c1', 'c2']);

  // A reload of the tab finds the same queue.
  const again = new Outbox(st, 'k');
  assert.deepEqual(again.pending(), [item(1), item(2)]);

  assert.equal(again.remove('c1'), true);
  assert.equal(again.remove('c1'), false);
  assert.deepEqual(new Outbox(st, 'k').pending().map((m) => m.cid), ['c2']);
  again.remove('c2');
  assert.equal(st.getItem('k'), null, 'an empty outbox leaves nothing behind');
});

test('outbox ignores corrupt or foreign storage content', async (t) => {
  const cases = [
    ['not json', '{'],
    ['not a list', '{"cid":"x"}'],
    ['bad items', '[{"cid":1,"text":"a","x":0,"y":0},null,{"cid":"ok","text":"b","x":0.5,"y":0.5,"extra":"<b>"}]'],
  ];
  for (const [name, raw] of cases) {
    await t.test(name, () => {
      const st = new MemoryStorage();
      st.setItem('k', raw);
      const o = new Outbox(st, 'k');
      const want = name === 'bad items' ? [{ cid: 'ok', text: 'b', x: 0.5, y: 0.5 }] : [];
      assert.deepEqual(o.pending(), want);
    });
  }
});

test('outbox is capped, dropping the oldest', () => {
  const o = new Outbox(new MemoryStorage(), 'k');
  for (let i = 0; i < OUTBOX_CAP + 5; i++) o.add(item(i));
  assert.equal(o.size, OUTBOX_CAP);
  assert.equal(o.pending()[0].cid, 'c5');
});

test('outbox works without storage or with failing storage', () => {
  const failing = {
    getItem() { throw new Error('denied'); },
    setItem() { throw new Error('quota'); },
    removeItem() { throw new Error('denied'); },
  };
  for (const st of [null, failing]) {
    const o = new Outbox(st, 'k');
    o.add(item(1));
    assert.equal(o.has('c1'), true);
    assert.equal(o.remove('c1'), true);
    assert.equal(o.size, 0);
  }
});
