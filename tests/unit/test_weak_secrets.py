"""The published-secret list and the weakness rules of contract section 4."""

from __future__ import annotations

import secrets

import jwt
import pytest
from notraining_agent.http.weak_secrets import (
    MIN_SECRET_BYTES,
    PUBLISHED_SECRETS,
    is_published,
    published_signing_secret,
    weakness,
)

# Tests mint tokens with published (short) secrets on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

STRONG = "k7Qy2v9Lr0XwTz4NcM8bHs1JdF6gPa3E"  # 32 bytes, varied


def test_list_holds_the_well_known_samples() -> None:
    """jwt.io's samples and the usual placeholders are on the list."""
    for sample in (
        "your-256-bit-secret",
        "a-string-secret-at-least-256-bits-long",
        "secret",
        "changeme",
        "your-secret-key",
    ):
        assert sample in PUBLISHED_SECRETS


def test_is_published_ignores_case_and_outer_spaces() -> None:
    """A sample typed with capitals or a trailing newline is still the sample."""
    assert is_published("  Your-256-Bit-Secret\n")
    assert not is_published(STRONG)


@pytest.mark.parametrize("sample", sorted(PUBLISHED_SECRETS))
def test_every_published_secret_is_weak_in_both_modes(sample: str) -> None:
    """Each listed sample is refused as a jwt_secret and as a static token."""
    assert weakness(sample, static_token=False) == "is a published sample secret"
    assert weakness(sample, static_token=True) == "is a published sample secret"


def test_short_secret_is_weak() -> None:
    """Fewer than 32 bytes is refused, however random."""
    short = secrets.token_hex(15)  # 30 characters
    assert weakness(short, static_token=False) == f"is shorter than {MIN_SECRET_BYTES} bytes"


def test_length_counts_bytes_not_characters() -> None:
    """Sixteen two-byte characters are 32 bytes and pass the length rule."""
    assert weakness("éàüöçñøåæßþðłžšč", static_token=False) is None


def test_repeated_characters_are_weak() -> None:
    """A long run of one character has the length but not the entropy."""
    assert "distinct characters" in str(weakness("a" * 64, static_token=False))


def test_random_secret_passes() -> None:
    """A secret from ``openssl rand -hex 32`` passes."""
    assert weakness(secrets.token_hex(32), static_token=False) is None
    assert weakness(STRONG, static_token=True) is None


def test_static_token_signed_with_a_published_secret_is_weak() -> None:
    """jwt.io's sample token (signed with your-256-bit-secret) as a static token is refused."""
    token = jwt.encode({"sub": "1234567890", "name": "John Doe"}, "your-256-bit-secret")
    assert published_signing_secret(token) == "your-256-bit-secret"
    assert "your-256-bit-secret" in str(weakness(token, static_token=True))


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_recognised(algorithm: str) -> None:
    """A sample token signed with HS384/HS512 and a published secret is still found."""
    token = jwt.encode({"sub": "x"}, "your-512-bit-secret", algorithm=algorithm)
    assert published_signing_secret(token) == "your-512-bit-secret"


def test_static_token_signed_with_a_private_secret_passes() -> None:
    """A JWT signed with a random secret is a fine static token."""
    token = jwt.encode({"sub": "saturno"}, secrets.token_hex(32))
    assert published_signing_secret(token) is None
    assert weakness(token, static_token=True) is None


def test_jwt_secret_that_is_a_jwt_signed_by_a_strong_key_is_only_checked_as_a_secret() -> None:
    """In jwt mode a JWT-shaped key is fine unless a published secret signed it."""
    token = jwt.encode({"sub": "x"}, STRONG)
    assert weakness(token, static_token=False) is None


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.b.c", "e30.e30.!!!", "eyJhbGciOiJub25lIn0.e30.", "W10.e30.abc"],
)
def test_malformed_tokens_are_not_signed_by_anyone(token: str) -> None:
    """Garbage, unsigned or non-object headers never crash the check."""
    assert published_signing_secret(token) is None


def test_a_jwt_signed_with_a_published_secret_is_weak_as_a_jwt_secret() -> None:
    """A published sample token used as jwt_secret is refused: anyone can sign with it."""
    token = jwt.encode({"token": "sample"}, "your-256-bit-secret", algorithm="HS256")
    assert weakness(token, static_token=False) is not None
    assert "your-256-bit-secret" in str(weakness(token, static_token=False))


@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", "BEARER  "])
def test_a_static_token_with_the_bearer_scheme_is_refused(scheme: str) -> None:
    """``Bearer <token>`` as the static token is refused; its weakness is judged on the token."""
    sample = jwt.encode({"token": "sample"}, "your-256-bit-secret", algorithm="HS256")
    assert "your-256-bit-secret" in str(weakness(scheme + sample, static_token=True))
    assert "Bearer" in str(weakness(scheme + STRONG, static_token=True))
    assert weakness(STRONG, static_token=True) is None
