"""Scenario: hostile event payloads, URL lists and configs never crash, never inject, never leave the configured domains."""

from __future__ import annotations

import json
import time
import unicodedata
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from handler import entry
from handler.cdn.client import CdnClient
from handler.cdn.errors import CdnError, InvalidUrlError
from handler.cdn.pushing import CdnAdapter
from handler.credentials import Credentials
from handler.settings import ConfigError, parse_settings

from eventdata import oss_record, s3_event
from fixtures.cdn_double import TEST_AK, TEST_SK

from .support import config, write_json

BOUNDED = settings(max_examples=120, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DOMAINS = {"cdn.example.com", "img.example.com"}
CONTROL = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\xa0", "\u2028", "\u2029", "\ufeff", "\u200b", "\u180e"]
keys = st.one_of(
    st.text(st.characters(blacklist_categories=()), min_size=1, max_size=40),  # lone surrogates included
    st.lists(st.sampled_from(CONTROL) | st.sampled_from(list("a/ %+#?")), min_size=1, max_size=20).map("".join),
    st.integers(1000, 5000).map(lambda n: "k" * n),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=15,
)
FIELDS = [("eventName",), ("oss",), ("oss", "bucket"), ("oss", "bucket", "name"), ("oss", "object"),
          ("oss", "object", "key"), ("oss", "object", "size")]


def _bad_record(draw) -> object:
    kind = draw(st.sampled_from(["value", "field", "key", "bucket"]))
    if kind == "value":
        return draw(json_values)
    record = oss_record("my-bucket", "x")
    if kind == "field":
        path = draw(st.sampled_from(FIELDS))
        target = record
        for part in path[:-1]:
            target = target[part]
        if draw(st.booleans()):
            target.pop(path[-1], None)
        else:
            target[path[-1]] = draw(json_values)
    elif kind == "key":
        record["oss"]["object"]["key"] = draw(keys)
    else:
        record["oss"]["bucket"]["name"] = draw(st.sampled_from(["my-bucket\r\n", "my\nbucket", "evil\r\nbucket"]))
        record["oss"]["object"]["key"] = draw(keys)
    return record


@st.composite
def payloads(draw, good_key: str):
    """(payload bytes, whether the good record is in it)."""
    good = oss_record("my-bucket", good_key)
    shape = draw(st.sampled_from(["oss", "eventbridge", "s3", "bytes", "broken-utf8", "deep"]))
    bad = [_bad_record(draw) for _ in range(draw(st.integers(0, 4)))]
    if shape == "oss":
        records = bad + [good]
        draw(st.randoms()).shuffle(records)
        return json.dumps({"events": records}).encode(), True
    if shape == "eventbridge":
        events = [{"specversion": "1.0", "source": "acs.oss", "type": "oss:ObjectCreated:PutObject", "data": r}
                  for r in bad + [good]]
        return json.dumps(events).encode(), True
    if shape == "s3":
        key = draw(keys)
        encoded = draw(st.sampled_from([quote(key, errors="surrogatepass"), key, key + "%0A%0D%00%FF"]))
        records = s3_event("my-bucket", "placeholder")["Records"]
        records[0]["s3"]["object"]["key"] = encoded
        return json.dumps({"Records": records + [{**records[0], "s3": {**records[0]["s3"], "object": {
            "key": quote(good_key)}}}]}).encode(), True
    if shape == "bytes":
        return draw(st.binary(max_size=200)), False
    if shape == "broken-utf8":
        return json.dumps({"events": [good]}).encode().replace(b'"key": "', b'"key": "\xff\xfe', 1), False
    depth = draw(st.integers(1000, 50_000))
    return b'{"events": [' + b"[" * depth + b"]" * depth + b"]}", False


def _assert_clean(url: str) -> None:
    assert not any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in url), repr(url)
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.hostname in DOMAINS, url


