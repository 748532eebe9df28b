"""Secrets nobody should sign with: the sample values of docs, tutorials and templates.

An HS256 secret is only as strong as it is unknown. Attackers try these first
(jwt.io's sample, PyJWT's README, framework templates), so the agent refuses to
start with one of them, with one shorter than 32 bytes, or with a static token
that is itself a JWT signed with one (contract section 4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

MIN_SECRET_BYTES = 32
"""HS256 keys shorter than the hash output (32 bytes) fall to offline brute force sooner."""

MIN_DISTINCT_CHARACTERS = 6
"""``aaaa...`` or ``0000...`` pass the length rule but carry almost no entropy."""

PUBLISHED_SECRETS: frozenset[str] = frozenset(
    {
        # jwt.io's debugger samples, old and new.
        "your-256-bit-secret",
        "your-384-bit-secret",
        "your-512-bit-secret",
        "a-string-secret-at-least-256-bits-long",
        # Library READMEs and tutorials (PyJWT, jsonwebtoken, express-jwt, express-session).
        "secret",
        "secretkey",
        "secret-key",
        "secret_key",
        "mysecret",
        "my-secret",
        "my_secret",
        "mysecretkey",
        "my-secret-key",
        "my_secret_key",
        "your-secret-key",
        "your_secret_key",
        "yoursecretkey",
        "your-secret",
        "your_secret",
        "your-jwt-secret",
        "your_jwt_secret",
        "your-very-secret-key",
        "supersecret",
        "super-secret",
        "super_secret",
        "super-secret-key",
        "super_secret_key",
        "supersecretkey",
        "jwt-secret",
        "jwt_secret",
        "jwtsecret",
        "jwt-secret-key",
        "jwt_secret_key",
        "shhhhh",
        "shhhhhared-secret",
        "keyboard cat",
        "s3cr3t",
        "qwertyuiopasdfghjklzxcvbnm123456",
        # Template placeholders people forget to replace.
        "changeme",
        "change-me",
        "change_me",
        "changeit",
        "change-this",
        "changethis",
        "replace-me",
        "replaceme",
        "placeholder",
        "insecure",
        "default",
        "password",
        "passw0rd",
        "test",
        "testing",
        "token",
        "example",
        "123456",
        "1234567890",
        "12345678901234567890123456789012",
        "0123456789abcdef0123456789abcdef",
    }
)


def _normalise(secret: str) -> str:
    return secret.strip().lower()


_PUBLISHED_NORMALISED = frozenset(_normalise(s) for s in PUBLISHED_SECRETS)
_HMAC_ALGORITHMS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def is_published(secret: str) -> bool:
    """True when ``secret`` is a known sample value (case and outer spaces ignored)."""
    return _normalise(secret) in _PUBLISHED_NORMALISED


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def published_signing_secret(token: str) -> str | None:
    """The published secret that signed ``token`` when it is an HMAC JWT, else None.

    A static token copied from jwt.io is a well-formed JWT anyone can re-create, so it
    is as weak as its signing secret. The signature is checked by hand: nothing
    here trusts the token, it only asks whether a public secret made it.
    """
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64url(parts[0]))
        signature = _b64url(parts[2])
    except (ValueError, binascii.Error):
        return None
    algorithm = header.get("alg") if isinstance(header, dict) else None
    digest = _HMAC_ALGORITHMS.get(algorithm) if isinstance(algorithm, str) else None
    if digest is None:
        return None
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    for candidate in sorted(PUBLISHED_SECRETS):
        expected = hmac.new(candidate.encode(), signing_input, digest).digest()
        if hmac.compare_digest(expected, signature):
            return candidate
    return None


def _without_scheme(secret: str) -> str:
    """``secret`` without a leading ``Bearer`` scheme, as the receiver reads a header."""
    head, _, rest = secret.strip().partition(" ")
    return rest.strip() if head.lower() == "bearer" and rest.strip() else secret


def weakness(secret: str, *, static_token: bool) -> str | None:
    """Why ``secret`` must not be used, as a phrase ("is shorter than 32 bytes"), or None.

    In both modes a JWT signed with a published secret is refused: a public sample
    token is public whether it is sent or signed with. A static token is judged
    without a ``Bearer`` prefix, and the prefix itself is refused: the receiver strips
    one scheme, so such a token would accept ``Bearer Bearer <token>``.
    """
    core = _without_scheme(secret)
    if is_published(secret) or is_published(core):
        return "is a published sample secret"
    if (signer := published_signing_secret(core)) is not None:
        return f"is a JWT signed with the published sample secret {signer!r}"
    if static_token and core != secret:
        return "starts with the 'Bearer' scheme; set the token alone (clients add the scheme)"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    if len(set(secret)) < MIN_DISTINCT_CHARACTERS:
        return f"has fewer than {MIN_DISTINCT_CHARACTERS} distinct characters"
    return None
