"""Job fields: defaults, types, bounds, every error named at once, static URL refusals."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from notraining_agent.errors import InvalidJobError
from notraining_agent.job.spec import MAX_ARTS_PATH, JobSpec, parse_job

NO_HOSTS: frozenset[str] = frozenset()
META = frozenset({"169.254.169.254", "metadata.google.internal", "metadata"})


def parse(fields: dict[str, object], allowed: frozenset[str] = NO_HOSTS) -> JobSpec:
    return parse_job(fields, allowed_hosts=allowed, metadata_hosts=META)


def errors_of(fields: dict[str, object], allowed: frozenset[str] = NO_HOSTS) -> dict[str, str]:
    with pytest.raises(InvalidJobError) as caught:
        parse(fields, allowed)
    return caught.value.errors


def test_minimal_job_and_defaults() -> None:
    """An id and a zip make a job; category defaults to POP, texts to empty."""
    spec = parse({"ntd_transaction_id": "42", "zip_art": "https://arts.example.com/p.zip"})
    assert spec == JobSpec("42", None, "", "", "", "POP", "https://arts.example.com/p.zip", ())
    assert spec.urls == ("https://arts.example.com/p.zip",)


def test_integer_ids_are_kept_as_strings() -> None:
    """JSON integers for the ids are accepted and stored as strings."""
    spec = parse({"ntd_transaction_id": 42, "no_transaction_id": 7, "arts_path": ["http://a.io/x"]})
    assert (spec.ntd_transaction_id, spec.no_transaction_id) == ("42", "7")


def test_arts_path_forms() -> None:
    """arts_path: a list, one URL, or one JSON-encoded list; exact repeats are dropped."""
    urls = ["https://a.io/1.png", "https://a.io/2.png"]
    assert parse({"ntd_transaction_id": "1", "arts_path": urls}).arts_path == tuple(urls)
    assert parse({"ntd_transaction_id": "1", "arts_path": urls[0]}).arts_path == (urls[0],)
    spec = parse({"ntd_transaction_id": "1", "arts_path": json.dumps([*urls, urls[0]])})
    assert spec.arts_path == tuple(urls)


def test_every_bad_field_is_named_at_once() -> None:
    """One InvalidJobError lists each bad field with its own message."""
    errors = errors_of(
        {
            "ntd_transaction_id": True,
            "no_transaction_id": [1],
            "country": 5,
            "channel": {"a": 1},
            "label": "x" * 300,
            "category": "ok\x00",
            "zip_art": "ftp://a.io/p.zip",
            "arts_path": ["http://127.0.0.1/a.png", "https://ok.io/b.png", "http://u:p@a.io/c"],
        }
    )
    assert set(errors) == {
        "ntd_transaction_id",
        "no_transaction_id",
        "country",
        "channel",
        "label",
        "category",
        "zip_art",
        "arts_path",
    }
    assert "boolean" in errors["ntd_transaction_id"]
    assert "[0]" in errors["arts_path"] and "[2]" in errors["arts_path"]
    assert "[1]" not in errors["arts_path"]


def test_required_fields() -> None:
    """The id is required, and at least one of zip_art and arts_path."""
    errors = errors_of({"country": "MX"})
    assert set(errors) == {"ntd_transaction_id", "zip_art"}
    assert "required" in errors["ntd_transaction_id"]


def test_arts_path_bounds_and_types() -> None:
    """More than MAX_ARTS_PATH URLs, non-strings and bad JSON lists are refused."""
    many = [f"https://a.io/{i}.png" for i in range(MAX_ARTS_PATH + 1)]
    assert "at most" in errors_of({"ntd_transaction_id": "1", "arts_path": many})["arts_path"]
    assert "arts_path" in errors_of({"ntd_transaction_id": "1", "arts_path": [1]})
    assert "arts_path" in errors_of({"ntd_transaction_id": "1", "arts_path": "[not json"})
    assert "arts_path" in errors_of({"ntd_transaction_id": "1", "arts_path": {"a": 1}})
    long_url = "https://a.io/" + "x" * 2100
    assert "arts_path" in errors_of({"ntd_transaction_id": "1", "arts_path": [long_url]})


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://a.io/x.zip",
        "javascript:alert(1)",
        "http://user:pw@a.io/x.zip",
        "http://127.0.0.1/x.zip",
        "http://10.1.2.3/x.zip",
        "http://172.16.0.1/x.zip",
        "http://192.168.1.1/x.zip",
        "http://169.254.169.254/computeMetadata/v1/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA/x",
        "http://[::1]/x.zip",
        "http://[::ffff:127.0.0.1]/x.zip",
        "http://2130706433/x.zip",
        "http://0177.0.0.1/x.zip",
        "http://0x7f.0.0.1/x.zip",
        "http://127.1/x.zip",
        "http://0.0.0.0/x.zip",
        "http://[fe80::1%25eth0]/x.zip",
        "http:///x.zip",
        "http://a b.io/x.zip",
    ],
)
def test_static_url_refusals(url: str) -> None:
    """Scheme, credentials, literal private addresses and metadata names: 400 at POST."""
    errors = errors_of({"ntd_transaction_id": "1", "zip_art": url})
    assert errors["zip_art"].startswith("URL refused")


def test_allowed_hosts_and_metadata() -> None:
    """A listed host:port may be private; the metadata server never, even when listed."""
    allowed = frozenset({"127.0.0.1:8080", "169.254.169.254", "metadata.google.internal"})
    assert parse({"ntd_transaction_id": "1", "zip_art": "http://127.0.0.1:8080/p.zip"}, allowed)
    assert "zip_art" in errors_of(
        {"ntd_transaction_id": "1", "zip_art": "http://127.0.0.1:9/p"}, allowed
    )
    for url in ("http://169.254.169.254/", "http://metadata.google.internal/"):
        assert "zip_art" in errors_of({"ntd_transaction_id": "1", "zip_art": url}, allowed)


def test_names_pass_statically() -> None:
    """Host names (even localhost) and gs:// URLs pass here; DNS checks run at download."""
    spec = parse(
        {
            "ntd_transaction_id": "1",
            "zip_art": "http://localhost:8080/p.zip",
            "arts_path": ["gs://my-bucket/arts/a.png"],
        }
    )
    assert spec.arts_path == ("gs://my-bucket/arts/a.png",)


