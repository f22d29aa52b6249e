"""The official Alibaba Cloud SDKs, unchanged, are accepted by the local CDN API double.

If the double verified signatures by a reading of the spec the SDKs do not share,
these tests would fail: they pin the double to what real clients send.
"""

from __future__ import annotations

import json

import pytest

from fixtures.cdn_double import TEST_AK, TEST_SK

cdn_client = pytest.importorskip("alibabacloud_cdn20180510.client")
cdn_models = pytest.importorskip("alibabacloud_cdn20180510.models")
openapi_models = pytest.importorskip("alibabacloud_tea_openapi.models")

URLS = ["https://cdn.example.com/a.js", "img.example.com/b%20c.png"]


def tea_client(double, *, secret: str = TEST_SK, signature_algorithm: str | None = None, token: str | None = None):
    """The current official client; no retries and short timeouts so a failure cannot hang the suite."""
    from darabonba.policy.retry import RetryOptions

    options = {"signature_algorithm": signature_algorithm} if signature_algorithm else {}
    config = openapi_models.Config(
        access_key_id=TEST_AK,
        access_key_secret=secret,
        security_token=token,
        endpoint=double.base_url.split("//", 1)[1],
        protocol="http",
        connect_timeout=2000,
        read_timeout=5000,
        retry_options=RetryOptions({"retryable": False}),
        **options,
    )
    return cdn_client.Client(config)


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3-default", "v2"])
def test_tea_sdk_push_and_quota_are_accepted(cdn_double, algorithm):
    client = tea_client(cdn_double, signature_algorithm=algorithm)
    pushed = client.push_object_cache(cdn_models.PushObjectCacheRequest(object_path="\n".join(URLS), area="domestic"))
    assert len(pushed.body.push_task_id.split(",")) == 2
    assert cdn_double.pushed_urls == URLS
    quota = client.describe_refresh_quota(cdn_models.DescribeRefreshQuotaRequest()).body
    assert (quota.preload_quota, quota.preload_remain) == ("1000", "998")
    expected = "v3" if algorithm is None else "v2"
    assert [r.signature_version for r in cdn_double.received] == [expected, expected]


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3-default", "v2"])
def test_tea_sdk_with_a_wrong_secret_gets_signature_does_not_match(cdn_double, algorithm):
    client = tea_client(cdn_double, secret="wrong-secret", signature_algorithm=algorithm)
    with pytest.raises(Exception) as raised:
        client.push_object_cache(cdn_models.PushObjectCacheRequest(object_path=URLS[0]))
    assert getattr(raised.value, "code", None) == "SignatureDoesNotMatch"
    assert getattr(raised.value, "status_code", None) == 400
    assert cdn_double.pushed_urls == []


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["v3-default", "v2"])
def test_tea_sdk_sends_the_security_token_the_double_requires(make_cdn_double, algorithm):
    double = make_cdn_double(security_token="sts-token")
    client = tea_client(double, signature_algorithm=algorithm, token="sts-token")
    client.push_object_cache(cdn_models.PushObjectCacheRequest(object_path=URLS[0]))
    assert double.pushed_urls == [URLS[0]]


def test_tea_sdk_reads_task_status(cdn_double):
    client = tea_client(cdn_double)
    task_ids = client.push_object_cache(cdn_models.PushObjectCacheRequest(object_path=URLS[0])).body.push_task_id
    body = client.describe_refresh_task_by_id(cdn_models.DescribeRefreshTaskByIdRequest(task_id=task_ids)).body
    assert body.total_count == 1
    assert (body.tasks[0].object_path, body.tasks[0].object_type) == (URLS[0], "preload")


def core_request(double, action: str, **params):
    from aliyunsdkcore.request import CommonRequest

    request = CommonRequest(domain=double.base_url.split("//", 1)[1], version="2018-05-10", action_name=action)
    request.set_protocol_type("http")
    request.set_method("POST")
    for name, value in params.items():
        request.add_query_param(name, value)
    return request


def core_client(secret: str = TEST_SK):
    client_module = pytest.importorskip("aliyunsdkcore.client")
    return client_module.AcsClient(TEST_AK, secret, "cn-hangzhou", auto_retry=False, max_retry_time=0,
                                   timeout=5, connect_timeout=2)


def test_old_core_sdk_common_request_is_accepted(cdn_double):
    client = core_client()
    answer = json.loads(client.do_action_with_exception(core_request(cdn_double, "PushObjectCache", ObjectPath=URLS[0])))
    assert answer["PushTaskId"].isdigit()
    assert cdn_double.pushed_urls == [URLS[0]]
    record = cdn_double.received[0]
    assert record.signature_version == "v2" and record.params["SignatureType"] == ""  # signed like any other
    quota = json.loads(client.do_action_with_exception(core_request(cdn_double, "DescribeRefreshQuota")))
    assert quota["PreloadRemain"] == "999"


def test_old_core_sdk_with_a_wrong_secret_is_refused(cdn_double):
    from aliyunsdkcore.acs_exception.exceptions import ServerException

    with pytest.raises(ServerException) as raised:
        core_client("wrong-secret").do_action_with_exception(core_request(cdn_double, "PushObjectCache", ObjectPath=URLS[0]))
    assert raised.value.get_error_code() == "SignatureDoesNotMatch"
    assert cdn_double.pushed_urls == []
