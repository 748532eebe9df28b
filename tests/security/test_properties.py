"""Properties of the hostile-input code (issue 3, item 7), each over generated inputs.

They add to the unit suite's properties (no crash on any bytes, every spelling of a
private literal refused, sanitised names stay in their folder) what an attacker would
try next: the three body encodings disagreeing, the POST-time and connect-time checks
disagreeing on an address, libc reading a host the guard let through as a private
address, two URLs landing on one file, a zip entry name escaping its folder.
Examples per property come from the ``security-ci`` profile (harness.PROPERTY).
"""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import requests
from hypothesis import assume, example, given
from hypothesis import strategies as st
from notraining_agent.errors import InputRefusedError, InvalidJobError
from notraining_agent.job.archive import extract_zip
from notraining_agent.job.fetch import _unique_targets
from notraining_agent.job.output import _file_path, output_location
from notraining_agent.job.paths import PART_MAX_CHARS, id_folder, safe_part, url_basename
from notraining_agent.job.payload import decode_body
from notraining_agent.job.spec import MAX_ARTS_PATH, JobSpec, parse_job
from notraining_agent.job.urlguard import AddressRefusedError, GuardedResolver, static_refusal

from tests.security.harness import PROPERTY

NONE: frozenset[str] = frozenset()
META = frozenset({"169.254.169.254", "metadata.google.internal", "127.0.0.1:8089"})


def _parse(fields: dict[str, object]) -> JobSpec | dict[str, str]:
    """A JobSpec, or the names and messages of the refused fields."""
    try:
        return parse_job(fields, allowed_hosts=NONE, metadata_hosts=META)
    except InvalidJobError as exc:
        return exc.errors


# --- the payload parser ---------------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_url = st.one_of(
    st.builds(
        "{}://{}/{}".format,
        st.sampled_from(["http", "https", "gs", "ftp", "file"]),
        st.one_of(
            st.sampled_from(["arts.example.com", "bucket-1", "127.0.0.1", "169.254.169.254"]),
            st.ip_addresses().map(lambda a: f"[{a}]" if a.version == 6 else str(a)),
        ),
        _text,
    ),
    _text,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "ntd_transaction_id": _text,
        "no_transaction_id": _text,
        "country": _text,
        "channel": _text,
        "label": _text,
        "category": _text,
        "zip_art": _url,
        "arts_path": st.lists(_url, min_size=1, max_size=4),
        "unknown": _text,
    },
)


def _as_requests_sends(fields: dict[str, Any], how: str) -> tuple[str, bytes]:
    """Content type and body exactly as ``requests`` (Saturno's client) sends them."""
    if how == "json":
        prepared = requests.Request("POST", "http://agent/", json=fields).prepare()
    elif how == "form":
        prepared = requests.Request("POST", "http://agent/", data=fields).prepare()
    else:
        parts = [
            (key, (None, item))
            for key, value in fields.items()
            for item in (value if isinstance(value, list) else [value])
        ]
        prepared = requests.Request("POST", "http://agent/", files=parts).prepare()
    body = prepared.body if isinstance(prepared.body, bytes) else str(prepared.body).encode()
    return str(prepared.headers["Content-Type"]), body


@PROPERTY
@given(_fields)
def test_the_three_encodings_give_the_same_job(fields: dict[str, Any]) -> None:
    """Property: JSON, form and multipart bodies of one job give one job, or refuse one field set.

    Messages may differ, not the outcome. One value is left out by design: a lone
    arts_path that is itself a JSON list, which a form body reads as the list it spells.
    """
    arts = fields.get("arts_path", [])
    assume(fields and not (len(arts) == 1 and arts[0].strip().startswith("[")))
    outcomes = []
    for how in ("json", "form", "multipart"):
        content_type, body = _as_requests_sends(fields, how)
        outcome = _parse(decode_body(content_type, body))
        outcomes.append(outcome if isinstance(outcome, JobSpec) else sorted(outcome))
    assert outcomes[0] == outcomes[1] == outcomes[2]


@PROPERTY
@given(st.dictionaries(st.sampled_from(["country", "label", "arts_path", "x"]), _text, min_size=1))
@example({"label": 'a"b\r\n\r\n--boundary\r\nc'})
def test_multipart_round_trips_any_text(fields: dict[str, str]) -> None:
    """Property: whatever requests puts in form-data parts comes back byte for byte."""
    content_type, body = _as_requests_sends(fields, "multipart")
    assert decode_body(content_type, body) == fields


