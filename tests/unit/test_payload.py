"""Body decoding: JSON, the seed's form encoding, multipart, and the bodies to refuse."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from notraining_agent.errors import InvalidJobError
from notraining_agent.job.payload import MAX_FIELDS, decode_body, is_supported

SEED = {
    "country": "MX",
    "channel": "instagram",
    "label": "summer",
    "category": "POP",
    "zip_art": "https://arts.example.com/p.zip",
    "arts_path": ["https://arts.example.com/a.png", "https://arts.example.com/b.png"],
    "no_transaction_id": "7",
    "ntd_transaction_id": "42",
}


def prepared(**kwargs: object) -> tuple[str, bytes]:
    """Content type and body exactly as ``requests`` sends them."""
    request = requests.Request("POST", "http://agent/receiver_no_training/", **kwargs).prepare()  # type: ignore[arg-type]
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    assert isinstance(body, bytes)
    return str(request.headers["Content-Type"]), body


def test_seed_form_body() -> None:
    """requests.post(data=payload) repeats arts_path; every field comes back."""
    content_type, body = prepared(data=SEED)
    assert content_type == "application/x-www-form-urlencoded"
    assert decode_body(content_type, body) == SEED


def test_form_with_one_arts_path_and_json_list_string() -> None:
    """A single arts_path stays a string (spec.parse_job expands a JSON list string)."""
    content_type, body = prepared(data={**SEED, "arts_path": json.dumps(SEED["arts_path"])})
    fields = decode_body(content_type, body)
    assert fields["arts_path"] == json.dumps(SEED["arts_path"])
    content_type, body = prepared(data={**SEED, "arts_path": ["https://h/one.png"]})
    assert decode_body(content_type, body)["arts_path"] == "https://h/one.png"


def test_json_body() -> None:
    """A JSON object decodes as is, integers included."""
    content_type, body = prepared(json={**SEED, "ntd_transaction_id": 42})
    assert decode_body(content_type, body) == {**SEED, "ntd_transaction_id": 42}


def test_multipart_body() -> None:
    """multipart/form-data from requests (files= with no file names) decodes like a form."""
    parts = [(key, (None, value)) for key, value in SEED.items() if key != "arts_path"]
    parts += [("arts_path", (None, url)) for url in SEED["arts_path"]]
    content_type, body = prepared(files=parts)
    assert content_type.startswith("multipart/form-data; boundary=")
    assert decode_body(content_type, body) == SEED


def test_multipart_refuses_file_uploads() -> None:
    """A part with a file name is refused: jobs carry URLs, not files."""
    content_type, body = prepared(files={"zip_art": ("p.zip", b"PK\x03\x04")})
    with pytest.raises(InvalidJobError) as caught:
        decode_body(content_type, body)
    assert "zip_art" in caught.value.errors


def test_multipart_without_boundary() -> None:
    """A multipart content type without boundary is a 400, not a crash."""
    with pytest.raises(InvalidJobError):
        decode_body("multipart/form-data", b"--x\r\n")


@pytest.mark.parametrize(
    ("content_type", "supported"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/x-www-form-urlencoded", True),
        ("multipart/form-data; boundary=x", True),
        ("text/plain", False),
        ("", False),
        ("application/xml", False),
    ],
)
def test_is_supported(content_type: str, supported: bool) -> None:
    """Only the three encodings of the contract are supported (others get 415)."""
    assert is_supported(content_type) is supported


@pytest.mark.parametrize(
    ("content_type", "body", "field"),
    [
        ("application/json", b'{"a": 1, "a": 2}', "a"),
        ("application/json", b"[1, 2]", "body"),
        ("application/json", b"{not json", "body"),
        ("application/json", b'{"a": NaN}', "body"),
        ("application/json", b"[" * 100_000 + b"]" * 100_000, "body"),
        ("application/json", b'{"a":' * 20 + b"1" + b"}" * 20, "body"),
        ("application/json", b'{"a": "\xff"}', "body"),
        ("application/json", '{"a": 1}'.encode("utf-16"), "body"),
        ("application/json", b'{"a": "\\ud800"}', "body"),
        ("application/json", b'{"a": ' + b"9" * 5000 + b"}", "body"),
        ("application/json; charset=latin-1", b"{}", "body"),
        ("application/x-www-form-urlencoded", b"a=%ff", "body"),
        ("application/x-www-form-urlencoded", b"a=\xff", "body"),
        ("application/x-www-form-urlencoded", b"country=MX&country=US", "country"),
        ("application/x-www-form-urlencoded", b"&".join([b"x=1"] * (MAX_FIELDS + 1)), "body"),
        ("text/plain", b"x", "body"),
    ],
)
def test_refused_bodies(content_type: str, body: bytes, field: str) -> None:
    """Unreadable, ambiguous or oversized-structure bodies are InvalidJobError naming a field."""
    with pytest.raises(InvalidJobError) as caught:
        decode_body(content_type, body)
    assert field in caught.value.errors


@settings(max_examples=300)
@given(
    st.binary(max_size=2000),
    st.sampled_from(
        ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"]
    ),
)
def test_never_crashes(body: bytes, content_type: str) -> None:
    """Property: any bytes either decode to a dict or raise InvalidJobError, nothing else."""
    try:
        fields = decode_body(content_type, body)
    except InvalidJobError:
        return
    assert isinstance(fields, dict)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["country", "channel", "label", "ntd_transaction_id", "zip_art"]),
        st.text(max_size=50),
    ),
    st.lists(st.text(min_size=1, max_size=30), max_size=5),
)
def test_form_round_trip(fields: dict[str, str], arts: list[str]) -> None:
    """Property: whatever requests encodes as a form decodes back to the same fields."""
    data: dict[str, object] = dict(fields)
    if arts:
        data["arts_path"] = arts
    content_type, body = prepared(data=data) if data else ("application/x-www-form-urlencoded", b"")
    decoded = decode_body(content_type, body)
    expected: dict[str, object] = dict(fields)
    if arts:
        expected["arts_path"] = arts if len(arts) > 1 else arts[0]
    assert decoded == expected
