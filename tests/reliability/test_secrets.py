"""Scenario: the secret key and the STS token appear nowhere: output, logs, errors, reprs, raw or percent-encoded."""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import quote, quote_plus

import pytest

from handler import entry
from handler.cdn import errors
from handler.cdn.client import CdnClient
from handler.cdn.pushing import CdnAdapter
from handler.cdn.signing import percent_encode
from handler.credentials import Credentials
from handler.settings import parse_settings

from .support import cli, cli_env, config, keys_payload, write_json

AK = "rel-ak-visible"
SECRET = "Rel+Secret/Zq9=Mark~7f3a"
TOKEN = "CAIS+Rel/StsToken=Q7x&y%z~9"
ECHO_MODES = ["json500", "xml500", "text500", "sig400", "code-echo", "request-id-echo"]


def _forms(value: str) -> set[str]:
    once = percent_encode(value)
    return {value, once, percent_encode(once), quote(value, safe=""), quote_plus(value), quote_plus(once)}


NEEDLES = _forms(SECRET) | _forms(TOKEN)


class _Echo(BaseHTTPRequestHandler):
    """A misbehaving endpoint that quotes the whole request back in its error answers."""

    protocol_version = "HTTP/1.1"
    mode = "json500"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("latin-1")
        request = "POST /\n" + "".join(f"{k}: {v}\n" for k, v in self.headers.items()) + "\n" + body
        twice = percent_encode(percent_encode(request))
        status, ctype = 500, "application/json"
        if self.mode == "json500":
            payload = json.dumps({"RequestId": "R1", "Code": "InternalError", "Message": f"echo: {request}"})
        elif self.mode == "xml500":
            ctype = "text/xml"
            payload = f"<Error><RequestId>R2</RequestId><Code>InternalError</Code><Message>{request}</Message></Error>"
        elif self.mode == "text500":
            ctype, payload = "text/plain", request
        elif self.mode == "sig400":
            status = 400
            payload = json.dumps({"RequestId": "R3", "Code": "SignatureDoesNotMatch",
                                  "Message": f"server string to sign is:POST&%2F&{twice}"})
        elif self.mode == "code-echo":
            payload = json.dumps({"RequestId": "R4", "Code": f"InternalError {request}", "Message": "x"})
        else:
            payload = json.dumps({"RequestId": request, "Code": "InternalError", "Message": "x"})
        data = payload.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-acs-request-id", "echo-" + percent_encode(request)[:200])
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _hits(texts: list[tuple[str, str]]) -> list[str]:
    return [f"{where}: {needle!r}" for where, text in texts for needle in NEEDLES if needle in text]


