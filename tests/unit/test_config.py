"""Layered configuration: sources, precedence, parsing, required keys and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from notraining_agent.config import (
    KEYS,
    Layer,
    LoadedConfig,
    Secret,
    Settings,
    attribute_name,
    cli_layer,
    env_layer,
    env_name,
    file_layer,
    metadata_layer,
    parse_duration,
    resolve,
)
from notraining_agent.errors import EXIT_CONFIG, ConfigError

SECRET = "jwt-secret-for-config-tests-0123456789"
URLS = {"register_url": "http://saturno.test/register/", "done_url": "http://saturno.test/done/"}


def base(**values: object) -> Layer:
    """A file-like layer holding what every GCE config needs, plus ``values``."""
    return Layer("file base.yaml", {**URLS, "jwt_secret": SECRET, **values})


def load(*layers: Layer, local_mode: bool = False) -> LoadedConfig:
    return resolve([base(), *layers], local_mode=local_mode)


def error_of(*layers: Layer, local_mode: bool = False) -> str:
    with pytest.raises(ConfigError) as info:
        resolve(list(layers), local_mode=local_mode)
    assert info.value.exit_code == EXIT_CONFIG
    message = str(info.value)
    assert "\n" not in message
    return message


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# -- defaults and sources ------------------------------------------------------------------


def test_defaults_match_the_contract_table() -> None:
    """With only the required keys set, every other key has the contract's default."""
    settings = load().settings
    assert settings.listen_host == "0.0.0.0"
    assert settings.port == 80
    assert settings.auth_mode == "jwt"
    assert settings.jwt_require_exp is True
    assert settings.allow_weak_secret is False
    assert settings.saturno_token is None
    assert settings.idle_timeout == 1800.0
    assert settings.job_timeout == 7200.0
    assert settings.shutdown_grace == 120.0
    assert settings.notify_deadline == 900.0
    assert settings.self_stop == "stop"
    assert settings.compute_endpoint == "https://compute.googleapis.com"
    assert settings.secretmanager_endpoint == "https://secretmanager.googleapis.com"
    assert settings.state_dir == Path("/var/lib/notraining-agent")
    assert settings.output_uri == "file:///var/lib/notraining-agent/results"
    assert settings.allowed_url_hosts == frozenset()
    assert settings.max_body_bytes == 1048576
    assert settings.max_download_bytes == 2147483648
    assert settings.processor == "manifest"
    assert settings.identity_audience is None


def test_unset_keys_report_default_as_their_source() -> None:
    """Keys nobody set are shown with source ``default``."""
    loaded = load()
    assert loaded.sources.get("port") is None
    assert loaded.masked()["port"] == ("80", "default")


def test_key_spellings_per_source() -> None:
    """``foo_bar`` is ``notraining-foo-bar`` in metadata and ``NOTRAINING_FOO_BAR`` in env."""
    assert attribute_name("idle_timeout") == "notraining-idle-timeout"
    assert env_name("idle_timeout") == "NOTRAINING_IDLE_TIMEOUT"


def all_sources(tmp_path: Path) -> list[Layer]:
    """One layer per source, lowest precedence first, each setting ``port`` differently."""
    return [
        file_layer(write_yaml(tmp_path, "port: 1001\n")),
        metadata_layer("project", {"notraining-port": "1002"}),
        metadata_layer("instance", {"notraining-port": "1003"}),
        env_layer({"NOTRAINING_PORT": "1004"}),
        cli_layer(["port=1005"]),
    ]


@pytest.mark.parametrize(
    ("top", "port", "source"),
    [
        (0, 80, None),
        (1, 1001, "config.yaml (port)"),
        (2, 1002, "project metadata (notraining-port)"),
        (3, 1003, "instance metadata (notraining-port)"),
        (4, 1004, "environment (NOTRAINING_PORT)"),
        (5, 1005, "command line (--set port)"),
    ],
)
def test_precedence_later_sources_win(
    tmp_path: Path, top: int, port: int, source: str | None
) -> None:
    """defaults < YAML < project metadata < instance metadata < env < --set, with the source."""
    loaded = resolve([base(), *all_sources(tmp_path)[:top]])
    assert loaded.settings.port == port
    if source is None:
        assert "port" not in loaded.sources
    else:
        assert loaded.sources["port"].endswith(source)


