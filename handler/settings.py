"""Typed configuration, read once at the entry point and validated up front.

Every problem is reported as one `ConfigError` line naming the offending key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from .values import ValueType

TYPE_CHECKING = False  # typing is for type checkers only: see handler/values.py
if TYPE_CHECKING:
    from typing import Any

CONFIG_ENV = "PREWARM_CONFIG"  # a path to a YAML/JSON file, or inline JSON
STORE_ENV = "PREWARM_STORE"  # overrides `store`
DEFAULT_STORE = "sqlite:///.prewarm/state.db"
DEFAULT_ENDPOINT = "https://cdn.aliyuncs.com"
API_CALLS_PER_SECOND = 50  # the documented account-wide limit

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class ConfigError(ValueError):
    """The configuration cannot be used; the message is one line a person can act on."""


class CdnSettings(ValueType):
    endpoint: str = DEFAULT_ENDPOINT
    version: str = "2018-05-10"
    signature: str = "v3"
    max_urls_per_call: int = 100
    daily_quota: int = 1000
    quota_reserve: int = 0
    max_urls_per_refresh: int = 1000  # RefreshObjectCaches' per-call cap (and at most 10 domains a call)
    daily_refresh_quota: int = 10000  # the account's daily URL refresh quota
    area: str | None = None
    l2_preload: bool | None = None
    with_header: str | None = None  # JSON text of extra prefetch request headers
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_retries: int = 4
    retry_budget_seconds: float = 20.0
    calls_per_second: float = 40.0
    max_prefetch_per_flush: int = 0  # 0: no cap; else prefetches one flush may send (the origin's load)

    @property
    def daily_limit(self) -> int:
        return self.daily_quota - self.quota_reserve


class Rule(ValueType):
    bucket: str
    domains: tuple[str, ...]
    scheme: str = "https"
    prefix: str = ""
    suffixes: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    strip_prefix: str = ""
    path_prefix: str = ""
    priority: int = 0  # higher is pushed first when quota is short


class FlushFunction(ValueType):
    """The flush function that the upload function invokes asynchronously when a window is full."""

    service: str
    function: str
    qualifier: str | None = None
    endpoint: str | None = None  # default: https://{account}.{region}-internal.fc.aliyuncs.com


class Settings(ValueType):
    rules: tuple[Rule, ...]
    window_seconds: int = 60
    store: str = DEFAULT_STORE
    cdn: CdnSettings = CdnSettings()
    lease_seconds: int = 300
    # How long a URL's version is remembered: cover the CDN's longest cache time, or an overwrite
    # after it is not recognised as one (and the CDN keeps serving the old copy).
    dedupe_seconds: int = 30 * 86400
    give_up_after_seconds: int = 3 * 86400  # a URL failing (not refused) this long is dead-lettered
    include_append: bool = False
    refresh_before_prefetch: str = "auto"  # auto | always | never
    on_delete: str = "refresh"  # refresh | ignore
    refresh_settle_seconds: int = 360  # prefetch this long after a refresh whose status cannot be read
    backfill_share: float = 0.5  # the part of each day's quota that backfill may use; live uploads keep the rest
    alert_after_seconds: int = 86400  # a pending URL older than this makes every flush log an ERROR line
    flush_function: FlushFunction | None = None


def load_settings(path: "str | os.PathLike[str] | None" = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from `path`, else from $PREWARM_CONFIG (a path or inline JSON); $PREWARM_STORE overrides the store."""
    env = os.environ if env is None else env
    source = os.fspath(path) if path is not None else env.get(CONFIG_ENV, "")
    if not source.strip():
        raise ConfigError(f"no configuration: pass --config PATH or set {CONFIG_ENV}")
    if path is None and source.lstrip().startswith("{"):
        data = _parse_text(source, "json", f"${CONFIG_ENV}")
    else:
        data = _read_file(source)
    if env.get(STORE_ENV) and isinstance(data, Mapping):
        data = {**data, "store": env[STORE_ENV]}
    return parse_settings(data)


def _read_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    kind = "json" if path.lower().endswith(".json") else "yaml"
    return _parse_text(text, kind, path)


def _parse_text(text: str, kind: str, where: str) -> Any:
    if kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: invalid JSON: {exc}") from None
    try:
        import yaml  # only YAML configs pay for it
    except ImportError:
        raise ConfigError(f"{where}: YAML config needs PyYAML (pip install pyyaml), or use JSON") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {' '.join(str(exc).split())}") from None


