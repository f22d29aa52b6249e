"""The CDN API double's unsigned admin paths (loopback callers only), for tests and the demo in another process.

    GET    /_double/received        submitted URLs, received calls, quotas, pending faults, clock (JSON)
    DELETE /_double/received        forget received calls and submitted URLs
    POST   /_double/faults          {"code", "status", "count", "probability", "latency", "drop",
                                     "drop_after_accept", "truncate", "action"} as for inject();
                                     {"seed": n}; {"reset": true}
    DELETE /_double/faults          reset_faults()
    GET    /_double/quota           {"preload": {"quota", "used", "remain"}, "refresh": {...}, "push_quota_code"}
    POST   /_double/quota           {"quota", "remain", "used"} (prefetch), {"refresh_quota", "refresh_remain",
                                     "refresh_used"}, {"push_quota_code": "QuotaExceeded.Preload"}
    GET    /_double/clock           {"now", "pinned", "offset"}
    POST   /_double/clock           {"now": epoch} pins it; {"advance": seconds}; {"real": true} follows real time
    GET    /_double/origin          {"objects": {url without scheme: version}}
    POST   /_double/origin          {"url", "version"} or {"objects": {url: version}}: upload or overwrite;
                                     {"open": false}: only objects set here exist (default: open origin)
    DELETE /_double/origin          {"url"} or ?url=: delete
    GET    /_double/cache           {"cache": {url without scheme: version}}; ?url=... -> {"url", "version"}
    POST   /_double/fetch           {"url"}: a viewer's request (a miss fills the edge) -> {"url", "version"}
    GET    /_double/tasks           {"tasks": [entries as the task APIs show them, plus done_at and created]}
    POST   /_double/tasks           {"preload_seconds", "refresh_seconds"}: how long new tasks take
    POST   /_double/task_faults     {"urls": [...] or "fraction": f, "kind": "preload"|"file", "reason"}
    DELETE /_double/task_faults     reset_task_faults()
    POST   /_double/listener        {"refuse_seconds": s}: refuse connections for s seconds (the listener closes)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cdn_double import CdnDouble

_FAULT_FIELDS = {"count", "probability", "latency", "drop", "drop_after_accept", "truncate", "action"}


def admin_route(double: CdnDouble, method: str, route: str, query: dict, data: dict) -> tuple[int, dict]:
    """(HTTP status, JSON body) for one admin call; ValueError/TypeError/KeyError mean a bad request."""
    handler = _ROUTES.get((method, route.strip("/")))
    if handler is None:
        return 404, {"error": f"no admin route {method} /_double/{route}"}
    return 200, handler(double, query, data)


def _received(double: CdnDouble, query: dict, data: dict) -> dict:
    return double.snapshot()


def _summary(double: CdnDouble) -> dict:
    state = double.snapshot()
    return {"faults": len(state["faults"]), "quota": state["quota"], "received": len(state["received"])}


def _clear_received(double: CdnDouble, query: dict, data: dict) -> dict:
    double.clear_records()
    return _summary(double)


def _add_fault(double: CdnDouble, query: dict, data: dict) -> dict:
    data = dict(data)
    if data.pop("reset", False):
        double.reset_faults()
    if "seed" in data:
        double.seed(data.pop("seed"))
    if data:
        unknown = set(data) - _FAULT_FIELDS - {"code", "status"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        double.inject(data.pop("code", None), data.pop("status", None), **data)
    return _summary(double)


def _reset_faults(double: CdnDouble, query: dict, data: dict) -> dict:
    double.reset_faults()
    return _summary(double)


def _quota(double: CdnDouble, query: dict, data: dict) -> dict:
    return {**double.quota_counters(), "push_quota_code": double.push_quota_code}


def _set_quota(double: CdnDouble, query: dict, data: dict) -> dict:
    double.set_quota(quota=data.get("quota"), remain=data.get("remain"), used=data.get("used"))
    double.set_quota(
        quota=data.get("refresh_quota"), remain=data.get("refresh_remain"), used=data.get("refresh_used"), kind="file"
    )
    if "push_quota_code" in data:
        double.set_push_quota_code(data["push_quota_code"])
    return {**_summary(double), "quotas": double.quota_counters()}


def _clock(double: CdnDouble, query: dict, data: dict) -> dict:
    return double.clock.as_dict()


def _set_clock(double: CdnDouble, query: dict, data: dict) -> dict:
    if data.get("real"):
        double.follow_real_time()
    if "now" in data:
        double.set_clock(float(data["now"]))
    if "advance" in data:
        double.advance(float(data["advance"]))
    return double.clock.as_dict()


def _origin(double: CdnDouble, query: dict, data: dict) -> dict:
    return {"objects": double.origin()}


def _put_origin(double: CdnDouble, query: dict, data: dict) -> dict:
    if "open" in data:
        double.set_open_origin(bool(data.pop("open")))
        if not data:
            return {"objects": double.origin()}
    objects = data.get("objects") or {data["url"]: data["version"]}
    for url, version in objects.items():
        double.set_origin(str(url), str(version))
    return {"objects": double.origin()}


def _delete_origin(double: CdnDouble, query: dict, data: dict) -> dict:
    double.delete_origin(data.get("url") or query["url"])
    return {"objects": double.origin()}


def _cache(double: CdnDouble, query: dict, data: dict) -> dict:
    if "url" in query:
        return {"url": query["url"], "version": double.cached(query["url"])}
    return {"cache": double.cache()}


def _fetch(double: CdnDouble, query: dict, data: dict) -> dict:
    return {"url": data["url"], "version": double.viewer_get(data["url"])}


def _tasks(double: CdnDouble, query: dict, data: dict) -> dict:
    return {"tasks": double.task_records()}


def _task_timing(double: CdnDouble, query: dict, data: dict) -> dict:
    double.set_task_timing(data.get("preload_seconds"), data.get("refresh_seconds"))
    return {"preload_seconds": double.model.preload_seconds, "refresh_seconds": double.model.refresh_seconds}


def _fail_tasks(double: CdnDouble, query: dict, data: dict) -> dict:
    double.fail_tasks(
        data.get("urls"), fraction=data.get("fraction"), kind=data.get("kind"), reason=data.get("reason", "origin timeout")
    )
    return {"ok": True}


def _reset_task_faults(double: CdnDouble, query: dict, data: dict) -> dict:
    double.reset_task_faults()
    return {"ok": True}


def _listener(double: CdnDouble, query: dict, data: dict) -> dict:
    seconds = float(data["refuse_seconds"])
    if not 0 < seconds <= 600:
        raise ValueError("refuse_seconds must be within (0, 600]")
    double.refuse_connections_for(seconds)
    return {"refusing_for": seconds}


_ROUTES = {
    ("GET", "received"): _received,
    ("DELETE", "received"): _clear_received,
    ("POST", "faults"): _add_fault,
    ("DELETE", "faults"): _reset_faults,
    ("GET", "quota"): _quota,
    ("POST", "quota"): _set_quota,
    ("GET", "clock"): _clock,
    ("POST", "clock"): _set_clock,
    ("GET", "origin"): _origin,
    ("POST", "origin"): _put_origin,
    ("DELETE", "origin"): _delete_origin,
    ("GET", "cache"): _cache,
    ("POST", "fetch"): _fetch,
    ("GET", "tasks"): _tasks,
    ("POST", "tasks"): _task_timing,
    ("POST", "task_faults"): _fail_tasks,
    ("DELETE", "task_faults"): _reset_task_faults,
    ("POST", "listener"): _listener,
}
