"""The guard's counters in Redis: Lua scripts for the compound and bundled operations."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.commands.core import Script

from tierspayant.security.guard.counters import (
    AdmissionCounts,
    AdmissionPlan,
    AdmitReading,
    CounterSnapshot,
    LookupKeys,
    ObservationCounts,
    ObservationPlan,
    ObserveReading,
    StoreLimits,
    UnbilledCounts,
    UnbilledPlan,
)
from tierspayant.security.guard.values import CounterStoreUnavailable

# Lua keeps each compound decision atomic on the Redis server: no other worker can slip a
# lookup between the check and the count. The bundled scripts (admission, observation,
# step-up) issue the very commands of the simple operations they stand for, in order.
_WINDOWS_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local member = ARGV[3]
local ttl = tonumber(ARGV[4])
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[4 + i]) then
    return i - 1
  end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('EXPIRE', KEYS[i], ttl)
end
return -1
"""

_RESERVE_LUA = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local used = redis.call('SCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if used >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
return 1
"""

_COMMON_LUA = """
return #redis.call('SINTER', KEYS[1], KEYS[2])
"""

# KEYS: flag, pace, seen, outcomes, answered, epoch, then the windows.
# ARGV: now, window, member, window ttl, pace?, pace value, pace keep, pace ttl, no proof?,
# epoch?, then one limit per window.
_ADMISSION_LUA = """
if ARGV[10] == '1' and redis.call('EXISTS', KEYS[6]) == 0 then
  return {2, -1}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, -1}
end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local windows = #KEYS - 6
for i = 1, windows do
  redis.call('ZREMRANGEBYSCORE', KEYS[6 + i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[6 + i]) >= tonumber(ARGV[10 + i]) then
    return {0, i - 1}
  end
end
for i = 1, windows do
  redis.call('ZADD', KEYS[6 + i], now, ARGV[3])
  redis.call('EXPIRE', KEYS[6 + i], tonumber(ARGV[4]))
end
local pace = {}
if ARGV[5] == '1' then
  redis.call('LPUSH', KEYS[2], ARGV[6])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[8]))
  pace = redis.call('LRANGE', KEYS[2], 0, -1)
end
local seen = redis.call('SCARD', KEYS[3])
local outcomes = {}
local answered = 0
if ARGV[9] == '1' then
  outcomes = redis.call('LRANGE', KEYS[4], 0, -1)
  answered = redis.call('SCARD', KEYS[5])
end
return {0, -1, pace, seen, outcomes, answered}
"""

# KEYS: active, outcomes, seen, answered, holds, check, judged seen, judged invoiced,
# epoch, then the once keys. ARGV: structure, category, day ttl, no proof?, outcome, keep,
# outcomes ttl, hit?, subject, token, check ttl, min looked, epoch?.
_OBSERVATION_LUA = """
if ARGV[13] == '1' and redis.call('EXISTS', KEYS[9]) == 0 then
  return {}
