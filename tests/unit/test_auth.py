"""Inbound token checks, the weak-secret rule and the outbound Authorization value."""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from notraining_agent.config import Secret, Settings
from notraining_agent.errors import ConfigError
from notraining_agent.http.auth import (
    MAX_TOKEN_BYTES,
    SATURNO_JWT_LIFETIME,
    Authenticator,
    check_secret_strength,
    saturno_authorization,
)

SECRET = "k7Qy2v9Lr0XwTz4NcM8bHs1JdF6gPa3E-test-secret"
OTHER_SECRET = "Zr8Pq1Wm4Nx7Ty0Vb3Kc6Jh9Gf2Ds5Aa-other"
TOKEN = "Hq3Lx8Vz1Rt6Yw0Pn5Mc2Kb7Jf4Gd9Sa-static"


def jwt_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"auth_mode": "jwt", "jwt_secret": Secret(SECRET)}
    values.update(overrides)
    return Settings(**values)


def static_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"auth_mode": "static", "token": Secret(TOKEN)}
    values.update(overrides)
    return Settings(**values)


def sign(claims: dict[str, Any], secret: str = SECRET, **kwargs: Any) -> str:
    return jwt.encode(claims, secret, algorithm=kwargs.pop("algorithm", "HS256"), **kwargs)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def fresh(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "saturno", "iat": now, "exp": now + 300, **extra}


# --- static mode -------------------------------------------------------------------------


def test_static_token_raw_and_bearer_are_accepted() -> None:
    """The seed's raw ``Authorization: <token>`` and ``Bearer <token>`` both pass."""
    authenticator = Authenticator(static_settings())
    assert authenticator.check(TOKEN)
    assert authenticator.check(f"Bearer {TOKEN}")
    assert authenticator.check(f"bearer {TOKEN}")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "wrong",
        TOKEN[:-1],
        TOKEN + "x",
        f"Bearer  {TOKEN}",
        f"Bearer {TOKEN} ",
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        "é" * 10,
    ],
)
def test_static_refusals(header: str | None) -> None:
    """Missing, empty, wrong, extra-space and other-scheme headers are refused."""
    assert not Authenticator(static_settings()).check(header)


def test_static_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The static token is compared with hmac.compare_digest, never ``==``."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert not Authenticator(static_settings()).check("nope")
    assert calls == [(b"nope", TOKEN.encode())]


def test_oversized_token_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    """A token over 8 KiB is refused, even when it starts with the right one."""
    caplog.set_level(logging.INFO)
    header = TOKEN + "A" * MAX_TOKEN_BYTES
    assert not Authenticator(static_settings()).check(header)
    assert "longer than" in caplog.text


def test_refusals_never_log_the_token(caplog: pytest.LogCaptureFixture) -> None:
    """Neither the presented nor the configured token reaches the log."""
    caplog.set_level(logging.DEBUG)
    presented = "presented-Secret-Value-123"
    Authenticator(static_settings()).check(presented)
    Authenticator(jwt_settings()).check(sign(fresh(), OTHER_SECRET))
    assert caplog.records, "refusals are logged"
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert presented not in text
        assert TOKEN not in text
        assert SECRET not in text
        assert OTHER_SECRET not in text


def test_authenticator_needs_a_secret() -> None:
    """Building one before the secret is known is a configuration error."""
    with pytest.raises(ConfigError, match="jwt_secret"):
        Authenticator(Settings(auth_mode="jwt"))
    with pytest.raises(ConfigError, match="token"):
        Authenticator(Settings(auth_mode="static"))


# --- jwt mode ----------------------------------------------------------------------------


def test_valid_jwt_is_accepted_raw_and_bearer() -> None:
    """An HS256 JWT signed with jwt_secret passes, with or without ``Bearer``."""
    authenticator = Authenticator(jwt_settings())
    token = sign(fresh())
    assert authenticator.check(token)
    assert authenticator.check(f"Bearer {token}")


