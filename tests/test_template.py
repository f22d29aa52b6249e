"""template.yml deploys what the code is: real handlers, environment the code reads, least privilege, one config."""

import importlib
import json
import re
from pathlib import Path

import pytest
from deployment_facts import (
    LOGS_ACTION,
    MNS_DESTINATION_ACTION,
    code_api_actions,
    load_template,
    policy_actions,
    resolve_template,
)

import function_zip
from handler.settings import parse_settings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = load_template()
PARAMETERS = TEMPLATE["Parameters"]


def _resources_of(type_name):
    found = {}
    for name, resource in TEMPLATE["Resources"].items():
        if resource.get("Type") == type_name:
            found[name] = resource
        for child_name, child in resource.items():
            if isinstance(child, dict) and child.get("Type") == type_name:
                found[child_name] = child
    return found


FUNCTIONS = {name: resolve_template(f, PARAMETERS) for name, f in _resources_of("Aliyun::Serverless::Function").items()}
SERVICE_NAME, SERVICE = next(iter(_resources_of("Aliyun::Serverless::Service").items()))
SERVICE = resolve_template(SERVICE, PARAMETERS)


def code_reads_env(name):
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
def test_the_code_is_the_package_dev_py_builds(name):
    code_uri = FUNCTIONS[name]["Properties"]["CodeUri"]
    assert (ROOT / code_uri).resolve() == function_zip.DIST


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_handler_resolves_to_a_callable_that_the_package_ships(name):
    module_name, _, attr = FUNCTIONS[name]["Properties"]["Handler"].rpartition(".")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attr))
    shipped_as = Path(module.__file__).resolve().relative_to(ROOT).as_posix()
    assert not function_zip._skipped(shipped_as), f"{shipped_as} is left out of the package"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_environment_variable_set_is_one_the_code_reads(name):
    variables = FUNCTIONS[name]["Properties"].get("EnvironmentVariables", {})
    assert variables, "the functions are configured through the environment"
    for variable in variables:
        assert code_reads_env(variable), f"{variable} is set by template.yml but read nowhere in handler/"


def test_both_functions_get_one_configuration_built_from_the_parameters():
    raw = load_template()["Resources"][SERVICE_NAME]
    assert raw["upload"]["Properties"]["EnvironmentVariables"] is raw["flush"]["Properties"]["EnvironmentVariables"]
    config = json.loads(FUNCTIONS["upload"]["Properties"]["EnvironmentVariables"]["PREWARM_CONFIG"])
    settings = parse_settings(config)
    assert settings.store == (
        "tablestore://cdnprewarm/prewarm_state?endpoint=https://cdnprewarm.cn-hangzhou.ots-internal.aliyuncs.com"
    )
    assert settings.rules[0].bucket == PARAMETERS["BucketName"]["Default"]
    assert list(settings.rules[0].domains) == json.loads(PARAMETERS["CdnDomains"]["Default"])
    assert settings.cdn.daily_quota == PARAMETERS["DailyQuota"]["Default"]
    assert settings.cdn.quota_reserve == PARAMETERS["QuotaReserve"]["Default"]
    assert settings.cdn.max_prefetch_per_flush == PARAMETERS["MaxPrefetchPerFlush"]["Default"]
    target = settings.flush_function
    assert (target.service, target.function) == (SERVICE_NAME, "flush")


def test_every_parameter_is_used():
    text = (ROOT / "template.yml").read_text(encoding="utf-8")
    body = text[text.index("Resources:"):]
    for name in PARAMETERS:
        assert f"${{{name}}}" in body or f"Ref: {name}" in body, f"parameter {name} is declared but not used"


def test_triggers_oss_uploads_and_deletes_and_a_timer_every_minute():
    upload_events = FUNCTIONS["upload"]["Events"]
    (oss,) = [t["Properties"] for t in upload_events.values() if t["Type"] == "OSS"]
    assert oss["Events"] == ["oss:ObjectCreated:*", "oss:ObjectRemoved:DeleteObject", "oss:ObjectRemoved:DeleteObjects"]
    assert oss["BucketName"] == PARAMETERS["BucketName"]["Default"]
    assert set(oss["Filter"]["Key"]) == {"Prefix", "Suffix"}
    (timer,) = [t["Properties"] for t in FUNCTIONS["flush"]["Events"].values() if t["Type"] == "Timer"]
    assert timer["CronExpression"] == "0 */1 * * * *"
    assert timer["Enable"] is True


def test_failed_uploads_go_to_an_mns_queue_after_bounded_retries():
    config = FUNCTIONS["upload"]["Properties"]["AsyncConfiguration"]
    assert 0 <= config["MaxAsyncRetryAttempts"] <= 8
    assert 1 <= config["MaxAsyncEventAgeInSeconds"] <= 604800
    assert re.fullmatch(r"acs:mns:cn-hangzhou:\d+:/queues/[\w-]+/messages", config["Destination"]["OnFailure"])


def test_the_role_allows_exactly_the_api_actions_the_code_calls():
    """Derived from the code. Fails while the role grants an action no code calls, or misses one it does."""
    statements = SERVICE["Properties"]["Policies"][0]["Statement"]
    granted = policy_actions(statements)
    assert "*" not in granted and not any(a.endswith(":*") for a in granted)
    platform = {LOGS_ACTION, MNS_DESTINATION_ACTION}
    assert granted - platform == code_api_actions(flush_on_full=True)
    assert SERVICE["Properties"]["LogConfig"]["Logstore"]


def test_each_statement_is_scoped_to_its_resource():
    for statement in SERVICE["Properties"]["Policies"][0]["Statement"]:
        services = {action.split(":")[0] for action in statement["Action"]}
        assert len(services) == 1
        (service,) = services
        if service != "cdn":  # the CDN API's prefetch and quota actions have no resource-level scope
            assert statement["Resource"].startswith(f"acs:{service}:cn-hangzhou:"), statement