_boundary = st.text(st.characters(codec="ascii", exclude_characters='";\r\n'), min_size=1)


@PROPERTY
@given(_boundary, st.binary(max_size=3000), st.lists(st.binary(max_size=60), max_size=5))
def test_multipart_never_crashes_whatever_the_boundary(
    boundary: str, noise: bytes, heads: list[bytes]
) -> None:
    """Property: any boundary and any parts give fields or InvalidJobError, nothing else."""
    marker = b"--" + boundary.encode()
    body = b"".join(marker + b"\r\n" + head + b"\r\n\r\n" + noise + b"\r\n" for head in heads)
    try:
        fields = decode_body(f'multipart/form-data; boundary="{boundary}"', body + marker + b"--")
    except InvalidJobError:
        return
    assert all(isinstance(key, str) for key in fields)


@PROPERTY
@given(_fields)
def test_an_accepted_job_is_safe_to_store_log_and_fetch(fields: dict[str, Any]) -> None:
    """Property: an accepted job's URLs pass the guard again, and its text is clean UTF-8."""
    spec = _parse(fields)
    if not isinstance(spec, JobSpec):
        assert spec and all(isinstance(message, str) for message in spec.values())
        return
    assert len(spec.arts_path) <= MAX_ARTS_PATH
    for url in spec.urls:
        assert static_refusal(url, allowed_hosts=NONE, metadata_hosts=META) is None
    json.dumps(spec.as_fields(), ensure_ascii=False).encode("utf-8")  # no lone surrogate
    for value in [*spec.urls, spec.ntd_transaction_id, spec.country, spec.label, spec.category]:
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value)
    assert _parse(spec.as_fields()) == spec  # stored and re-read, the job is the same


@PROPERTY
@given(st.integers(0, 50_000), st.integers(0, 50_000), st.sampled_from(["", "1", '"u"', "]"]))
@example(100_000, 0, "")
def test_an_arts_path_json_string_never_crashes_the_parser(
    opened: int, closed: int, inner: str
) -> None:
    """Property: any bracket nesting in an arts_path string is a job or a named refusal."""
    outcome = _parse({"ntd_transaction_id": "x", "arts_path": "[" * opened + inner + "]" * closed})
    assert isinstance(outcome, JobSpec) or (outcome and set(outcome) <= {"arts_path", "zip_art"})


# --- the URL guard ---------------------------------------------------------------------------


def _connect_time_refusal(address: str, port: int) -> str | None:
    guard = GuardedResolver(allowed_hosts=NONE, metadata_hosts=META)
    try:
        guard.check_address("some.name", port, address)
    except AddressRefusedError as exc:
        return str(exc)
    return None


def _mapped(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    return f"::ffff:{address}"


_addresses = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=4).map(_mapped),
    st.sampled_from(
        ["169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::"]
    ),
    st.sampled_from(["127.0.0.1", "::ffff:127.0.0.1", "10.0.0.1", "8.8.8.8", "2001:4860::8888"]),
)


@PROPERTY
@given(_addresses, st.sampled_from([80, 443, 8089]))
@example("::ffff:169.254.169.254", 80)
@example("::ffff:127.0.0.1", 8089)
def test_post_time_and_connect_time_checks_agree_on_every_address(address: str, port: int) -> None:
    """Property: an address literal in a URL is refused iff the same DNS answer would be."""
    host = f"[{address}]" if ":" in address else address
    posted = static_refusal(f"http://{host}:{port}/a.zip", allowed_hosts=NONE, metadata_hosts=META)
    connected = _connect_time_refusal(address, port)
    assert (posted is None) == (connected is None), (posted, connected)
    if posted is not None and "metadata" in posted:
        assert connected is not None and "metadata" in connected


_number = r"(0x[0-9a-fA-F]{1,8}|0[0-7]{1,11}|[0-9]{1,10})"
_numeric_hosts = st.from_regex(rf"\A{_number}(\.{_number}){{0,3}}\Z")


@PROPERTY
@given(_numeric_hosts)
@example("2130706433")
@example("0x7f.1")
@example("0251.0376.0251.0376")
def test_no_host_that_libc_reads_as_a_private_address_gets_through(host: str) -> None:
    """Property: a host libc's inet_aton reads as a non-public address is refused statically."""
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return  # not an address to libc either: DNS would be asked, and the resolver checks
    address = ipaddress.IPv4Address(packed)
    refused = static_refusal(f"http://{host}/a.zip", allowed_hosts=NONE, metadata_hosts=META)
    if not address.is_global or str(address) != host:
        assert refused is not None, f"{host} is {address} to libc"