def parse_settings(data: Any) -> Settings:
    """Validate a parsed config mapping into Settings; raises ConfigError."""
    top = _Section(data, "config")
    _refuse_retired(top)
    window_seconds = top.integer("window_seconds", 60, minimum=1)
    store = top.string("store", DEFAULT_STORE)
    _check_store_url(store)
    cdn = _parse_cdn(top.section("cdn"))
    raw_rules = top.get("rules", None)
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ConfigError("rules: at least one rule (bucket and domains) is required")
    rules = tuple(_parse_rule(item, f"rules[{i}]") for i, item in enumerate(raw_rules))
    flush_raw = top.get("flush_function", None)
    flush_function = _parse_flush_function(_Section(flush_raw, "flush_function")) if flush_raw is not None else None
    settings = Settings(
        rules=rules,
        window_seconds=window_seconds,
        store=store,
        cdn=cdn,
        lease_seconds=top.integer("lease_seconds", 300, minimum=1),
        dedupe_seconds=top.integer("dedupe_seconds", 30 * 86400, minimum=0),
        give_up_after_seconds=top.integer("give_up_after_seconds", 3 * 86400, minimum=0),
        include_append=top.boolean("include_append", False),
        refresh_before_prefetch=top.choice("refresh_before_prefetch", "auto", ("auto", "always", "never")),
        on_delete=top.choice("on_delete", "refresh", ("refresh", "ignore")),
        refresh_settle_seconds=top.integer("refresh_settle_seconds", 360, minimum=0),
        backfill_share=top.number("backfill_share", 0.5, minimum=0, maximum=1),
        alert_after_seconds=top.integer("alert_after_seconds", 86400, minimum=60),
        flush_function=flush_function,
    )
    top.finish()
    return settings


RETIRED = {
    "max_attempts": "max_attempts: retired; a failing URL is retried with back-off and dead-lettered after"
                    " give_up_after_seconds (default 259200, 3 days): set that instead",
    "retry_after_seconds": "retry_after_seconds: retired; a failing URL backs off by itself (60 s doubling to an"
                           " hour) until give_up_after_seconds: remove the key",
}


def _refuse_retired(top: "_Section") -> None:
    """A config that still sets a retired key would silently mean something else now: refuse it."""
    for key, message in RETIRED.items():
        if key in top.data:
            raise ConfigError(message)


def _parse_cdn(section: "_Section") -> CdnSettings:
    endpoint = section.string("endpoint", DEFAULT_ENDPOINT)
    check_endpoint(endpoint, "cdn.endpoint")
    signature = section.string("signature", "v3").lower()
    if signature not in ("v2", "v3"):
        raise ConfigError(f"cdn.signature: must be v3 or v2, not {signature!r}")
    area = section.optional_string("area")
    if area is not None and area not in ("domestic", "overseas"):
        raise ConfigError(f"cdn.area: must be domestic or overseas, not {area!r}")
    with_header = section.get("with_header", None)
    if with_header is not None:
        if not isinstance(with_header, Mapping) or not all(isinstance(k, str) for k in with_header):
            raise ConfigError("cdn.with_header: must be a mapping of header name to a list of values")
        with_header = json.dumps(with_header, separators=(",", ":"), sort_keys=True)
    cdn = CdnSettings(
        endpoint=endpoint.rstrip("/"),
        version=section.string("version", "2018-05-10"),
        signature=signature,
        max_urls_per_call=section.integer("max_urls_per_call", 100, minimum=1, maximum=1000),
        daily_quota=section.integer("daily_quota", 1000, minimum=1),
        quota_reserve=section.integer("quota_reserve", 0, minimum=0),
        max_urls_per_refresh=section.integer("max_urls_per_refresh", 1000, minimum=1, maximum=1000),
        daily_refresh_quota=section.integer("daily_refresh_quota", 10000, minimum=1),
        area=area,
        l2_preload=section.optional_boolean("l2_preload"),
        with_header=with_header,
        connect_timeout=section.number("connect_timeout", 3.0, minimum=0.1),
        read_timeout=section.number("read_timeout", 10.0, minimum=0.1),
        max_retries=section.integer("max_retries", 4, minimum=0, maximum=20),
        retry_budget_seconds=section.number("retry_budget_seconds", 20.0, minimum=0),
        calls_per_second=section.number("calls_per_second", 40.0, minimum=0.1, maximum=API_CALLS_PER_SECOND),
        max_prefetch_per_flush=section.integer("max_prefetch_per_flush", 0, minimum=0),
    )
    section.finish()
    if cdn.quota_reserve >= cdn.daily_quota:
        raise ConfigError(
            f"cdn.quota_reserve: {cdn.quota_reserve} leaves nothing of daily_quota {cdn.daily_quota}"
        )
    return cdn


