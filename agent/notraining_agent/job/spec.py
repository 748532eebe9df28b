"""The job Saturno posts, as a validated value (contract section 4).

:func:`parse_job` checks every field and names every bad one in a single
InvalidJobError, so Saturno's 400 lists all problems at once. URLs get the
static half of the guard here (no DNS): scheme, credentials, literal addresses
and metadata names; the connect-time half runs while downloading.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from notraining_agent.errors import InvalidJobError
from notraining_agent.job.urlguard import static_refusal

log = logging.getLogger(__name__)

MAX_ARTS_PATH = 1_000
MAX_URL_CHARS = 2_048
MAX_TEXT_CHARS = 256
DEFAULT_CATEGORY = "POP"
TEXT_FIELDS = ("country", "channel", "label", "category")
ID_FIELDS = ("ntd_transaction_id", "no_transaction_id")
KNOWN_FIELDS = frozenset({*TEXT_FIELDS, *ID_FIELDS, "zip_art", "arts_path"})
_SHOWN_BAD_ITEMS = 3
# One regex pass instead of a Python loop per character: a job's 50 URLs are checked
# on every post and re-post (issue 12).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_Check = Callable[[object], object]


@dataclass(frozen=True)
class JobSpec:
    """A job's fields after validation; ids are kept as strings."""

    ntd_transaction_id: str
    no_transaction_id: str | None
    country: str
    channel: str
    label: str
    category: str
    zip_art: str | None
    arts_path: tuple[str, ...]

    def __post_init__(self) -> None:
        # State files store arts_path as a JSON list; keep the value immutable and hashable.
        object.__setattr__(self, "arts_path", tuple(self.arts_path))

    def as_fields(self) -> dict[str, object]:
        """The fields as JSON-ready values (``arts_path`` a list), for state and manifests."""
        fields = asdict(self)
        fields["arts_path"] = list(self.arts_path)
        return fields

    @property
    def urls(self) -> tuple[str, ...]:
        """Every URL of the job, ``zip_art`` first."""
        return ((self.zip_art,) if self.zip_art else ()) + self.arts_path


class _FieldError(ValueError):
    """One field's problem; collected, never raised out of this module."""


def parse_job(
    fields: Mapping[str, object],
    *,
    allowed_hosts: frozenset[str],
    metadata_hosts: frozenset[str],
) -> JobSpec:
    """A JobSpec from decoded body fields; InvalidJobError naming every bad field."""
    errors: dict[str, str] = {}

    def field(name: str, check: _Check) -> object:
        try:
            return check(fields.get(name))
        except _FieldError as exc:
            errors[name] = str(exc)
            return None

    def url(raw: object) -> str | None:
        text = _text(raw, MAX_URL_CHARS, ids=False)
        if text is None:
            return None
        refused = static_refusal(text, allowed_hosts=allowed_hosts, metadata_hosts=metadata_hosts)
        if refused:
            raise _FieldError(f"URL refused: {refused}")
        return text

    def urls(raw: object) -> tuple[str, ...]:
        good: list[str] = []
        bad: list[str] = []
        for index, item in enumerate(_url_list(raw)):
            try:
                checked = url(item)
            except _FieldError as exc:
                bad.append(f"[{index}] {exc}")
            else:
                if checked:
                    good.append(checked)
        if bad:
            more = (
                f" (and {len(bad) - _SHOWN_BAD_ITEMS} more)" if len(bad) > _SHOWN_BAD_ITEMS else ""
            )
            raise _FieldError("; ".join(bad[:_SHOWN_BAD_ITEMS]) + more)
        return tuple(dict.fromkeys(good))  # drop exact repeats, keep the order

    ntd = field("ntd_transaction_id", lambda raw: _required(_text(raw, MAX_TEXT_CHARS, ids=True)))
    no_id = field("no_transaction_id", lambda raw: _text(raw, MAX_TEXT_CHARS, ids=True))
    texts = {name: field(name, lambda raw: _text(raw, MAX_TEXT_CHARS)) for name in TEXT_FIELDS}
    zip_art = field("zip_art", url)
    arts_path = field("arts_path", urls)
    if not zip_art and not arts_path and "zip_art" not in errors and "arts_path" not in errors:
        errors["zip_art"] = "give zip_art or arts_path (at least one is required)"
    _log_unknown(fields)
    if errors:
        raise InvalidJobError(errors)
    return JobSpec(
        ntd_transaction_id=str(ntd),
        no_transaction_id=str(no_id) if no_id is not None else None,
        country=str(texts["country"] or ""),
        channel=str(texts["channel"] or ""),
        label=str(texts["label"] or ""),
        category=str(texts["category"] or DEFAULT_CATEGORY),
        zip_art=str(zip_art) if zip_art else None,
        arts_path=arts_path if isinstance(arts_path, tuple) else (),
    )


def _required(value: str | None) -> str:
    if value is None:
        raise _FieldError("this field is required")
    return value


def _text(raw: object, limit: int, *, ids: bool = False) -> str | None:
    """A stripped string, None when absent or empty; ids may also arrive as integers."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        expected = "a string or an integer" if ids else "a string"
        raise _FieldError(f"expected {expected}, got {_json_type(raw)}")
    if isinstance(raw, int) and not ids:
        raise _FieldError("expected a string, got a number")
    text = str(raw).strip()
    if len(text) > limit:
        raise _FieldError(f"longer than {limit} characters")
    if _CONTROL.search(text):
        raise _FieldError("contains control characters")
    if _SURROGATE.search(text):
        # "\ud800" inside a JSON-encoded arts_path list escapes the body's own check;
        # such a string cannot be written as UTF-8 to logs, files or a request line.
        raise _FieldError("contains a lone surrogate (\\uD800-\\uDFFF); send valid Unicode")
    return text or None


def _url_list(raw: object) -> list[object]:
    """``arts_path`` as a list: a list, one URL, or one JSON-encoded list of URLs."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        stripped = raw.strip()
        if stripped.startswith("["):
            try:
                decoded = json.loads(stripped)
            except ValueError:
                raise _FieldError("looks like a JSON list but is not valid JSON") from None
            except RecursionError:  # "[[[[..." deeper than the parser's stack: a 400, not a 500
                raise _FieldError("is a JSON list nested too deeply; send a flat list") from None
            if not isinstance(decoded, list):
                raise _FieldError("expected a list of URLs")
            raw = decoded
        else:
            return [stripped]
    if not isinstance(raw, list):
        raise _FieldError(f"expected a list of URLs, got {_json_type(raw)}")
    if len(raw) > MAX_ARTS_PATH:
        raise _FieldError(f"at most {MAX_ARTS_PATH} URLs, got {len(raw)}")
    for index, item in enumerate(raw):
        if not isinstance(item, str):
            raise _FieldError(f"[{index}] expected a URL string, got {_json_type(item)}")
    return list(raw)


def _json_type(raw: object) -> str:
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(raw), type(raw).__name__)


def _log_unknown(fields: Mapping[str, object]) -> None:
    unknown = sorted(str(name)[:64] for name in fields if name not in KNOWN_FIELDS)
    if unknown:
        log.info(
            "job: ignoring %d unknown field(s)",
            len(unknown),
            extra={"event": "unknown_fields", "fields": unknown[:20]},
        )
