--! uses index_lib
-- ARGV: now us, expires us, last seen us, expire-at ms, member, -last seen us, index base.
-- KEYS: the session, then (outside a Cluster) the exp index. Returns 0 (missing or expired:
-- nothing changed), else what place() says (1; 2: the caller places it).
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'l', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
if #KEYS >= 2 then return place(ARGV[7], ARGV[5], 'set', ARGV[2], ARGV[6], '') end
return 1
