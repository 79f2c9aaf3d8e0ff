import { test } from 'node:test';
import assert from 'node:assert/strict';
import { POP_MS, Phase, Sky, graphemes, holdTimes, layoutText, placeBlock, popScale } from '../../static/js/physics.js';

const mono = () => 10; // every letter 10 px wide
const glyphs = (text) => layoutText(text, mono, 1000, 20).glyphs;

test('layoutText', async (t) => {
  const cases = [
    { name: 'one line', text: 'hi you', max: 100, want: [['h', 0, 0], ['i', 10, 0], ['y', 30, 0], ['o', 40, 0], ['u', 50, 0]], w: 60, h: 20 },
    { name: 'wraps at spaces', text: 'aaa bbb', max: 50, want: [['a', 0, 0], ['a', 10, 0], ['a', 20, 0], ['b', 0, 20], ['b', 10, 20], ['b', 20, 20]], w: 30, h: 40 },
    { name: 'breaks a long word', text: 'abcde', max: 30, want: [['a', 0, 0], ['b', 10, 0], ['c', 20, 0], ['d', 0, 20], ['e', 10, 20]], w: 30, h: 40 },
    { name: 'leading spaces take no room', text: '  a', max: 100, want: [['a', 0, 0]], w: 10, h: 20 },
    { name: 'empty', text: '   ', max: 100, want: [], w: 0, h: 0 },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      const got = layoutText(c.text, mono, c.max, 20);
      assert.deepEqual(got.glyphs.map((g) => [g.ch, g.dx, g.dy]), c.want);
      assert.equal(got.width, c.w);
      assert.equal(got.height, c.h);
    });
  }
});

test('graphemes keep emoji sequences whole', () => {
  assert.deepEqual(graphemes('a👍🏽b'), ['a', '👍🏽', 'b']);
  assert.deepEqual(graphemes('👩‍👩‍👧'), ['👩‍👩‍👧']);
});

test('placeBlock keeps a message on screen', async (t) => {
  const cases = [
    { name: 'inside', args: [0.5, 0.5, 100, 20, 1000, 800], want: { x: 500, y: 400 } },
    { name: 'right edge', args: [0.99, 0.1, 100, 20, 1000, 800], want: { x: 892, y: 80 } },
    { name: 'bottom edge', args: [0.1, 1, 100, 20, 1000, 800], want: { x: 100, y: 772 } },
    { name: 'top-left', args: [0, 0, 100, 20, 1000, 800], want: { x: 8, y: 8 } },
    { name: 'wider than the screen', args: [0.5, 0.5, 400, 20, 300, 800], want: { x: 8, y: 400 } },
  ];
  for (const c of cases) await t.test(c.name, () => assert.deepEqual(placeBlock(...c.args), c.want));
});

test('holdTimes: others stay readable longer than own, long texts release faster', () => {
  assert.ok(holdTimes(5, false).hold > holdTimes(5, true).hold);
  assert.ok(holdTimes(200, false).stagger < holdTimes(5, false).stagger);
  const long = holdTimes(280, false);
  assert.ok(long.hold + 280 * long.stagger <= 6000, 'even the longest message is gone within 6 s');
  assert.ok(long.type * 280 <= 500, 'and types itself out within half a second');
  assert.equal(holdTimes(5, true).type, 0, 'your own message is already typed');
});

test('others\' letters type out one by one and pop in; all are readable before any falls', () => {
  const sky = new Sky({ width: 400, height: 300, random: () => 0.5 });
  const ls = sky.spawn(glyphs('abcd'), 10, 10, { lineHeight: 20 });
  const appear = ls.map((l) => l.appear);
  assert.deepEqual(appear, [...appear].sort((a, b) => a - b));
  assert.ok(appear[3] > appear[0]);
  assert.ok(Math.max(...appear) + POP_MS < Math.min(...ls.map((l) => l.delay)));
  assert.equal(popScale(0), 0);
  assert.equal(popScale(POP_MS), 1);
  assert.ok(popScale(POP_MS * 0.7) > 1, 'overshoots a little');
});

