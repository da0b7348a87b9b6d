-- Index upkeep shared by the scripts that use it (the loader puts this file in front of
-- them). Every index key starts with B, the base of one index shard ("P{idx:N}:"), and so
-- lives in one Cluster slot; the per-address sets are named from the session's place,
-- "where" = who ("i" signed in, "a" anonymous) followed by the address code ("-": none),
-- then "|" and the user id for a signed-in session (the purge reports it when the session
-- expires; entries written by earlier releases have no "|").
local function code_of(w)
  local bar = string.find(w, '|', 2, true)
  return bar and string.sub(w, 2, bar - 1) or string.sub(w, 2)
end
local function drop_from(B, m, w)
  local who, ipx = string.sub(w, 1, 1), code_of(w)
  redis.call('ZREM', B .. 'seen:' .. who, m)
  if ipx ~= '-' then
    redis.call('ZREM', B .. 'ip:' .. ipx .. ':' .. who, m)
    if redis.call('EXISTS', B .. 'ip:' .. ipx .. ':i', B .. 'ip:' .. ipx .. ':a') == 0 then
      redis.call('ZREM', B .. 'ips', ipx)
    end
  end
end
local function unindex(B, m)
  redis.call('ZREM', B .. 'exp', m)
  redis.call('ZREM', B .. 'seen', m)
  local w = redis.call('HGET', B .. 'where', m)
  if w then
    drop_from(B, m, w)
    redis.call('HDEL', B .. 'where', m)
  end
end
-- mode 'set': always; 'nx': only a session not in the index yet; 'xx': only one already in
-- it. w = '' keeps the session where it is (a touch). Returns 0 (nothing done), 1 (indexed)
-- or 2 (in exp and seen only: saved by an older version, its place is not known yet).
local function place(B, m, mode, exp, seen, w)
  if mode ~= 'set' then
    local indexed = redis.call('ZSCORE', B .. 'exp', m) ~= false
    if indexed == (mode == 'nx') then return 0 end
  end
  redis.call('ZADD', B .. 'exp', exp, m)
  redis.call('ZADD', B .. 'seen', seen, m)
  local old = redis.call('HGET', B .. 'where', m)
  if w == '' then
    if not old then return 2 end
    w = old
  elseif old and old ~= w then
    drop_from(B, m, old)
  end
  local who, ipx = string.sub(w, 1, 1), code_of(w)
  redis.call('ZADD', B .. 'seen:' .. who, seen, m)
  if ipx ~= '-' then redis.call('ZADD', B .. 'ip:' .. ipx .. ':' .. who, seen, m) end
  if old ~= w then
    if ipx ~= '-' then redis.call('ZADD', B .. 'ips', 0, ipx) end
    redis.call('HSET', B .. 'where', m, w)
  end
  return 1
end
