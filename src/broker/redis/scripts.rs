//! The Lua scripts: each multi-key operation on a channel runs as one atomic script, so
//! offsets, history, idempotency and PUB/SUB delivery can never disagree. All keys of a
//! script carry the channel's hash tag (see `keys.rs`), so they run on Redis Cluster too.

/// Publish. KEYS: stream, meta, idempotency result.
/// ARGV: body, history size (0 = no history), history ttl s, meta ttl s (0 = none),
/// epoch for a new stream, PUB/SUB channel, idempotency ttl s (0 = no key).
///
/// Returns `{duplicate (0/1), "<offset> <epoch>"}`. A new stream (no meta, or meta
/// expired) gets the caller's fresh epoch and drops any stream left from an old epoch, so
/// entry ids (`0-<offset>`) start again at 1. The message PUBLISHed is the stored entry,
/// from inside the script: subscribers see publications in offset order.
pub(crate) const PUBLISH: &str = r#"
local idem_ttl = tonumber(ARGV[7])
if idem_ttl > 0 then
  local seen = redis.call("get", KEYS[3])
  if seen then return {1, seen} end
end
local size = tonumber(ARGV[2])
local position = "0 "
local message
if size > 0 then
  local epoch = redis.call("hget", KEYS[2], "e")
  if not epoch then
    epoch = ARGV[5]
    redis.call("del", KEYS[1])
    redis.call("hset", KEYS[2], "e", epoch, "s", 0)
  end
  local offset = redis.call("hincrby", KEYS[2], "s", 1)
  local meta_ttl = tonumber(ARGV[4])
  if meta_ttl > 0 then redis.call("expire", KEYS[2], meta_ttl) else redis.call("persist", KEYS[2]) end
  message = "P" .. offset .. "\n" .. epoch .. "\n" .. ARGV[1]
  redis.call("xadd", KEYS[1], "MAXLEN", size, "0-" .. offset, "d", message)
  redis.call("expire", KEYS[1], ARGV[3])
  position = offset .. " " .. epoch
else
  message = "P0\n\n" .. ARGV[1]
end
redis.call("publish", ARGV[6], message)
if idem_ttl > 0 then redis.call("set", KEYS[3], position, "EX", idem_ttl) end
return {0, position}
"#;

/// History read. KEYS: stream, meta.
/// ARGV: epoch for a new stream, meta ttl s (0 = none), since given (0/1), since epoch,
/// since offset, limit, reverse (0/1).
///
/// Returns `{top, epoch, {entries…}}`. Creates the stream's position when there is none
/// (a reader gets a stable epoch before the first publication) and extends its lifetime.
/// An empty since epoch is any epoch. With `since` in another epoch or beyond the top no entries are read: the caller reports
/// the mismatch from the position returned.
pub(crate) const HISTORY: &str = r#"
local epoch = redis.call("hget", KEYS[2], "e")
if not epoch then
  epoch = ARGV[1]
  redis.call("del", KEYS[1])
  redis.call("hset", KEYS[2], "e", epoch, "s", 0)
end
local top = tonumber(redis.call("hget", KEYS[2], "s") or "0")
local meta_ttl = tonumber(ARGV[2])
if meta_ttl > 0 then redis.call("expire", KEYS[2], meta_ttl) end
local limit = tonumber(ARGV[6])
local entries = {}
if limit > 0 then
  local reverse = ARGV[7] == "1"
  if ARGV[3] == "1" then
    local since = tonumber(ARGV[5])
    if (ARGV[4] ~= "" and ARGV[4] ~= epoch) or since > top then
      return {top, epoch, {}}
    end
    if reverse then
      if since > 1 then
        entries = redis.call("xrevrange", KEYS[1], "0-" .. (since - 1), "-", "COUNT", limit)
      end
    else
      entries = redis.call("xrange", KEYS[1], "0-" .. (since + 1), "+", "COUNT", limit)
    end
  elseif reverse then
    entries = redis.call("xrevrange", KEYS[1], "+", "-", "COUNT", limit)
  else
    entries = redis.call("xrange", KEYS[1], "-", "+", "COUNT", limit)
  end
end
local out = {}
for i, e in ipairs(entries) do out[i] = e[2][2] end
return {top, epoch, out}
"#;

/// Add or refresh a presence entry. KEYS: expiry zset, data hash.
/// ARGV: client id, encoded info, expires at (unix ms), key ttl s.
pub(crate) const PRESENCE_ADD: &str = r#"
redis.call("zadd", KEYS[1], ARGV[3], ARGV[1])
redis.call("hset", KEYS[2], ARGV[1], ARGV[2])
redis.call("expire", KEYS[1], ARGV[4])
redis.call("expire", KEYS[2], ARGV[4])
return 1
"#;

/// Remove a presence entry. KEYS: expiry zset, data hash. ARGV: client id.
pub(crate) const PRESENCE_REMOVE: &str = r#"
redis.call("zrem", KEYS[1], ARGV[1])
redis.call("hdel", KEYS[2], ARGV[1])
return 1
"#;

/// Read presence, dropping entries that expired (their node stopped refreshing them).
/// KEYS: expiry zset, data hash. ARGV: now (unix ms). Returns HGETALL's flat list.
pub(crate) const PRESENCE_GET: &str = r#"
local expired = redis.call("zrangebyscore", KEYS[1], "-inf", ARGV[1])
for _, client in ipairs(expired) do redis.call("hdel", KEYS[2], client) end
if #expired > 0 then redis.call("zremrangebyscore", KEYS[1], "-inf", ARGV[1]) end
return redis.call("hgetall", KEYS[2])
"#;