end
local ttl = tonumber(ARGV[3])
local no_proof = ARGV[4] == '1'
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
if ARGV[8] == '1' then
  redis.call('SADD', KEYS[3], ARGV[9])
  redis.call('EXPIRE', KEYS[3], ttl)
  seen = redis.call('SCARD', KEYS[3])
  if no_proof then
    redis.call('SADD', KEYS[4], ARGV[9])
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
for i = 10, #KEYS do
  once_set[#once_set + 1] = redis.call('EXISTS', KEYS[i])
end
return {outcomes, seen, answered, checked, looked, invoiced, once_set}
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


# KEYS: bill, then (holds, pending, overdue) per scope. ARGV: now, grace, window, slack,
# overdue limit, pending limit, token, hold, ttl, reserve?
_UNBILLED_LUA = """
local now = tonumber(ARGV[1])
local due = now - tonumber(ARGV[2])
local gone = now - tonumber(ARGV[3])
local slack = tonumber(ARGV[4])
local ttl = tonumber(ARGV[9])
local scopes = (#KEYS - 1) / 3
local pending, overdue = {}, {}
local ok = ARGV[10] == '1'
for i = 1, scopes do
  local holds, pend, over = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  local expired = redis.call('ZRANGEBYSCORE', pend, '-inf', due, 'WITHSCORES')
  for j = 1, #expired, 2 do
    local subject, answered = expired[j], tonumber(expired[j + 1])
    redis.call('ZREM', pend, subject)
    local billed = redis.call('ZSCORE', KEYS[1], subject)
    if (not billed) or tonumber(billed) < answered - slack then
      redis.call('ZADD', over, answered, subject)
    end
  end
  redis.call('ZREMRANGEBYSCORE', over, '-inf', gone)
  pending[i] = redis.call('ZCARD', pend) + redis.call('ZCARD', holds)
  overdue[i] = redis.call('ZCARD', over)
  if overdue[i] >= tonumber(ARGV[5]) or pending[i] >= tonumber(ARGV[6]) then
    ok = false
  end
  redis.call('EXPIRE', pend, ttl)
  redis.call('EXPIRE', over, ttl)
end
if ok then
  for i = 1, scopes do
    redis.call('ZADD', KEYS[3 * i - 1], now + tonumber(ARGV[8]), ARGV[7])
    redis.call('EXPIRE', KEYS[3 * i - 1], ttl)
  end
end
return {pending, overdue, ok and 1 or 0}
"""

# KEYS: by, then (holds, pending, overdue) per scope. ARGV: token, hit?, subject, now, ttl,
# the first scope's name.
_UNBILLED_ANSWER_LUA = """
local scopes = (#KEYS - 1) / 3
for i = 1, scopes do
  local holds, pend, over = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  redis.call('ZREM', holds, ARGV[1])
  if ARGV[2] == '1' then
    if not redis.call('ZSCORE', pend, ARGV[3]) and not redis.call('ZSCORE', over, ARGV[3]) then
      redis.call('ZADD', pend, tonumber(ARGV[4]), ARGV[3])
    end
    redis.call('EXPIRE', pend, tonumber(ARGV[5]))
  end
end
if ARGV[2] == '1' and scopes > 0 then
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[6])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
end
return 1
"""

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
if by and by ~= ARGV[5] then
  scopes[2] = by
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


# The whole admission of one lookup (``admit_lookup``): the admission bundle, the
# recorded step-up, and without card proof the never-invoiced windows and both holds.
# KEYS: flag, pace, seen, outcomes, answered, epoch, step-up, holds, bill, then
# (holds, pending, overdue) per never-invoiced scope (two), then the rate windows.
# ARGV: now, window, token, window ttl, pace?, pace keep, pace ttl, no proof?, epoch?,
# grace, unbilled window, slack, overdue limit, pending limit, hold, unbilled ttl,
# quota limit, day ttl, then one limit per window.
_ADMIT_LOOKUP_LUA = """
if ARGV[9] == '1' and redis.call('EXISTS', KEYS[6]) == 0 then
  return {2, -1}
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, -1}
end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local token = ARGV[3]
local windows = #KEYS - 15
for i = 1, windows do
  redis.call('ZREMRANGEBYSCORE', KEYS[15 + i], '-inf', now - window)
  if redis.call('ZCARD', KEYS[15 + i]) >= tonumber(ARGV[18 + i]) then
    return {0, i - 1}
  end
end
for i = 1, windows do
  redis.call('ZADD', KEYS[15 + i], now, token)
  redis.call('EXPIRE', KEYS[15 + i], tonumber(ARGV[4]))
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
local due = now - tonumber(ARGV[10])
local gone = now - tonumber(ARGV[11])
local slack = tonumber(ARGV[12])
local hold = tonumber(ARGV[15])
local ttl = tonumber(ARGV[16])
local pending, overdue = {}, {}
local ok = true
for i = 1, 2 do
  local holds, pend, over = KEYS[7 + 3 * i], KEYS[8 + 3 * i], KEYS[9 + 3 * i]
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  local expired = redis.call('ZRANGEBYSCORE', pend, '-inf', due, 'WITHSCORES')
  for j = 1, #expired, 2 do
    local subject, at = expired[j], tonumber(expired[j + 1])
    redis.call('ZREM', pend, subject)
    local billed = redis.call('ZSCORE', KEYS[9], subject)
    if (not billed) or tonumber(billed) < at - slack then
      redis.call('ZADD', over, at, subject)
    end
  end
  redis.call('ZREMRANGEBYSCORE', over, '-inf', gone)
  pending[i] = redis.call('ZCARD', pend) + redis.call('ZCARD', holds)
  overdue[i] = redis.call('ZCARD', over)
  if overdue[i] >= tonumber(ARGV[13]) or pending[i] >= tonumber(ARGV[14]) then
    ok = false
  end
  redis.call('EXPIRE', pend, ttl)
  redis.call('EXPIRE', over, ttl)
end
local held, quota_full = 0, 0
if ok then
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
  if answered + redis.call('ZCARD', KEYS[8]) >= tonumber(ARGV[17]) then
    quota_full = 1
  else
    held = 1
    redis.call('ZADD', KEYS[8], now + hold, token)
    redis.call('EXPIRE', KEYS[8], tonumber(ARGV[18]))
    for i = 1, 2 do
      redis.call('ZADD', KEYS[7 + 3 * i], now + hold, token)
      redis.call('EXPIRE', KEYS[7 + 3 * i], ttl)
    end
  end
end
return {0, -1, pace, seen, outcomes, answered, until_ms, pending, overdue, held, quota_full}
"""

# The whole observation of one lookup (``observe_lookup``): the care-date set, the
# observation bundle, and without card proof the never-invoiced bookkeeping.
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
    redis.call('HSET', KEYS[10], subject, ARGV[19])
    redis.call('EXPIRE', KEYS[10], uttl)
  end
end
return {outcomes, seen, answered, checked, looked, invoiced, once_set}
"""

# KEYS: the daily holds, then the never-invoiced holds of each scope. ARGV: token.
_RELEASE_LOOKUP_LUA = """
for i = 1, #KEYS do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
return 1
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _texts(values: object) -> tuple[str, ...]:
    assert isinstance(values, list)
    return tuple(_text(v) for v in values)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _chunks(members: Sequence[str], size: int = 10_000) -> Iterator[Sequence[str]]:
    for start in range(0, len(members), size):
        yield members[start : start + size]


class RedisCounterStore:
    """Counters shared by every worker through Redis (keys prefixed ``tp:guard:``).

    Compound checks, and the bundled operations of a guard phase, run as Lua scripts;
    simple ones as MULTI/EXEC pipelines; so each operation is atomic and costs one round
    trip. Any Redis error becomes :class:`CounterStoreUnavailable`. The scripts touch
    several keys, so this needs one Redis (or a Sentinel pair), not a Cluster.
    """

    def __init__(self, client: redis.Redis, prefix: str = "tp:guard:") -> None:
        self._redis = client
        self._prefix = prefix
        self._windows = client.register_script(_WINDOWS_LUA)
        self._reserve = client.register_script(_RESERVE_LUA)
        self._common = client.register_script(_COMMON_LUA)
        self._admission = client.register_script(_ADMISSION_LUA)
        self._observation = client.register_script(_OBSERVATION_LUA)
        self._step_up = client.register_script(_STEP_UP_LUA)
        self._unbilled = client.register_script(_UNBILLED_LUA)
        self._unbilled_answer = client.register_script(_UNBILLED_ANSWER_LUA)
        self._unbilled_invoice = client.register_script(_UNBILLED_INVOICE_LUA)
        # Loaded on first use (EVALSHA; on NOSCRIPT, after a Redis restart or failover,
        # redis-py loads the script and runs it again).
        self._admit_lookup = client.register_script(_ADMIT_LOOKUP_LUA)
        self._observe_lookup = client.register_script(_OBSERVE_LOOKUP_LUA)
        self._release_lookup = client.register_script(_RELEASE_LOOKUP_LUA)
        # Prefixed key lists of the lookups' keys, per day's LookupKeys (bounded).
        self._names: dict[LookupKeys, tuple[list[str], list[str], list[str]]] = {}

    @classmethod
    def from_url(cls, url: str, *, timeout_seconds: float = 0.5) -> RedisCounterStore:
        """Connect with short timeouts: a slow Redis must fail fast (closed), not hang."""
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        return cls(client)

    def _k(self, key: str) -> str:
        return self._prefix + key

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise CounterStoreUnavailable(operation) from exc

    def _run(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        return script(keys=list(keys), args=list(args))

    def _multi(self, operation: str, build: Callable[[Any], None]) -> list[Any]:
        with self._errors(operation):
            pipe = self._redis.pipeline(transaction=True)
            build(pipe)
            return pipe.execute()

    def _lookup_names(self, keys: LookupKeys) -> tuple[list[str], list[str], list[str]]:
        """The prefixed KEYS of the admission, the observation (without the care-date
        set and the once keys) and the release, built once per day's keys."""
        names = self._names.get(keys)
        if names is not None:
            return names
        k = self._k
        unbilled = [k(name) for name in keys.unbilled]
        admit = [
            k(keys.flag),
            k(keys.pace),
            k(keys.seen),
            k(keys.outcomes),
            k(keys.answered),
            "",  # the epoch, filled per call
            k(keys.step_up),
            k(keys.holds),
            k(keys.bill),
            *unbilled,
            *(k(w) for w in keys.windows),
        ]
        observe = [
            k(keys.active),
            k(keys.outcomes),
            k(keys.seen),
            k(keys.answered),
            k(keys.holds),
            k(keys.check),
            k(keys.judged_seen),
            k(keys.judged_invoiced),
            "",  # the epoch
            k(keys.by),
            "",  # the person's care-date set
            *unbilled,
        ]
        release = [k(keys.holds), *unbilled[::3]]
        if len(self._names) > 10_000:
            self._names.clear()
        names = self._names[keys] = (admit, observe, release)
        return names

    def admit_lookup(
        self,
        keys: LookupKeys,
        limits: StoreLimits,
        now_ms: int,
        token: str,
        pace: bool,
        no_proof: bool,
        pending_limit: int,
        quota_limit: int,
        epoch_key: str | None = None,
    ) -> AdmitReading:
        """See :meth:`CounterStore.admit_lookup`: one script, one round trip."""
        if len(keys.unbilled) != 6:
            raise ValueError("two never-invoiced scopes")
        names = list(self._lookup_names(keys)[0])
        names[5] = self._k(epoch_key or "epoch")
        args: list[str | int] = [
            now_ms,
            limits.window_ms,
            token,
            limits.window_ms // 1000 + 60,
            _flag(pace),
            limits.pace_keep,
            limits.pace_ttl,
            _flag(no_proof),
            _flag(epoch_key is not None),
            limits.grace_ms,
            limits.unbilled_window_ms,
            limits.slack_ms,
            limits.overdue_limit,
            pending_limit,
            limits.hold_ms,
            limits.unbilled_ttl,
            quota_limit,
            limits.day_ttl,
            *limits.window_limits,
        ]
        with self._errors("admit_lookup"):
            raw = self._run(self._admit_lookup, names, args)
        status, full = int(raw[0]), int(raw[1])
        if status == 2:
            return AdmitReading(empty=True)
        if status == 1:
            return AdmitReading(suspended=True)
        if full >= 0:
            return AdmitReading(full=full)
        pace_, seen, outcomes, answered, until, pending, overdue, held, quota_full = raw[2:]
        return AdmitReading(
            False,
            False,
            -1,
            _texts(pace_),
            int(seen),
            _texts(outcomes),
            int(answered),
            int(until),
            tuple(int(v) for v in pending),
            tuple(int(v) for v in overdue),
            int(held) == 1,
            int(quota_full) == 1,
        )

    def observe_lookup(
        self,
        keys: LookupKeys,
        limits: StoreLimits,
        now_ms: int,
        token: str,
        no_proof: bool,
        outcome: str,
        subject: str | None,
        care_date: str | None,
        once_keys: tuple[str, ...],
        epoch_key: str | None = None,
    ) -> ObserveReading:
        """See :meth:`CounterStore.observe_lookup`: one script, one round trip."""
        if len(keys.unbilled) != 6:
            raise ValueError("two never-invoiced scopes")
        names = list(self._lookup_names(keys)[1])
        names[8] = self._k(epoch_key or "epoch")
        names[10] = self._k(keys.dates + (subject or ""))
        names += [self._k(key) for key in once_keys]
        args: list[str | int] = [
            keys.structure,
            keys.category,
            limits.day_ttl,
            _flag(no_proof),
            outcome,
            limits.outcomes_keep,
            limits.outcomes_ttl,
            _flag(subject is not None),
            subject or "",
            token,
            limits.check_ttl,
            limits.min_looked,
            _flag(epoch_key is not None),
            care_date or "",
            limits.dates_free,
            limits.dates_ttl,
            now_ms,
            limits.unbilled_ttl,
            keys.scopes[0],
        ]
        with self._errors("observe_lookup"):
            raw = self._run(self._observe_lookup, names, args)
        if not raw:
            return ObserveReading(empty=True)
        outcomes, seen, answered, checked, looked, invoiced, once_set = raw
        return ObserveReading(
            _texts(outcomes),
            int(seen),
            int(answered),
            int(checked) == 1,
            int(looked),
            int(invoiced),
            tuple(int(v) > 0 for v in once_set),
        )

    def release_lookup(self, keys: LookupKeys, token: str) -> None:
        """See :meth:`CounterStore.release_lookup`: one script, one round trip."""
        with self._errors("release_lookup"):
            self._run(self._release_lookup, self._lookup_names(keys)[2], [token])

    def admission(self, plan: AdmissionPlan) -> AdmissionCounts:
        """See :meth:`CounterStore.admission`."""
        keys = [
            plan.flag_key,
            plan.pace_key,
            plan.seen_key,
            plan.outcomes_key,
            plan.answered_key,
            plan.epoch_key or "epoch",
            *plan.window_keys,
        ]
        args: list[str | int] = [
            plan.now_ms,
            plan.window_ms,
            plan.member,
            plan.window_ms // 1000 + 60,
            _flag(plan.pace),
            plan.pace_value,
            plan.pace_keep,
            plan.pace_ttl_seconds,
            _flag(plan.no_proof),
            _flag(plan.epoch_key is not None),
            *plan.window_limits,
        ]
        with self._errors("admission"):
            raw = self._run(self._admission, [self._k(k) for k in keys], args)
        if int(raw[0]) == 2:
            return AdmissionCounts(empty=True)
        if int(raw[0]) == 1:
            return AdmissionCounts(suspended=True)
        if int(raw[1]) >= 0:
            return AdmissionCounts(full=int(raw[1]))
        pace, seen, outcomes, answered = raw[2:]
        return AdmissionCounts(False, -1, _texts(pace), int(seen), _texts(outcomes), int(answered))

    def observation(self, plan: ObservationPlan) -> ObservationCounts:
        """See :meth:`CounterStore.observation`."""
        keys = [
            plan.active_key,
            plan.outcomes_key,
            plan.seen_key,
            plan.answered_key,
            plan.holds_key,
            plan.check_key,
            plan.judged_seen_key,
            plan.judged_invoiced_key,
            plan.epoch_key or "epoch",
            *plan.once_keys,
        ]
        args: list[str | int] = [
            plan.structure,
            plan.category,
            plan.day_ttl_seconds,
            _flag(plan.no_proof),
            plan.outcome,
            plan.outcomes_keep,
            plan.outcomes_ttl_seconds,
            _flag(plan.subject is not None),
            plan.subject or "",
            plan.token,
            plan.check_ttl_seconds,
            plan.min_looked,
            _flag(plan.epoch_key is not None),
        ]
        with self._errors("observation"):
            raw = self._run(self._observation, [self._k(k) for k in keys], args)
        if not raw:
            return ObservationCounts(empty=True)
        outcomes, seen, answered, checked, looked, invoiced, once_set = raw
        return ObservationCounts(
            _texts(outcomes),
            int(seen),
            int(answered),
            int(checked) == 1,
            int(looked),
            int(invoiced),
            tuple(int(v) > 0 for v in once_set),
        )

    def restore(self, snapshot: CounterSnapshot) -> None:
        """See :meth:`CounterStore.restore`: one MULTI/EXEC transaction, epoch last."""

        def build(pipe: Any) -> None:
            for key, (members, ttl) in snapshot.sets.items():
                k = self._k(key)
                for chunk in _chunks(sorted(members)):
                    pipe.sadd(k, *chunk)
                pipe.expire(k, ttl)
            for key, (scored, ttl) in snapshot.windows.items():
                k = self._k(key)
                if scored:
                    pipe.zadd(k, dict(scored))
                pipe.expire(k, ttl)
            for key, (items, ttl) in snapshot.lists.items():
                k = self._k(key)
                pipe.delete(k)
                if items:
                    pipe.rpush(k, *items)
                pipe.expire(k, ttl)
            for key, (fields, ttl) in snapshot.hashes.items():
                k = self._k(key)
                if fields:
                    pipe.hset(k, mapping=dict(fields))
                pipe.expire(k, ttl)
            for key, (value, ttl) in snapshot.counters.items():
                pipe.set(self._k(key), value, ex=ttl)
            for key, flag_ttl in snapshot.flags.items():
                pipe.set(self._k(key), "1", ex=flag_ttl)
            pipe.set(self._k(snapshot.epoch_key), snapshot.epoch)

        self._multi("restore", build)

    def step_up(
        self,
        counter_key: str,
        counter_ttl_seconds: int,
        limit: int,
        flag_key: str,
        once_key: str,
        once_ttl_seconds: int,
    ) -> tuple[int, bool]:
        """See :meth:`CounterStore.step_up`."""
        keys = [self._k(counter_key), self._k(flag_key), self._k(once_key)]
        with self._errors("step_up"):
            count, first = self._run(
                self._step_up, keys, [counter_ttl_seconds, limit, once_ttl_seconds]
            )
        return int(count), int(first) == 1

    def _scope_keys(self, scopes: Sequence[str]) -> list[str]:
        return [self._k(f"{kind}:{scope}") for scope in scopes for kind in ("ubh", "ubp", "ubo")]

    def unbilled(self, plan: UnbilledPlan) -> UnbilledCounts:
        """See :meth:`CounterStore.unbilled`."""
        keys = [self._k(plan.bill_key), *self._scope_keys(plan.scopes)]
        args: list[str | int] = [
            plan.now_ms,
            plan.grace_ms,
            plan.window_ms,
            plan.slack_ms,
            plan.overdue_limit,
            plan.pending_limit,
            plan.token,
            plan.hold_ms,
            plan.ttl_seconds,
            _flag(plan.reserve),
        ]
        with self._errors("unbilled"):
            pending, overdue, reserved = self._run(self._unbilled, keys, args)
        return UnbilledCounts(
            tuple(int(v) for v in pending), tuple(int(v) for v in overdue), int(reserved) == 1
        )

    def unbilled_answer(
        self,
        scopes: Sequence[str],
        token: str,
        subject: str | None,
        by_key: str,
        now_ms: int,
        ttl_seconds: int,
    ) -> None:
        """See :meth:`CounterStore.unbilled_answer`."""
        keys = [self._k(by_key), *self._scope_keys(scopes)]
        first = scopes[0] if scopes else ""
        args: list[str | int] = [token, _flag(subject is not None), subject or "", now_ms]
        args += [ttl_seconds, first]
        with self._errors("unbilled_answer"):
            self._run(self._unbilled_answer, keys, args)

    def unbilled_invoice(
        self,
        structure_scope: str,
        bill_key: str,
        by_key: str,
        subject: str,
        care_ms: int,
        slack_ms: int,
        ttl_seconds: int,
    ) -> None:
        """See :meth:`CounterStore.unbilled_invoice` (the scopes' keys are built in the
        script from the prefix: one Redis, not a Cluster)."""
        keys = [self._k(bill_key), self._k(by_key)]
        args: list[str | int] = [subject, care_ms, slack_ms, ttl_seconds, structure_scope]
        args.append(self._prefix)
        with self._errors("unbilled_invoice"):
            self._run(self._unbilled_invoice, keys, args)

    def claim(self, once_keys: Sequence[str], ttl_seconds: int, flag_key: str | None) -> list[bool]:
        """See :meth:`CounterStore.claim`."""
        names = [self._k(k) for k in once_keys]
        if not names and flag_key is None:
            return []

        def build(pipe: Any) -> None:
            for name in names:
                pipe.set(name, "1", ex=ttl_seconds, nx=True)
            if flag_key is not None:
                pipe.set(self._k(flag_key), "1")

        return [bool(v) for v in self._multi("claim", build)[: len(names)]]

    def hit_windows(
        self, keys: Sequence[str], limits: Sequence[int], now_ms: int, window_ms: int, member: str
    ) -> int:
        """See :meth:`CounterStore.hit_windows`."""
        if len(keys) != len(limits):
            raise ValueError("one limit per window")
        with self._errors("hit_windows"):
            args: list[str | int] = [now_ms, window_ms, member, window_ms // 1000 + 60, *limits]
            return int(self._run(self._windows, [self._k(k) for k in keys], args))

    def push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        """See :meth:`CounterStore.push_recent`."""
        k = self._k(key)

        def build(pipe: Any) -> None:
            pipe.lpush(k, value)
            pipe.ltrim(k, 0, keep - 1)
            pipe.expire(k, ttl_seconds)
            pipe.lrange(k, 0, -1)

        return [_text(v) for v in self._multi("push_recent", build)[-1]]

    def recent(self, key: str) -> list[str]:
        """See :meth:`CounterStore.recent`."""
        k = self._k(key)
        return [_text(v) for v in self._multi("recent", lambda p: p.lrange(k, 0, -1))[0]]

    def add_distinct(self, key: str, member: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.add_distinct`."""
        k = self._k(key)

        def build(pipe: Any) -> None:
            pipe.sadd(k, member)
            pipe.expire(k, ttl_seconds)
            pipe.scard(k)

        return int(self._multi("add_distinct", build)[-1])

    def count_distinct(self, key: str) -> int:
        """See :meth:`CounterStore.count_distinct`."""
        k = self._k(key)
        return int(self._multi("count_distinct", lambda p: p.scard(k))[0])

    def count_common(self, key_a: str, key_b: str) -> int:
        """See :meth:`CounterStore.count_common`."""
        with self._errors("count_common"):
            return int(self._run(self._common, [self._k(key_a), self._k(key_b)], []))

    def reserve(
        self,
        quota_key: str,
        holds_key: str,
        token: str,
        limit: int,
        now_ms: int,
        hold_ms: int,
        ttl_seconds: int,
    ) -> bool:
        """See :meth:`CounterStore.reserve`."""
        with self._errors("reserve"):
            keys = [self._k(quota_key), self._k(holds_key)]
            args: list[str | int] = [now_ms, token, limit, hold_ms, ttl_seconds]
            return int(self._run(self._reserve, keys, args)) == 1

    def release(self, holds_key: str, token: str) -> None:
        """See :meth:`CounterStore.release`."""
        k = self._k(holds_key)
        self._multi("release", lambda p: p.zrem(k, token))

    def set_flag(self, key: str, ttl_seconds: int | None) -> None:
        """See :meth:`CounterStore.set_flag`."""
        k = self._k(key)
        self._multi("set_flag", lambda p: p.set(k, "1", ex=ttl_seconds))

    def has_flag(self, key: str) -> bool:
        """See :meth:`CounterStore.has_flag`."""
        k = self._k(key)
        return int(self._multi("has_flag", lambda p: p.exists(k))[0]) > 0

    def set_once(self, key: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.set_once`."""
        k = self._k(key)
        return bool(self._multi("set_once", lambda p: p.set(k, "1", ex=ttl_seconds, nx=True))[0])

    def incr(self, key: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.incr`."""
        k = self._k(key)

        def build(pipe: Any) -> None:
            pipe.incr(k)
            pipe.expire(k, ttl_seconds)

        return int(self._multi("incr", build)[0])

    def hash_set(self, key: str, name: str, value: str, ttl_seconds: int) -> None:
        """See :meth:`CounterStore.hash_set`."""
        k = self._k(key)

        def build(pipe: Any) -> None:
            pipe.hset(k, name, value)
            pipe.expire(k, ttl_seconds)

        self._multi("hash_set", build)

    def hash_all(self, key: str) -> dict[str, str]:
        """See :meth:`CounterStore.hash_all`."""
        k = self._k(key)
        raw = self._multi("hash_all", lambda p: p.hgetall(k))[0]
        return {_text(name): _text(value) for name, value in raw.items()}

    def delete(self, *keys: str) -> None:
        """See :meth:`CounterStore.delete`."""
        if keys:
            names = [self._k(k) for k in keys]
            self._multi("delete", lambda p: p.delete(*names))
