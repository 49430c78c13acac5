//! The Lua scripts the Redis engine runs. Each is one atomic step on one channel's keys: Redis runs
//! a script to the end before any other command, which is what makes offsets gap-free and in one
//! order on every node, and a read of the history consistent with the offset it answers.
//!
//! Key layout (prefix `P`, channel `C`; the channel in braces so a Redis Cluster would put all of
//! one channel's keys in one slot): `P:meta:{C}` hash {offset, epoch}, `P:stream:{C}` the history
//! (entry id `<offset>-0`, fields `d` data, `f` from, `t` ms), `P:presence:{C}` hash and
//! `P:presence-exp:{C}` sorted set (connection id -> expiry in ms).

use redis::Script;

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
  if offset == 1 then
    -- A new life of the channel: whatever an older life left must not hold higher ids.
    redis.call('DEL', KEYS[2])
  end
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if ARGV[7] == '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, offset .. '-0', 'd', ARGV[6], 't', ms)
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, offset .. '-0', 'd', ARGV[6], 'f', ARGV[7], 't', ms)
  end
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('PUBLISH', ARGV[1], 'm ' .. offset .. ' ' .. epoch .. ' ' .. ARGV[8] .. offset .. ARGV[9])
return {offset, epoch}
"#;

/// Read: KEYS meta, stream; ARGV since (-1 = none), limit (0 = none), history size, history ttl
/// (ms), epoch if new, meta ttl (s), create (1 = a subscribe: keep the new epoch), byte budget,
/// oldest first (1/0). Returns `{offset, epoch, complete, truncated, id1, data1, from1, ...}`:
/// `complete` = every entry after `since` is still held.
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
local since = tonumber(ARGV[1])
local low = 1
if since >= 0 then low = since + 1 end
local size = tonumber(ARGV[3])
if offset - size + 1 > low then low = offset - size + 1 end
local limit = tonumber(ARGV[2])
if limit > 0 and offset - limit + 1 > low then low = offset - limit + 1 end
local result = {offset, epoch, 0, 0}
if since > offset then return result end
if low > offset then
  -- Nothing to read: complete only if nothing after `since` was left out by the size.
  if since < 0 or low == since + 1 then result[3] = 1 end
  return result
end
local now = redis.call('TIME')
local oldest_kept = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[4])
local entries
if ARGV[9] == '1' then
  entries = redis.call('XRANGE', KEYS[2], low .. '-0', '+')
else
  entries = redis.call('XREVRANGE', KEYS[2], '+', low .. '-0')
end
local budget = tonumber(ARGV[8])
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

/// Presence read: KEYS presence hash, expiry set; ARGV now (ms). Drops the members whose node
/// stopped refreshing them, returns `{id1, member1, ...}`.
const PRESENCE: &str = r#"
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
"#;

/// Live nodes: KEYS nodes hash, seen set; ARGV oldest live heartbeat (ms). Forgets nodes that
/// stopped beating, returns `{id1, heartbeat1, ...}`.
const NODES: &str = r#"
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
end
return redis.call('HGETALL', KEYS[1])
"#;

/// The scripts, loaded once (EVALSHA, with EVAL when a restarted Redis forgot them).
pub(crate) struct Scripts {
    pub publish: Script,
    pub read: Script,
    pub presence: Script,
    pub nodes: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            publish: Script::new(PUBLISH),
            read: Script::new(READ),
            presence: Script::new(PRESENCE),
            nodes: Script::new(NODES),
        }
    }
}