def test_lower_source_still_applies_when_higher_is_silent(tmp_path: Path) -> None:
    """A key set only in a low source keeps its value when higher sources set other keys."""
    loaded = resolve(
        [
            base(),
            file_layer(write_yaml(tmp_path, "idle_timeout: 5m\n")),
            env_layer({"NOTRAINING_PORT": "8080"}),
        ]
    )
    assert loaded.settings.idle_timeout == 300.0
    assert loaded.sources["idle_timeout"] == f"file {tmp_path / 'config.yaml'} (idle_timeout)"
    assert loaded.settings.port == 8080


def test_yaml_native_types_are_accepted(tmp_path: Path) -> None:
    """YAML booleans, integers and lists are taken as they are."""
    path = write_yaml(
        tmp_path,
        "jwt_require_exp: false\nport: 8080\nallowed_url_hosts: [a.test, 'B.test:81']\n",
    )
    settings = load(file_layer(path)).settings
    assert settings.jwt_require_exp is False
    assert settings.port == 8080
    assert settings.allowed_url_hosts == frozenset({"a.test", "b.test:81"})


def test_empty_yaml_file_is_no_values(tmp_path: Path) -> None:
    """An empty YAML file is an empty layer, not an error."""
    assert file_layer(write_yaml(tmp_path, "")).values == {}


def test_unknown_yaml_key_is_refused(tmp_path: Path) -> None:
    """A typo in the YAML file stops the agent and names the key and the file."""
    path = write_yaml(tmp_path, "idle_timout: 5m\n")
    with pytest.raises(ConfigError, match=r"unknown key 'idle_timout' in file .*config\.yaml"):
        file_layer(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("- a\n- b\n", "must hold a mapping"), ("port: [1\n", "not valid YAML")],
)
def test_bad_yaml_file_is_refused(tmp_path: Path, text: str, problem: str) -> None:
    """A YAML file that is not a mapping, or not YAML at all, is a ConfigError."""
    with pytest.raises(ConfigError, match=problem):
        file_layer(write_yaml(tmp_path, text))