def _parse_rule(raw: Any, where: str) -> Rule:
    section = _Section(raw, where)
    bucket = section.string("bucket", None)
    if not bucket.strip():
        raise ConfigError(f"{where}.bucket: must not be empty")
    domains = section.string_list("domains")
    if not domains:
        raise ConfigError(f"{where}.domains: at least one CDN domain is required")
    for i, domain in enumerate(domains):
        check_domain(domain, f"{where}.domains[{i}]")
    scheme = section.string("scheme", "https").lower()
    if scheme not in ("http", "https"):
        raise ConfigError(f"{where}.scheme: must be https or http, not {scheme!r}")
    rule = Rule(
        bucket=bucket,
        domains=tuple(d.lower() for d in domains),
        scheme=scheme,
        prefix=section.string("prefix", ""),
        suffixes=tuple(section.string_list("suffixes")),
        exclude=tuple(section.string_list("exclude")),
        strip_prefix=section.string("strip_prefix", ""),
        path_prefix=section.string("path_prefix", ""),
        priority=section.integer("priority", 0, minimum=-1000, maximum=1000),
    )
    section.finish()
    return rule


def _parse_flush_function(section: "_Section") -> FlushFunction:
    endpoint = section.optional_string("endpoint")
    if endpoint is not None:
        check_endpoint(endpoint, "flush_function.endpoint")
    result = FlushFunction(
        service=section.string("service", None),
        function=section.string("function", None),
        qualifier=section.optional_string("qualifier"),
        endpoint=endpoint,
    )
    section.finish()
    return result


def check_domain(domain: str, where: str) -> None:
    if "*" in domain:
        raise ConfigError(f"{where}: wildcard domain {domain!r} is not supported by PushObjectCache")
    if not _HOSTNAME.match(domain):
        raise ConfigError(f"{where}: {domain!r} is not a host name (no scheme, port or path)")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    import ipaddress  # only plain-http endpoints get here

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str, where: str) -> None:
    """https anywhere; plain http only on loopback, so that credentials never cross a network in clear."""
    parts = urlsplit(endpoint)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return
    if parts.scheme == "http":
        raise ConfigError(f"{where}: plain http is allowed only on loopback; use https for {parts.hostname}")
    raise ConfigError(f"{where}: {endpoint!r} is not an https URL")


def _check_store_url(store: str) -> None:
    scheme = urlsplit(store).scheme
    if scheme not in ("sqlite", "dynamodb", "tablestore"):
        raise ConfigError(
            f"store: {store!r} is not a store URL (sqlite:///PATH, dynamodb://TABLE?region=..., tablestore://INSTANCE/TABLE?endpoint=...)"
        )


class _Section:
    """One mapping of the config, remembering which keys were read so unknown ones can be refused."""

    def __init__(self, data: Any, where: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a mapping, not {type(data).__name__}")
        self.data = data
        self.where = where
        self.known: set[str] = set()

    def _name(self, key: str) -> str:
        return key if self.where == "config" else f"{self.where}.{key}"

    def get(self, key: str, default: Any) -> Any:
        self.known.add(key)
        value = self.data.get(key, default)
        return default if value is None else value

    def section(self, key: str) -> "_Section":
        return _Section(self.get(key, {}), self._name(key))

    def string(self, key: str, default: str | None) -> str:
        value = self.get(key, default)
        if value is None:
            raise ConfigError(f"{self._name(key)}: required")
        if not isinstance(value, str):
            raise ConfigError(f"{self._name(key)}: must be a string, not {type(value).__name__}")
        return value

    def optional_string(self, key: str) -> str | None:
        value = self.get(key, None)
        return None if value is None else self.string(key, None)

    def string_list(self, key: str) -> list[str]:
        value = self.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{self._name(key)}: must be a list of non-empty strings")
        return list(value)

    def integer(self, key: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self._name(key)}: must be a whole number, not {value!r}")
        self._check_range(key, value, minimum, maximum)
        return value

    def number(self, key: str, default: float, minimum: float | None = None, maximum: float | None = None) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ConfigError(f"{self._name(key)}: must be a number, not {value!r}")
        self._check_range(key, value, minimum, maximum)
        return float(value)

    def _check_range(self, key, value, minimum, maximum) -> None:
        if minimum is not None and value < minimum:
            raise ConfigError(f"{self._name(key)}: must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{self._name(key)}: must be at most {maximum}, not {value}")

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise ConfigError(f"{self._name(key)}: must be one of {' | '.join(choices)}, not {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._name(key)}: must be true or false, not {value!r}")
        return value

    def optional_boolean(self, key: str) -> bool | None:
        value = self.get(key, None)
        return None if value is None else self.boolean(key, False)

    def finish(self) -> None:
        unknown = sorted(str(k) for k in self.data if k not in self.known)
        if unknown:
            from difflib import get_close_matches  # only on the error path

            key = unknown[0] if unknown[0].isprintable() else repr(unknown[0])  # keep it one line
            hint = get_close_matches(key, sorted(self.known), n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            raise ConfigError(f"{self._name(key)}: unknown key{suggestion}")
