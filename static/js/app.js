// app.js wires the page: nickname, room, the chat connection, the input boxes,
// the falling letters, the status corner and the readable message log.
// All text from the network is put on the page with textContent only.

import { ChatClient } from './client.js';
import { BoxLayer } from './boxes.js';
import { SkyView, hueOf } from './sky.js';
import { MAX_NAME, MAX_TEXT, cleanName, roomFromLocation, tabSID, wsURL } from './protocol.js';

const NAME_KEY = 'mywebchat.name';
const LOG_CAP = 200; // readable messages kept in the log
const ADJECTIVES = ['quiet', 'brave', 'sunny', 'fuzzy', 'swift', 'lucky', 'gentle', 'bouncy', 'curious', 'sleepy'];
const ANIMALS = ['otter', 'panda', 'heron', 'lynx', 'koala', 'finch', 'gecko', 'moose', 'puffin', 'badger'];

const $ = (id) => document.getElementById(id);

const room = roomFromLocation(location);
const sky = new SkyView($('sky'));
const log = $('log');
const logRegion = $('logregion'); // the live region around the log's list
const pending = new Map(); // cid → the log entry of one of our messages, until its msg echo
let client = null;
let epoch = ''; // the room history's epoch: seqs compare only within one
let name = readName();

const boxes = new BoxLayer($('boxes'), {
  label: `Message to #${room}`,
  maxLength: MAX_TEXT,
  onSend: (text, fx, fy) => {
    if (!client) return false;
    const item = client.send(text, fx, fy);
    if (!item) {
      toast('That message is too long to send.');
      return false;
    }
    // Optimistic: it is on screen and in the log before the server answers.
    sky.drop(item.text, item.x, item.y, { name, own: true });
    pending.set(item.cid, addLog(name, item.text, { cid: item.cid, own: true }));
    firstUse();
    return true;
  },
});

$('room').textContent = `#${room}`;
document.title = `#${room} · MyWebChat`;

// A click or tap on the empty page opens a box right there.
$('stage').addEventListener('click', (e) => {
  if (!name || boxes.contains(e.target)) return;
  if (document.body.classList.contains('show-log')) {
    showLog(false); // the first tap beside the open log only closes it
    return;
  }
  boxes.closeEmpty();
  boxes.open(e.clientX, e.clientY);
  firstUse();
});

// Keyboard users: typing (or Enter) with no box focused opens one, so the
// page works without a pointer too.
document.addEventListener('keydown', (e) => {
  if (!name || e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'BUTTON' || t.isContentEditable)) return;
  if (e.key !== 'Enter' && e.key.length !== 1) return;
  if (e.key === 'Enter') e.preventDefault();
  boxes.closeEmpty();
  boxes.open(innerWidth * (0.2 + Math.random() * 0.4), innerHeight * (0.2 + Math.random() * 0.3));
  firstUse();
});

$('who').addEventListener('click', () => askName());
$('logtoggle').addEventListener('click', () => showLog(!document.body.classList.contains('show-log')));
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && document.body.classList.contains('show-log')) showLog(false);
});

function showLog(open) {
  document.body.classList.toggle('show-log', open);
  $('logtoggle').setAttribute('aria-expanded', String(open));
  if (open) log.lastElementChild?.scrollIntoView({ block: 'nearest' });
}
addEventListener('hashchange', () => {
  if (roomFromLocation(location) !== room) location.reload();
});
addEventListener('online', () => client?.nudge());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') client?.nudge();
});

if (name) start();
else askName();

function start() {
  $('who').textContent = name;
  // The button's accessible name starts with what it shows (WCAG 2.5.3, label in name).
  $('who').setAttribute('aria-label', `${name}: change your name`);
  document.documentElement.style.setProperty('--me', String(hueOf(name)));
  boxes.setName(name);
  if (client) {
    client.rename(name);
    return;
  }
  const session = tabStorage();
  const sid = tabSID(session, crypto);
  client = new ChatClient(
    {
      url: wsURL(location, room),
      name,
      sid,
      storage: session,
      outboxKey: `mywebchat.outbox.${room}`,
      WebSocket,
    },
    {
      status: showStatus,
      welcome: (w) => {
        epoch = String(w.epoch ?? '');
        serving(w);
        if (w.resume !== 'ok') logRegion.setAttribute('aria-busy', 'true');
      },
      // A deploy moved the socket to the new color: only the dot's tooltip knows.
      moved: serving,
      // The log stays busy (not announced) while a history replay arrives.
      resumed: () => logRegion.setAttribute('aria-busy', 'false'),
      msg: (m, { own, replay }) => {
        const cid = typeof m.cid === 'string' ? m.cid : '';
        if (own && pending.has(cid)) {
          settle(cid, m.seq);
          pending.delete(cid);
          return; // already on screen since it was typed
        }
        addLog(String(m.from ?? ''), String(m.text ?? ''), { cid, seq: m.seq, own });
        // History from before we arrived goes to the log; what happened while
        // we were briefly away (a resume) still falls, as if never gone.
        // A hidden tab draws nothing; it would only pile up a burst for later.
        if ((!replay || logRegion.getAttribute('aria-busy') !== 'true') && !document.hidden) {
          sky.drop(String(m.text ?? ''), Number(m.x), Number(m.y), { name: String(m.from ?? ''), own });
        }
      },
      // The entry stays in `pending` until its msg comes back, so that echo
      // is recognised as ours whichever of ack and msg arrives first.
      ack: (cid, seq) => settle(cid, seq),
      failed: (cid, code) => {
        const li = pending.get(cid);
        pending.delete(cid);
        li?.classList.add('failed');
        toast(code === 'too_long' ? 'That message was too long.' : 'That message could not be sent.');
      },
      presence: (n) => {
        $('online').textContent = `${n} online`;
      },
    },
  );
  // Messages a reload of this tab left unsent are sent again; show them as pending.
  for (const m of client.outbox.pending()) {
    if (!pending.has(m.cid)) pending.set(m.cid, addLog(name, m.text, { cid: m.cid, own: true }));
  }
  client.start();
}