def test_missing_yaml_file_is_refused(tmp_path: Path) -> None:
    """A --config file that cannot be read is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"cannot read file .*nope\.yaml"):
        file_layer(tmp_path / "nope.yaml")


def test_unknown_set_key_is_refused() -> None:
    """``--set`` with an unknown key is refused, naming it."""
    with pytest.raises(ConfigError, match=r"unknown key 'prot' in --set"):
        cli_layer(["prot=80"])


def test_set_without_equals_is_refused() -> None:
    """``--set port`` (no value) is refused."""
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        cli_layer(["port"])


def test_set_accepts_dashes_and_values_with_equals() -> None:
    """``--set idle-timeout=5m`` names ``idle_timeout``; only the first ``=`` splits."""
    layer = cli_layer(["idle-timeout=5m", "jwt_audience=a=b"])
    assert layer.values == {"idle_timeout": "5m", "jwt_audience": "a=b"}


def test_metadata_ignores_unknown_and_foreign_attributes() -> None:
    """Unknown ``notraining-*`` attributes, other attributes and ``notraining-job`` are no keys."""
    layer = metadata_layer(
        "instance",
        {
            "notraining-port": "81",
            "notraining-from-the-future": "x",
            "notraining-job": '{"ntd_transaction_id": "1"}',
            "startup-script": "echo hi",
        },
    )
    assert layer.values == {"port": "81"}
    assert "job" not in KEYS


def test_env_layer_reads_only_notraining_keys() -> None:
    """Only ``NOTRAINING_<KEY>`` variables of known keys are read."""
    layer = env_layer({"NOTRAINING_PORT": "81", "PORT": "82", "NOTRAINING_BOGUS": "1"})
    assert layer.values == {"port": "81"}


# -- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        (" 30m ", 1800.0),
        (".5s", 0.5),
        (90, 90.0),
        (1.5, 1.5),
        ("0", 0.0),
    ],
)
def test_durations(raw: object, seconds: float) -> None:
    """Durations are seconds or a number with s, m or h."""
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["1d", "abc", "", "-5", "5 minutes", "1h30m", True, -1])
def test_bad_durations_name_key_and_source(raw: object) -> None:
    """A bad duration stops the agent with the key, value and source in one line."""
    message = error_of(base(), env_layer({"NOTRAINING_IDLE_TIMEOUT": str(raw)}))
    assert "idle_timeout=" in message
    assert "environment (NOTRAINING_IDLE_TIMEOUT)" in message


def test_zero_timeout_is_refused_but_zero_grace_is_allowed() -> None:
    """idle/job timeouts and notify_deadline must be positive; shutdown_grace may be 0."""
    assert "longer than 0" in error_of(base(), cli_layer(["job_timeout=0"]))
    assert load(cli_layer(["shutdown_grace=0"])).settings.shutdown_grace == 0.0


@pytest.mark.parametrize("raw", [".nan", ".inf"])
def test_non_finite_duration_is_refused(tmp_path: Path, raw: str) -> None:
    """A YAML ``.nan`` or ``.inf`` duration is refused like any bad duration."""
    error_of(base(), file_layer(write_yaml(tmp_path, f"notify_deadline: {raw}\n")))


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("true", True),
        ("YES", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("off", False),
        ("0", False),
    ],
)
def test_booleans(raw: str, value: bool) -> None:
    """Booleans take true/false, yes/no, on/off, 1/0 in any case."""
    assert load(env_layer({"NOTRAINING_ALLOW_WEAK_SECRET": raw})).settings.allow_weak_secret is (
        value
    )


def test_bad_boolean() -> None:
    """``maybe`` is not a boolean; the error names the key and the metadata attribute."""
    message = error_of(base(), metadata_layer("instance", {"notraining-jwt-require-exp": "maybe"}))
    assert message == (
        "config: jwt_require_exp='maybe' from instance metadata "
        "(notraining-jwt-require-exp): expected true or false"
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("eighty", "expected a whole number"),
        ("80.5", "expected a whole number"),
        ("70000", "must be between 0 and 65535"),
        ("-1", "must be between 0 and 65535"),
    ],
)
def test_bad_port(raw: str, problem: str) -> None:
    """A bad port names the key, the value and ``environment (NOTRAINING_PORT)``."""
    message = error_of(base(), env_layer({"NOTRAINING_PORT": raw}))
    assert message == f"config: port={raw!r} from environment (NOTRAINING_PORT): {problem}"


def test_int_limits() -> None:
    """Body and download limits take whole numbers of at least 1."""
    assert load(cli_layer(["max_body_bytes= 2048 "])).settings.max_body_bytes == 2048
    assert "at least 1" in error_of(base(), cli_layer(["max_download_bytes=0"]))


def test_urls() -> None:
    """URLs must be http(s) with a host; a bare trailing slash is dropped, paths are kept."""
    settings = load(
        env_layer(
            {
                "NOTRAINING_REGISTER_URL": "https://saturno.test/",
                "NOTRAINING_DONE_URL": "http://saturno.test/done/",
                "NOTRAINING_COMPUTE_ENDPOINT": "http://127.0.0.1:8080/",
            }
        )
    ).settings
    assert settings.register_url == "https://saturno.test"
    assert settings.done_url == "http://saturno.test/done/"
    assert settings.compute_endpoint == "http://127.0.0.1:8080"


@pytest.mark.parametrize("raw", ["ftp://saturno.test/", "saturno.test/done", "http:///done"])
def test_bad_urls(raw: str) -> None:
    """Non-http(s) URLs or URLs without a host are refused, naming the key."""
    message = error_of(base(), cli_layer([f"done_url={raw}"]))
    assert message.startswith("config: done_url=")
    assert "command line (--set done_url)" in message


def test_endpoint_cannot_be_empty() -> None:
    """An empty compute_endpoint is an error, not a silent default."""
    assert "compute_endpoint" in error_of(base(), cli_layer(["compute_endpoint="]))


def test_choices_are_case_insensitive_and_checked() -> None:
    """``self_stop`` and ``auth_mode`` take their listed values only."""
    assert load(cli_layer(["self_stop=DELETE"])).settings.self_stop == "delete"
    assert "expected one of stop, delete, poweroff, none" in error_of(
        base(), cli_layer(["self_stop=halt"])
    )
    assert "expected one of jwt, static" in error_of(base(), cli_layer(["auth_mode=basic"]))


def test_state_dir_must_be_absolute() -> None:
    """A relative state_dir is refused."""
    assert "absolute path" in error_of(base(), cli_layer(["state_dir=var/lib/x"]))


def test_output_uri_default_follows_state_dir() -> None:
    """Without output_uri, results go to ``file://<state_dir>/results``."""
    loaded = load(cli_layer(["state_dir=/srv/agent"]))
    assert loaded.settings.output_uri == "file:///srv/agent/results"