def test_hostile_event_payloads(tmp_path, make_cdn_double, monkeypatch, measurements):
    started = time.monotonic()
    double = make_cdn_double(quota=10_000_000)
    cfg = config(double.base_url, f"sqlite:///{tmp_path / 'state.db'}")
    cfg["rules"].append({"bucket": "evil\r\nbucket", "domains": ["img.example.com"]})
    monkeypatch.setenv("PREWARM_CONFIG", str(write_json(tmp_path / "config.json", cfg)))
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", TEST_AK)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", TEST_SK)
    monkeypatch.setattr(entry, "_wiring", None)
    goods: list[str] = []
    seen = {"examples": 0}

    @BOUNDED
    @given(data=st.data())
    def one_invocation(data):
        key = f"good/{len(goods):05d}.js"
        payload, has_good = data.draw(payloads(key))
        seen["examples"] += 1
        json.loads(entry.upload(payload))  # never raises, always answers its report
        if has_good:
            goods.append(key)

    one_invocation()
    # Big ones, once each: a very large array of junk around one good record, and a deep key.
    big = {"events": [None] * 20_000 + [oss_record("my-bucket", "good/big.js")] + [[]] * 20_000}
    json.loads(entry.upload(json.dumps(big).encode()))
    goods.append("good/big.js")
    deep = json.dumps(oss_record("my-bucket", "x")).replace('"key": "x"', '"key": ' + "[" * 500 + "]" * 500)
    good = json.dumps(oss_record("my-bucket", "good/deep.js"))
    json.loads(entry.upload(f'{{"events": [{deep}, {good}]}}'.encode()))  # a 500-deep key beside a valid record
    goods.append("good/deep.js")

    flushed = json.loads(entry.flush(b'{"all": true}'))
    entry._wiring.store().close()
    sent = [(r.params.get("ObjectPath", ""), r.urls) for r in double.received if r.action == "PushObjectCache"]
    for object_path, urls in sent:
        assert "\r" not in object_path and object_path.count("\n") == len(urls) - 1
        for url in urls:
            _assert_clean(url)
    pushed = set(double.pushed_urls)
    missing = [k for k in goods if f"https://cdn.example.com/{k}" not in pushed]
    assert not missing, missing[:5]
    measurements.record(
        "hostile-events",
        tried="OSS/EventBridge/S3 payloads with wrong types, missing fields, nulls, huge keys, every control "
              "character, CR/LF in keys and bucket names, lone surrogates, invalid UTF-8, non-JSON bytes, nesting "
              "up to 50,000 deep, 40,000-item arrays; each with a valid record beside the junk where JSON allows",
        runs=f"{seen['examples'] + 2} upload invocations, {len(sent)} PushObjectCache calls",
        lost=len(missing), duplicates="-", bound="-",
        figures=f"crashes 0; valid records pushed {len(goods) - len(missing)}/{len(goods)}; URLs sent "
                f"{sum(len(u) for _, u in sent)}, none with whitespace/control characters or an unconfigured domain; "
                f"flush pushed {flushed['pushed']}, dead-lettered {flushed['dead']}",
        seconds=time.monotonic() - started,
    )


def test_hostile_url_lists_through_the_client(make_cdn_double, measurements):
    started = time.monotonic()
    double = make_cdn_double(quota=10_000_000)
    settings_ = parse_settings(config(double.base_url, "sqlite:///:memory:", cdn={"max_retries": 0}))
    client = CdnClient(Credentials(TEST_AK, TEST_SK), settings_.cdn)
    adapter = CdnAdapter(client, settings_.cdn)
    counts = {"refused locally": 0, "sent": 0, "examples": 0}
    url = st.one_of(
        st.builds(lambda d, k: f"https://{d}/{k}", st.sampled_from(sorted(DOMAINS)), keys),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=60),
    )

    @BOUNDED
    @given(st.lists(url, min_size=1, max_size=8))
    def one_push(urls):
        counts["examples"] += 1
        before = double.calls("PushObjectCache")
        try:
            client.push_object_cache(urls)
        except InvalidUrlError:
            counts["refused locally"] += 1
            assert double.calls("PushObjectCache") == before  # refused before any call
        except CdnError:
            counts["sent"] += 1
        else:
            counts["sent"] += 1
        outcome = adapter.push(urls)  # never raises; every URL has exactly one fate
        fates = [set(outcome.accepted), set(outcome.rejected), set(outcome.unsent), set(outcome.ambiguous)]
        assert set().union(*fates) == set(urls) and sum(map(len, fates)) == len(set(urls))

    one_push()
    for record in double.received:
        if record.action == "PushObjectCache":
            assert "\r" not in record.params["ObjectPath"]
            for sent in record.urls:
                assert not any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in sent), repr(sent)
    measurements.record(
        "hostile-client",
        tried="lists of arbitrary text and of configured-domain URLs with control characters, CR/LF, huge paths "
              "through CdnClient.push_object_cache and CdnAdapter.push",
        runs=f"{counts['examples']} lists, {double.calls('PushObjectCache')} calls reached the double",
        lost=0, duplicates="-", bound="-",
        figures=f"refused locally before any call {counts['refused locally']}; sent {counts['sent']}; "
                "raw whitespace/control characters received by the double 0; every URL exactly one fate",
        seconds=time.monotonic() - started,
    )


