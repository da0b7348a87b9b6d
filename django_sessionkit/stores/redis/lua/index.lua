--! uses index_lib
-- The index side of a save or touch on a Cluster, and removals. KEYS: the exp index.
-- ARGV: base, 'set' | 'nx' | 'xx', member, expires us, -last seen us, where -> place();
-- or base, 'del', members... -> unindex each, and answer how many sessions are left in
-- that index (0 tells that the single index of earlier releases is empty).
local B = ARGV[1]
if ARGV[2] == 'del' then
  for j = 3, #ARGV do unindex(B, ARGV[j]) end
  return redis.call('ZCARD', B .. 'exp')
end
return place(B, ARGV[3], ARGV[2], ARGV[4], ARGV[5], ARGV[6])
