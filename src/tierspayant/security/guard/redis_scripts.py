"""The Lua scripts of the Redis store (``redis_store``): one per compound or bundled
operation, each run atomically on the Redis server."""

from __future__ import annotations

from tierspayant.security.guard.counters import ANSWERED_BY_KEEP

# Lua keeps each compound decision atomic on the Redis server: no other worker can slip a
# lookup between the check and the count. The bundled scripts (admit, observe and release
# a lookup, step-up) issue the very commands of the simple operations they stand for, in
# order. A script that repeats another's steps is built from the same fragment: a local
# function taking the place of its keys and arguments (KEYS[first + i], ARGV[limits + i]).

# The sliding windows KEYS[first + 1 .. first + count], their limits ARGV[limits + 1 ..]:
# the index of the first full one, else -1 once ``member`` is counted in every one.
_WINDOWS_FN = """
local function hit_windows(first, count, limits, now, window, member, ttl)
  for i = 1, count do
    redis.call('ZREMRANGEBYSCORE', KEYS[first + i], '-inf', now - window)
    if redis.call('ZCARD', KEYS[first + i]) >= tonumber(ARGV[limits + i]) then
      return i - 1
    end
  end
  for i = 1, count do
    redis.call('ZADD', KEYS[first + i], now, member)
    redis.call('EXPIRE', KEYS[first + i], ttl)
  end
  return -1
end
"""

# KEYS: the windows. ARGV: now, window, member, ttl, then one limit per window.
_WINDOWS_LUA = (
    _WINDOWS_FN
    + """
return hit_windows(0, #KEYS, 4, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]))
"""
)

_COMMON_LUA = """
return #redis.call('SINTER', KEYS[1], KEYS[2])
"""

# KEYS: counter, flag, once. ARGV: counter ttl, limit, once ttl.
_STEP_UP_LUA = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
if count >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1')
  return {count, 0}
end
if redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[3]), 'NX') then
  return {count, 1}
end
return {count, 0}
"""


# The never-invoiced people of ``scopes`` scopes, whose (holds, pending, overdue) keys
# follow KEYS[first], in threes: lapsed holds dropped, pending people answered at or
# before ``due`` made overdue unless the bill (a key) shows them invoiced, overdue ones
# answered at or before ``gone`` dropped. Returns the counts per scope and whether every
# scope is below both limits; ``hold`` then holds ``token`` in every scope.
_UNBILLED_FN = """
local function sweep(bill, first, scopes, now, due, gone, slack, overdue_limit, pending_limit, ttl)
  local pending, overdue, ok = {}, {}, true
  for i = 1, scopes do
    local holds = KEYS[first + 3 * i - 2]
    local pend, over = KEYS[first + 3 * i - 1], KEYS[first + 3 * i]
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
    local expired = redis.call('ZRANGEBYSCORE', pend, '-inf', due, 'WITHSCORES')
    for j = 1, #expired, 2 do
      local subject, at = expired[j], tonumber(expired[j + 1])
      redis.call('ZREM', pend, subject)
      local billed = redis.call('ZSCORE', bill, subject)
      if (not billed) or tonumber(billed) < at - slack then
        redis.call('ZADD', over, at, subject)
      end
    end
    redis.call('ZREMRANGEBYSCORE', over, '-inf', gone)
    pending[i] = redis.call('ZCARD', pend) + redis.call('ZCARD', holds)
    overdue[i] = redis.call('ZCARD', over)
    if overdue[i] >= overdue_limit or pending[i] >= pending_limit then
      ok = false
    end
    redis.call('EXPIRE', pend, ttl)
    redis.call('EXPIRE', over, ttl)
  end
  return pending, overdue, ok
end

local function hold(first, scopes, until_ms, token, ttl)
  for i = 1, scopes do
    redis.call('ZADD', KEYS[first + 3 * i - 2], until_ms, token)
    redis.call('EXPIRE', KEYS[first + 3 * i - 2], ttl)
  end
end
"""

# KEYS: bill, then (holds, pending, overdue) per scope, then the epoch. ARGV: now, grace,
# window, slack, overdue limit, pending limit, token, hold, ttl, reserve?, epoch?
_UNBILLED_LUA = (
    _UNBILLED_FN
    + """
