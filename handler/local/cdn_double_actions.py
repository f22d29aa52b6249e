"""The RPC actions of the CDN API double: what each one checks, spends, creates and answers.

Each runs under the double's lock with the call's parameters and the double's clock,
and either returns the answer's fields or raises the API's error.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

from .cdn_double_model import HISTORY_SECONDS, PRELOAD, REFRESH, TIME_FORMAT, object_key
from .cdn_double_rules import ApiError, check_area, check_urls, check_with_header, split_object_path

if TYPE_CHECKING:
    from .cdn_double import CdnDouble, Received

MAX_TASK_IDS = 10  # DescribeRefreshTaskById
MAX_PAGE_SIZE = 100  # DescribeRefreshTasks
MAX_REFRESH_DOMAINS = 10  # RefreshObjectCaches
TASK_TYPES = ("file", "directory", "regex", "preload", "ignoreparams")
# Quotas the double does not model, at the real account defaults.
OTHER_QUOTAS = {"Dir": 100, "Block": 100, "Regex": 20}


def push_object_cache(double: CdnDouble, record: Received, now: float) -> dict:
    params = record.params
    if not params.get("ObjectPath"):
        raise ApiError("MissingParameter", name="ObjectPath")
    check_urls(record.urls, double.domains, double.cap)
    check_area(params.get("Area"))
    check_with_header(params.get("WithHeader"))
    model = double.model
    if len(record.urls) > model.remain(PRELOAD, now):
        raise ApiError(double.push_quota_code)  # the seed's QuotaExceeded.Refresh, or QuotaExceeded.Preload
    model.spend(PRELOAD, len(record.urls), now)
    double.pushed_urls.extend(record.urls)
    return {"PushTaskId": ",".join(model.create_tasks(record.urls, PRELOAD, now))}


def refresh_object_caches(double: CdnDouble, record: Received, now: float) -> dict:
    params = record.params
    if not params.get("ObjectPath"):
        raise ApiError("MissingParameter", name="ObjectPath")
    object_type = params.get("ObjectType", "File")
    if object_type != "File":
        # Directory, Regex and IgnoreParams exist in the API; this project refreshes files only.
        raise ApiError("InvalidObjectType.Malformed")
    check_urls(record.urls, double.domains, double.refresh_cap)
    domains = {object_key(url).split("/", 1)[0].lower() for url in record.urls}
    if len(domains) > MAX_REFRESH_DOMAINS:
        raise ApiError("SingleRequest.OverLimit", cap=MAX_REFRESH_DOMAINS)
    model = double.model
    if len(record.urls) > model.remain(REFRESH, now):
        raise ApiError("QuotaExceeded.Refresh")
    model.spend(REFRESH, len(record.urls), now)
    double.refreshed_urls.extend(record.urls)
    return {"RefreshTaskId": ",".join(model.create_tasks(record.urls, REFRESH, now))}


def describe_refresh_quota(double: CdnDouble, record: Received, now: float) -> dict:
    model = double.model
    quotas = {
        "PreloadQuota": str(model.quotas[PRELOAD]),
        "PreloadRemain": str(model.remain(PRELOAD, now)),
        "UrlQuota": str(model.quotas[REFRESH]),
        "UrlRemain": str(model.remain(REFRESH, now)),
    }
    for name, value in OTHER_QUOTAS.items():
        quotas.update({f"{name}Quota": str(value), f"{name}Remain": str(value)})
    return quotas


def describe_refresh_task_by_id(double: CdnDouble, record: Received, now: float) -> dict:
    ids = [part.strip() for part in record.params.get("TaskId", "").split(",") if part.strip()]
    if not ids:
        raise ApiError("MissingParameter", name="TaskId")
    if len(ids) > MAX_TASK_IDS:
        raise ApiError("InvalidTaskId.ValueNotSupported")
    tasks = double.model.by_ids(dict.fromkeys(ids), now)
    return {"TotalCount": len(tasks), "Tasks": tasks}  # a flat list, unlike DescribeRefreshTasks


def describe_refresh_tasks(double: CdnDouble, record: Received, now: float) -> dict:
    params = record.params
    kind = params.get("ObjectType")
    if (params.get("DomainName") or params.get("Status")) and not kind:
        raise ApiError("MissingParameter", name="ObjectType")
    if kind is not None and kind.lower() not in TASK_TYPES:
        raise ApiError("InvalidObjectType.Malformed")
    page_number = _positive(params, "PageNumber", 1)
    page_size = _positive(params, "PageSize", 20)
    if page_size > MAX_PAGE_SIZE:
        raise ApiError("InvalidParameter", name="PageSize")
    start = _time(params, "StartTime")
    end = _time(params, "EndTime")
    if start is not None and end is not None and end < start:
        raise ApiError("InvalidParameter", name="EndTime")
    if start is not None and now - start > HISTORY_SECONDS:
        raise ApiError("InvalidParameter", name="StartTime")  # only the last 3 days can be asked for
    views = double.model.search(
        now,
        task_id=params.get("TaskId") or None,
        object_path=params.get("ObjectPath") or None,
        kind=kind,
        domain=params.get("DomainName") or None,
        status=params.get("Status") or None,
        start=start,
        end=end,
    )
    page = views[(page_number - 1) * page_size : page_number * page_size]
    return {
        "PageNumber": page_number,
        "PageSize": page_size,
        "TotalCount": len(views),
        "Tasks": {"CDNTask": page},  # nested, unlike DescribeRefreshTaskById
    }


def _positive(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or int(value) < 1:
        raise ApiError("InvalidParameter", name=name)
    return int(value)


def _time(params: dict[str, str], name: str) -> float | None:
    value = params.get(name)
    if not value:
        return None
    try:
        return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise ApiError("InvalidParameter", name=name) from None


ACTIONS: dict[str, Callable[[CdnDouble, Received, float], dict]] = {
    "PushObjectCache": push_object_cache,
    "RefreshObjectCaches": refresh_object_caches,
    "DescribeRefreshQuota": describe_refresh_quota,
    "DescribeRefreshTaskById": describe_refresh_task_by_id,
    "DescribeRefreshTasks": describe_refresh_tasks,
}

URL_ACTIONS = ("PushObjectCache", "RefreshObjectCaches")  # the actions whose ObjectPath is a URL list


def urls_of(action: str | None, params: dict[str, str]) -> list[str]:
    return split_object_path(params["ObjectPath"]) if action in URL_ACTIONS and "ObjectPath" in params else []
