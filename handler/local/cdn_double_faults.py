"""Fault injection for the CDN API double: errors, latency, lost and truncated answers, on demand."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass


@dataclass
class Fault:
    """One injected behaviour. With `probability` it stays until reset; otherwise it serves `count` calls."""

    code: str | None = None
    status: int | None = None
    count: int = 1
    probability: float | None = None
    latency: float | None = None
    drop: bool = False
    drop_after_accept: bool = False
    action: str | None = None
    truncate: bool = False  # run the action, then send only part of its 200 answer

    def __post_init__(self) -> None:
        if self.code is None and not (self.latency or self.drop or self.drop_after_accept or self.truncate):
            raise ValueError("a fault needs a code, a latency, a drop or a truncation")
        if self.code is not None and (self.drop or self.drop_after_accept or self.truncate):
            raise ValueError("a dropped or truncated answer carries no error code")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.count < 1:
            raise ValueError("count must be at least 1")

    @property
    def kind(self) -> str:
        if self.drop:
            return "drop"
        if self.drop_after_accept:
            return "drop_after_accept"
        if self.truncate:
            return "truncate"
        return "error" if self.code else "latency"

    def as_dict(self) -> dict:
        return asdict(self)


class FaultPlan:
    """The pending faults, first injected first served. Not thread-safe: the double holds its lock."""

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

    def pick(self, action: str | None) -> Fault | None:
        """The fault for this call, if any; a counted fault is used up by the calls it serves."""
        for fault in list(self._faults):
            if fault.action is not None and fault.action != action:
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
