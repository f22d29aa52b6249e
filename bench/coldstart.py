"""Cold start: what importing each FC entry module costs a fresh process, beside the official CDN SDK.

Wall time of `python -c "import M"` minus `python -c pass` (perf_counter around the child,
median of many interleaved runs, after one warm-up run each so bytecode caches exist),
and the same import's total from `python -X importtime`. The upload path imports
handler.entry; the flush path imports handler.entry and then the CDN adapter
(handler.cdn.pushing, which brings the client and `requests`). Children get a SQLite store config.
Also lists which heavy packages a fresh process holds after importing the upload entry,
and after its first invocation. A Tablestore deployment's first upload also imports the store
adapter and its SDK: measured as the package ships it (without numpy, see function_zip), on a
copy of this environment's packages without numpy, under -S, against a bare `python -S`.
"""

from __future__ import annotations

import json
import re
import sysconfig
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import rig
from .stats import median

UPLOAD_ENTRY = "handler.entry"
FLUSH_PATH = "handler.cdn.pushing"  # the CDN adapter (client, signing, requests): what a flush adds to the entry
OFFICIAL_SDK = "alibabacloud_cdn20180510.client"
TABLESTORE_ADAPTER = "handler.stores.tablestore"  # what a Tablestore deployment's first upload adds: the SDK
MODULES = (UPLOAD_ENTRY, FLUSH_PATH, OFFICIAL_SDK)
FIRST_UPLOAD = "first upload"  # import handler.entry and handle one event: settings, SQLite store, ingest
# What the upload path must never pay for: the HTTP stack, the store SDKs it does not use, fc2, YAML.
HEAVY = ("requests", "urllib3", "boto3", "botocore", "tablestore", "fc2", "yaml")
_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


@dataclass
class ColdStart:
    runs: int
    bare_ms: float  # python -c pass, median wall
    wall_ms: dict[str, float] = field(default_factory=dict)  # module -> median wall of python -c "import M"
    over_bare_ms: dict[str, float] = field(default_factory=dict)  # module -> median of (import run - bare run)
    importtime_ms: dict[str, float] = field(default_factory=dict)  # module -> median -X importtime total
    heavy_after_import: list[str] = field(default_factory=list)  # HEAVY modules present after importing handler.entry
    heavy_after_upload: list[str] = field(default_factory=list)  # ... and after its first upload invocation
    modules_after_import: int = 0
    tablestore_adapter_ms: float = 0.0  # median of (import TABLESTORE_ADAPTER under -S, as packaged) - bare python -S

    def as_dict(self) -> dict:
        return asdict(self)


def run(runs: int) -> ColdStart:
    with tempfile.TemporaryDirectory(prefix="bench-coldstart-") as tmp:
        env = rig.child_env(rig.config(f"sqlite:///{Path(tmp) / 'state.db'}"))
        timed = MODULES + (FIRST_UPLOAD,)
        for module in ("pass",) + timed:  # warm-up: bytecode caches and the page cache
            _wall(_statement(module), env)
        bare: list[float] = []
        walls: dict[str, list[float]] = {m: [] for m in timed}
        deltas: dict[str, list[float]] = {m: [] for m in timed}
        for _ in range(runs):  # interleaved, so that drift hits every module alike
            base = _wall("pass", env)
            bare.append(base)
            for module in timed:
                wall = _wall(_statement(module), env)
                walls[module].append(wall)
                deltas[module].append(wall - base)
        result = ColdStart(runs=runs, bare_ms=median(bare))
        for module in timed:
            result.wall_ms[module] = median(walls[module])
            result.over_bare_ms[module] = median(deltas[module])
        for module in MODULES:
            result.importtime_ms[module] = median([_importtime(module, env) for _ in range(runs)])
        after_import = _modules_after(f"import {UPLOAD_ENTRY}", env)
        result.modules_after_import = len(after_import)
        result.heavy_after_import = _heavy(after_import)
        result.heavy_after_upload = _heavy(_modules_after(_first_upload_statement(), env))
        result.tablestore_adapter_ms = _as_packaged_over_bare(TABLESTORE_ADAPTER, Path(tmp) / "packages", env, runs)
    return result


def _as_packaged_over_bare(module: str, overlay: Path, env: dict, runs: int) -> float:
    """Median of `python -S -c "import M"` minus `python -S -c pass`, with this environment's packages
    but those the package leaves out (function_zip.NEVER_IMPORTED) on the path."""
    from function_zip import NEVER_IMPORTED

    overlay.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(NEVER_IMPORTED):
            (overlay / entry.name).symlink_to(entry)
    env = {**env, "PYTHONPATH": f"{rig.ROOT}:{overlay}"}
    for statement in ("pass", f"import {module}"):  # warm-up
        _wall(statement, env, "-S")
    return median([_wall(f"import {module}", env, "-S") - _wall("pass", env, "-S") for _ in range(runs)])


def _statement(module: str) -> str:
    if module == FIRST_UPLOAD:
        return _first_upload_statement()
    if module == FLUSH_PATH:  # a flush instance imports the entry module, then the CDN adapter on its first flush
        return f"import {UPLOAD_ENTRY}, {FLUSH_PATH}"
    return "pass" if module == "pass" else f"import {module}"


def _wall(statement: str, env: dict, *flags: str) -> float:
    started = time.perf_counter()
    status, _, err = rig.run_child([rig.PYTHON, *flags, "-c", statement], env, timeout=60)
    elapsed = (time.perf_counter() - started) * 1000.0
    if status != 0:
        raise RuntimeError(f"python -c {statement!r} failed: {err.decode(errors='replace').strip()[-300:]}")
    return elapsed


def _importtime(module: str, env: dict) -> float:
    """Total of `python -X importtime -c "import M"`: cumulative times of the top-level imports it triggers."""
    status, _, err = rig.run_child([rig.PYTHON, "-X", "importtime", "-c", f"import {module}"], env, timeout=60)
    if status != 0:
        raise RuntimeError(f"importing {module} failed: {err.decode(errors='replace').strip()[-300:]}")
    lines = [m for m in map(_IMPORTTIME.match, err.decode("utf-8", "replace").splitlines()) if m]
    # Startup imports (site, encodings, ...) come first and end with the last top-level line before the
    # statement runs; the statement's own imports are the top-level lines after the first line of its root.
    root = module.split(".")[0]
    names = [m.group(4) for m in lines]
    first = next((i for i, name in enumerate(names) if name == root or name.startswith(root + ".")), None)
    if first is None:
        return 0.0
    # Walk back to the start of the subtree that ends at the root package's line: children print before parents.
    start = first
    while start > 0 and len(lines[start - 1].group(3)) > 1:
        start -= 1
    top_level = [m for m in lines[start:] if len(m.group(3)) == 1]
    return sum(int(m.group(2)) for m in top_level) / 1000.0


def _first_upload_statement() -> str:
    from .trace import oss_payload, START

    payload = oss_payload("static/js/app.0123abcd.js", START)
    return f"import {UPLOAD_ENTRY} as e; e.upload({payload!r})"


def _modules_after(statement: str, env: dict) -> list[str]:
    code = f"{statement}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    status, out, err = rig.run_child([rig.PYTHON, "-c", code], env, timeout=60)
    if status != 0:
        raise RuntimeError(f"{statement[:60]!r} failed: {err.decode(errors='replace').strip()[-300:]}")
    return json.loads(out.decode("utf-8").strip().splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return sorted({name.split(".")[0] for name in modules if name.split(".")[0] in HEAVY})
