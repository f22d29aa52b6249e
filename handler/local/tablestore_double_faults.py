"""Fault injection for the Tablestore double: service errors, latency, dropped connections, and
writes that are applied and then fail (the caller sees an error or a lost connection, yet a
reread finds the write done: what a timed-out write on the real service may be)."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields

from .tablestore_double_errors import DEFAULT_MESSAGE, STATUS_OF


@dataclass
class Fault:
    """One injected behaviour for `operation` (an API name such as "PutRow"; None: every operation).

    - `code`: answer this service error (status and message default to the service's);
    - `drop`: close the connection without an answer;
    - `applied`: carry the operation out first, then answer `code` or drop;
    - `latency`: seconds to wait before answering (alone, or with any of the above).
    With `probability` the fault stays until reset and hits that seeded fraction of calls;
    otherwise it serves the next `count` matching calls.
    """

    operation: str | None = None
    code: str | None = None
    message: str | None = None
    status: int | None = None
    drop: bool = False
    applied: bool = False
    latency: float = 0.0
    count: int = 1
    probability: float | None = None

    def __post_init__(self) -> None:
        if self.code is None and not self.drop and not self.latency:
            raise ValueError("a fault needs a code, drop or latency")
        if self.code is not None and self.drop:
            raise ValueError("a dropped connection carries no error code")
        if self.applied and self.code is None and not self.drop:
            raise ValueError("an applied-then-failed fault needs a code or drop")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.latency < 0:
            raise ValueError("latency must not be negative")
        if self.code is not None:
            self.status = self.status or STATUS_OF.get(self.code, 500)
            self.message = self.message if self.message is not None else DEFAULT_MESSAGE.get(self.code, self.code)

    @classmethod
    def from_json(cls, data: dict) -> "Fault":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**data)

    def as_dict(self) -> dict:
        return asdict(self)


class FaultPlan:
    """Pending faults, first injected first served. Not thread-safe: the double holds its lock."""

    def __init__(self, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)

    def seed(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def reset(self) -> None:
        self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        return list(self._faults)

    def pick(self, operation: str) -> Fault | None:
        for fault in list(self._faults):
            if fault.operation is not None and fault.operation != operation:
                continue
            if fault.probability is not None:
                # One draw per probabilistic fault per call keeps a seeded sequence reproducible.
                if self._rng.random() < fault.probability:
                    return fault
                continue
            fault.count -= 1
            if fault.count <= 0:
                self._faults.remove(fault)
            return fault
        return None
