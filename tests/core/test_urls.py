"""Record + rules → canonical CDN URLs: one encoding, the users' pain list as vectors, no surprises."""

from __future__ import annotations

import json
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventdata import eventbridge_event, load_event, oss_event, s3_event
from handler.events import ObjectWritten, parse_event
from handler.settings import Rule
from handler.urls import MAX_URL_LENGTH, cdn_path, encode_path, url_problem, urls_for

CDN = Rule(bucket="my-bucket", domains=("cdn.example.com",))
IMG = Rule(bucket="my-s3-bucket", domains=("img.example.com",))


def record(key: str, bucket: str = "my-bucket") -> ObjectWritten:
    return ObjectWritten(bucket=bucket, key=key, event_name="ObjectCreated:PutObject", source="oss",
                         event_time=None, etag=None, size=None)


def urls(key: str, *rules: Rule) -> list[str]:
    mapped = urls_for(record(key), rules or (CDN,))
    assert mapped.refused == {}
    return mapped.urls


# --- encoding vectors: the users' pain list -----------------------------------------------------------

VECTORS = [
    ("视频/第1集.mp4", "%E8%A7%86%E9%A2%91/%E7%AC%AC1%E9%9B%86.mp4"),
    ("read me.txt", "read%20me.txt"),
    ("a+b.txt", "a%2Bb.txt"),
    ("100%.txt", "100%25.txt"),
    ("literal%20.txt", "literal%2520.txt"),  # the key is the raw name: never taken as already encoded
    ("a%2Fb", "a%252Fb"),
    ("issue#42.html", "issue%2342.html"),
    ("what?.html", "what%3F.html"),
    ("~user/a-b_c.d", "~user/a-b_c.d"),
    ("smile😀.png", "smile%F0%9F%98%80.png"),
    ("line\nbreak.txt", "line%0Abreak.txt"),
    ("cr\r\ttab.txt", "cr%0D%09tab.txt"),
    ("nul\x00del\x7f.bin", "nul%00del%7F.bin"),
    ("a//b", "a//b"),
    ("/leading.txt", "/leading.txt"),
    ("semi;colon,comma&amp=eq@at:colon", "semi%3Bcolon%2Ccomma%26amp%3Deq%40at%3Acolon"),
    ("quote'\"back\\slash", "quote%27%22back%5Cslash"),
    ("paren(1)[2]{3}!*$", "paren%281%29%5B2%5D%7B3%7D%21%2A%24"),
    ("café", "caf%C3%A9"),
    ("e\u0301", "e%CC%81"),  # decomposed form stays decomposed: the object name is exact
    ("zero\u200bwidth", "zero%E2%80%8Bwidth"),
    ("ABCxyz0123456789-._~", "ABCxyz0123456789-._~"),
]


@pytest.mark.parametrize("key, path", VECTORS)
def test_encode_path_vectors(key, path):
    assert encode_path(key) == path


@pytest.mark.parametrize("key, path", VECTORS)
def test_url_of_each_vector_key(key, path):
    assert urls(key) == [f"https://cdn.example.com/{path}"]


def test_encoding_uses_upper_case_hex():
    assert encode_path("é") == "%C3%A9" and encode_path("\xff") == "%C3%BF"


def test_lone_surrogate_is_encoded_without_raising_and_refused_by_urls_for():
    assert encode_path("x\udc80") == "x%ED%B2%80"
    mapped = urls_for(record("x\udc80.txt"), [CDN])
    assert mapped.urls == []
    ((url, reason),) = mapped.refused.items()
    assert url == "https://cdn.example.com/x%ED%B2%80.txt"
    assert "lone surrogate U+DC80" in reason