def test_unknown_fields_logged_by_name(caplog: pytest.LogCaptureFixture) -> None:
    """Unknown fields are ignored; their names (not values) are logged."""
    with caplog.at_level(logging.INFO, logger="notraining_agent.job.spec"):
        parse({"ntd_transaction_id": "1", "zip_art": "https://a.io/p.zip", "secret": "hunter2"})
    record = next(r for r in caplog.records if getattr(r, "event", None) == "unknown_fields")
    assert record.fields == ["secret"]  # type: ignore[attr-defined]
    assert "hunter2" not in caplog.text


def test_as_fields_and_list_input() -> None:
    """as_fields gives JSON-ready values, and a JobSpec rebuilt from them is equal."""
    spec = parse({"ntd_transaction_id": "1", "arts_path": ["https://a.io/x.png"]})
    fields = spec.as_fields()
    assert fields["arts_path"] == ["https://a.io/x.png"]
    assert JobSpec(**fields) == spec  # type: ignore[arg-type]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_urlish = st.one_of(
    st.text(max_size=60),
    st.builds(
        "{}://{}/{}".format,
        st.sampled_from(["http", "https", "gs", "ftp", "file", "HTTP"]),
        st.one_of(st.ip_addresses().map(str), st.text(max_size=20), st.just("localhost")),
        st.text(max_size=10),
    ),
)


@settings(max_examples=400)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "ntd_transaction_id",
                "no_transaction_id",
                "country",
                "label",
                "zip_art",
                "arts_path",
                "x",
            ]
        ),
        st.one_of(_json, _urlish, st.lists(_urlish, max_size=5)),
    )
)
def test_parse_never_crashes(fields: dict[str, object]) -> None:
    """Property: any decoded fields give a JobSpec or an InvalidJobError naming fields."""
    try:
        spec = parse(fields)
    except InvalidJobError as exc:
        assert exc.errors and all(isinstance(v, str) for v in exc.errors.values())
        return
    assert spec.ntd_transaction_id and (spec.zip_art or spec.arts_path)
    for url in spec.urls:
        assert url.split(":", 1)[0].lower() in {"http", "https", "gs"}