def test_expired_within_leeway_is_accepted() -> None:
    """``exp`` 10 s ago is forgiven (30 s leeway for clock skew)."""
    assert Authenticator(jwt_settings()).check(sign(fresh(exp=int(time.time()) - 10)))


def test_expired_beyond_leeway_is_refused() -> None:
    """``exp`` a minute ago is refused."""
    assert not Authenticator(jwt_settings()).check(sign(fresh(exp=int(time.time()) - 60)))


def test_not_yet_valid_is_refused() -> None:
    """``nbf`` a minute ahead is refused; 10 s ahead is within the leeway."""
    authenticator = Authenticator(jwt_settings())
    assert not authenticator.check(sign(fresh(nbf=int(time.time()) + 60)))
    assert authenticator.check(sign(fresh(nbf=int(time.time()) + 10)))


def test_a_verified_token_is_not_decoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second check of the same JWT skips PyJWT; a different one is decoded."""
    authenticator = Authenticator(jwt_settings())
    token = sign(fresh())
    assert authenticator.check(token)
    decoded: list[str] = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda t, *a, **k: decoded.append(t) or real(t, *a, **k))
    assert authenticator.check(token)
    assert authenticator.check(f"Bearer {token}")
    assert decoded == []
    other = sign(fresh(sub="other"))
    assert authenticator.check(other)
    assert decoded == [other]


def test_a_verified_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remembered, a token is refused once ``exp`` + leeway passes, like PyJWT does."""
    from notraining_agent.http import auth as auth_module  # noqa: PLC0415 - its clock

    authenticator = Authenticator(jwt_settings())
    now = time.time()
    token = sign(fresh(exp=int(now) + 60))
    assert authenticator.check(token)
    monkeypatch.setattr(auth_module.time, "time", lambda: now + 60 + 29)
    monkeypatch.setattr(jwt.api_jwt, "datetime", _FrozenDatetime(now + 60 + 29))
    assert authenticator.check(token)
    monkeypatch.setattr(auth_module.time, "time", lambda: now + 60 + 31)
    monkeypatch.setattr(jwt.api_jwt, "datetime", _FrozenDatetime(now + 60 + 31))
    assert not authenticator.check(token)
    assert not authenticator.check(token)  # forgotten, and PyJWT refuses it too


def test_a_verified_token_is_not_valid_before_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A remembered token whose ``nbf`` lies ahead (clock stepped back) is checked again."""
    from notraining_agent.http import auth as auth_module  # noqa: PLC0415 - its clock

    authenticator = Authenticator(jwt_settings())
    now = time.time()
    token = sign(fresh(nbf=int(now) + 10))
    assert authenticator.check(token)
    monkeypatch.setattr(auth_module.time, "time", lambda: now - 60)
    monkeypatch.setattr(jwt.api_jwt, "datetime", _FrozenDatetime(now - 60))
    assert not authenticator.check(token)


class _FrozenDatetime:
    """Stands in for ``datetime`` in PyJWT's module: ``now()`` is a fixed instant."""

    def __init__(self, timestamp: float) -> None:
        self._timestamp = timestamp

    def now(self, tz: Any = None) -> Any:
        import datetime as real  # noqa: PLC0415

        return real.datetime.fromtimestamp(self._timestamp, tz=tz)


def test_missing_exp_is_refused_when_required() -> None:
    """Without ``exp`` a token is refused by default and accepted when not required."""
    token = sign({"sub": "saturno"})
    assert not Authenticator(jwt_settings()).check(token)
    assert Authenticator(jwt_settings(jwt_require_exp=False)).check(token)


def test_audience_is_checked_when_configured() -> None:
    """With jwt_audience set, a wrong or missing ``aud`` is refused."""
    authenticator = Authenticator(jwt_settings(jwt_audience="notraining"))
    assert authenticator.check(sign(fresh(aud="notraining")))
    assert not authenticator.check(sign(fresh(aud="someone-else")))
    assert not authenticator.check(sign(fresh()))


