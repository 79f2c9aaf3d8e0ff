package redisroom

import "github.com/redis/go-redis/v9"

// ensureLua makes sure the room exists and is consistent, and leaves its epoch
// and seq in the locals epoch and seq. A room whose metadata is missing (a
// Redis that came back empty, or keys that expired) or whose log does not end
// at its seq (part of the data was lost) starts over under the new epoch the
// caller proposes in ARGV[1]: continuity was lost and clients must reset.
//
// KEYS: meta, log, dedupe. ARGV[1]: proposed epoch.
const ensureLua = `
local meta, log, dd = KEYS[1], KEYS[2], KEYS[3]
local st = redis.call('HMGET', meta, 'epoch', 'seq')
local epoch, seq = st[1], tonumber(st[2])
local ok = false
if epoch and seq then
  local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if #last == 0 then
    ok = (seq == 0)
  else
    ok = (tonumber(string.match(last[1][1], '^(%d+)%-')) == seq)
  end
end
if not ok then
  epoch, seq = ARGV[1], 0
  redis.call('DEL', log, dd)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0)
end
`

// openScript returns a consistent snapshot of a room, creating it when new:
// {epoch, seq, newest history entries (newest first), dedupe members with
// their seqs}. One script, so the snapshot is atomic.
//
// KEYS: meta, log, dedupe. ARGV: proposed epoch, history limit, dedupe window,
// ttl seconds.
var openScript = redis.NewScript(ensureLua + `
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', log, ttl)
  redis.call('EXPIRE', dd, ttl)
end
local hist = redis.call('XREVRANGE', log, '+', '-', 'COUNT', tonumber(ARGV[2]))
local dedupe = redis.call('ZRANGE', dd, 0, tonumber(ARGV[3]) - 1, 'REV', 'WITHSCORES')
return {epoch, seq, hist, dedupe}
`)

// appendScript accepts one message atomically: dedupe check, next seq, the
// log entry (the stream is also the feed every instance follows, so storing
// is publishing), the dedupe record with bounded retention, and the keys'
// expiry. It returns {epoch, seq, duplicate (0|1)}.
//
// KEYS: meta, log, dedupe. ARGV: proposed epoch, dedupe member "sid cid",
// history limit, dedupe window, ttl seconds, sid, cid, from, text, x, y, ts.
var appendScript = redis.NewScript(ensureLua + `
local member = ARGV[2]
local old = redis.call('ZSCORE', dd, member)
if old then
  return {epoch, tonumber(old), 1}
end
seq = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('XADD', log, 'MAXLEN', '~', tonumber(ARGV[3]), seq .. '-0',
  'e', epoch, 's', ARGV[6], 'c', ARGV[7], 'f', ARGV[8], 't', ARGV[9],
  'x', ARGV[10], 'y', ARGV[11], 'ts', ARGV[12])
redis.call('ZADD', dd, seq, member)
redis.call('ZREMRANGEBYSCORE', dd, '-inf', '(' .. (seq - tonumber(ARGV[4]) + 1))
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', log, ttl)
  redis.call('EXPIRE', dd, ttl)
end
return {epoch, seq, 0}
`)
