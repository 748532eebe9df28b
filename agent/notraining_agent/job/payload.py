"""Decode a posted job body into plain fields, whatever encoding Saturno used (contract 4).

Accepted: ``application/json`` (an object), ``application/x-www-form-urlencoded``
(what ``requests.post(url, data=payload)`` sends: a list value becomes repeated
keys) and ``multipart/form-data``. Text must be UTF-8. Only ``arts_path`` may
repeat; a single ``arts_path`` value that is a JSON list is decoded by
:func:`notraining_agent.job.spec.parse_job`, so every encoding gets that rule. Field values
are checked there; this module only refuses bodies that cannot be read safely.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import cast
from urllib.parse import parse_qsl

from notraining_agent.errors import InvalidJobError

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
SUPPORTED = frozenset({JSON, FORM, MULTIPART})
REPEATABLE = frozenset({"arts_path"})
MAX_FIELDS = 2_000  # arts_path is bounded to 1 000 entries by the spec; this bounds parsing
MAX_JSON_DEPTH = 16
MAX_BOUNDARY_CHARS = 70  # RFC 2046
_PARAM = re.compile(
    r"\s*(?P<key>[!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*"
    r'(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[^";\s]*))\s*(?:;|\Z)'
)
_UNESCAPE = re.compile(r"\\(.)")
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """``"Text/HTML; Charset=UTF-8"`` -> ``("text/html", {"charset": "UTF-8"})``."""
    main, *raw_params = content_type.split(";")
    params: dict[str, str] = {}
    for raw in raw_params:
        key, sep, value = raw.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return main.strip().lower(), params


def is_supported(content_type: str) -> bool:
    """Whether the receiver can decode this content type (else it answers 415)."""
    return media_type(content_type)[0] in SUPPORTED


def decode_body(content_type: str, body: bytes) -> dict[str, object]:
    """The body's fields; InvalidJobError({"body": why}) when it cannot be read safely."""
    kind, params = media_type(content_type)
    charset = params.get("charset", "utf-8").lower()
    if charset not in _UTF8:
        raise InvalidJobError({"body": f"charset {charset!r} is not accepted; send UTF-8"})
    if kind == JSON:
        return _decode_json(body)
    if kind == FORM:
        return _decode_form(body)
    if kind == MULTIPART:
        return _decode_multipart(params.get("boundary", ""), body)
    raise InvalidJobError(
        {"body": f"content type {kind!r} is not accepted; send {', '.join(sorted(SUPPORTED))}"}
    )


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJobError(
            {"body": f"the body is not valid UTF-8 (byte {exc.start}); send UTF-8"}
        ) from None


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _decode_json(body: bytes) -> dict[str, object]:
    text = _text(body)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _DuplicateKeyError as exc:
        raise InvalidJobError({exc.key[:64]: "this key appears more than once"}) from None
    except RecursionError:
        raise InvalidJobError({"body": "the JSON is nested too deeply"}) from None
    except ValueError as exc:
        raise InvalidJobError({"body": f"the body is not valid JSON ({exc})"}) from None
    if not isinstance(data, dict):
        raise InvalidJobError({"body": "the JSON body must be an object of fields"})
    _check_depth(data)
    _check_text(data.items())
    return cast("dict[str, object]", data)


def _check_depth(data: object) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH, walking iteratively (no recursion)."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidJobError({"body": f"the JSON is nested deeper than {MAX_JSON_DEPTH}"})
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def _check_text(items: Iterable[tuple[str, object]]) -> None:
    """Refuse lone surrogates (``"\\ud800"``): they cannot be written as UTF-8 later."""
    for key, value in items:
        values = value if isinstance(value, list) else [value]
        for text in [key, *values]:
            if isinstance(text, str) and not _is_utf8(text):
                raise InvalidJobError({"body": f"field {key[:64]!r} holds an invalid character"})


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _collect(pairs: Iterable[tuple[str, str]]) -> dict[str, object]:
    """Fields from ordered pairs; only REPEATABLE keys may repeat (they become lists)."""
    fields: dict[str, object] = {}
    for key, value in pairs:
        if key in REPEATABLE:
            current = fields.get(key)
            if current is None:
                fields[key] = value
            elif isinstance(current, list):
                current.append(value)
            else:
                fields[key] = [current, value]
        elif key in fields:
            raise InvalidJobError({key[:64]: "this field appears more than once"})
        else:
            fields[key] = value
    return fields


