"""Configuration is validated once, up front, with one line naming the key."""

import json

import pytest

from handler.settings import ConfigError, load_settings, parse_settings

RULE = {"bucket": "my-bucket", "domains": ["cdn.example.com"]}


def test_defaults_follow_the_documented_contract():
    settings = parse_settings({"rules": [RULE]})
    assert settings.window_seconds == 60
    assert settings.store == "sqlite:///.prewarm/state.db"
    assert settings.cdn.endpoint == "https://cdn.aliyuncs.com"
    assert settings.cdn.version == "2018-05-10"
    assert settings.cdn.signature == "v3"
    assert settings.cdn.max_urls_per_call == 100
    assert settings.cdn.daily_limit == 1000
    rule = settings.rules[0]
    assert (rule.scheme, rule.prefix, rule.suffixes, rule.exclude) == ("https", "", (), ())


def test_the_readme_example_loads(tmp_path):
    readme = open("README.md", encoding="utf-8").read()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "config.yml"
    path.write_text(example, encoding="utf-8")
    settings = load_settings(path)
    assert settings.cdn.area == "domestic"
    assert settings.rules[0].domains == ("cdn.example.com",)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"rules": [{"bucket": "b", "domains": ["*.example.com"]}]}, "rules[0].domains[0]: wildcard"),
        ({"rules": [{"bucket": "b", "domains": []}]}, "rules[0].domains: at least one"),
        ({"rules": [{"bucket": "b", "domains": ["https://cdn.example.com/x"]}]}, "not a host name"),
        ({"rules": [RULE], "window_seconds": 0}, "window_seconds: must be at least 1"),
        ({"rules": [RULE], "cdn": {"daily_quota": -5}}, "cdn.daily_quota: must be at least 1"),
        ({"rules": [RULE], "cdn": {"quota_reserve": -1}}, "cdn.quota_reserve: must be at least 0"),
        ({"rules": [RULE], "cdn": {"quota_reserve": 1000}}, "leaves nothing"),
        ({"rules": [RULE], "cdn": {"max_url_per_call": 10}}, "did you mean max_urls_per_call"),
        ({"rules": [RULE], "windows_seconds": 10}, "windows_seconds: unknown key"),
        ({"rules": [RULE], "cdn": {"signature": "v4"}}, "cdn.signature"),
        ({"rules": [RULE], "cdn": {"endpoint": "http://cdn.aliyuncs.com"}}, "plain http is allowed only on loopback"),
        ({"rules": [RULE], "cdn": {"endpoint": "ftp://x"}}, "not an https URL"),
        ({"rules": [RULE], "store": "redis://x"}, "store:"),
        ({"rules": []}, "rules: at least one rule"),
        ({"rules": [RULE], "window_seconds": True}, "whole number"),
        ({"rules": [{"bucket": "", "domains": ["a.com"]}]}, "rules[0].bucket"),
        ([1, 2], "config: must be a mapping"),
    ],
)
def test_bad_config_is_refused_with_one_clear_line(config, message):
    with pytest.raises(ConfigError) as caught:
        parse_settings(config)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_loopback_http_is_allowed_for_the_local_double():
    settings = parse_settings({"rules": [RULE], "cdn": {"endpoint": "http://127.0.0.1:8080/"}})
    assert settings.cdn.endpoint == "http://127.0.0.1:8080"


def test_inline_json_from_the_environment_and_store_override():
    env = {"PREWARM_CONFIG": json.dumps({"rules": [RULE]}), "PREWARM_STORE": "sqlite:///x.db"}
    settings = load_settings(env=env)
    assert settings.store == "sqlite:///x.db"


def test_missing_or_unreadable_config_says_so(tmp_path):
    with pytest.raises(ConfigError, match="no configuration"):
        load_settings(env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yml")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_settings(broken)


@pytest.mark.parametrize("value", [8, 1, None, "3"])
def test_retired_max_attempts_is_refused_naming_its_replacement(value):
    """The core gives up after a time, not after a count: a config still counting attempts is refused."""
    with pytest.raises(ConfigError) as caught:
        parse_settings({"rules": [RULE], "max_attempts": value})
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("max_attempts: retired") and "give_up_after_seconds" in text


def test_give_up_after_seconds_replaces_max_attempts():
    settings = parse_settings({"rules": [RULE], "give_up_after_seconds": 3600})
    assert settings.give_up_after_seconds == 3600
    assert not hasattr(settings, "max_attempts")
    assert parse_settings({"rules": [RULE]}).give_up_after_seconds == 3 * 86400


def test_retired_retry_after_seconds_is_refused_with_one_line():
    with pytest.raises(ConfigError) as refused:
        parse_settings({"rules": [RULE], "retry_after_seconds": 60})
    assert str(refused.value).startswith("retry_after_seconds: retired") and "\n" not in str(refused.value)