def test_no_secret_or_token_anywhere(tmp_path, make_cdn_double, echo_server, caplog, monkeypatch, measurements):
    started = time.monotonic()
    texts: list[tuple[str, str]] = []
    env = cli_env({"ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN}, key_id=AK, secret=SECRET)
    good = make_cdn_double(access_key_id=AK, access_key_secret=SECRET, security_token=TOKEN)
    wrong = make_cdn_double(access_key_id=AK, access_key_secret="another-secret", security_token=TOKEN)
    domains = ("cdn.example.com", "gone.example.net")  # the second is refused: dead letters with reasons
    fast = {"read_timeout": 0.2, "max_retries": 1, "retry_budget_seconds": 0.3}

    start = time.time()

    def run_cli(name: str, endpoint: str, signature: str, inject=None) -> None:
        cfg = write_json(tmp_path / f"{name}.json", config(endpoint, f"sqlite:///{tmp_path / name}.db",
                                                           domains=domains, cdn={**fast, "signature": signature}))
        events = write_json(tmp_path / f"{name}-events.json", keys_payload([f"s/{name}/{i}.js" for i in range(3)]))
        # Each injected fault stops one flush; the fourth flush gets through and dead-letters gone.example.net.
        steps = [("ingest", str(events)), ("flush", "--all"), ("flush", "--all", "--json"), ("flush", "--all"),
                 ("flush", "--all", "--json"), ("status",), ("dead-letters",)]
        for n, step in enumerate(steps):
            if inject and n == 1:
                inject()
            # An hour between steps, as between timer flushes: past the back-off of a URL a fault sent back.
            at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 3700 * n))
            for verbose in (("-v",),):
                result = cli(cfg, *step, *verbose, "--now", at, env=env, timeout=60)
                label = f"cli {name} {' '.join(step + verbose)}"
                texts.append((label + " stdout", result.stdout.decode("utf-8", "replace")))
                texts.append((label + " stderr", result.stderr.decode("utf-8", "replace")))

    def faults(double):
        def inject():
            double.reset_faults()
            double.inject("InternalError", 500, count=1)
            double.inject(None, latency=0.4, count=1)  # a timeout
            double.inject(None, drop=True, count=1)
            double.inject("Throttling", 503, count=1)
            double.inject("SignatureDoesNotMatch", 400, count=1)
        return inject

    for signature in ("v3", "v2"):
        run_cli(f"good-{signature}", good.base_url, signature, faults(good))
        run_cli(f"wrong-{signature}", wrong.base_url, signature)  # the double's own SignatureDoesNotMatch
        for mode in ECHO_MODES if signature == "v2" else ["json500", "sig400"]:  # V2 sends the token in the body
            _Echo.mode = mode
            run_cli(f"echo-{mode}-{signature}", echo_server, signature)
    assert any("SignatureDoesNotMatch" in t for _, t in texts)
    assert any("InvalidDomain.NotFound" in t for _, t in texts)

    # The FC entry points, with the role's credentials on the context and DEBUG on the root logger.
    caplog.set_level(logging.DEBUG)
    context = SimpleNamespace(request_id="req", credentials=SimpleNamespace(
        access_key_id=AK, access_key_secret=SECRET, security_token=TOKEN))
    for endpoint, name in [(good.base_url, "fc-good"), (wrong.base_url, "fc-wrong"), (echo_server, "fc-echo")]:
        for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        cfg = write_json(tmp_path / f"{name}.json", config(endpoint, f"sqlite:///{tmp_path / name}.db",
                                                           domains=domains, cdn=fast))
        monkeypatch.setenv("PREWARM_CONFIG", str(cfg))
        monkeypatch.setattr(entry, "_wiring", None)
        modes = ECHO_MODES if name == "fc-echo" else ["-"]
        for mode in modes:
            _Echo.mode = mode
            if name == "fc-good":
                faults(good)()
            texts.append((f"{name} upload", entry.upload(json.dumps(keys_payload([f"fc/{mode}.css"])).encode(), context)))
            texts.append((f"{name} flush", entry.flush(b'{"all": true}', context)))
        entry._wiring.store().close()
    texts += [(f"log {r.name}", r.getMessage() + "".join(traceback.format_exception(*r.exc_info)) if r.exc_info
               else f"log {r.name}: " + r.getMessage()) for r in caplog.records]
    texts.append(("caplog text", caplog.text))

    # The client's errors: str, repr and the whole chained traceback of each, for every echo mode.
    creds = Credentials(AK, SECRET, TOKEN)
    texts += [("Credentials repr", repr(creds)), ("Credentials str", str(creds))]
    raised: set[type] = set()
    for signature in ("v3", "v2"):
        settings = parse_settings(config(echo_server, "sqlite:///:memory:", cdn={**fast, "signature": signature}))
        client = CdnClient(creds, settings.cdn)
        texts.append(("client repr", repr(client)))
        for mode in ECHO_MODES:
            _Echo.mode = mode
            with pytest.raises(errors.CdnError) as caught:
                client.push_object_cache(["https://cdn.example.com/x.js"])
            exc = caught.value
            raised.add(type(exc))
            texts += [(f"{mode} str", str(exc)), (f"{mode} repr", repr(exc)), (f"{mode} args", repr(exc.args)),
                      (f"{mode} traceback", "".join(traceback.format_exception(exc)))]
            outcome = CdnAdapter(client, settings.cdn).push(["https://cdn.example.com/y.js"])
            texts.append((f"{mode} outcome", repr(outcome)))
        client.close()
    assert {errors.FatalConfigError, errors.TransientError} <= raised

    hits = _hits(texts)
    scanned = sum(len(t) for _, t in texts)
    assert hits == [], hits[:10]
    measurements.record(
        "secrets",
        tried="CLI ingest/flush/status/dead-letters with -v (V3 and V2 signing; faults: 500, timeout, "
              "dropped connection, Throttling, SignatureDoesNotMatch; a wrong-secret double; an endpoint echoing the "
              "whole request in Message, XML, plain text, Code, RequestId); FC entry points with DEBUG on the root "
              "logger; str/repr/traceback of the client's errors; Credentials and client reprs",
        runs=f"{len(texts)} texts, {scanned:,} characters",
        lost="-", duplicates="-", bound="-",
        figures=f"hits for the secret or token (raw, percent-encoded once or twice, quote_plus): {len(hits)}; "
                f"error classes seen {sorted(c.__name__ for c in raised)}",
        seconds=time.monotonic() - started,
    )
