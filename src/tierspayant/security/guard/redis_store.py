"""The guard's counters in Redis: Lua scripts (``redis_scripts``) for the compound and
bundled operations, MULTI/EXEC pipelines for the simple ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.commands.core import Script

from tierspayant.security.guard.counters import (
    AdmitReading,
    CounterSnapshot,
    LookupKeys,
    ObserveReading,
    StoreLimits,
    UnbilledCounts,
    UnbilledPlan,
)
from tierspayant.security.guard.redis_scripts import (
    _ADMIT_LOOKUP_LUA,
    _COMMON_LUA,
    _DROP_LOCK_LUA,
    _OBSERVE_LOOKUP_LUA,
    _RELEASE_LOOKUP_LUA,
    _RENEW_LOCK_LUA,
    _STEP_UP_LUA,
    _UNBILLED_INVOICE_LUA,
    _UNBILLED_LUA,
    _WINDOWS_LUA,
)
from tierspayant.security.guard.values import CounterStoreUnavailable


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
        self._common = client.register_script(_COMMON_LUA)
        self._step_up = client.register_script(_STEP_UP_LUA)
        self._unbilled = client.register_script(_UNBILLED_LUA)
        self._unbilled_invoice = client.register_script(_UNBILLED_INVOICE_LUA)
        # Loaded on first use (EVALSHA; on NOSCRIPT, after a Redis restart or failover,
        # redis-py loads the script and runs it again).
        self._admit_lookup = client.register_script(_ADMIT_LOOKUP_LUA)
        self._observe_lookup = client.register_script(_OBSERVE_LOOKUP_LUA)
        self._release_lookup = client.register_script(_RELEASE_LOOKUP_LUA)
        self._renew_lock = client.register_script(_RENEW_LOCK_LUA)
        self._drop_lock = client.register_script(_DROP_LOCK_LUA)
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
            for key, (scored, ttl) in snapshot.scored.items():
                k = self._k(key)
                for part in _chunks(sorted(scored)):
                    pipe.zadd(k, {member: scored[member] for member in part})
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
        keys.append(self._k(plan.epoch_key or "epoch"))
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
            _flag(plan.epoch_key is not None),
        ]
        with self._errors("unbilled"):
            pending, overdue, reserved, empty = self._run(self._unbilled, keys, args)
        if int(empty) == 1:
            return UnbilledCounts((), (), False, empty=True)
        return UnbilledCounts(
            tuple(int(v) for v in pending), tuple(int(v) for v in overdue), int(reserved) == 1
        )

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

    def take_lock(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.take_lock`: ``SET NX EX``."""
        k = self._k(key)
        return bool(self._multi("take_lock", lambda p: p.set(k, owner, ex=ttl_seconds, nx=True))[0])

    def renew_lock(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.renew_lock`: compare and expire, one script."""
        with self._errors("renew_lock"):
            return int(self._run(self._renew_lock, [self._k(key)], [owner, ttl_seconds])) == 1

    def drop_lock(self, key: str, owner: str) -> bool:
        """See :meth:`CounterStore.drop_lock`: compare and delete, one script."""
        with self._errors("drop_lock"):
            return int(self._run(self._drop_lock, [self._k(key)], [owner])) == 1

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