function settle(cid, seq) {
  const li = pending.get(cid);
  if (!li || li.dataset.seq !== undefined) return;
  li.dataset.seq = String(seq);
  li.dataset.epoch = epoch;
  li.classList.remove('pending');
  placeBySeq(li);
}

// placeBySeq keeps the log in the room's order: an optimistic entry was
// added when typed, but others' messages may have been accepted before it.
// Entries still pending stay last.
function placeBySeq(li) {
  const seq = Number(li.dataset.seq);
  let after = null;
  for (let el = log.lastElementChild; el; el = el.previousElementSibling) {
    if (el === li || el.dataset.seq === undefined) continue;
    if (el.dataset.epoch !== li.dataset.epoch || Number(el.dataset.seq) < seq) {
      after = el;
      break;
    }
  }
  const want = after ? after.nextElementSibling : log.firstElementChild;
  if (want === li) return;
  log.insertBefore(li, want);
}

// serving records which color serves the socket (welcome, or a move's go) on
// the status dot, for its tooltip and for tests; nothing visible changes.
function serving({ color, version }) {
  const dot = $('dot');
  dot.dataset.color = String(color ?? '');
  dot.title = `connected · ${color ?? ''} ${version ?? ''}`.trim();
}

let everOnline = false;
function showStatus(s) {
  document.documentElement.dataset.status = s;
  if (s === 'online') everOnline = true;
  $('dot').setAttribute('aria-label', `connection: ${s}`);
  const hint = $('hint');
  if (s === 'reconnecting' || s === 'offline') $('online').textContent = ''; // unknown until back
  if (s === 'reconnecting') {
    hint.textContent = everOnline ? 'Reconnecting…' : 'Connecting…';
    hint.hidden = false;
  } else if (s === 'offline') {
    hint.textContent = 'Disconnected. Reload the page to rejoin.';
    hint.hidden = false;
  } else {
    hint.hidden = true;
  }
}

function addLog(from, text, { cid = '', seq, own = false }) {
  const li = document.createElement('li');
  const who = document.createElement('b');
  who.textContent = from;
  const what = document.createElement('span');
  what.textContent = text;
  li.append(who, ': ', what);
  if (cid) li.dataset.cid = cid;
  if (own) li.classList.add('own');
  log.append(li);
  if (seq !== undefined) {
    li.dataset.seq = String(seq);
    li.dataset.epoch = epoch;
    placeBySeq(li);
  } else {
    li.classList.add('pending');
  }
  while (log.childElementCount > LOG_CAP) {
    const old = log.firstElementChild;
    if (old.dataset.cid) pending.delete(old.dataset.cid);
    old.remove();
  }
  if (document.body.classList.contains('show-log')) li.scrollIntoView({ block: 'nearest' });
  return li;
}

let used = false;
function firstUse() {
  if (used) return;
  used = true;
  document.body.classList.add('used');
}

let toastTimer = 0;
function toast(text) {
  const el = $('toast');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 4000);
}

// tabStorage is sessionStorage, or null where the browser refuses it (then
// the outbox and the sid live for this page load only).
function tabStorage() {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

function readName() {
  try {
    return cleanName(localStorage.getItem(NAME_KEY));
  } catch {
    return '';
  }
}

function askName() {
  const card = $('namecard');
  const input = $('nameinput');
  const go = $('namego');
  input.maxLength = MAX_NAME;
  input.value = name || `${pick(ADJECTIVES)}-${pick(ANIMALS)}`;
  card.hidden = false;
  input.focus();
  input.select();
  // Your colour follows the name as you type it.
  const tint = () => document.documentElement.style.setProperty('--me', String(hueOf(cleanName(input.value) || name)));
  tint();
  input.addEventListener('input', tint);
  const done = () => {
    const n = cleanName(input.value);
    if (!n) {
      input.classList.add('bad');
      input.focus();
      return;
    }
    try {
      localStorage.setItem(NAME_KEY, n);
    } catch {
      // Private mode without storage: the name lasts for this page only.
    }
    card.hidden = true;
    input.removeEventListener('keydown', onKey);
    input.removeEventListener('input', tint);
    go.removeEventListener('click', done);
    const changed = n !== name;
    name = n;
    if (changed || !client) start();
  };
  const onKey = (e) => {
    if (e.key === 'Enter' && !e.isComposing) {
      e.preventDefault();
      done();
    } else if (e.key === 'Escape' && name) {
      card.hidden = true;
      input.removeEventListener('keydown', onKey);
      input.removeEventListener('input', tint);
      go.removeEventListener('click', done);
      document.documentElement.style.setProperty('--me', String(hueOf(name)));
    }
  };
  input.addEventListener('keydown', onKey);
  go.addEventListener('click', done);
}

function pick(a) {
  return a[Math.floor(Math.random() * a.length)];
}
