//! The Lua scripts the Redis engine runs. Each is one atomic step on one channel's keys: Redis runs
//! a script to the end before any other command, which is what makes offsets gap-free and in one
//! order on every node, and a read of the history consistent with the offset it answers.
//!
//! Key layout (prefix `P`, channel `C`; the channel in braces so a Redis Cluster would put all of
//! one channel's keys in one slot): `P:meta:{C}` hash {offset, epoch}, `P:stream:{C}` the history
//! (entry id `<offset>-0`, fields `d` data, `f` from, `t` ms), `P:presence:{C}` hash and
//! `P:presence-exp:{C}` sorted set (connection id -> expiry in ms).

use redis::Script;

/// Lua shared by the scripts that touch a stream: the time in ms (Redis's clock, the same for
/// every node) and dropping the entries older than the history's time to live from its front
/// (entries are in time order), a bounded number per call, so reads rarely meet expired ones.
const STREAM_HELPERS: &str = r#"
local function now_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
local function drop_expired(stream, oldest_kept)
  for _ = 1, 8 do
    local front = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
    local gone = {}
    for _, entry in ipairs(front) do
      local t = nil
      for i = 1, #entry[2], 2 do
        if entry[2][i] == 't' then t = tonumber(entry[2][i + 1]) end
      end
      if t ~= nil and t >= oldest_kept then break end
      table.insert(gone, entry[1])
    end
    if #gone > 0 then redis.call('XDEL', stream, unpack(gone)) end
    if #gone < 64 then return end
  end
end
"#;

/// Publish: KEYS meta, stream; ARGV pubsub channel, epoch if new, history size, history ttl
/// (s), meta ttl (s), data, from ("" = the server), frame prefix, frame suffix. Returns
/// `{offset, epoch}`; what is published is the envelope `m <offset> <epoch> <frame>`.
const PUBLISH: &str = r#"
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[2])
local epoch = redis.call('HGET', KEYS[1], 'epoch')
redis.call('EXPIRE', KEYS[1], ARGV[5])
local size = tonumber(ARGV[3])
if size > 0 then
  -- A stream left by an older life of the channel (its meta expired first, or a node with other
  -- settings) must not hold ids at or above the new offset: XADD would refuse them.
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #last > 0 and tonumber(string.match(last[1][1], '^(%d+)')) >= offset then
    redis.call('DEL', KEYS[2])
  end
  local ms = now_ms()
  if ARGV[7] == '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, offset .. '-0', 'd', ARGV[6], 't', ms)
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, offset .. '-0', 'd', ARGV[6], 'f', ARGV[7], 't', ms)
  end
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  drop_expired(KEYS[2], ms - tonumber(ARGV[4]) * 1000)
end
redis.call('PUBLISH', ARGV[1], 'm ' .. offset .. ' ' .. epoch .. ' ' .. ARGV[8] .. offset .. ARGV[9])
return {offset, epoch}
"#;

/// Read: KEYS meta, stream; ARGV since (-1 = none), limit (-1 = none), history size, history ttl
/// (ms), epoch if new, meta ttl (s), create (1 = a subscribe: keep the new epoch), byte budget,
/// oldest first (1/0), entries (0 = the offset and epoch only). Returns `{offset, epoch,
/// complete, truncated, id1, data1, from1, ...}`: `complete` = every entry after `since` is
/// still held. A `since` above the offset (another life's) is, as in the memory engine, nothing
/// recovered for a subscribe and the whole history for a read.
const READ: &str = r#"
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset') or '0')
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[5]
  if ARGV[7] == '1' then
    redis.call('HSET', KEYS[1], 'epoch', epoch)
  end
end
if ARGV[7] == '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[6])
end
local result = {offset, epoch, 0, 0}
local since = tonumber(ARGV[1])
if since > offset then
  if ARGV[7] == '1' then return result end
  since = -1
end
if ARGV[10] == '0' then return result end
local low = 1
if since >= 0 then low = since + 1 end
local size = tonumber(ARGV[3])
if offset - size + 1 > low then low = offset - size + 1 end
local limit = tonumber(ARGV[2])
if limit >= 0 and offset - limit + 1 > low then low = offset - limit + 1 end
if low > offset then
  -- Nothing to read: complete only if nothing after `since` was left out by the size.
  if since < 0 or low == since + 1 then result[3] = 1 end
  return result
