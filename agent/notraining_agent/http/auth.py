"""Who may post jobs, and what the agent shows Saturno (contract sections 2, 3 and 4).

Inbound: ``Authorization: <token>`` or ``Authorization: Bearer <token>``, checked
against a static token (constant time) or as an HS256 JWT. Only HS256 is accepted
and the key is always the configured secret: a token's ``alg``, ``kid`` or ``jku``
never chooses how it is checked, and no key is ever fetched.

Outbound: :func:`saturno_authorization` gives the raw ``Authorization`` value for
reports, minting a short-lived JWT per call in jwt mode.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import jwt

from notraining_agent.config import Settings
from notraining_agent.errors import ConfigError
from notraining_agent.http.weak_secrets import weakness

log = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 8 * 1024
"""Longer tokens are refused unread: no honest token is that big, and decoding costs."""

LEEWAY_SECONDS = 30.0
"""Clock skew forgiven on ``exp``/``nbf`` (contract section 4)."""

SATURNO_JWT_LIFETIME = 300
"""Seconds a minted outbound JWT lives: long enough for one report attempt, no longer."""

ALGORITHM = "HS256"
_BEARER = "bearer "
VERIFIED_CACHE_SIZE = 64
"""Tokens whose signature was checked, remembered with their validity window (issue 12:
PyJWT's decode was 15 % of a re-post's CPU). Emptied when full: it bounds memory (64 x 8 KiB)."""


@contextmanager
def _short_keys_already_reported() -> Iterator[None]:
    """Silence PyJWT's per-call key-length warning: start-up refuses or warns once instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        yield


def _token_from_header(authorization_header: str | None) -> str | None:
    """The token in ``<token>`` or ``Bearer <token>``; exactly one space after the scheme."""
    if not authorization_header:
        return None
    if authorization_header[: len(_BEARER)].lower() == _BEARER:
        return authorization_header[len(_BEARER) :] or None
    return authorization_header


class Authenticator:
    """Checks the ``Authorization`` header of inbound requests for the configured mode."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.auth_secret
        if secret is None:
            needed = "jwt_secret" if settings.auth_mode == "jwt" else "token"
            raise ConfigError(
                f"config: auth_mode={settings.auth_mode} needs {needed}; set it or secret_ref"
            )
        self._mode = settings.auth_mode
        self._secret = secret.reveal()
        self._secret_bytes = self._secret.encode()
        self._require = ["exp"] if settings.jwt_require_exp else []
        self._audience = settings.jwt_audience
        self._verified: dict[str, tuple[float, float]] = {}

    def check(self, authorization_header: str | None) -> bool:
        """True when the header carries a valid token; a refusal is logged without the token."""
        reason = self._refusal(authorization_header)
        if reason is None:
            return True
        log.info("refused a request: %s", reason, extra={"auth_refusal": reason})
        return False

    def _refusal(self, authorization_header: str | None) -> str | None:
        """Why the header is refused, or None when it is accepted."""
        token = _token_from_header(authorization_header)
        if token is None:
            return "no token"
        token_bytes = token.encode("utf-8", "surrogateescape")
        if len(token_bytes) > MAX_TOKEN_BYTES:
            return f"token longer than {MAX_TOKEN_BYTES} bytes"
        if self._mode == "static":
            if hmac.compare_digest(token_bytes, self._secret_bytes):
                return None
            return "wrong token"
        return self._jwt_refusal(token)

    def _jwt_refusal(self, token: str) -> str | None:
        """PyJWT's verdict; a token it accepted is accepted again, unchecked, inside its window.

        The signature, algorithm and audience of one exact token string never change, so
        only the time claims are compared again, with the same leeway PyJWT applies.
        """
        window = self._verified.get(token)
        if window is not None:
            if window[0] <= time.time() < window[1]:
                return None
            del self._verified[token]  # out of its window: PyJWT says why below
        try:
            with _short_keys_already_reported():
                claims = jwt.decode(
                    token,
                    self._secret,
                    algorithms=[ALGORITHM],
                    leeway=LEEWAY_SECONDS,
                    audience=self._audience,
                    options={"require": self._require, "verify_aud": self._audience is not None},
                )
        except jwt.PyJWTError as exc:
            # The class name says enough (ExpiredSignatureError, InvalidAlgorithmError...)
            # and, unlike some messages, never echoes the token.
            return f"invalid JWT ({type(exc).__name__})"
        except (ValueError, TypeError) as exc:
            # Malformed input PyJWT does not wrap; any doubt is a refusal, never a 500.
            return f"malformed JWT ({type(exc).__name__})"
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = _window(claims)
        return None


def _window(claims: Mapping[str, Any]) -> tuple[float, float]:
    """When PyJWT would accept these claims again: from nbf/iat minus leeway to exp plus leeway.

    PyJWT refuses ``exp <= now - leeway``, ``nbf > now + leeway`` and ``iat > now + leeway``;
    it already checked that each present claim is an integer.
    """
    starts = [float(claims[key]) for key in ("nbf", "iat") if key in claims]
    start = max(starts) - LEEWAY_SECONDS if starts else -math.inf
    end = float(claims["exp"]) + LEEWAY_SECONDS if "exp" in claims else math.inf
    return start, end


def check_secret_strength(settings: Settings, sources: Mapping[str, str]) -> None:
    """Refuse to start with a weak or published secret/token, unless ``allow_weak_secret``.

    Raises ConfigError (exit 2) naming the key and where it came from. Call it once the
    secret is final (after ``secret_ref`` was read).
    """
    key = "jwt_secret" if settings.auth_mode == "jwt" else "token"
    secret = settings.auth_secret
    if secret is None:
        return
    problem = weakness(secret.reveal(), static_token=settings.auth_mode == "static")
    if problem is None:
        return
    source = sources.get(key, "default")
    if settings.allow_weak_secret:
        log.warning(
            "%s from %s %s; starting anyway because allow_weak_secret is true",
            key,
            source,
            problem,
            extra={"config_key": key, "config_source": source},
        )
        return
    raise ConfigError(
        f"config: {key} from {source} {problem}; set a random one of at least 32 bytes "
        "(e.g. `openssl rand -hex 32`), or allow_weak_secret: true for tests only"
    )


def saturno_authorization(settings: Settings, instance_name: str, now: Callable[[], float]) -> str:
    """The raw ``Authorization`` value for a report to Saturno (no ``Bearer`` prefix).

    ``saturno_token`` when set; else in jwt mode a fresh HS256 JWT
    ``{"sub": instance_name, "iat", "exp": iat + 300}`` signed with ``jwt_secret``;
    else the static ``token``, as the seed sent it.
    """
    if settings.saturno_token is not None:
        return settings.saturno_token.reveal()
    if settings.auth_mode == "jwt" and settings.jwt_secret is not None:
        issued_at = int(now())
        claims = {"sub": instance_name, "iat": issued_at, "exp": issued_at + SATURNO_JWT_LIFETIME}
        with _short_keys_already_reported():
            return jwt.encode(claims, settings.jwt_secret.reveal(), algorithm=ALGORITHM)
    if settings.auth_mode == "static" and settings.token is not None:
        return settings.token.reveal()
    raise ConfigError(
        f"config: no credential for Saturno in auth_mode={settings.auth_mode}; "
        "set saturno_token, or the mode's jwt_secret/token"
    )
