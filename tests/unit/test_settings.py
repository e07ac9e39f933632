"""Settings.load: environment, TOML file, defaults and clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tornado_core.errors import ConfigError
from tornado_core.settings import Settings

BASE = {"TORNADO_DATABASE_URL": "postgresql://db/tornado", "TORNADO_SECRET_KEY": "s3cret"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tornado.toml"
    path.write_text(text)
    return path


def test_loads_from_the_environment_with_defaults() -> None:
    settings = Settings.load(BASE)
    assert settings.database_url == "postgresql://db/tornado"
    assert settings.secret_key == "s3cret"
    assert settings.queue_backend == "postgres"
    assert settings.aws_endpoint_url is None
    assert settings.aws_region == "us-east-1"
    assert settings.bucket == "tornado"


def test_converts_numbers_and_reads_every_variable() -> None:
    env = {
        **BASE,
        "TORNADO_QUEUE": "sqs",
        "TORNADO_REDSHIFT_URL": "postgresql://rs/dw",
        "TORNADO_AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        "TORNADO_AWS_REGION": "sa-east-1",
        "TORNADO_BUCKET": "erp-jobs",
        "TORNADO_QUEUE_PREFIX": "prod",
        "TORNADO_CLAIM_CHECK_BYTES": "1000",
        "TORNADO_MAX_BODY_BYTES": "2048",
    }
    settings = Settings.load(env)
    assert settings.queue_backend == "sqs"
    assert settings.redshift_url == "postgresql://rs/dw"
    assert settings.aws_endpoint_url == "http://127.0.0.1:5000"
    assert (settings.aws_region, settings.bucket, settings.queue_prefix) == ("sa-east-1", "erp-jobs", "prod")
    assert (settings.claim_check_bytes, settings.max_body_bytes) == (1000, 2048)


def test_ignores_unrelated_and_empty_variables() -> None:
    settings = Settings.load({**BASE, "HOME": "/root", "TORNADO_BUCKET": ""})
    assert settings.bucket == "tornado"


def test_is_frozen() -> None:
    settings = Settings.load(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.bucket = "other"  # type: ignore[misc]


def test_loads_a_toml_file_and_the_environment_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'database_url = "postgresql://file/db"\nsecret_key = "from-file"\n'
        'bucket = "file-bucket"\nclaim_check_bytes = 5\n',
    )
    from_file = Settings.load({}, path)
    assert (from_file.database_url, from_file.bucket, from_file.claim_check_bytes) == (
        "postgresql://file/db",
        "file-bucket",
        5,
    )
    overridden = Settings.load({"TORNADO_BUCKET": "env-bucket"}, path)
    assert overridden.bucket == "env-bucket"
    assert overridden.secret_key == "from-file"


def test_settings_file_can_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, 'database_url = "postgresql://f/db"\nsecret_key = "k"\n')
    assert Settings.load({"TORNADO_SETTINGS_FILE": str(path)}).database_url == "postgresql://f/db"


def test_as_env_reproduces_the_settings() -> None:
    settings = Settings.load({**BASE, "TORNADO_QUEUE": "sqs", "TORNADO_CLAIM_CHECK_BYTES": "7"})
    assert Settings.load(settings.as_env()) == settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TORNADO_SECRET_KEY": "k"}, "database_url is not set (set TORNADO_DATABASE_URL"),
        ({"TORNADO_DATABASE_URL": "postgresql://d/b"}, "secret_key is not set (set TORNADO_SECRET_KEY"),
        (
            {**BASE, "TORNADO_CLAIM_CHECK_BYTES": "lots"},
            "claim_check_bytes must be a whole number, not 'lots'",
        ),
        ({**BASE, "TORNADO_MAX_BODY_BYTES": "1.5"}, "max_body_bytes must be a whole number, not '1.5'"),
        ({**BASE, "TORNADO_QUEUE": "rabbitmq"}, "queue_backend must be 'postgres' or 'sqs', not 'rabbitmq'"),
    ],
    ids=["no-database", "no-secret", "bad-int", "float-int", "bad-backend"],
)
def test_missing_or_invalid_values_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(env)
    assert message in str(caught.value)


def test_missing_settings_point_at_the_dev_stack() -> None:
    with pytest.raises(ConfigError, match="tornado dev env"):
        Settings.load({})


def test_unknown_keys_in_the_file_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, 'database_url = "x"\nsecret_key = "k"\nbukket = "typo"\n')
    with pytest.raises(ConfigError, match="unknown settings: bukket"):
        Settings.load({}, path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"settings file .*nope\.toml does not exist"):
        Settings.load(BASE, tmp_path / "nope.toml")


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "database_url = [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        Settings.load(BASE, path)


@pytest.mark.parametrize(
    ("field", "value"), [("claim_check_bytes", 1.5), ("claim_check_bytes", True), ("bucket", 7)]
)
def test_file_values_of_the_wrong_type_are_refused(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        Settings.from_mapping({"database_url": "postgresql://x/y", "secret_key": "s", field: value})


def test_prepared_statements_are_on_unless_switched_off() -> None:
    base = {"TORNADO_DATABASE_URL": "postgresql://x", "TORNADO_SECRET_KEY": "s"}
    assert Settings.load(base).database_prepared_statements is True
    for off in ("0", "false", "No", "off"):
        assert (
            Settings.load({**base, "TORNADO_DATABASE_PREPARED_STATEMENTS": off}).database_prepared_statements
            is False
        )
    with pytest.raises(ConfigError, match="database_prepared_statements must be true or false"):
        Settings.load({**base, "TORNADO_DATABASE_PREPARED_STATEMENTS": "maybe"})
