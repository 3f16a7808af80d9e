"""A counter store that requires its epoch: :class:`RestoringCounterStore`.

It wraps the process's store (memory or Redis) for the guard; when an operation that
needs whole counters finds the epoch missing (the store came back empty), it has them
rebuilt from the audit log by its :class:`~restore.Restorer`, then runs again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tierspayant.security.guard.counters import (
    AdmitReading,
    CounterSnapshot,
    CounterStore,
    LookupKeys,
    ObserveReading,
    StoreLimits,
    UnbilledCounts,
    UnbilledPlan,
)
from tierspayant.security.guard.restore import EPOCH_KEY, Restorer
from tierspayant.security.guard.values import CounterStoreUnavailable


class RestoringCounterStore:
    """A :class:`CounterStore` whose admissions, observations and never-invoiced counts
    require the epoch, and which rebuilds the counters through its :class:`Restorer` when
    it is missing.

    An admission that finds no epoch has counted nothing: it runs again once the counters
    are rebuilt. So does an observation (a lookup admitted before the restart, answered
    after it): its audit event is not in the log yet, so the rebuilt counters lack it and
    it is counted then. So does :meth:`unbilled` (the people awaiting an invoice the
    portal shows): on an empty store it would read zeros. Every other operation goes
    straight to the store.
    """

    def __init__(self, store: CounterStore, restorer: Restorer) -> None:
        self.store = store
        self.restorer = restorer

    def restore(self, snapshot: CounterSnapshot) -> None:
        """See :meth:`CounterStore.restore`."""
        self.store.restore(snapshot)

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
        """See :meth:`CounterStore.admit_lookup`; requires the epoch."""
        for attempt in range(2):
            reading = self.store.admit_lookup(
                keys, limits, now_ms, token, pace, no_proof, pending_limit, quota_limit, EPOCH_KEY
            )
            if not reading.empty:
                return reading
            if attempt == 0:
                self.restorer.ensure()
        raise CounterStoreUnavailable("admission")  # emptied again meanwhile: closed

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
        """See :meth:`CounterStore.observe_lookup`; requires the epoch."""
        for attempt in range(2):
            reading = self.store.observe_lookup(
                keys,
                limits,
                now_ms,
                token,
                no_proof,
                outcome,
                subject,
                care_date,
                once_keys,
                EPOCH_KEY,
            )
            if not reading.empty:
                return reading
            if attempt == 0:
                self.restorer.ensure()
        raise CounterStoreUnavailable("observation")

    def release_lookup(self, keys: LookupKeys, token: str) -> None:
        """See :meth:`CounterStore.release_lookup`."""
        self.store.release_lookup(keys, token)

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
        return self.store.step_up(
            counter_key, counter_ttl_seconds, limit, flag_key, once_key, once_ttl_seconds
        )

    def claim(self, once_keys: Sequence[str], ttl_seconds: int, flag_key: str | None) -> list[bool]:
        """See :meth:`CounterStore.claim`."""
        return self.store.claim(once_keys, ttl_seconds, flag_key)

    def unbilled(self, plan: UnbilledPlan) -> UnbilledCounts:
        """See :meth:`CounterStore.unbilled`; requires the epoch."""
        plan = dataclasses.replace(plan, epoch_key=EPOCH_KEY)
        for attempt in range(2):
            counts = self.store.unbilled(plan)
            if not counts.empty:
                return counts
            if attempt == 0:
                self.restorer.ensure()
        raise CounterStoreUnavailable("unbilled")

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
        """See :meth:`CounterStore.unbilled_invoice`."""
        self.store.unbilled_invoice(
            structure_scope, bill_key, by_key, subject, care_ms, slack_ms, ttl_seconds
        )

    def hit_windows(
        self, keys: Sequence[str], limits: Sequence[int], now_ms: int, window_ms: int, member: str
    ) -> int:
        """See :meth:`CounterStore.hit_windows`."""
        return self.store.hit_windows(keys, limits, now_ms, window_ms, member)

    def push_recent(self, key: str, value: str, keep: int, ttl_seconds: int) -> list[str]:
        """See :meth:`CounterStore.push_recent`."""
        return self.store.push_recent(key, value, keep, ttl_seconds)

    def recent(self, key: str) -> list[str]:
        """See :meth:`CounterStore.recent`."""
        return self.store.recent(key)

    def add_distinct(self, key: str, member: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.add_distinct`."""
        return self.store.add_distinct(key, member, ttl_seconds)

    def count_distinct(self, key: str) -> int:
        """See :meth:`CounterStore.count_distinct`."""
        return self.store.count_distinct(key)

    def count_common(self, key_a: str, key_b: str) -> int:
        """See :meth:`CounterStore.count_common`."""
        return self.store.count_common(key_a, key_b)

    def release(self, holds_key: str, token: str) -> None:
        """See :meth:`CounterStore.release`."""
        self.store.release(holds_key, token)

    def set_flag(self, key: str, ttl_seconds: int | None) -> None:
        """See :meth:`CounterStore.set_flag`."""
        self.store.set_flag(key, ttl_seconds)

    def has_flag(self, key: str) -> bool:
        """See :meth:`CounterStore.has_flag`."""
        return self.store.has_flag(key)

    def set_once(self, key: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.set_once`."""
        return self.store.set_once(key, ttl_seconds)

    def take_lock(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.take_lock`."""
        return self.store.take_lock(key, owner, ttl_seconds)

    def renew_lock(self, key: str, owner: str, ttl_seconds: int) -> bool:
        """See :meth:`CounterStore.renew_lock`."""
        return self.store.renew_lock(key, owner, ttl_seconds)

    def drop_lock(self, key: str, owner: str) -> bool:
        """See :meth:`CounterStore.drop_lock`."""
        return self.store.drop_lock(key, owner)

    def incr(self, key: str, ttl_seconds: int) -> int:
        """See :meth:`CounterStore.incr`."""
        return self.store.incr(key, ttl_seconds)

    def hash_set(self, key: str, name: str, value: str, ttl_seconds: int) -> None:
        """See :meth:`CounterStore.hash_set`."""
        self.store.hash_set(key, name, value, ttl_seconds)

    def hash_all(self, key: str) -> dict[str, str]:
        """See :meth:`CounterStore.hash_all`."""
        return self.store.hash_all(key)

    def delete(self, *keys: str) -> None:
        """See :meth:`CounterStore.delete`."""
        self.store.delete(*keys)
