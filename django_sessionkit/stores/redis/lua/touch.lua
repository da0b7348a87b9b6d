--! uses index_lib
-- ARGV: now us, expires us, last seen us, expire-at ms, member, -last seen us, index base,
-- the base of the single index of earlier releases ('' none): a session found there moves
-- into its shard, keeping its place.
-- KEYS: the session, then (outside a Cluster) the exp index. Returns 0 (missing or expired:
-- nothing changed), else what place() says (1; 2: the caller places it).
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'l', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
if #KEYS >= 2 then
  local w, old = '', ARGV[8]
  if old ~= '' and redis.call('ZSCORE', old .. 'exp', ARGV[5]) then
    w = redis.call('HGET', old .. 'where', ARGV[5]) or ''
    unindex(old, ARGV[5])
  end
  return place(ARGV[7], ARGV[5], 'set', ARGV[2], ARGV[6], w)
end
return 1