test('letters hold, then fall one by one, bounce, rest on the floor and fade', () => {
  const sky = new Sky({ width: 400, height: 300, random: () => 0.5 });
  const ls = sky.spawn(glyphs('hey'), 100, 50, { hue: 10, own: false, lineHeight: 20 });
  assert.equal(sky.active, 3);
  const { hold, stagger } = holdTimes(3, false);
  sky.step((hold - 10) / 1000);
  assert.deepEqual(ls.map((l) => l.phase), [Phase.HOLD, Phase.HOLD, Phase.HOLD]);
  assert.deepEqual(ls.map((l) => l.y), [50, 50, 50]);
  sky.step((10 + stagger / 2) / 1000);
  assert.deepEqual(ls.map((l) => l.phase), [Phase.FALL, Phase.HOLD, Phase.HOLD], 'the first letter leaves first');

  // Track the first letter frame by frame: up a little, then down, then a bounce.
  const ys = [];
  let bounced = false;
  let prevVy = 0;
  for (let i = 0; i < 600 && ls[0].phase === Phase.FALL; i++) {
    sky.step(1 / 60);
    ys.push(ls[0].y);
    if (prevVy > 0 && ls[0].vy < 0) bounced = true;
    prevVy = ls[0].vy;
  }
  assert.ok(ys.at(-1) > 50 + 100, `fell: last y ${ys.at(-1)}`);
  assert.ok(bounced, 'bounced on the floor');
  assert.equal(ls[0].phase, Phase.REST);
  assert.equal(ls[0].y, 300 - 20, 'rests on the floor');
  assert.ok(Math.abs(ls[0].a) <= 0.35, 'only a slight tilt');
  sky.step(20);
  assert.equal(sky.active, 0, 'faded away');
  assert.ok(ls.every((l) => !l.on));
});

test('letters pile up, slide off narrow heaps, and the pile crumbles when its base goes', () => {
  const sky = new Sky({ width: 200, height: 300, random: () => 0.5 });
  const base = sky.spawn(glyphs('aaa'), 70, 0, { lineHeight: 20 });
  sky.step(5);
  assert.deepEqual(base.map((l) => [l.phase, l.y]), [[Phase.REST, 280], [Phase.REST, 280], [Phase.REST, 280]]);
  // On a broad base a letter stays on top.
  const top = sky.spawn(glyphs('b'), 80, 0, { lineHeight: 20 })[0];
  sky.step(3);
  assert.equal(top.phase, Phase.REST);
  assert.ok(top.y < 280 - 10, `b (${top.y}) rests on the a's`);
  // On a single letter it slides off to the side, like sand.
  const lone = sky.spawn(glyphs('x'), 20, 0, { lineHeight: 20 })[0];
  sky.step(3);
  const c = sky.spawn(glyphs('c'), 20, 0, { lineHeight: 20 })[0];
  sky.step(3);
  assert.equal(c.phase, Phase.REST);
  assert.equal(c.y, 280, 'slid down to the floor');
  assert.ok(Math.abs(c.x - lone.x) >= 10, 'beside the lone letter');
  // Take the base away: the top letter falls again.
  for (const l of base) sky.release(l);
  sky.step(0);
  assert.equal(top.phase, Phase.FALL, 'unsupported letters fall again');
  sky.step(3);
  assert.equal(top.y, 280);
});

test('the pool is capped and recycles resting letters first', () => {
  const sky = new Sky({ width: 400, height: 300, cap: 5, random: () => 0.5 });
  const first = sky.spawn(glyphs('abc'), 10, 10, { lineHeight: 20 });
  sky.step(5); // all resting
  sky.spawn(glyphs('de'), 10, 10, { lineHeight: 20 });
  const more = sky.spawn(glyphs('fg'), 10, 10, { lineHeight: 20 });
  assert.equal(sky.letters.length, 5);
  assert.equal(sky.active, 5);
  assert.ok(more.every((l) => first.includes(l)), 'resting slots were reused');
  assert.deepEqual(sky.letters.map((l) => l.ch).sort(), ['c', 'd', 'e', 'f', 'g']);
});

test('a long frame does not let letters through the floor', () => {
  const sky = new Sky({ width: 400, height: 300, random: () => 0.5 });
  const l = sky.spawn(glyphs('x'), 10, 10, { lineHeight: 20 })[0];
  sky.step(2);
  sky.step(10);
  assert.ok(l.y <= 280);
});

test('resize drops resting letters onto the new floor', () => {
  const sky = new Sky({ width: 400, height: 300, random: () => 0.5 });
  const l = sky.spawn(glyphs('x'), 390, 10, { lineHeight: 20 })[0];
  sky.step(3);
  assert.equal(l.y, 280);
  sky.resize(200, 500);
  assert.ok(l.x <= 190);
  sky.step(3);
  assert.equal(l.y, 480);
});

test('calm mode fades letters in place instead of dropping them', () => {
  const sky = new Sky({ width: 400, height: 300, random: () => 0.5 });
  sky.calm = true;
  const l = sky.spawn(glyphs('x'), 10, 10, { lineHeight: 20 })[0];
  sky.step(2);
  assert.equal(l.phase, Phase.FADE);
  assert.equal(l.y, 10);
  assert.equal(l.alpha, 1);
  sky.step(10);
  assert.equal(sky.active, 0);
});
