"""template.yml deploys what the code is: real handlers, environment the code reads, least privilege."""

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from handler.settings import parse_settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = yaml.safe_load((ROOT / "template.yml").read_text(encoding="utf-8"))


def _resources_of(type_name):
    found = {}
    for name, resource in TEMPLATE["Resources"].items():
        if resource.get("Type") == type_name:
            found[name] = resource
        for child_name, child in resource.items():
            if isinstance(child, dict) and child.get("Type") == type_name:
                found[child_name] = child
    return found


FUNCTIONS = _resources_of("Aliyun::Serverless::Function")
SERVICE = next(iter(_resources_of("Aliyun::Serverless::Service").values()))


def _code_reads_env(name):
    """The name is a string literal in a handler module that reads the environment."""
    literal = re.compile(rf"""["']{re.escape(name)}["']""")
    for path in (ROOT / "handler").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if literal.search(text) and "environ" in text:
            return True
    return False


def test_the_template_declares_an_upload_and_a_flush_function():
    handlers = {props["Properties"]["Handler"] for props in FUNCTIONS.values()}
    assert handlers == {"handler.entry.upload", "handler.entry.flush"}
    for function in FUNCTIONS.values():
        assert function["Properties"]["Runtime"] == "python3.10"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_handler_resolves_to_a_callable_under_its_code_uri(name, monkeypatch):
    props = FUNCTIONS[name]["Properties"]
    code_dir = (ROOT / props["CodeUri"]).resolve()
    module_name, _, attr = props["Handler"].rpartition(".")
    monkeypatch.syspath_prepend(str(code_dir))
    for loaded in [m for m in sys.modules if m == "handler" or m.startswith("handler.")]:
        monkeypatch.delitem(sys.modules, loaded)
    module = importlib.import_module(module_name)
    assert Path(module.__file__).resolve().is_relative_to(code_dir)
    assert callable(getattr(module, attr))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_environment_variable_set_is_one_the_code_reads(name):
    variables = FUNCTIONS[name]["Properties"].get("EnvironmentVariables", {})
    assert variables, "the functions are configured through the environment"
    for variable in variables:
        assert _code_reads_env(variable), f"{variable} is set by template.yml but read nowhere in handler/"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_embedded_config_is_valid(name):
    settings = parse_settings(json.loads(FUNCTIONS[name]["Properties"]["EnvironmentVariables"]["PREWARM_CONFIG"]))
    assert settings.store.startswith("tablestore://"), "production defaults to Tablestore"


def test_triggers_oss_uploads_and_a_timer_every_minute():
    events = {
        trigger["Type"]: trigger["Properties"]
        for function in FUNCTIONS.values()
        for trigger in function.get("Events", {}).values()
    }
    assert events["OSS"]["Events"] == ["oss:ObjectCreated:*"]
    assert set(events["OSS"]["Filter"]["Key"]) == {"Prefix", "Suffix"}
    assert events["Timer"]["CronExpression"] == "0 */1 * * * *"
    assert events["Timer"]["Enable"] is True


def test_the_role_allows_only_the_cdn_actions_the_client_calls():
    statements = SERVICE["Properties"]["Policies"][0]["Statement"]
    actions = {action for statement in statements for action in statement["Action"]}
    cdn_actions = {a for a in actions if a.startswith("cdn:")}
    assert cdn_actions == {"cdn:PushObjectCache", "cdn:DescribeRefreshQuota", "cdn:DescribeRefreshTaskById"}
    assert "*" not in actions and not any(a.endswith(":*") for a in actions)
    assert SERVICE["Properties"]["LogConfig"]["Logstore"]
