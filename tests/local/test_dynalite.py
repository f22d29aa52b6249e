"""The DynamoDB emulator the tests share outlives a client that drops its connection mid-request."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import boto3

from handler.local.dynalite import Dynalite


def _table_names(endpoint: str) -> list[str]:
    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return client.list_tables()["TableNames"]


def _drop_mid_request(endpoint: str) -> None:
    """Headers and half the body of a DynamoDB call, then the connection closes (a killed client)."""
    parts = urlsplit(endpoint)
    body = b'{"TableName": "t"}'
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: %s\r\nX-Amz-Target: DynamoDB_20120810.DescribeTable\r\n"
                     b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\n\r\n%s"
                     % (parts.netloc.encode(), len(body) * 2, body))


def test_a_client_dropping_its_connection_mid_request_does_not_end_the_emulator():
    emulator = Dynalite()
    endpoint = emulator.start()
    try:
        tables = _table_names(endpoint)
        for _ in range(3):
            _drop_mid_request(endpoint)
        time.sleep(0.5)  # the server learns of the dropped connection asynchronously
        assert emulator.died() is None
        assert _table_names(endpoint) == tables  # still answering real calls
    finally:
        emulator.stop()