NUMBERS = ["window_seconds", "lease_seconds", "dedupe_seconds", "give_up_after_seconds",
           "refresh_settle_seconds", "cdn.max_urls_per_call", "cdn.daily_quota", "cdn.quota_reserve",
           "cdn.max_urls_per_refresh", "cdn.daily_refresh_quota", "cdn.connect_timeout",
           "cdn.read_timeout", "cdn.max_retries", "cdn.retry_budget_seconds", "cdn.calls_per_second"]
KNOWN = {"window_seconds", "store", "cdn", "rules", "lease_seconds", "dedupe_seconds", "retry_after_seconds",
         "give_up_after_seconds", "refresh_before_prefetch", "on_delete", "refresh_settle_seconds",
         "max_attempts", "include_append", "flush_function"}


@st.composite
def bad_configs(draw):
    """(config, text the one-line error must contain)."""
    base = {"rules": [{"bucket": "b", "domains": ["cdn.example.com"]}], "cdn": {}}
    kind = draw(st.sampled_from(["unknown", "wildcard", "empty-domains", "negative", "zero-window", "wrong-type",
                                 "retired"]))
    if kind == "retired":  # a config written for max_attempts: refused, naming what replaced it
        base["max_attempts"] = draw(st.integers(1, 20) | json_values)
        return base, "give_up_after_seconds"
    if kind == "unknown":
        name = draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=15))
        where = draw(st.sampled_from(["top", "cdn", "rule"]))
        target = {"top": base, "cdn": base["cdn"], "rule": base["rules"][0]}[where]
        known = {"top": KNOWN, "cdn": set(), "rule": set()}[where]
        if name in known or name in target or (where == "cdn" and name in {n.split(".")[1] for n in NUMBERS if "." in n}
                                               | {"endpoint", "version", "signature", "area", "l2_preload", "with_header"}) \
                or (where == "rule" and name in {"bucket", "domains", "scheme", "prefix", "suffixes", "exclude",
                                                 "strip_prefix", "path_prefix"}):
            name = "zz" + name + "_unknown"
        target[name] = 1
        return base, "unknown key"
    if kind == "wildcard":
        domain = draw(st.sampled_from(["*.example.com", "*", "a.*.com", "*cdn.example.com"]))
        base["rules"][0]["domains"] = ["ok.example.com", domain]
        return base, "rules[0].domains[1]"
    if kind == "empty-domains":
        base["rules"][0]["domains"] = draw(st.sampled_from([[], None, ""]))
        return base, "rules[0].domains"
    if kind == "zero-window":
        base["window_seconds"] = 0
        return base, "window_seconds: must be at least 1"
    name = draw(st.sampled_from(NUMBERS))
    value = draw(st.integers(max_value=-1) | st.floats(max_value=-0.001, allow_nan=False)) if kind == "negative" \
        else draw(st.sampled_from(["10", [], {}, True, None if False else "x"]))
    if name.startswith("cdn."):
        base["cdn"][name[4:]] = value
    else:
        base[name] = value
    return base, name


def test_bad_config_refused_with_one_line(measurements):
    started = time.monotonic()
    tried = {"n": 0}

    @BOUNDED
    @given(bad_configs())
    def one_config(case):
        data, expected = case
        tried["n"] += 1
        with pytest.raises(ConfigError) as caught:
            parse_settings(data)
        text = str(caught.value)
        assert "\n" not in text and expected in text, text

    one_config()
    measurements.record(
        "hostile-config",
        tried="unknown keys (top, cdn, rule), wildcard domains, empty/null domain lists, negative and wrong-typed "
              "numbers for every numeric key, a window of 0, the retired max_attempts",
        runs=f"{tried['n']} configs",
        lost="-", duplicates="-", bound="-",
        figures="every one refused at load with one ConfigError line naming the key",
        seconds=time.monotonic() - started,
    )