def test_audience_is_ignored_when_not_configured() -> None:
    """Without jwt_audience, a token's ``aud`` does not matter."""
    assert Authenticator(jwt_settings()).check(sign(fresh(aud="anything")))


def test_wrong_secret_is_refused() -> None:
    """A token signed with another secret is refused."""
    assert not Authenticator(jwt_settings()).check(sign(fresh(), OTHER_SECRET))


def test_alg_none_is_refused() -> None:
    """An unsigned token (``alg: none``) is refused, with or without a signature part."""
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(fresh())}."
    authenticator = Authenticator(jwt_settings())
    assert not authenticator.check(unsigned)
    assert not authenticator.check(unsigned + "AAAA")
    assert not authenticator.check(f"{b64({'alg': 'None'})}.{b64(fresh())}.")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_refused(algorithm: str) -> None:
    """Only HS256: the right secret with HS384/HS512 is still refused."""
    assert not Authenticator(jwt_settings()).check(sign(fresh(), algorithm=algorithm))


def test_rs256_token_is_refused() -> None:
    """A real RS256 token and an RS256-looking header with an HMAC signature are refused."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    authenticator = Authenticator(jwt_settings())
    assert not authenticator.check(jwt.encode(fresh(), key, algorithm="RS256"))
    header = b64({"alg": "RS256", "typ": "JWT"})
    body = b64(fresh())
    hs_signed = sign(fresh()).split(".")[2]
    assert not authenticator.check(f"{header}.{body}.{hs_signed}")


def test_kid_and_jku_never_choose_the_key() -> None:
    """``kid``/``jku`` are ignored: only jwt_secret verifies, and no key is fetched."""
    authenticator = Authenticator(jwt_settings())
    pointing = {"kid": "attacker", "jku": "http://127.0.0.1:9/keys.json"}
    assert not authenticator.check(sign(fresh(), OTHER_SECRET, headers=pointing))
    assert authenticator.check(sign(fresh(), headers=pointing))


def test_oversized_jwt_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token over 8 KiB is refused without PyJWT ever seeing it."""

    def must_not_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded an oversized token")

    token = sign(fresh(padding="x" * MAX_TOKEN_BYTES))
    monkeypatch.setattr(jwt, "decode", must_not_decode)
    assert not Authenticator(jwt_settings()).check(token)


@pytest.mark.parametrize(
    "token",
    [
        "a.b.c",
        "not a token",
        "....",
        f"{b64({'alg': 'HS256'})}.bm90LWpzb24.sig",
        f"{b64({'alg': 'HS256'})}.{b64(fresh())}",
        "eyJhbGciOiJIUzI1NiJ9.\udcff.x",
        "Bearer Bearer x",
    ],
)
def test_malformed_jwts_are_refused_not_raised(token: str) -> None:
    """Garbage never raises out of check(): it is a plain refusal."""
    assert not Authenticator(jwt_settings()).check(token)


def test_short_secret_allowed_does_not_warn_per_request() -> None:
    """With allow_weak_secret, a short secret works without PyJWT's per-call warning."""
    settings = jwt_settings(jwt_secret=Secret("short"), allow_weak_secret=True)
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):
        token = jwt.encode(fresh(), "short", algorithm="HS256")
    assert Authenticator(settings).check(token)  # filterwarnings=error would fail here


# --- weak secrets at start -----------------------------------------------------------------


def test_weak_jwt_secret_stops_the_start_naming_key_and_source() -> None:
    """jwt.io's sample as jwt_secret is a ConfigError naming the key and its source."""
    settings = jwt_settings(jwt_secret=Secret("your-256-bit-secret"))
    sources = {"jwt_secret": "instance metadata (notraining-jwt-secret)"}
    with pytest.raises(ConfigError) as caught:
        check_secret_strength(settings, sources)
    message = str(caught.value)
    assert "jwt_secret" in message
    assert "instance metadata (notraining-jwt-secret)" in message
    assert "published" in message
    assert caught.value.exit_code == 2


