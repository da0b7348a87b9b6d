--! uses index_lib
-- Prunes index entries of expired sessions (at most ARGV[3]), then returns up to ARGV[6]
-- entries of one listing after a cursor. KEYS: the exp index. ARGV: base, now us, prune
-- limit, source ('seen' or 'exp'), who ('' either, 'i', 'a'), count, cursor score ('' from
-- the start), cursor member, then for an IP filter the lowest and highest address codes
-- ('' without), how many entries a walk may read per call, and '1' to have the pruned
-- entries described.
-- Entries are ordered by score, then member (the sorted sets' own order); the reply is
-- {pruned, {member, score, ...}, done, resume score, resume member[, pruned entries]}:
-- done = 1 when nothing follows; else the next call goes on after the resume position
-- (the last entry examined). Pruned entries, when asked for: {member, where ('' unknown),
-- expires us, -last seen us ('' unknown), ...}.
local B = ARGV[1]
local prune = tonumber(ARGV[3])
local stale = redis.call('ZRANGEBYSCORE', B .. 'exp', '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, prune)
local described = {}
for j = 1, #stale, 2 do
  local m = stale[j]
  if ARGV[12] == '1' then
    described[#described + 1] = m
    described[#described + 1] = redis.call('HGET', B .. 'where', m) or ''
    described[#described + 1] = stale[j + 1]
    described[#described + 1] = redis.call('ZSCORE', B .. 'seen', m) or ''
  end
  unindex(B, m)
end
local pruned = #stale / 2
local n, who, cs, cm, lo, hi = tonumber(ARGV[6]), ARGV[5], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
if n <= 0 then return {pruned, {}, 1, '', '', described} end
if cs == '' then cs = nil end

-- Up to k entries {member, score text, score} of the sorted set src after (s, m).
local function after(src, s, m, k)
  local out, lower = {}, '-inf'
  if s then
    for _, t in ipairs(redis.call('ZRANGEBYSCORE', src, s, s)) do
      if t > m then
        out[#out + 1] = {t, s, tonumber(s)}
        if #out == k then return out end
      end
    end
    lower = '(' .. s
  end
  local rest = redis.call('ZRANGEBYSCORE', src, lower, '+inf', 'WITHSCORES', 'LIMIT', 0, k - #out)
  for j = 1, #rest, 2 do out[#out + 1] = {rest[j], rest[j + 1], tonumber(rest[j + 1])} end
  return out
end

local function reply(found, done, last)
  local flat = {}
  for _, e in ipairs(found) do flat[#flat + 1] = e[1]; flat[#flat + 1] = e[2] end
  if last then return {pruned, flat, done, last[2], last[1]} end
  return {pruned, flat, done, '', ''}
end

local source = B .. ARGV[4]
if who ~= '' then source = source .. ':' .. who end
if lo == '' then
  local found = after(source, cs, cm, n)
  return reply(found, #found < n and 1 or 0, found[#found])
end

-- An IP filter: merge the per-address sets of the addresses in range, or walk the listing
-- and keep the sessions whose address is in range, whichever reads fewer entries. Merging
-- costs about one lookup per set; walking, n x (sessions / sessions in range).
local whos = who == '' and {'i', 'a'} or {who}
local sets = redis.call('ZLEXCOUNT', B .. 'ips', '[' .. lo, '[' .. hi) * #whos
if sets * sets <= n * redis.call('ZCARD', source) then
  local heap, buffers, found = {}, {}, {}
  local function first(a, b) return a[3] < b[3] or (a[3] == b[3] and a[1] < b[1]) end
  local function push(e)
    local j = #heap + 1
    heap[j] = e
    while j > 1 and first(heap[j], heap[math.floor(j / 2)]) do
      local p = math.floor(j / 2)
      heap[j], heap[p] = heap[p], heap[j]
      j = p
    end
  end
  local function pop()
    local top = heap[1]
    heap[1] = heap[#heap]
    heap[#heap] = nil
    local j = 1
    while true do
      local l, r, s = 2 * j, 2 * j + 1, j
      if l <= #heap and first(heap[l], heap[s]) then s = l end
      if r <= #heap and first(heap[r], heap[s]) then s = r end
      if s == j then return top end
      heap[j], heap[s] = heap[s], heap[j]
      j = s
    end
  end
  local CHUNK = 8
  local sources = {}
  for _, ipx in ipairs(redis.call('ZRANGEBYLEX', B .. 'ips', '[' .. lo, '[' .. hi)) do
    if #ipx == #lo then
      for _, w in ipairs(whos) do sources[#sources + 1] = B .. 'ip:' .. ipx .. ':' .. w end
    end
  end
  for i, src in ipairs(sources) do
    buffers[i] = {after(src, cs, cm, CHUNK), 1}
    local e = buffers[i][1][1]
    if e then push({e[1], e[2], e[3], i}) end
  end
  while #found < n and #heap > 0 do
    local e = pop()
    found[#found + 1] = e
    local buffer = buffers[e[4]]
    buffer[2] = buffer[2] + 1
    if buffer[2] > #buffer[1] and #buffer[1] == CHUNK then
      buffers[e[4]] = {after(sources[e[4]], e[2], e[1], CHUNK), 1}
      buffer = buffers[e[4]]
    end
    local nxt = buffer[1][buffer[2]]
    if nxt then push({nxt[1], nxt[2], nxt[3], e[4]}) end
  end
  return reply(found, #heap == 0 and 1 or 0, found[#found])
end
local found, last, examined = {}, nil, 0
local budget = tonumber(ARGV[11])
local BATCH = math.min(256, budget)
local s, m = cs, cm
while true do
  local batch = after(source, s, m, BATCH)
  local members = {}
  for j, e in ipairs(batch) do members[j] = e[1] end
  local places = #members > 0 and redis.call('HMGET', B .. 'where', unpack(members)) or {}
  for j, e in ipairs(batch) do
    last, examined = e, examined + 1
    local w = places[j]
    if w then
      local ipx = code_of(w)
      if #ipx == #lo and ipx >= lo and ipx <= hi then
        found[#found + 1] = e
        if #found == n then return reply(found, 0, last) end
      end
    end
  end
  if #batch < BATCH then return reply(found, 1, last) end
  if examined >= budget then return reply(found, 0, last) end
  s, m = last[2], last[1]
end
