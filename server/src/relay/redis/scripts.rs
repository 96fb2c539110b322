//! The Lua scripts: each runs atomically inside Redis, so a message is numbered, kept and
//! published in one step, and a presence change and its event can never be seen apart.
//!
//! `sweep` and `touch` build key names from the prefix instead of receiving them in `KEYS`:
//! they visit rooms they only learn inside Redis. That is fine for standalone Redis (each shard
//! is one), and is why Redis Cluster is not supported.

use redis::Script;
use redis::aio::MultiplexedConnection;

/// KEYS: meta, history, idempotency key. ARGV: channel, epoch if new, ts, user, text,
/// history entries, history bytes, key TTL ms, has idempotency key (0/1), its TTL ms, data
/// (compact JSON, or empty: then the entry is the `m` kind that predates data).
/// Returns `{seq, epoch, nodes that received it, 1 if this repeated an earlier publish}`.
const PUBLISH: &str = r#"
if ARGV[9] == '1' then
  local known = redis.call('GET', KEYS[3])
  if known then
    local space = string.find(known, ' ', 1, true)
    return {tonumber(string.sub(known, 1, space - 1)), string.sub(known, space + 1), 0, 1}
  end
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('HDEL', KEYS[1], 'seq', 'bytes')
  redis.call('DEL', KEYS[2])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local entry
if ARGV[11] == nil or ARGV[11] == '' then
  entry = 'rc1\nm\n' .. seq .. '\n' .. epoch .. '\n' .. ARGV[3] .. '\n' .. ARGV[4] .. '\n' .. ARGV[5]
else
  entry = 'rc1\nd\n' .. seq .. '\n' .. epoch .. '\n' .. ARGV[3] .. '\n' .. ARGV[4] .. '\n' .. ARGV[11] .. '\n' .. ARGV[5]