def test_short_static_token_stops_the_start() -> None:
    """A static token under 32 bytes is a ConfigError naming ``token``."""
    settings = static_settings(token=Secret("Xk29fLq0"))
    with pytest.raises(ConfigError, match=r"token from environment \(NOTRAINING_TOKEN\)"):
        check_secret_strength(settings, {"token": "environment (NOTRAINING_TOKEN)"})


def test_static_token_signed_with_sample_secret_stops_the_start() -> None:
    """jwt.io's sample token pasted as the static token is refused."""
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):
        token = jwt.encode({"sub": "1234567890", "iat": 1516239022}, "your-256-bit-secret")
    with pytest.raises(ConfigError, match="JWT signed with the published sample secret"):
        check_secret_strength(static_settings(token=Secret(token)), {})


def test_weak_secret_allowed_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """allow_weak_secret turns the refusal into one warning, in both modes."""
    caplog.set_level(logging.WARNING)
    check_secret_strength(jwt_settings(jwt_secret=Secret("secret"), allow_weak_secret=True), {})
    check_secret_strength(static_settings(token=Secret("changeme"), allow_weak_secret=True), {})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "jwt_secret from default" in warnings[0].getMessage()
    assert "token from default" in warnings[1].getMessage()


def test_strong_secrets_pass() -> None:
    """A random secret passes in both modes; a missing one is left to secret_ref."""
    check_secret_strength(jwt_settings(), {})
    check_secret_strength(static_settings(), {})
    check_secret_strength(
        Settings(auth_mode="jwt", secret_ref="projects/p/secrets/s/versions/1"), {}
    )


def test_only_the_active_mode_secret_is_checked() -> None:
    """A weak token is ignored in jwt mode (it is not used there)."""
    check_secret_strength(jwt_settings(token=Secret("x")), {})


# --- outbound ------------------------------------------------------------------------------


def test_saturno_token_wins() -> None:
    """saturno_token, when set, is sent as it is in both modes."""
    for settings in (
        jwt_settings(saturno_token=Secret("s-tok")),
        static_settings(saturno_token=Secret("s-tok")),
    ):
        assert saturno_authorization(settings, "vm-1", time.time) == "s-tok"


def test_jwt_mode_mints_a_short_lived_raw_jwt() -> None:
    """In jwt mode a fresh HS256 JWT {sub, iat, exp=iat+300} is sent, without ``Bearer``."""
    value = saturno_authorization(jwt_settings(), "vm-1", lambda: 1_700_000_000.7)
    assert not value.lower().startswith("bearer")
    assert jwt.get_unverified_header(value)["alg"] == "HS256"
    claims = jwt.decode(value, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {
        "sub": "vm-1",
        "iat": 1_700_000_000,
        "exp": 1_700_000_000 + SATURNO_JWT_LIFETIME,
    }


def test_jwt_mode_mints_per_call() -> None:
    """Each call uses the clock: a later call gets a later ``iat``."""
    times = iter([1000.0, 2000.0])
    settings = jwt_settings()
    first = saturno_authorization(settings, "vm", lambda: next(times))
    second = saturno_authorization(settings, "vm", lambda: next(times))
    assert first != second


def test_minted_token_passes_the_agent_s_own_check() -> None:
    """What the agent mints is what a Saturno sharing the secret would accept."""
    settings = jwt_settings()
    assert Authenticator(settings).check(saturno_authorization(settings, "vm", time.time))


def test_static_mode_sends_the_token() -> None:
    """In static mode without saturno_token, the static token goes out, raw (the seed)."""
    assert saturno_authorization(static_settings(), "vm", time.time) == TOKEN


def test_no_credential_is_a_config_error() -> None:
    """With nothing to send, the caller gets an operator-readable ConfigError."""
    with pytest.raises(ConfigError, match="saturno_token"):
        saturno_authorization(Settings(auth_mode="jwt"), "vm", time.time)