@pytest.mark.parametrize(
    ("raw", "value"),
    [("gs://bucket/prefix/", "gs://bucket/prefix"), ("file:///data/out", "file:///data/out")],
)
def test_output_uri_explicit(raw: str, value: str) -> None:
    """An explicit gs:// or file:/// output_uri is kept (trailing slash dropped)."""
    loaded = load(cli_layer([f"output_uri={raw}", "state_dir=/srv/agent"]))
    assert loaded.settings.output_uri == value


@pytest.mark.parametrize("raw", ["s3://bucket", "file://relative/path", "/data/out"])
def test_bad_output_uri(raw: str) -> None:
    """output_uri other than file:/// or gs:// is refused."""
    assert "output_uri" in error_of(base(), cli_layer([f"output_uri={raw}"]))


def test_allowed_url_hosts() -> None:
    """A comma list of host[:port], lower-cased; paths or credentials are refused."""
    settings = load(env_layer({"NOTRAINING_ALLOWED_URL_HOSTS": " Art.test:8080, ,b.test"}))
    assert settings.settings.allowed_url_hosts == frozenset({"art.test:8080", "b.test"})
    assert "is not a host" in error_of(base(), cli_layer(["allowed_url_hosts=a.test/x"]))


def test_secret_ref_format() -> None:
    """secret_ref must name a secret version."""
    ref = "projects/p/secrets/s/versions/latest"
    assert load(cli_layer([f"secret_ref={ref}"])).settings.secret_ref == ref
    assert "projects/PROJECT/secrets" in error_of(base(), cli_layer(["secret_ref=s/latest"]))


def test_empty_text_falls_back_to_default() -> None:
    """An empty listen_host or processor keeps the default instead of an empty string."""
    settings = load(env_layer({"NOTRAINING_LISTEN_HOST": " ", "NOTRAINING_PROCESSOR": ""}))
    assert settings.settings.listen_host == "0.0.0.0"
    assert settings.settings.processor == "manifest"


# -- rules across keys -----------------------------------------------------------------------


def test_local_mode_forces_self_stop_none_with_its_source() -> None:
    """Off GCE, self_stop becomes none and says why, whatever was configured."""
    loaded = load(cli_layer(["self_stop=stop"]), local_mode=True)
    assert loaded.local_mode is True
    assert loaded.settings.self_stop == "none"
    assert loaded.sources["self_stop"] == "local mode (not on GCE)"
    assert loaded.masked()["self_stop"] == ("none", "local mode (not on GCE)")


def test_local_mode_keeps_an_explicit_none_source() -> None:
    """A configured ``self_stop: none`` keeps its own source in local mode."""
    loaded = load(cli_layer(["self_stop=none"]), local_mode=True)
    assert loaded.sources["self_stop"] == "command line (--set self_stop)"


