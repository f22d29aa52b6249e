"""A seeded, realistic upload trace: an hour of deploy bursts over a background trickle, with re-uploads.

Each event is one upload (one native OSS trigger payload with one record) at a simulated
instant. A share of the events re-upload a key seen before: half of them within the same
burst (a sync tool retrying, a deploy writing a file twice), half anywhere earlier (a hot
asset replaced). Keys look like what sites upload: hashed bundles, dated images, and names
with spaces and non-ASCII characters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone

from handler.local import change_trace

from .rig import BUCKET

START = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc).timestamp()  # 10:00 UTC+8: the hour stays in one quota day
BURST_SHARE = 0.85  # events that belong to a burst; the rest trickle in


@dataclass(frozen=True)
class Upload:
    at: float  # simulated epoch seconds
    key: str
    reupload: bool


@dataclass(frozen=True)
class Trace:
    uploads: list[Upload]
    seconds: float
    bursts: int

    @property
    def unique_keys(self) -> int:
        return len({u.key for u in self.uploads})


def generate(events: int = 20_000, *, seconds: float = 3600.0, reupload_share: float = 0.30, seed: int = 20261123) -> Trace:
    """`events` uploads over `seconds`, exactly round(events * reupload_share) of them re-uploads."""
    if events < 2:
        raise ValueError("a trace needs at least two events")
    rng = random.Random(seed)
    bursts = max(1, round(events / 800))
    times = _instants(rng, events, seconds, bursts)
    reuploads = set(rng.sample(range(1, events), round(events * reupload_share)))
    uploads: list[Upload] = []
    keys: list[str] = []
    burst_start = 0  # index of the first key of the current burst, for re-uploads within it
    for index, (at, burst) in enumerate(times):
        if index and burst != times[index - 1][1]:
            burst_start = len(keys)
        if index in reuploads:
            recent = burst is not None and len(keys) > burst_start and rng.random() < 0.5
            key = keys[rng.randrange(burst_start, len(keys))] if recent else rng.choice(keys)
            uploads.append(Upload(at, key, True))
        else:
            key = _new_key(rng, len(keys))
            keys.append(key)
            uploads.append(Upload(at, key, False))
    return Trace(uploads, seconds, bursts)


def _instants(rng: random.Random, events: int, seconds: float, bursts: int) -> list[tuple[float, int | None]]:
    """Sorted (instant, burst number or None) pairs: bursts of 5 to 90 s with heavy-tailed sizes, and a trickle."""
    in_bursts = round(events * BURST_SHARE)
    weights = [rng.paretovariate(1.2) for _ in range(bursts)]
    total = sum(weights)
    sizes = [int(in_bursts * w / total) for w in weights]
    sizes[0] += in_bursts - sum(sizes)
    instants: list[tuple[float, int | None]] = []
    for number, size in enumerate(sizes):
        length = rng.uniform(5.0, 90.0)
        begin = rng.uniform(0.0, seconds - length)
        instants.extend((begin + rng.random() * length, number) for _ in range(size))
    instants.extend((rng.random() * seconds, None) for _ in range(events - in_bursts))
    instants.sort(key=lambda pair: pair[0])
    return [(START + at, burst) for at, burst in instants]


def _new_key(rng: random.Random, n: int) -> str:
    kind = rng.random()
    if kind < 0.45:
        return f"static/{rng.choice(('js', 'css'))}/chunk-{n:05d}.{rng.getrandbits(32):08x}.{rng.choice(('js', 'css'))}"
    if kind < 0.85:
        return f"images/2026/11/{rng.randrange(1, 31):02d}/{rng.getrandbits(40):010x}.{rng.choice(('jpg', 'png', 'webp'))}"
    if kind < 0.95:
        return f"docs/{rng.choice(('release notes', 'read me', 'a+b', '100%'))} {n}.pdf"
    return f"视频/夏天 的 海 {n}.mp4"


def oss_payload(key: str, at: float) -> bytes:
    """A native OSS trigger payload with one ObjectCreated:PutObject record, as FC hands it over."""
    when = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return change_trace.oss_payload(BUCKET, key, etag="0A9F4C3E8D6B2E1F7A5C3B9D1E8F2A4C", event_time=when, size=2048)
