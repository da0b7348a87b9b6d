--! uses index_lib
-- ARGV: op, expected version, expire-at ms, member, expires us, -last seen us, index base,
-- where, this save's token, the base of the single index of earlier releases ('' none),
-- then counted lists: meta pairs, meta names to unset, data pairs
-- to set, data names to remove, and increments as (name, value to write, delta to add
-- instead when another save came first). 'create' and 'replace' send the whole data as
-- pairs to set; 'merge' sends only what this request changed, which is the same thing as
-- writing it all when nobody saved meanwhile. KEYS: the session, then (outside a Cluster)
-- the exp index and the user's set.
-- The token makes a save idempotent: the hash remembers the tokens of its last saves ('t'),
-- and a save whose token is among them was applied already (a client's retry after a
-- timeout or a dropped reply, which Redis may run after the first copy): it changes nothing
-- and answers as a merge would, with the data as stored.
local key = KEYS[1]
local op, expected, token = ARGV[1], tonumber(ARGV[2]), ARGV[9]
local i = 11
local function with_data(reply)
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    if string.sub(all[j], 1, 2) == 'd:' then
      reply[#reply + 1] = all[j]
      reply[#reply + 1] = all[j + 1]
    end
  end
  return reply
end
-- The tokens and the version in one read. Every record has a version field: reading it
-- tells whether the record exists.
local found = redis.call('HMGET', key, 't', 'v')
local tokens, stored = found[1] or '', found[2]
if string.find(' ' .. tokens .. ' ', ' ' .. token .. ' ', 1, true) then
  return with_data({1, tonumber(stored) or 0, 1})
end
local function take(width)
  local n, out = tonumber(ARGV[i]) * width, {}
  for j = 1, n do out[j] = ARGV[i + j] end
  i = i + n + 1
  return out
end
-- unpack() has a stack limit: send long argument lists in slices.
local function call_in_slices(command, list)
  for first = 1, #list, 1000 do
    redis.call(command, key, unpack(list, first, math.min(first + 999, #list)))
  end
end
local meta, unset, set, removed, incr = take(2), take(1), take(2), take(1), take(3)
if op == 'create' then
  if stored then return {0, 0, 0} end
elseif not stored then
  return {-1, 0, 0}
end
local version, conflict = 1, false
if op ~= 'create' then
  stored = tonumber(stored) or 0
  conflict = op == 'merge' and stored ~= expected
  version = stored + 1
end
if op == 'replace' then
  local old = {}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 2) == 'd:' then old[#old + 1] = f end
  end
  call_in_slices('HDEL', old)
end
call_in_slices('HDEL', removed)
call_in_slices('HDEL', unset)
for j = 1, #incr, 3 do
  local text = incr[j + 1]
  if conflict then
    -- Add the delta to the newer value (0 when that is not a number), keeping Python's
    -- int/float distinction in the JSON written back.
    local current, base, is_float = redis.call('HGET', key, incr[j]), 0, false
    if current and string.match(current, '^%-?%d') and tonumber(current) then
      base, is_float = tonumber(current), string.find(current, '[%.eE]') ~= nil
    end
    is_float = is_float or string.find(incr[j + 2], '[%.eE]') ~= nil
    local sum = base + tonumber(incr[j + 2])
    if is_float then
      text = string.format('%.17g', sum)
      if not string.find(text, '[%.eEn]') then text = text .. '.0' end
    else
      text = string.format('%.0f', sum)
    end
  end
  set[#set + 1] = incr[j]
  set[#set + 1] = text
end
for j = 1, #meta do set[#set + 1] = meta[j] end
set[#set + 1] = 'v'
set[#set + 1] = version
-- This save's token first, then the previous ones, RECENT_TOKENS in all.
local kept, count = token, 1
for t in string.gmatch(tokens, '%S+') do
  if count == RECENT_TOKENS then break end
  kept, count = kept .. ' ' .. t, count + 1
end
set[#set + 1] = 't'
set[#set + 1] = kept
call_in_slices('HSET', set)
redis.call('PEXPIREAT', key, ARGV[3])
if #KEYS >= 2 then
  place(ARGV[7], ARGV[4], 'set', ARGV[5], ARGV[6], ARGV[8])
  -- Moved into its shard, when the single index of earlier releases still has it (a
  -- session is in that index's exp set whenever it is in any of its sets, as in touch).
  if ARGV[10] ~= '' and redis.call('ZSCORE', ARGV[10] .. 'exp', ARGV[4]) then
    unindex(ARGV[10], ARGV[4])
  end
  if #KEYS >= 3 then redis.call('SADD', KEYS[3], ARGV[4]) end
end
if not conflict then return {1, version, 0} end
return with_data({1, version, 1})