if ARGV[11] == '1' and redis.call('EXISTS', KEYS[#KEYS]) == 0 then
  return {{}, {}, 0, 1}
end
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[9])
local scopes = (#KEYS - 2) / 3
local pending, overdue, ok = sweep(KEYS[1], 1, scopes, now, now - tonumber(ARGV[2]),
  now - tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ttl)
ok = ok and ARGV[10] == '1'
if ok then
  hold(1, scopes, now + tonumber(ARGV[8]), ARGV[7], ttl)
end
return {pending, overdue, ok and 1 or 0, 0}
"""
)

# KEYS: bill, by. ARGV: subject, care, slack, ttl, structure scope, prefix.
_UNBILLED_INVOICE_LUA = """
local subject, care = ARGV[1], tonumber(ARGV[2])
local old = redis.call('ZSCORE', KEYS[1], subject)
if (not old) or tonumber(old) < care then
  redis.call('ZADD', KEYS[1], care, subject)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
local scopes = {ARGV[5]}
local by = redis.call('HGET', KEYS[2], subject)
if by then
  for scope in string.gmatch(by, '[^\\n]+') do
    if scope ~= ARGV[5] then
      scopes[#scopes + 1] = scope
    end
  end
end
for _, scope in ipairs(scopes) do
  for _, kind in ipairs({'ubp:', 'ubo:'}) do
    local key = ARGV[6] .. kind .. scope
    local answered = redis.call('ZSCORE', key, subject)
    if answered and tonumber(answered) <= care + tonumber(ARGV[3]) then
      redis.call('ZREM', key, subject)
    end
  end
end
return 1
"""


# The whole admission of one lookup (``admit_lookup``): the epoch, the suspension flag,
# the rate windows, the pace and the figures read, the recorded step-up, and without card
# proof the never-invoiced windows and both holds.
# KEYS: flag, pace, seen, outcomes, answered, epoch, step-up, holds, bill, then
# (holds, pending, overdue) per never-invoiced scope (two), then the rate windows.
# ARGV: now, window, token, window ttl, pace?, pace keep, pace ttl, no proof?, epoch?,
# grace, unbilled window, slack, overdue limit, pending limit, hold, unbilled ttl,
# quota limit, day ttl, then one limit per window.
_ADMIT_LOOKUP_LUA = (
    _WINDOWS_FN
    + _UNBILLED_FN
    + """
if ARGV[9] == '1' and redis.call('EXISTS', KEYS[6]) == 0 then
  return {2, -1}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, -1}
end
local now = tonumber(ARGV[1])
local token = ARGV[3]
local full = hit_windows(15, #KEYS - 15, 18, now, tonumber(ARGV[2]), token, tonumber(ARGV[4]))
if full >= 0 then
  return {0, full}
end
local pace = {}
if ARGV[5] == '1' then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
  pace = redis.call('LRANGE', KEYS[2], 0, -1)
end
local seen = redis.call('SCARD', KEYS[3])
local until_ms = redis.call('HGET', KEYS[7], 'until') or '0'
if ARGV[8] ~= '1' then
  return {0, -1, pace, seen, {}, 0, until_ms, {}, {}, 0, 0}
end
local outcomes = redis.call('LRANGE', KEYS[4], 0, -1)
local answered = redis.call('SCARD', KEYS[5])
local hold_ms = tonumber(ARGV[15])
local ttl = tonumber(ARGV[16])
local pending, overdue, ok = sweep(KEYS[9], 9, 2, now, now - tonumber(ARGV[10]),
  now - tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), ttl)
local held, quota_full = 0, 0
if ok then
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
  if answered + redis.call('ZCARD', KEYS[8]) >= tonumber(ARGV[17]) then
    -- The never-invoiced slots held and given back at once: only their expiry is renewed.
    quota_full = 1
    for i = 1, 2 do
      redis.call('EXPIRE', KEYS[7 + 3 * i], ttl)
    end
  else
    held = 1
    redis.call('ZADD', KEYS[8], now + hold_ms, token)
    redis.call('EXPIRE', KEYS[8], tonumber(ARGV[18]))
    hold(9, 2, now + hold_ms, token, ttl)
  end
end
return {0, -1, pace, seen, outcomes, answered, until_ms, pending, overdue, held, quota_full}
"""
)

# The whole observation of one lookup (``observe_lookup``): the care-date set, the
# activity, outcome and people counted, the day's invoice check, the once keys read, and
# without card proof the never-invoiced bookkeeping.
# KEYS: active, outcomes, seen, answered, holds, check, judged seen, judged invoiced,
# epoch, by, dates, then (holds, pending, overdue) per scope (two), then the once keys.
# ARGV: structure, category, day ttl, no proof?, outcome, keep, outcomes ttl, hit?,
# subject, token, check ttl, min looked, epoch?, care date ('' if none), dates free,
# dates ttl, now, unbilled ttl, first scope.
_OBSERVE_LOOKUP_LUA = """
if ARGV[13] == '1' and redis.call('EXISTS', KEYS[9]) == 0 then
  return {}
end
local ttl = tonumber(ARGV[3])
local no_proof = ARGV[4] == '1'
local hit = ARGV[8] == '1'
local subject = ARGV[9]
if hit and ARGV[14] ~= '' then
  redis.call('SADD', KEYS[11], ARGV[14])
  redis.call('EXPIRE', KEYS[11], tonumber(ARGV[16]))
  if redis.call('SCARD', KEYS[11]) > tonumber(ARGV[15]) then
    subject = subject .. '@' .. ARGV[14]
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
local outcomes = {}
if no_proof then
  redis.call('LPUSH', KEYS[2], ARGV[5])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
  outcomes = redis.call('LRANGE', KEYS[2], 0, -1)
end
local seen = 0
local answered = 0
if hit then
  redis.call('SADD', KEYS[3], subject)
  redis.call('EXPIRE', KEYS[3], ttl)
  seen = redis.call('SCARD', KEYS[3])
  if no_proof then
    redis.call('SADD', KEYS[4], subject)
    redis.call('EXPIRE', KEYS[4], ttl)
    answered = redis.call('SCARD', KEYS[4])
  end
end
if no_proof then
  redis.call('ZREM', KEYS[5], ARGV[10])
end
local checked = 0
local looked = 0
local invoiced = 0
if redis.call('SET', KEYS[6], '1', 'EX', tonumber(ARGV[11]), 'NX') then
  checked = 1
  looked = redis.call('SCARD', KEYS[7])
  if looked >= tonumber(ARGV[12]) then
    invoiced = #redis.call('SINTER', KEYS[7], KEYS[8])
  end
end
local once_set = {}
for i = 18, #KEYS do
  once_set[#once_set + 1] = redis.call('EXISTS', KEYS[i])
end
if no_proof then
  local uttl = tonumber(ARGV[18])
  for i = 1, 2 do
    local holds, pend, over = KEYS[9 + 3 * i], KEYS[10 + 3 * i], KEYS[11 + 3 * i]
    redis.call('ZREM', holds, ARGV[10])
    if hit then
      if not redis.call('ZSCORE', pend, subject) and not redis.call('ZSCORE', over, subject) then
        redis.call('ZADD', pend, tonumber(ARGV[17]), subject)
      end
      redis.call('EXPIRE', pend, uttl)
    end
  end
  if hit then
    -- The principal scopes that answered the person, oldest first, each once, the
    -- latest ANSWERED_BY_KEEP, one per line (``counters.answered_by_add``).
    local scope, kept = ARGV[19], {}
    local before = redis.call('HGET', KEYS[10], subject)
    if before then
      for other in string.gmatch(before, '[^\\n]+') do
        if other ~= scope then
          kept[#kept + 1] = other
        end
      end
    end
    kept[#kept + 1] = scope
    local first = math.max(1, #kept - __KEEP_BEFORE__)
    redis.call('HSET', KEYS[10], subject, table.concat(kept, '\\n', first))
    redis.call('EXPIRE', KEYS[10], uttl)
  end
end
return {outcomes, seen, answered, checked, looked, invoiced, once_set}
""".replace("__KEEP_BEFORE__", str(ANSWERED_BY_KEEP - 1))

# KEYS: the daily holds, then the never-invoiced holds of each scope. ARGV: token.
_RELEASE_LOOKUP_LUA = """
for i = 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
return 1
"""

# The rebuild's lock (``take_lock`` is a plain ``SET NX EX``): only the owner whose token
# it holds renews it or deletes it. KEYS: the lock. ARGV: owner, ttl.
_RENEW_LOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 0
"""

# KEYS: the lock. ARGV: owner.
_DROP_LOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