_metadata_spellings = st.sampled_from(
    [
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a9fe:a9fe::]",
        "metadata.google.internal",
        "METADATA.GOOGLE.INTERNAL.",
        "metadata",
        "x.metadata.google.internal",
        "127.0.0.1:8089",
        "[::ffff:127.0.0.1]:8089",
    ]
)


@PROPERTY
@given(
    _metadata_spellings,
    st.sampled_from(["http", "https"]),
    st.from_regex(r"\A[a-zA-Z0-9/._-]{0,30}\Z"),
)
def test_the_metadata_server_is_refused_even_when_allowed(
    host: str, scheme: str, path: str
) -> None:
    """Property: every spelling of the metadata server is refused, even listed as allowed."""
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 or "]:" in host else host
    allowed = frozenset({bare.strip("[]"), host.strip("[]"), host})
    refused = static_refusal(
        f"{scheme}://{host}/{path}", allowed_hosts=allowed, metadata_hosts=META
    )
    assert refused is not None and "metadata" in refused


# --- the path sanitisers -----------------------------------------------------------------------


@PROPERTY
@given(st.lists(st.text(), min_size=5, max_size=5))
def test_output_paths_have_five_parts_under_the_root(parts: list[str]) -> None:
    """Property: country/channel/category/label/id always make five folders under the root."""
    final = _file_path(output_location("file:///srv/results", parts))
    assert final.parent.parent.parent.parent.parent == Path("/srv/results")
    assert all(0 < len(part) <= PART_MAX_CHARS and part not in (".", "..") for part in final.parts)
    assert [safe_part(p) for p in final.parts[-5:-1]] == list(final.parts[-5:-1])  # idempotent
    assert final.parts[-1] == id_folder(parts[-1])


@PROPERTY
@given(st.text(), st.text())
@example("ntd-4711/2", "ntd-4711_2")
@example("x" * 64 + "a", "x" * 64 + "b")
@example("\uff21\uff22\uff23", "ABC")
def test_different_ids_get_different_output_folders(first: str, second: str) -> None:
    """Property: two distinct ntd_transaction_ids never share an output folder (issue 14)."""
    assume(first != second)
    assert id_folder(first) != id_folder(second)
    for folder in (id_folder(first), id_folder(second)):
        assert 0 < len(folder) <= PART_MAX_CHARS and "/" not in folder
        assert folder not in (".", "..") and not folder.startswith(".")


_hostile_paths = st.one_of(
    st.text(),
    st.lists(st.sampled_from(["..", ".", "%2e%2e", "%2F", "%00", "a", "\\", "%5C", "~"])).map(
        "/".join
    ),
)


@PROPERTY
@given(st.lists(_hostile_paths, min_size=1, max_size=6))
def test_downloads_land_on_distinct_files_inside_their_folder(paths: list[str]) -> None:
    """Property: any URLs give one distinct, single-component file each, inside dest."""
    dest = Path("/srv/job/input/downloads")
    urls = [f"https://arts.example.com/{path}" for path in paths]
    targets = _unique_targets(urls, dest)
    assert len({t.name.casefold() for t in targets}) == len(urls)
    for url, target in zip(urls, targets, strict=True):
        assert target.parent == dest and target.name not in ("", ".", "..")
        assert "/" not in url_basename(url) and "\x00" not in target.name


_entry_names = st.one_of(
    st.text(min_size=1, max_size=40),
    st.lists(st.sampled_from(["..", ".", "", "a", "b.png", "/", "\\", "C:", "~"]), min_size=1).map(
        "/".join
    ),
)


@PROPERTY
@given(st.lists(_entry_names, min_size=1, max_size=6))
def test_zip_entries_never_land_outside_the_folder(names: list[str]) -> None:
    """Property: a zip of any entry names is refused, or every file is inside dest, no links."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's duplicate-name warning
        for name in names:
            archive.writestr(zipfile.ZipInfo(name), b"x")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "a.zip").write_bytes(buffer.getvalue())
        dest = root / "job" / "zip"
        try:
            written = extract_zip(root / "a.zip", dest, max_total_bytes=10**6)
        except InputRefusedError:
            assert not dest.exists()
            written = []
        every = set(root.rglob("*")) - {root / "a.zip", root / "job"}
        assert all(path.is_relative_to(dest) and not path.is_symlink() for path in every)
        assert all(path.resolve().is_relative_to(dest.resolve()) for path in written)