def test_self_stop_not_forced_on_gce() -> None:
    """On GCE, self_stop keeps its default ``stop``."""
    assert load().settings.self_stop == "stop"


@pytest.mark.parametrize("key", ["register_url", "done_url"])
def test_saturno_urls_required_on_gce(key: str) -> None:
    """On GCE a missing register_url/done_url stops the agent, naming how to set it."""
    values: dict[str, Any] = {**URLS, "jwt_secret": SECRET}
    del values[key]
    message = error_of(Layer("file x", values))
    assert key in message
    assert attribute_name(key) in message
    assert env_name(key) in message


def test_saturno_urls_optional_in_local_mode() -> None:
    """In local mode no Saturno URL is needed."""
    loaded = resolve([Layer("file x", {"jwt_secret": SECRET})], local_mode=True)
    assert loaded.settings.register_url is None
    assert loaded.settings.done_url is None


def test_jwt_mode_needs_a_secret() -> None:
    """auth_mode jwt without jwt_secret or secret_ref is refused, naming auth_mode's source."""
    message = error_of(Layer("file x", URLS))
    assert message.startswith("config: auth_mode=jwt from default needs jwt_secret or secret_ref")


def test_static_mode_needs_a_token() -> None:
    """auth_mode static needs token (a jwt_secret does not count)."""
    message = error_of(
        Layer("file x", {**URLS, "jwt_secret": SECRET}), cli_layer(["auth_mode=static"])
    )
    assert "auth_mode=static from command line (--set auth_mode) needs token" in message
    loaded = resolve(
        [Layer("file x", {**URLS, "token": "tok-123456"}), cli_layer(["auth_mode=static"])]
    )
    assert loaded.settings.auth_secret == Secret("tok-123456")


def test_secret_ref_satisfies_the_secret_rule() -> None:
    """A secret_ref alone is enough: the secret is read at start."""
    ref = "projects/p/secrets/s/versions/1"
    loaded = resolve([Layer("file x", {**URLS, "secret_ref": ref})])
    assert loaded.settings.jwt_secret is None
    assert loaded.settings.secret_ref == ref


def test_replace_sets_a_value_and_its_source() -> None:
    """LoadedConfig.replace adds a later source (e.g. Secret Manager) for one key."""
    loaded = load().replace("jwt_secret", Secret("from-sm-0123"), "Secret Manager (ref)")
    assert loaded.settings.jwt_secret == Secret("from-sm-0123")
    assert loaded.sources["jwt_secret"] == "Secret Manager (ref)"


# -- secrets -----------------------------------------------------------------------------------


def test_secrets_masked_in_masked_and_repr() -> None:
    """jwt_secret, token and saturno_token never show in masked(), repr or str."""
    loaded = load(cli_layer(["token=static-token-value", "saturno_token=saturno-token-value"]))
    shown = loaded.masked()
    for key in ("jwt_secret", "token", "saturno_token"):
        assert shown[key][0] == "***"
    everything = repr(loaded) + str(loaded.settings) + repr(shown)
    for value in (SECRET, "static-token-value", "saturno-token-value"):
        assert value not in everything
    assert loaded.settings.jwt_secret is not None
    assert loaded.settings.jwt_secret.reveal() == SECRET


def test_masked_lists_every_key_printable() -> None:
    """masked() has every key, with empty text for unset ones and sorted host lists."""
    shown = load(cli_layer(["allowed_url_hosts=b.test,a.test"])).masked()
    assert set(shown) == set(KEYS)
    assert shown["jwt_audience"] == ("", "default")
    assert shown["allowed_url_hosts"] == ("a.test,b.test", "command line (--set allowed_url_hosts)")
    assert shown["jwt_secret"] == ("***", "file base.yaml (jwt_secret)")


def test_secret_equality_and_empty_secret_is_none() -> None:
    """Secrets compare by value; an empty secret is no secret."""
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert load(cli_layer(["saturno_token= "])).settings.saturno_token is None


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after start."""
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]
