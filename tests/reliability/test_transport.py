"""Scenario: TLS verification is on and cannot be switched off by accident; credentials never go over plain http."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from handler.cdn.client import CdnClient
from handler.cdn.errors import FatalConfigError
from handler.credentials import Credentials
from handler.settings import CdnSettings, ConfigError, parse_settings

from .support import ROOT, cli, cli_env, config, keys_payload, write_json

HANDLER = ROOT / "handler"


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Answering(BaseHTTPRequestHandler):
    """Answers every POST as a successful PushObjectCache would: accepting this would be a silent success."""

    requests_seen = 0

    def do_POST(self):
        type(self).requests_seen += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"RequestId": "R", "PushTaskId": "1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def self_signed_endpoint(tmp_path):
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    server.daemon_threads = True
    handshakes = []
    plain_get_request = server.get_request

    def get_request():
        sock, addr = plain_get_request()
        handshakes.append(addr)
        return context.wrap_socket(sock, server_side=True), addr

    server.get_request = get_request
    server.handle_error = lambda *a: None  # the refused handshakes are expected
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _Answering.requests_seen = 0
    yield f"https://127.0.0.1:{server.server_address[1]}", handshakes, cert
    server.shutdown()
    server.server_close()


def test_plain_http_off_loopback_is_refused_at_load_and_by_the_client():
    for endpoint in ("http://cdn.aliyuncs.com", "http://10.0.0.8:8080", "http://cdn.example.com.127.0.0.1.nip.io"):
        with pytest.raises(ConfigError, match="plain http is allowed only on loopback"):
            parse_settings({"rules": [{"bucket": "b", "domains": ["c.example.com"]}], "cdn": {"endpoint": endpoint}})
        with pytest.raises(ValueError, match="plain http is allowed only on loopback"):
            CdnClient(Credentials("ak", "sk"), CdnSettings(endpoint=endpoint))


def test_self_signed_certificate_is_refused_not_retried(self_signed_endpoint, tmp_path, measurements):
    started = time.monotonic()
    endpoint, handshakes, _ = self_signed_endpoint
    client = CdnClient(Credentials("ak", "sk"), CdnSettings(endpoint=endpoint, max_retries=3, retry_budget_seconds=5))
    with pytest.raises(FatalConfigError) as caught:
        client.push_object_cache(["https://cdn.example.com/a.js"])
    assert caught.value.code == "Local.TLSError"
    assert "certificate verify failed" in str(caught.value)
    assert _Answering.requests_seen == 0 and client.calls_made == 1  # one handshake, refused, not retried
    direct_handshakes = len(handshakes)

    # Through the command line, with the environment variables that switch verification off elsewhere.
    cfg = write_json(tmp_path / "config.json", config(endpoint, f"sqlite:///{tmp_path / 'state.db'}",
                                                      cdn={"max_retries": 3}))
    events = write_json(tmp_path / "e.json", keys_payload(["tls/a.js", "tls/b.js"]))
    env = cli_env({"CURL_CA_BUNDLE": "", "REQUESTS_CA_BUNDLE": "", "PYTHONHTTPSVERIFY": "0"})
    assert cli(cfg, "ingest", str(events), env=env).returncode == 0
    flushed = cli(cfg, "flush", "--all", "--json", env=env)
    assert flushed.returncode == 1, flushed.stderr
    report = json.loads(flushed.stdout)
    assert report["pushed"] == 0 and report["deferred"] == 4 and "Local.TLSError" in report["error"]
    status = json.loads(cli(cfg, "status", "--json", env=env).stdout)
    assert status["pending"] == 4 and status["dead"] == 0  # kept, to be pushed once the endpoint is fixed
    assert _Answering.requests_seen == 0

    measurements.record(
        "transport",
        tried="plain http to 3 non-loopback endpoints (config load and client); https on 127.0.0.1 with a "
              "self-signed certificate, directly and through the CLI with CURL_CA_BUNDLE='', REQUESTS_CA_BUNDLE='', "
              "PYTHONHTTPSVERIFY=0; handler/ source grepped for verify=False / CERT_NONE",
        runs=f"{direct_handshakes} handshake by the client, {len(handshakes)} in all",
        lost=0, duplicates=0, bound="0",
        figures=f"refused as Local.TLSError (not retried); requests answered by the impostor: "
                f"{_Answering.requests_seen}; URLs kept pending {status['pending']}",
        seconds=time.monotonic() - started,
    )


def test_no_verification_switch_in_the_source():
    pattern = re.compile(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context"
                         r"|disable_warnings")
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in sorted(HANDLER.rglob("*.py"))
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []
