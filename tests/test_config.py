"""Settings and URL masking."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dealhunter_vectors as dv
from dealhunter_vectors.config import mask_text
from dealhunter_vectors.db.embedded import is_embedded_url, resolve_database_url


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    s = dv.get_settings()
    assert s.database_url.get_secret_value() == "postgresql://dealhunter:dealhunter@localhost:5433/dealhunter"
    assert (s.pool_max_size, s.pool_max_inactive_lifetime, s.connect_timeout) == (20, 30.0, 2.0)
    assert s.embedding_dimensions == 3072 and s.command_timeout is not None


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@db:5432/x")
    monkeypatch.setenv("DEALHUNTER_POOL_MAX_SIZE", "7")
    s = dv.get_settings()
    assert s.database_url.get_secret_value().endswith("@db:5432/x") and s.pool_max_size == 7
    assert "pw" not in repr(s) and "u:***@db" in repr(s) and "pw@" not in str(s)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://dealhunter:dealhunter@localhost:5433/dealhunter",
            "postgresql://dealhunter:***@localhost:5433/dealhunter",
        ),
        ("postgresql://u:p%40ss%3Aw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?user=u&password=s3cr3t&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
        ("postgresql://postgres:@/postgres?host=/tmp/x", "postgresql://postgres:***@/postgres?host=/tmp/x"),
    ],
)
def test_mask_url(url: str, expected: str) -> None:
    assert dv.mask_url(url) == expected


@given(
    user=st.text(alphabet=st.characters(blacklist_characters=":/@?#[] \n", min_codepoint=33), min_size=1),
    password=st.text(alphabet=st.characters(blacklist_characters="/@?#[] \n", min_codepoint=33), min_size=4),
)
def test_mask_url_never_contains_the_password(user: str, password: str) -> None:
    url = f"postgresql://{user}:{password}@db.example:5432/app"
    masked = dv.mask_url(url)
    assert f":{password}@" not in masked
    assert masked.endswith("***@db.example:5432/app")
    assert f":{password}@" not in mask_text(f"failed to connect to {url}: boom")


def test_embedded_url_forms() -> None:
    assert is_embedded_url("embedded") and is_embedded_url("embedded:///tmp/x")
    assert not is_embedded_url("postgresql://x/y")
    with pytest.raises(dv.ConfigurationError, match="unsupported database URL scheme 'mysql'"):
        resolve_database_url("mysql://u:secret@h/db")


def test_settings_are_not_logged_with_password(caplog: pytest.LogCaptureFixture) -> None:
    s = dv.Settings(database_url="postgresql://a:hunter2@h/d")
    with caplog.at_level(logging.INFO):
        logging.getLogger("x").info("settings: %s", s)
    assert "hunter2" not in caplog.text