# --- from payload to URL, per source ------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, expected",
    [
        (s3_event("my-s3-bucket", "my+file%E4%B8%AD.txt", encoded=True), "https://img.example.com/my%20file%E4%B8%AD.txt"),
        (s3_event("my-s3-bucket", "a%2Bb%25.txt", encoded=True), "https://img.example.com/a%2Bb%25.txt"),
        (oss_event("my-bucket", "my+file.txt"), "https://cdn.example.com/my%2Bfile.txt"),
        (oss_event("my-bucket", "my%20file.txt"), "https://cdn.example.com/my%2520file.txt"),
        (eventbridge_event("my-bucket", "视频/a b+c.mp4"), "https://cdn.example.com/%E8%A7%86%E9%A2%91/a%20b%2Bc.mp4"),
    ],
)
def test_payload_to_url_round_trip(payload, expected):
    (rec,) = parse_event(json.dumps(payload).encode()).records
    assert urls_for(rec, [CDN, IMG]).urls == [expected]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("oss-put", ["https://cdn.example.com/static/css/site.css"]),
        ("oss-cjk-space", ["https://cdn.example.com/%E8%A7%86%E9%A2%91/%E5%A4%8F%E5%A4%A9%20%E7%9A%84%20%E6%B5%B7.mp4"]),
        ("oss-batch", ["https://cdn.example.com/static/js/app.9f3c2b.js",
                       "https://cdn.example.com/images/logo%2Bv2.png",
                       "https://cdn.example.com/downloads/setup%20100%25.zip",
                       "https://cdn.example.com/static/js/app.1a2b3c.js"]),  # removed: the URL to refresh
        ("eventbridge-single", ["https://cdn.example.com/docs/%E6%8A%A5%E5%91%8A%202026%20%231.pdf"]),
        ("eventbridge-batch", ["https://cdn.example.com/index.html",
                               "https://cdn.example.com/img/banner~wide%20%F0%9F%98%80.webp",
                               "https://cdn.example.com/static/old.css"]),  # removed: the URL to refresh
        ("s3-put", ["https://img.example.com/photos/summer%20trip/C%2B%2B%20%E4%B8%AD%E6%96%87%20%281%29.jpg"]),
        ("s3-sqs", ["https://img.example.com/%E7%85%A7%E7%89%87/summer%20trip/C%2B%2B%20100%25.jpg"]),
        ("s3-eventbridge-created",
         ["https://img.example.com/videos/%E5%A4%8F%E5%A4%A9%20%E6%B5%B7%2B%E6%B5%AA%20100%25.mp4"]),
        ("oss-delete", ["https://cdn.example.com/static/%E6%97%A7%20logo%2B1.png"]),
    ],
)
def test_sample_payloads_map_to_these_urls(name, expected):
    parsed = parse_event(load_event(name))
    assert [u for r in parsed.records for u in urls_for(r, [CDN, IMG]).urls] == expected


# --- rules: filters -------------------------------------------------------------------------------------


def test_no_matching_rule_gives_nothing():
    assert urls_for(record("a.js", bucket="other"), [CDN]).urls == []
    assert urls_for(record("a.js", bucket="other"), [CDN]).refused == {}


def test_bucket_must_match_exactly():
    assert urls_for(record("a.js", bucket="My-Bucket"), [CDN]).urls == []


@pytest.mark.parametrize(
    "rule_fields, key, matches",
    [
        ({"prefix": "static/"}, "static/a.js", True),
        ({"prefix": "static/"}, "staticx/a.js", False),
        ({"prefix": "static/"}, "img/static/a.js", False),
        ({"suffixes": (".js", ".css")}, "a.css", True),
        ({"suffixes": (".js", ".css")}, "a.CSS", False),
        ({"suffixes": (".js", ".css")}, "a.json", False),
        ({"exclude": ("*.map",)}, "static/a.js.map", False),
        ({"exclude": ("*.map",)}, "static/a.js", True),
        ({"exclude": ("tmp/*",)}, "tmp/x/y.js", False),  # "*" crosses "/"
        ({"exclude": ("tmp/*",)}, "a/tmp/y.js", True),
        ({"exclude": ("*.MAP",)}, "a.map", True),  # case-sensitive, like object keys
        ({"exclude": ("[!a]*",)}, "b.js", False),
        ({"prefix": "s/", "suffixes": (".js",), "exclude": ("*.min.js",)}, "s/a.min.js", False),
        ({"prefix": "s/", "suffixes": (".js",), "exclude": ("*.min.js",)}, "s/a.js", True),
    ],
)
def test_filters(rule_fields, key, matches):
    rule = Rule(bucket="my-bucket", domains=("cdn.example.com",), **rule_fields)
    assert bool(urls(key, rule)) is matches