end
local ttl = ARGV[8]
local max_entries = tonumber(ARGV[6])
if max_entries > 0 then
  local max_bytes = tonumber(ARGV[7])
  local charge = 3 * #entry + 256
  local held = redis.call('RPUSH', KEYS[2], entry)
  local bytes
  if held == 1 then
    redis.call('HSET', KEYS[1], 'bytes', charge)
    bytes = charge
  else
    bytes = redis.call('HINCRBY', KEYS[1], 'bytes', charge)
  end
  while held > 1 and (held > max_entries or bytes > max_bytes) do
    local oldest = redis.call('LPOP', KEYS[2])
    bytes = redis.call('HINCRBY', KEYS[1], 'bytes', -(3 * #oldest + 256))
    held = held - 1
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('PEXPIRE', KEYS[1], ttl)
local nodes = redis.call('PUBLISH', ARGV[1], entry)
if ARGV[9] == '1' then
  redis.call('SET', KEYS[3], seq .. ' ' .. epoch, 'PX', ARGV[10])
end
return {seq, epoch, nodes, 0}
"#;

/// KEYS: meta, history, users. ARGV: epoch if new, key TTL ms.
/// Returns `{epoch, seq, pver, history entries, users hash}`, read at one instant.
const READ: &str = r#"
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[1], 'seq', 'bytes')
  redis.call('DEL', KEYS[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'pver')
return {meta[1], meta[2] or '0', meta[3] or '0', redis.call('LRANGE', KEYS[2], 0, -1), redis.call('HGETALL', KEYS[3])}
"#;

/// KEYS: node users, users, meta, node rooms. ARGV: channel, room, key TTL ms, replace (0/1),
/// leave reason, then pairs of user and this node's session count (0 = gone). With replace,
/// users of this node not listed are set to 0. A user whose count over all nodes crosses zero
/// gets a `join` or `leave` event, numbered by `pver`.
const PRESENCE: &str = r#"
local node_users, users, meta = KEYS[1], KEYS[2], KEYS[3]
local function announce(kind, user)
  local pver = redis.call('HINCRBY', meta, 'pver', 1)
  local event = 'rc1\n' .. kind .. '\n' .. pver .. '\n' .. user
  if kind == 'l' then event = event .. '\n' .. ARGV[5] end
  redis.call('PUBLISH', ARGV[1], event)
end
local function set(user, count)
  local old = tonumber(redis.call('HGET', node_users, user) or '0')
  if old == count then return end
  if count > 0 then
    redis.call('HSET', node_users, user, count)
  else
    redis.call('HDEL', node_users, user)
  end
  local total = redis.call('HINCRBY', users, user, count - old)
  local before = total - (count - old)
  if total <= 0 then redis.call('HDEL', users, user) end
  if before <= 0 and total > 0 then
    announce('j', user)
  elseif before > 0 and total <= 0 then
    announce('l', user)
  end
end
local given = {}
for i = 6, #ARGV, 2 do
  given[ARGV[i]] = true
  set(ARGV[i], tonumber(ARGV[i + 1]))
end
if ARGV[4] == '1' then
  for _, user in ipairs(redis.call('HKEYS', node_users)) do
    if not given[user] then set(user, 0) end
  end
end
local ttl = ARGV[3]
if redis.call('EXISTS', node_users) == 1 then
  redis.call('SADD', KEYS[4], ARGV[2])
  redis.call('PEXPIRE', node_users, ttl)
  redis.call('PEXPIRE', KEYS[4], ttl)
else
  redis.call('SREM', KEYS[4], ARGV[2])
end
redis.call('PEXPIRE', users, ttl)
redis.call('PEXPIRE', meta, ttl)
return 0
"#;

/// KEYS: nodes, this node's rooms. ARGV: node id, node timeout ms, key TTL ms.
/// Returns 1 when the node was not listed (new, or swept as dead by another node).
const HEARTBEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return added
"#;

/// KEYS: nodes. ARGV: prefix, most rooms to visit. Removes the presence of one node whose
/// heartbeat deadline passed (Redis time), announcing `leave` (reason `timeout`) for every user
/// who has no session left anywhere. Returns `{rooms visited, dead nodes seen}`; the caller
/// repeats while a dead node was seen, so one call never blocks Redis for long.
const SWEEP: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
local visited = 0
for _, node in ipairs(dead) do
  local rooms_key = ARGV[1] .. ':node:' .. node .. ':rooms'
  local rooms = redis.call('SPOP', rooms_key, tonumber(ARGV[2]))
  for _, room in ipairs(rooms) do
    local base = ARGV[1] .. ':room:' .. room
    local node_users = base .. ':node:' .. node
    local users = base .. ':users'
    local fields = redis.call('HGETALL', node_users)
    for i = 1, #fields, 2 do
      local total = redis.call('HINCRBY', users, fields[i], -tonumber(fields[i + 1]))
      if total <= 0 then
        redis.call('HDEL', users, fields[i])
        local pver = redis.call('HINCRBY', base .. ':meta', 'pver', 1)
        redis.call('PUBLISH', base, 'rc1\nl\n' .. pver .. '\n' .. fields[i] .. '\ntimeout')
      end
    end
    redis.call('DEL', node_users)
    visited = visited + 1
  end
  if redis.call('SCARD', rooms_key) == 0 then redis.call('ZREM', KEYS[1], node) end
end
return {visited, #dead}
"#;

/// ARGV: prefix, node id, key TTL ms, then room names. Keeps the keys of rooms this node has
/// members in from expiring.
const TOUCH: &str = r#"
for i = 4, #ARGV do
  local base = ARGV[1] .. ':room:' .. ARGV[i]
  redis.call('PEXPIRE', base .. ':meta', ARGV[3])
  redis.call('PEXPIRE', base .. ':history', ARGV[3])
  redis.call('PEXPIRE', base .. ':users', ARGV[3])
  redis.call('PEXPIRE', base .. ':node:' .. ARGV[2], ARGV[3])
end
return 0
"#;

/// The scripts, hashed once; loaded into each connection when it opens.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) publish: Script,
    pub(crate) read: Script,
    pub(crate) presence: Script,
    pub(crate) heartbeat: Script,
    pub(crate) sweep: Script,
    pub(crate) touch: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            publish: Script::new(PUBLISH),
            read: Script::new(READ),
            presence: Script::new(PRESENCE),
            heartbeat: Script::new(HEARTBEAT),
            sweep: Script::new(SWEEP),
            touch: Script::new(TOUCH),
        }
    }

    /// Loads every script (`SCRIPT LOAD`), so pipelines can use `EVALSHA` without a retry.
    pub(crate) async fn load(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> redis::RedisResult<()> {
        for script in [
            &self.publish,
            &self.read,
            &self.presence,
            &self.heartbeat,
            &self.sweep,
            &self.touch,
        ] {
            script.prepare_invoke().load_async(connection).await?;
        }
        Ok(())
    }
}