end
local oldest_kept = now_ms() - tonumber(ARGV[4])
drop_expired(KEYS[2], oldest_kept)
local budget = tonumber(ARGV[8])
-- Every entry costs at least 51 bytes of the budget: more than this many cannot fit.
local count = math.floor(budget / 50) + 2
local entries
if ARGV[9] == '1' then
  entries = redis.call('XRANGE', KEYS[2], low .. '-0', '+', 'COUNT', count)
else
  entries = redis.call('XREVRANGE', KEYS[2], '+', low .. '-0', 'COUNT', count)
end
local spent = 0
local first = nil
local held = 0
for _, entry in ipairs(entries) do
  local fields = {}
  for i = 1, #entry[2], 2 do fields[entry[2][i]] = entry[2][i + 1] end
  if tonumber(fields['t']) >= oldest_kept then
    local id = tonumber(string.match(entry[1], '^(%d+)'))
    local cost = string.len(fields['d']) + string.len(fields['f'] or 'null') + 50
    if held > 0 and spent + cost > budget then
      -- Over the reply's budget: what is left out makes the answer truncated (and so not a
      -- complete recovery, whatever else holds).
      result[4] = 1
      break
    end
    held = held + 1
    spent = spent + cost
    if first == nil or id < first then first = id end
    table.insert(result, id)
    table.insert(result, fields['d'])
    table.insert(result, fields['f'] or '')
  end
end
-- Complete when the held entries run without a hole from `low` to the last offset.
if result[4] == 0 and first == low and held == offset - low + 1 then result[3] = 1 end
-- A recovery needs everything after `since`, not only what the size or the limit kept.
if since >= 0 and low ~= since + 1 then result[3] = 0 end
return result
"#;

/// Drops the `stale` members of a hash and of its expiry set, 1,000 at a time (Lua's `unpack`
/// takes at most a few thousand values).
const DROP_STALE: &str = r#"
local function drop_stale(hash, set, until_score)
  while true do
    local stale = redis.call('ZRANGEBYSCORE', set, '-inf', until_score, 'LIMIT', 0, 1000)
    if #stale == 0 then return end
    redis.call('HDEL', hash, unpack(stale))
    redis.call('ZREM', set, unpack(stale))
  end
end
"#;

/// Presence read: KEYS presence hash, expiry set. Drops the members whose node stopped
/// refreshing them (by Redis's clock), returns `{id1, member1, ...}`.
const PRESENCE: &str = r#"
local now = redis.call('TIME')
drop_stale(KEYS[1], KEYS[2], tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
return redis.call('HGETALL', KEYS[1])
"#;

/// Presence write: KEYS presence hash, expiry set; ARGV ttl (ms), then `id, member` pairs to
/// keep for another TTL (by Redis's clock, so nodes' clocks need not agree).
const PRESENCE_KEEP: &str = r#"
local now = redis.call('TIME')
local expiry = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], expiry, ARGV[i])
end
local seconds = math.floor(tonumber(ARGV[1]) / 1000) + 1
redis.call('EXPIRE', KEYS[1], seconds)
redis.call('EXPIRE', KEYS[2], seconds)
return 0
"#;

/// Live nodes: KEYS nodes hash, seen set; ARGV how long a node stays listed without a
/// heartbeat (ms), then optionally this node's id and heartbeat to record first. Forgets nodes
/// that stopped beating, returns `{id1, heartbeat1, ...}`.
const NODES: &str = r#"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if #ARGV >= 3 then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[2], ms, ARGV[2])
end
drop_stale(KEYS[1], KEYS[2], ms - tonumber(ARGV[1]))
return redis.call('HGETALL', KEYS[1])
"#;

/// The scripts, loaded once (EVALSHA, with EVAL when a restarted Redis forgot them).
pub(crate) struct Scripts {
    pub publish: Script,
    pub read: Script,
    pub presence: Script,
    pub presence_keep: Script,
    pub nodes: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            publish: Script::new(&format!("{STREAM_HELPERS}{PUBLISH}")),
            read: Script::new(&format!("{STREAM_HELPERS}{READ}")),
            presence: Script::new(&format!("{DROP_STALE}{PRESENCE}")),
            presence_keep: Script::new(PRESENCE_KEEP),
            nodes: Script::new(&format!("{DROP_STALE}{NODES}")),
        }
    }
}