def _decode_form(body: bytes) -> dict[str, object]:
    text = _text(body)
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidJobError({"body": "a form value is not valid UTF-8; send UTF-8"}) from None
    except ValueError:
        raise InvalidJobError({"body": f"the form has more than {MAX_FIELDS} fields"}) from None
    return _collect(pairs)


def _decode_multipart(boundary: str, body: bytes) -> dict[str, object]:
    """RFC 7578 form-data, read strictly in one linear pass.

    Not the ``email`` package: it is superlinear on hostile part headers (a 1 MiB body
    held the event loop for 18 s) and recurses on nested comments until RecursionError
    (a 500). Parts are split on CRLF ``--boundary`` lines; headers are not folded.
    """
    if not 1 <= len(boundary) <= MAX_BOUNDARY_CHARS or not boundary.isascii():
        raise InvalidJobError(
            {"body": "multipart/form-data needs a boundary parameter (1 to 70 ASCII characters)"}
        )
    sections = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("ascii"))
    if len(sections) > MAX_FIELDS + 2:  # preamble and closing line besides the parts
        raise InvalidJobError({"body": f"the form has more than {MAX_FIELDS} parts"})
    pairs: list[tuple[str, str]] = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            return _collect(pairs)  # the closing delimiter; the epilogue is ignored
        head, sep, value = section.lstrip(b" \t").partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"\r\n"):
            raise InvalidJobError({"body": "the multipart body could not be read"})
        pairs.append(_part_pair(head[2:], value))
    raise InvalidJobError({"body": "the multipart body could not be read (no closing boundary)"})


def _part_pair(head: bytes, value: bytes) -> tuple[str, str]:
    headers = _part_headers(head)
    params = _disposition(headers.get("content-disposition", ""))
    name = params.get("name")
    if not name:
        raise InvalidJobError({"body": "a multipart part has no field name"})
    if "filename" in params or "filename*" in params:
        raise InvalidJobError({name[:64]: "file uploads are not accepted; send a URL"})
    encoding = headers.get("content-transfer-encoding", "binary").strip().lower()
    if encoding not in ("binary", "8bit", "7bit"):
        why = f"Content-Transfer-Encoding {encoding[:20]!r} is not accepted; send the value as is"
        raise InvalidJobError({name[:64]: why})
    charset = media_type(headers.get("content-type", ""))[1].get("charset", "utf-8").lower()
    if charset not in _UTF8:
        raise InvalidJobError({name[:64]: f"charset {charset!r} is not accepted; send UTF-8"})
    try:
        return name, value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJobError({name[:64]: "the value is not valid UTF-8; send UTF-8"}) from None


def _part_headers(head: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw in head.split(b"\r\n") if head else []:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidJobError({"body": "a multipart header is not valid UTF-8"}) from None
        key, sep, value = line.partition(":")
        if not sep or not key or key != key.strip():  # folded or malformed lines
            raise InvalidJobError({"body": "a multipart part has a malformed header line"})
        headers[key.lower()] = value.strip()
    return headers


def _disposition(value: str) -> dict[str, str]:
    """``form-data; name="x"`` -> ``{"name": "x"}``; anything else yields no name."""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    if kind.strip().lower() != "form-data":
        return params
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None:
            raise InvalidJobError({"body": "a multipart part has a malformed Content-Disposition"})
        key = match["key"].lower()
        if key in params:
            raise InvalidJobError({"body": f"a multipart part gives {key[:20]!r} twice"})
        quoted = match["quoted"]
        params[key] = _UNESCAPE.sub(r"\1", quoted) if quoted is not None else match["token"]
        pos = match.end()
    return params