# --- rules: rewrite ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strip_prefix, path_prefix, key, path",
    [
        ("", "", "a/b.js", "a/b.js"),
        ("public/", "", "public/a.js", "a.js"),
        ("public", "", "public/a.js", "a.js"),  # the separating "/" goes with the stripped prefix
        ("public/", "", "other/a.js", "other/a.js"),  # not a prefix of this key: untouched
        ("", "assets", "a.js", "assets/a.js"),
        ("", "assets/", "a.js", "assets/a.js"),
        ("", "/assets/", "a.js", "assets/a.js"),
        ("", "/", "a.js", "a.js"),
        ("", "v1/assets", "a.js", "v1/assets/a.js"),
        ("public/", "/assets/", "public/css/a.css", "assets/css/a.css"),
        ("public", "assets", "public/css/a.css", "assets/css/a.css"),
        # "//" inside the key itself is kept: a//b and a/b are different objects
        ("", "", "a//b.js", "a//b.js"),
        ("", "assets/", "a//b.js", "assets/a//b.js"),
        ("public/", "assets", "public//a.js", "assets//a.js"),
        ("public", "assets", "public//a.js", "assets//a.js"),
        ("", "", "/lead.js", "/lead.js"),
        ("", "assets", "/lead.js", "assets//lead.js"),
    ],
)
def test_rewrite_joins_with_exactly_one_slash_and_keeps_the_keys_own(strip_prefix, path_prefix, key, path):
    rule = Rule(bucket="my-bucket", domains=("cdn.example.com",), strip_prefix=strip_prefix, path_prefix=path_prefix)
    assert cdn_path(key, rule) == path
    assert urls(key, rule) == [f"https://cdn.example.com/{encode_path(path)}"]


def test_prefix_filter_applies_to_the_original_key_not_the_rewritten_path():
    rule = Rule(bucket="my-bucket", domains=("cdn.example.com",), prefix="public/", strip_prefix="public/")
    assert urls("public/a.js", rule) == ["https://cdn.example.com/a.js"]
    assert urls("a.js", rule) == []


def test_path_prefix_is_encoded_too():
    rule = Rule(bucket="my-bucket", domains=("cdn.example.com",), path_prefix="静态 files")
    assert urls("a b.js", rule) == ["https://cdn.example.com/%E9%9D%99%E6%80%81%20files/a%20b.js"]


@pytest.mark.parametrize("strip_prefix, path_prefix", [("a.js", ""), ("a.js", "assets"), ("dir", "")])
def test_strip_prefix_that_eats_the_whole_key_is_refused(strip_prefix, path_prefix):
    rule = Rule(bucket="my-bucket", domains=("cdn.example.com",), strip_prefix=strip_prefix, path_prefix=path_prefix)
    key = "dir/" if strip_prefix == "dir" else "a.js"
    mapped = urls_for(record(key), [rule])
    assert mapped.urls == []
    assert len(mapped.refused) == 1 and "directory" in next(iter(mapped.refused.values()))


# --- rules: domains, schemes, several rules ----------------------------------------------------------------


def test_every_domain_of_a_rule_with_its_scheme():
    rule = Rule(bucket="my-bucket", domains=("cdn.example.com", "cdn2.example.com"), scheme="http")
    assert urls("a.js", rule) == ["http://cdn.example.com/a.js", "http://cdn2.example.com/a.js"]


def test_several_matching_rules_give_the_union_deduplicated_in_rule_order():
    rules = [
        Rule(bucket="my-bucket", domains=("b.example.com", "a.example.com")),
        Rule(bucket="my-bucket", domains=("c.example.com",), prefix="static/"),
        Rule(bucket="my-bucket", domains=("a.example.com",), suffixes=(".js",)),  # duplicate of rule 1's
        Rule(bucket="my-bucket", domains=("a.example.com",), strip_prefix="static/"),
        Rule(bucket="other", domains=("d.example.com",)),
    ]
    assert urls("static/x.js", *rules) == [
        "https://b.example.com/static/x.js",
        "https://a.example.com/static/x.js",
        "https://c.example.com/static/x.js",
        "https://a.example.com/x.js",
    ]


# --- URLs the API would refuse ---------------------------------------------------------------------------


def test_url_of_exactly_the_limit_is_kept_and_one_more_is_refused_with_the_reason():
    base = "https://cdn.example.com/"
    fits = "a" * (MAX_URL_LENGTH - len(base))
    assert urls(fits) == [base + fits]
    mapped = urls_for(record(fits + "b"), [CDN])
    assert mapped.urls == []
    assert mapped.refused == {base + fits + "b": f"URL has 1025 characters, over the {MAX_URL_LENGTH} that PushObjectCache accepts"}


