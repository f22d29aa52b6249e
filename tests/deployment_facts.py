"""What the code needs from a deployment, read from the code itself, and the two deployment files resolved.

`code_api_actions()` parses the modules that talk to Alibaba Cloud, so a role in s.yaml or
template.yml is compared with what the code can call, never with a second hand-typed list.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CDN_CLIENT = ROOT / "handler" / "cdn" / "client.py"
TABLESTORE_ADAPTER = ROOT / "handler" / "stores" / "tablestore.py"
FLUSH_REQUEST = ROOT / "handler" / "flush_request.py"
# Run by `python -m handler init-store` with an operator's credentials, never by the functions.
OPERATOR_ONLY_OTS = {"create_table"}
# What the platform does with the function's role, not the code: write its logs, and deliver a
# failed asynchronous invocation to an MNS queue destination.
LOGS_ACTION = "log:PostLogStoreLogs"
MNS_DESTINATION_ACTION = "mns:SendMessage"

ACCOUNT_ID = "1234567890123456"


def _string_first_args(path: Path, method_names: set[str]) -> set[str]:
    """The string literals passed first to calls of `<anything>.<method>(...)` in the module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in method_names
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _method_calls(path: Path, receiver: str) -> set[str]:
    """Names of the methods called on a variable named `receiver` in the module."""
    return {
        node.func.attr
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == receiver
    }


def _pascal(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def cdn_actions() -> set[str]:
    """Every RPC action handler/cdn/client.py passes to `call("Action", ...)`."""
    return {f"cdn:{action}" for action in _string_first_args(CDN_CLIENT, {"call"})}


def ots_actions() -> set[str]:
    """Every SDK operation the Tablestore adapter sends through `_call` / `_write`, as RAM actions."""
    operations = _string_first_args(TABLESTORE_ADAPTER, {"_call", "_write"}) - OPERATOR_ONLY_OTS
    return {f"ots:{_pascal(operation)}" for operation in operations}


def fc_actions() -> set[str]:
    """The FC API calls flush-on-full makes on its fc2 client."""
    return {f"fc:{_pascal(method)}" for method in _method_calls(FLUSH_REQUEST, "client")}


def code_api_actions(*, flush_on_full: bool) -> set[str]:
    """The API actions the deployed functions can call; FC's only when flush-on-full is configured."""
    return cdn_actions() | ots_actions() | (fc_actions() if flush_on_full else set())


def policy_actions(statements: list[dict]) -> set[str]:
    return {action for statement in statements for action in statement["Action"]}


# --- template.yml, with its Parameters' defaults substituted ------------------------------------

TEMPLATE_PSEUDO = {"ALIYUN::Region": "cn-hangzhou", "ALIYUN::AccountId": ACCOUNT_ID}


def load_template() -> dict:
    return yaml.safe_load((ROOT / "template.yml").read_text(encoding="utf-8"))


def resolve_template(node, parameters: dict):
    """`Ref` and `Fn::Sub` (string form) evaluated with the parameters' defaults and two pseudo parameters."""
    values = {**TEMPLATE_PSEUDO, **{name: spec.get("Default") for name, spec in parameters.items()}}
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            return values[node["Ref"]]
        if set(node) == {"Fn::Sub"}:
            return re.sub(r"\$\{([\w:]+)\}", lambda m: str(values[m.group(1)]), node["Fn::Sub"])
        return {key: resolve_template(value, parameters) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_template(item, parameters) for item in node]
    return node


# --- s.yaml, with its vars and the account id substituted ---------------------------------------


def load_s_yaml() -> dict:
    return yaml.safe_load((ROOT / "s.yaml").read_text(encoding="utf-8"))


def resolve_s_yaml(node, variables: dict):
    """`${vars.NAME}` and `${config('AccountID')}` substituted, as Serverless Devs does at deploy time."""
    if isinstance(node, dict):
        return {key: resolve_s_yaml(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_s_yaml(item, variables) for item in node]
    if isinstance(node, str):
        node = node.replace("${config('AccountID')}", ACCOUNT_ID)

        def var(match: re.Match) -> str:
            if match.group(1) not in variables:
                raise KeyError(f"s.yaml uses ${{vars.{match.group(1)}}}, which vars does not define")
            return str(variables[match.group(1)])

        resolved = re.sub(r"\$\{vars\.(\w+)\}", var, node)
        assert "${" not in resolved, f"unresolved variable in {node!r}"
        return resolved
    return node


def prewarm_config(environment: dict) -> dict:
    return json.loads(environment["PREWARM_CONFIG"])
