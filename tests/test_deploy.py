"""s.yaml and the code package: what `s deploy` ships runs on its own, configured once, with least privilege.

The package tests build dist-style zips with pip (wheels from PyPI, cached in .venv/pip-cache),
unpack them into an empty folder and run the handlers from there with `python -S -E`:
no site-packages, no checkout, nothing but the zip and the standard library.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import jsonschema
import pytest
from deployment_facts import (
    LOGS_ACTION,
    MNS_DESTINATION_ACTION,
    code_api_actions,
    load_s_yaml,
    policy_actions,
    prewarm_config,
    resolve_s_yaml,
)

import function_zip
from handler.local.demo_stores import create_schema
from handler.settings import parse_settings

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "fc3_props_schema.json").read_text(encoding="utf-8"))
S_YAML = load_s_yaml()
VARS = S_YAML["vars"]
RESOURCES = resolve_s_yaml(S_YAML["resources"], VARS)
FUNCTIONS = {name: r["props"] for name, r in RESOURCES.items() if r["component"] == "fc3"}
(ROLE,) = [r["props"] for r in RESOURCES.values() if r["component"] == "ram"]


# --- s.yaml -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_props_are_valid_for_the_fc3_component(name):
    jsonschema.validate(FUNCTIONS[name], SCHEMA)


def test_s_yaml_declares_the_upload_and_flush_handlers_on_python310_from_the_package():
    assert {p["handler"] for p in FUNCTIONS.values()} == {"handler.entry.upload", "handler.entry.flush"}
    for props in FUNCTIONS.values():
        assert props["runtime"] == "python3.10"
        assert (ROOT / props["code"]).resolve() == function_zip.DIST
        module_name, _, attr = props["handler"].rpartition(".")
        assert callable(getattr(__import__(module_name, fromlist=[attr]), attr))


def test_both_functions_get_the_one_configuration_built_from_vars():
    environments = [props["environmentVariables"] for props in FUNCTIONS.values()]
    assert all(env == environments[0] for env in environments)
    raw = S_YAML["resources"]
    assert raw["upload"]["props"]["environmentVariables"] is raw["flush"]["props"]["environmentVariables"]
    settings = parse_settings(prewarm_config(environments[0]))
    region, instance, table = VARS["region"], VARS["ots_instance"], VARS["ots_table"]
    assert settings.store == f"tablestore://{instance}/{table}?endpoint=https://{instance}.{region}.ots-internal.aliyuncs.com"
    assert [(r.bucket, list(r.domains)) for r in settings.rules] == [(VARS["bucket"], json.loads(VARS["domains"]))]
    assert (settings.cdn.daily_quota, settings.cdn.quota_reserve) == (VARS["daily_quota"], VARS["quota_reserve"])
    assert settings.cdn.max_prefetch_per_flush == VARS["max_prefetch_per_flush"]
    assert settings.flush_function is None  # fc2 addresses FC 2.0 services; FC 3.0 functions have none
    assert {p["region"] for p in FUNCTIONS.values()} == {region}


def test_every_environment_variable_set_is_one_the_code_reads():
    from test_template import code_reads_env

    for props in FUNCTIONS.values():
        for variable in props["environmentVariables"]:
            assert code_reads_env(variable), f"{variable} is set by s.yaml but read nowhere in handler/"


def test_s_yaml_triggers_oss_uploads_and_deletes_of_the_bucket_and_a_timer_every_minute():
    (oss,) = FUNCTIONS["upload"]["triggers"]
    assert oss["triggerType"] == "oss"
    assert oss["sourceArn"].endswith(f":{VARS['bucket']}")
    assert oss["triggerConfig"]["events"] == [
        "oss:ObjectCreated:*", "oss:ObjectRemoved:DeleteObject", "oss:ObjectRemoved:DeleteObjects",
    ]
    assert oss["triggerConfig"]["filter"] == {"key": {"prefix": VARS["key_prefix"], "suffix": VARS["key_suffix"]}}
    (timer,) = FUNCTIONS["flush"]["triggers"]
    assert timer["triggerType"] == "timer"
    assert timer["triggerConfig"]["cronExpression"] == "0 */1 * * * *" and timer["triggerConfig"]["enable"] is True


def test_failed_uploads_go_to_the_mns_queue_the_role_may_write_to():
    config = FUNCTIONS["upload"]["asyncInvokeConfig"]
    assert 0 <= config["maxAsyncRetryAttempts"] <= 8
    assert 1 <= config["maxAsyncEventAgeInSeconds"] <= 604800
    queue = config["destinationConfig"]["onFailure"]["destination"]
    assert queue.endswith(f":/queues/{VARS['failed_events_queue']}/messages") and queue.startswith("acs:mns:")
    statements = ROLE["policies"][0]["statement"]
    assert [s["Resource"] for s in statements if s["Action"] == [MNS_DESTINATION_ACTION]] == [queue]


def test_logs_go_to_the_log_store_the_role_may_write_to():
    statements = ROLE["policies"][0]["statement"]
    (resource,) = [s["Resource"] for s in statements if s["Action"] == [LOGS_ACTION]]
    for props in FUNCTIONS.values():
        log = props["logConfig"]
        assert resource.endswith(f":project/{log['project']}/logstore/{log['logstore']}")


def test_the_functions_run_as_the_role_s_yaml_creates():
    for props in FUNCTIONS.values():
        assert props["role"].endswith(f":role/{ROLE['name']}")
    assert ROLE["service"] == "fc.aliyuncs.com"


def test_the_s_yaml_role_allows_exactly_the_api_actions_the_code_calls():
    """Derived from the code. Fails while the role grants an action no code calls, or misses one it does."""
    granted = policy_actions(ROLE["policies"][0]["statement"])
    assert "*" not in granted and not any(a.endswith(":*") for a in granted)
    flush_on_full = parse_settings(prewarm_config(FUNCTIONS["upload"]["environmentVariables"])).flush_function
    assert granted - {LOGS_ACTION, MNS_DESTINATION_ACTION} == code_api_actions(flush_on_full=flush_on_full is not None)


# --- the code package ---------------------------------------------------------------------------

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
FC_RUNTIME_PYTHON = "3.10"


def _runtime_python_or_skip(version: str) -> str:
    try:
        return function_zip.runtime_python(version)
    except SystemExit as missing:
        pytest.skip(str(missing))


def _build(tmp_path: Path, *args: str) -> tuple[Path, str]:
    out = tmp_path / "oss-cdn-prewarm.zip"
    result = subprocess.run(
        [sys.executable, "-m", "function_zip", "--out", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


def _unpack(package: Path, into: Path) -> Path:
    into.mkdir()
    with zipfile.ZipFile(package) as archive:
        archive.extractall(into)
    return into


def _upload_events() -> list[Path]:
    """The demo's upload payloads: every sample but the Timer's and the replay-only failure record."""
    found = []
    for path in sorted(EVENTS.glob("*.json")):
        document = json.loads(path.read_bytes())
        if isinstance(document, dict) and ("triggerTime" in document or "requestContext" in document):
            continue
        found.append(path)
    return found


PROBE = r"""
import json, sys
from handler import entry
reports = {name.rsplit("/", 1)[-1]: json.loads(entry.upload(open(name, "rb").read(), None)) for name in sys.argv[1:]}
import handler.cdn.client, handler.cdn.pushing, handler.flush_request, handler.stores.tablestore
import fc2  # flush_request imports it only when a flush is asked for
sdk_files = {name: sys.modules[name].__file__ for name in ("requests", "fc2", "tablestore", "aiohttp")}
print(json.dumps({"reports": reports, "sdk_files": sdk_files, "path": sys.path, "flush": callable(entry.flush)}))
"""


def _run_probe(python: str, cwd: Path, python_flags: list[str], store: str, env: dict[str, str] | None = None) -> dict:
    config = {
        "store": store,
        "rules": [
            {"bucket": "my-bucket", "domains": ["cdn.example.com"]},
            {"bucket": "my-s3-bucket", "domains": ["img.example.com"]},
        ],
    }
    result = subprocess.run(
        [python, *python_flags, "-c", PROBE, *map(str, _upload_events())],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={"PREWARM_CONFIG": json.dumps(config), "PREWARM_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin", **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _assert_runs_alone_like_the_checkout(
    python: str, unpacked: Path, tmp_path: Path, store: str | None = None, env: dict[str, str] | None = None
) -> None:
    """Only the unpacked folder and the standard library: -S (no site-packages), -E (no PYTHONPATH).
    The package runs on `store` (a fresh SQLite file by default), the checkout on a fresh SQLite file."""
    fresh = tempfile.mkdtemp(dir=tmp_path)
    alone = _run_probe(python, unpacked, ["-S", "-E"], store or f"sqlite:///{fresh}/alone.db", env)
    assert not any("site-packages" in entry or "dist-packages" in entry for entry in alone["path"]), alone["path"]
    assert alone["flush"] is True
    for name, file in alone["sdk_files"].items():
        assert Path(file).resolve().is_relative_to(unpacked.resolve()), f"{name} came from {file}"

    checkout = _run_probe(sys.executable, ROOT, [], f"sqlite:///{fresh}/checkout.db")
    assert alone["reports"] == checkout["reports"]
    assert sum(report["added"] for report in alone["reports"].values()) > 0
    assert all(report["records"] > 0 for report in alone["reports"].values())


@pytest.mark.slow
def test_the_fc_python310_package_alone_runs_the_demo_uploads_and_holds_only_what_runs(
    tmp_path, tablestore_store_url, tablestore_env
):
    """The default build, run by a CPython 3.10 like FC's python3.10 runtime (skipped without one),
    on SQLite and on the Tablestore double through the SDK in the zip."""
    python = _runtime_python_or_skip(FC_RUNTIME_PYTHON)
    package, printed = _build(tmp_path)
    assert "for CPython 3.10 on manylinux2014_x86_64" in printed
    assert f"{package.stat().st_size / 1e6:.1f} MB" in printed
    unpacked = _unpack(package, tmp_path / "code")
    _assert_runs_alone_like_the_checkout(python, unpacked, tmp_path)
    create_schema(tablestore_store_url)
    _assert_runs_alone_like_the_checkout(python, unpacked, tmp_path, tablestore_store_url, tablestore_env)

    names = zipfile.ZipFile(package).namelist()
    handler_files = {n for n in names if n.startswith("handler/")}
    checkout = {p.relative_to(ROOT).as_posix() for p in (ROOT / "handler").rglob("*.py")}
    assert handler_files == {n for n in checkout if not n.startswith("handler/local/")}
    assert not any(n.endswith((".pyc", ".pyo")) or "__pycache__" in n for n in names)
    assert not any(n.split("/")[0] in {"tests", "bench", "events", "dist", "bin"} for n in names)

    distributions = {n.split("/")[0].split("-")[0].lower() for n in names if ".dist-info/" in n}
    assert {"requests", "aliyun_fc2", "tablestore"} <= distributions
    assert "async_timeout" in distributions  # aiohttp needs it below Python 3.11 only
    assert "boto3" not in distributions  # only with --with dynamodb
    assert "numpy" not in distributions and not any(n.startswith("numpy") for n in names)  # never imported
    (tablestore,) = {n.split("/")[0] for n in names if n.startswith("tablestore-") and ".dist-info/" in n}
    assert tablestore.startswith(("tablestore-6.2.", "tablestore-6.3.")), "the pin of pyproject's extra, not FC's 5.4.1"
    linux_extensions = [n for n in names if n.endswith("-x86_64-linux-gnu.so")]
    assert linux_extensions and all(".cpython-310-" in n for n in linux_extensions)


@pytest.mark.slow
def test_a_package_for_this_python_with_dynamodb_alone_runs_the_demo_uploads(tmp_path):
    """Needs no other interpreter: built for the one running the tests, with the optional boto3."""
    package, printed = _build(tmp_path, "--python", THIS_PYTHON, "--with", "dynamodb")
    assert f"for CPython {THIS_PYTHON}" in printed and "boto3" in printed
    unpacked = _unpack(package, tmp_path / "code")
    assert (unpacked / "boto3").is_dir()
    _assert_runs_alone_like_the_checkout(sys.executable, unpacked, tmp_path)


@pytest.mark.slow
def test_bytecode_is_shipped_compiled_for_the_runtime_and_used_as_is(tmp_path):
    """FC's code folder is read-only: the .pyc files in the zip are what saves compiling on each cold start."""
    package, printed = _build(tmp_path, "--python", THIS_PYTHON, "--bytecode")
    tag = sys.implementation.cache_tag
    assert f"with {tag} bytecode" in printed
    names = set(zipfile.ZipFile(package).namelist())
    assert f"handler/__pycache__/entry.{tag}.pyc" in names
    assert not any("/local/" in n for n in names if n.startswith("handler/"))
    unpacked = _unpack(package, tmp_path / "code")
    # Unchecked-hash bytecode is used without looking at the source: a broken source proves it.
    with open(unpacked / "handler" / "entry.py", "a", encoding="utf-8") as source:
        source.write("\nraise SystemExit('the source was compiled instead of using the shipped bytecode')\n")
    probe = "import handler.entry as e; print(e.upload.__code__.co_filename)"
    result = subprocess.run([sys.executable, "-S", "-E", "-B", "-c", probe], cwd=unpacked,
                            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert Path(result.stdout.strip()) == unpacked / "handler" / "entry.py"