def test_encoding_counts_towards_the_limit():
    assert urls("中" * 111) != []  # 24 + 111 * 9 = 1023 characters
    mapped = urls_for(record("中" * 112), [CDN])  # 136 characters raw, 1032 encoded
    assert mapped.urls == [] and len(next(iter(mapped.refused))) == 1032


def test_too_long_on_one_domain_only():
    rule = Rule(bucket="my-bucket", domains=("a.io", "a-much-longer-cdn-domain-name.example.com"))
    key = "k" * (MAX_URL_LENGTH - len("https://a.io/"))
    mapped = urls_for(record(key), [rule])
    assert mapped.urls == [f"https://a.io/{key}"]
    assert list(mapped.refused) == [f"https://a-much-longer-cdn-domain-name.example.com/{key}"]


@pytest.mark.parametrize(
    "url, problem",
    [
        ("https://cdn.example.com/a.js", None),
        ("", "empty URL"),
        ("https://cdn.example.com/a b", "U+0020"),
        ("https://cdn.example.com/a\nhttps://evil.example.com/", "U+000A"),
        ("https://cdn.example.com/\u200b", "U+200B"),
        ("https://cdn.example.com/中", "U+4E2D"),
        ("https://cdn.example.com/" + "x" * 1001, "1025 characters"),
    ],
)
def test_url_problem(url, problem):
    found = url_problem(url)
    assert found is None if problem is None else problem in found


def test_a_rule_with_a_bad_domain_cannot_smuggle_whitespace_into_a_url():
    rule = Rule(bucket="my-bucket", domains=("cdn.example.com\nevil.example.com",))
    mapped = urls_for(record("a.js"), [rule])
    assert mapped.urls == [] and "U+000A" in next(iter(mapped.refused.values()))


# --- properties -----------------------------------------------------------------------------------------

DOMAINS = ("cdn.example.com", "img.example.com", "a.b.example.org")
KEY_CHARS = st.one_of(
    st.characters(),  # any code point but surrogates
    st.sampled_from(list("/ +%#?~\t\n\r\x00\x7f\u3000\u2028\u200b中😀")),
    st.integers(0xD800, 0xDFFF).map(chr),
)
KEYS = st.text(KEY_CHARS, min_size=1, max_size=60)
PARTS = st.text(st.sampled_from(list("ab/ +%中")), max_size=6)
RULES = st.lists(
    st.builds(
        Rule,
        bucket=st.sampled_from(["my-bucket", "other"]),
        domains=st.lists(st.sampled_from(DOMAINS), min_size=1, max_size=3, unique=True).map(tuple),
        scheme=st.sampled_from(["https", "http"]),
        prefix=st.sampled_from(["", "a", "/", "中"]),
        suffixes=st.sampled_from([(), ("b",), ("b", "/")]),
        exclude=st.sampled_from([(), ("*x*",), ("?",)]),
        strip_prefix=PARTS,
        path_prefix=PARTS,
    ),
    max_size=4,
)


@settings(max_examples=500, deadline=None)
@given(KEYS, RULES)
def test_urls_are_always_clean_and_on_a_configured_domain_of_a_matching_rule(key, rules):
    rec = record(key)
    mapped = urls_for(rec, rules)
    allowed = {(r.scheme, d) for r in rules if r.bucket == rec.bucket for d in r.domains}
    assert len(mapped.urls) == len(set(mapped.urls))
    for url in mapped.urls:
        assert url_problem(url) is None
        assert all("!" <= ch <= "~" for ch in url)  # no whitespace, no control character, ASCII
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) in allowed
        assert parts.query == "" and parts.fragment == ""
    assert not set(mapped.urls) & set(mapped.refused)


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=80).filter(lambda k: not k.endswith("/")))
def test_decoding_the_url_path_gives_back_the_exact_key(key):
    (url,) = urls_for(record(key), [CDN]).urls or [None]
    if url is None:  # only when too long
        assert len(encode_path(key)) > MAX_URL_LENGTH - len("https://cdn.example.com/")
        return
    assert unquote(url[len("https://cdn.example.com/"):], errors="strict") == key


@settings(max_examples=300, deadline=None)
@given(st.text(KEY_CHARS, max_size=40))
def test_encode_path_is_ascii_and_keeps_only_slashes_and_unreserved(path):
    encoded = encode_path(path)
    assert all(ch.isascii() and (ch.isalnum() or ch in "-._~/%") for ch in encoded)
    assert encoded.count("/") == path.count("/")
