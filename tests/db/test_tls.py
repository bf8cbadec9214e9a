"""TLS through real handshakes: a TLS front (dealhunter_vectors.tooling.tls_front) before the embedded server.

The embedded server's binaries are built without SSL, so the front speaks PostgreSQL's
SSLRequest negotiation and the server side of TLS, then relays to the server's socket.
Its counters prove which path a connection took. Misconfigurations (wrong CA, wrong host
name, expired certificate, ``sslmode=require`` without TLS on the server, ...) must be a
one-line :class:`TLSConfigurationError` (not retryable), never a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import numpy as np
import pytest
from tls_pki import Pki, make_pki

import dealhunter_vectors as dv
from dealhunter_vectors.config import mask_url
from dealhunter_vectors.testing import seed_owners
from dealhunter_vectors.tooling.tls_front import TLSFront, upstream_of

SECRET = "Tls-S3cret-pw"
KEY_SECRET = "Key-Passphrase-S3cret"


@dataclass(frozen=True)
class Target:
    upstream: str | tuple[str, int]
    user: str
    password: str | None
    database: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def target(dhv_module_database_url: str) -> Target:
    parts = urlsplit(dhv_module_database_url)
    return Target(
        upstream=upstream_of(dhv_module_database_url),
        user=parts.username or "postgres",
        password=parts.password or None,
        database=parts.path.lstrip("/"),
    )


@contextlib.contextmanager
def running_front(
    target: Target, cert: Path | None = None, key: Path | None = None, plain: Literal["relay", "refuse"] = "relay"
) -> Iterator[TLSFront]:
    with TLSFront(target.upstream, certfile=cert, keyfile=key, plain=plain) as front:
        yield front


def front_url(front: TLSFront, target: Target, query: str, *, password: str | None = None) -> str:
    """A URL to *front*; *password* defaults to the server's, else SECRET (the server trusts local logins)."""
    pw = password or target.password or SECRET
    return f"postgresql://{quote(target.user)}:{quote(pw)}@localhost:{front.port}/{target.database}?{query}"


def chain_text(err: BaseException) -> str:
    text = "".join(traceback.format_exception(err))
    seen: BaseException | None = err
    while seen is not None:
        text += f"{seen}\n{seen!r}\n{seen.args!r}\n"
        seen = seen.__cause__ or seen.__context__
    return text


def assert_tls_configuration_error(err: BaseException, reason: str, fragment: str) -> None:
    assert isinstance(err, dv.TLSConfigurationError) and isinstance(err, dv.ConfigurationError), repr(err)
    assert not isinstance(err, dv.DatabaseUnavailableError)
    assert err.retryable is False and err.reason == reason, (err.reason, str(err))
    message = str(err)
    assert "\n" not in message and message.startswith("cannot connect to postgresql://"), message
    assert fragment in message, message
    assert "not retryable" in message
    assert SECRET not in chain_text(err) and KEY_SECRET not in chain_text(err)


# --------------------------------------------------------------------------- TLS works


async def test_verify_full_runs_searches_and_writes_through_tls(pki: Pki, target: Target) -> None:
    rng = np.random.default_rng(61)
    base = rng.standard_normal(3072).astype(np.float32)
    vectors = [(base + rng.standard_normal(3072).astype(np.float32) * (0.3 + 0.4 * i)) for i in range(6)]
    with running_front(target, pki.server_cert, pki.server_key) as front:
        url = front_url(front, target, f"sslmode=verify-full&sslrootcert={pki.ca}")
        pool = await dv.create_pool(url, min_size=2, max_size=2)
        try:
            assert SECRET not in repr(pool)
            await seed_owners(pool, pre_qualification_ids=("pq-tls",))
            chunks = [
                dv.DealChunk(id=f"tls-{i}", pre_qualification_id="pq-tls", agent_name="a", chunk_type="t",
                             content=f"chunk {i}", embedding=v)
                for i, v in enumerate(vectors)
            ]  # fmt: skip
            await dv.insert_deal_chunks(pool, chunks)
            hits = await dv.search_deal_embeddings(pool, base, pre_qualification_id="pq-tls", threshold=0.1, limit=6)
            async with pool.acquire() as conn:
                ssl_object = conn._con._transport.get_extra_info("ssl_object")
        finally:
            await dv.close_pool(pool)
    # independent: numpy's cosine similarities, best first
    b = base.astype(np.float64)
    sims = {f"tls-{i}": float(b @ v / (np.linalg.norm(b) * np.linalg.norm(v))) for i, v in enumerate(vectors)}
    expected = sorted((k for k, s in sims.items() if s > 0.1), key=lambda k: -sims[k])
    assert [h.chunk_id for h in hits] == expected and len(expected) >= 3
    assert all(h.similarity is not None and abs(h.similarity - sims[h.chunk_id]) < 1e-5 for h in hits)
    # the connections were TLS: the client's transport holds an SSL object, the front counted handshakes
    assert isinstance(ssl_object, ssl.SSLObject) and ssl_object.version() in ("TLSv1.2", "TLSv1.3")
    assert front.stats.tls_sessions >= 3  # the bootstrap connection + 2 pool connections
    assert front.stats.tls_failures == front.stats.plain_relayed == front.stats.refused_ssl == 0


async def test_verify_ca_does_not_check_the_host_name(pki: Pki, target: Target) -> None:
    """The same CA but a certificate for another host: verify-ca accepts it (so the wrong_host
    failure below is the host name check and nothing else)."""
    with running_front(target, pki.wrong_host_cert, pki.wrong_host_key) as front:
        async with dv.open_pool(front_url(front, target, f"sslmode=verify-ca&sslrootcert={pki.ca}"), max_size=1) as p:
            assert await p.fetchval("SELECT 41 + 1") == 42
    assert front.stats.tls_sessions >= 1 and front.stats.plain_relayed == 0


async def test_a_hostssl_only_server_accepts_tls(pki: Pki, target: Target) -> None:
    with running_front(target, pki.server_cert, pki.server_key, plain="refuse") as front:
        url = front_url(front, target, f"sslmode=verify-full&sslrootcert={pki.ca}")
        async with dv.open_pool(url, max_size=1) as pool:
            assert await pool.fetchval("SELECT current_database()") == target.database
    assert front.stats.tls_sessions >= 1 and front.stats.plain_refused == 0


async def test_sslmode_prefer_falls_back_to_plain_against_a_server_without_tls(target: Target) -> None:
    with running_front(target) as front:
        url = front_url(front, target, "sslmode=prefer")
        async with dv.open_pool(url, max_size=1) as pool, pool.acquire() as conn:
            assert conn._con._transport.get_extra_info("ssl_object") is None
            assert await conn.fetchval("SELECT 1") == 1
    assert front.stats.refused_ssl >= 1 and front.stats.plain_relayed >= 1 and front.stats.tls_sessions == 0


# --------------------------------------------------------------------------- misconfigurations

# (id, certificate the front serves, plain policy, URL query, reason, fragment of the message, front counter > 0)
FAILURES: list[tuple[str, str | None, str, str, str, str, str | None]] = [
    ("wrong_ca", "server", "relay", "sslmode=verify-full&sslrootcert={other_ca}", "untrusted_certificate",
     "the server's certificate is not signed by a CA in sslrootcert=", "tls_failures"),
    ("wrong_host", "wrong_host", "relay", "sslmode=verify-full&sslrootcert={ca}", "hostname_mismatch",
     "the server's certificate is not valid for host 'localhost'", "tls_failures"),
    ("expired", "expired", "relay", "sslmode=verify-full&sslrootcert={ca}", "certificate_expired",
     "the server's certificate has expired", "tls_failures"),
    ("require_without_tls", None, "relay", "sslmode=require", "server_without_tls",
     "the server does not offer TLS (it answered the SSLRequest with 'N') but sslmode=require requires it",
     "refused_ssl"),
    ("verify_full_without_tls", None, "relay", "sslmode=verify-full&sslrootcert={ca}", "server_without_tls",
     "but sslmode=verify-full requires it", "refused_ssl"),
    ("disable_against_hostssl", "server", "refuse", "sslmode=disable", "server_requires_tls",
     "the server accepts only TLS connections (no pg_hba.conf entry", "plain_refused"),
    ("missing_rootcert", "server", "relay", "sslmode=verify-full&sslrootcert={missing}", "unreadable_file",
     "sslrootcert file {missing} does not exist or cannot be read", None),
    ("rootcert_not_a_certificate", "server", "relay", "sslmode=verify-full&sslrootcert={not_a_cert}",
     "unusable_file", "sslrootcert file {not_a_cert} holds no usable certificate", None),
    ("bogus_sslmode", "server", "relay", "sslmode=bogus", "invalid_option", "`sslmode` parameter must be one of",
     None),
    ("wrong_ca_with_a_key_passphrase", "server", "relay",
     f"sslmode=verify-full&sslrootcert={{other_ca}}&sslpassword={KEY_SECRET}", "untrusted_certificate",
     "sslpassword=***", "tls_failures"),
]  # fmt: skip


def _fill(text: str, pki: Pki, tmp: Path) -> str:
    return text.format(ca=pki.ca, other_ca=pki.other_ca, not_a_cert=pki.not_a_cert, missing=tmp / "no-such-ca.pem")


def _certificate(pki: Pki, which: str | None) -> tuple[Path | None, Path | None]:
    return {
        None: (None, None),
        "server": (pki.server_cert, pki.server_key),
        "wrong_host": (pki.wrong_host_cert, pki.wrong_host_key),
        "expired": (pki.expired_cert, pki.expired_key),
    }[which]


@pytest.mark.parametrize(("cert", "plain", "query", "reason", "fragment", "counter"),
                         [pytest.param(*c[1:], id=c[0]) for c in FAILURES])  # fmt: skip
async def test_misconfigured_tls_is_one_line_not_retryable_and_masked(
    pki: Pki, target: Target, tmp_path: Path, cert: str | None, plain: Any, query: str, reason: str,
    fragment: str, counter: str | None,
) -> None:  # fmt: skip
    with running_front(target, *_certificate(pki, cert), plain=plain) as front:
        url = front_url(front, target, _fill(query, pki, tmp_path), password=SECRET)
        with pytest.raises(dv.ConfigurationError) as info:
            await dv.create_pool(url, min_size=1, max_size=2, connect_timeout=5)
    assert_tls_configuration_error(info.value, reason, _fill(fragment, pki, tmp_path))
    assert info.value.__cause__ is None and info.value.__context__ is None  # nothing chained
    if counter is not None:  # the front saw the handshake (or the plain startup) it refused
        assert getattr(front.stats, counter) >= 1, front.stats
    assert front.stats.tls_sessions == 0 and front.stats.plain_relayed == 0  # nothing got through


async def test_an_ssl_context_argument_with_the_wrong_ca(pki: Pki, target: Target) -> None:
    context = ssl.create_default_context(cafile=str(pki.other_ca))
    with running_front(target, pki.server_cert, pki.server_key) as front:
        url = front_url(front, target, "", password=SECRET)
        with pytest.raises(dv.TLSConfigurationError) as info:
            await dv.create_pool(url, ssl=context, max_size=1)
    assert_tls_configuration_error(info.value, "untrusted_certificate", "the trusted CAs (sslrootcert / ssl=)")
    assert front.stats.tls_failures >= 1


async def test_verify_full_without_any_root_certificate(
    pki: Pki, target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sslrootcert and no ~/.postgresql/root.crt: asyncpg's own check, a two-line retryable error before."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    front = running_front(target, pki.server_cert, pki.server_key)
    with front as f, pytest.raises(dv.TLSConfigurationError) as info:
        await dv.create_pool(front_url(f, target, "sslmode=verify-full", password=SECRET), max_size=1)
    assert_tls_configuration_error(info.value, "unreadable_file", "root.crt")


async def test_a_certificate_changed_under_a_running_pool(pki: Pki, target: Target) -> None:
    """New connections of a running pool meet the wrong certificate: typed, not retried, and the
    same pool serves again once the certificate is right."""
    rng = np.random.default_rng(5)
    with running_front(target, pki.server_cert, pki.server_key) as front:
        url = front_url(front, target, f"sslmode=verify-full&sslrootcert={pki.ca}")
        # min_size=0: asyncpg's own floor keeper would open (and count) connections in the background
        async with dv.open_pool(url, min_size=0, max_size=1) as pool:
            query = rng.standard_normal(3072).astype(np.float32)
            await dv.search_deal_embeddings(pool, query, pre_qualification_id="pq-none")
            front.set_certificate(pki.wrong_host_cert, pki.wrong_host_key)
            await pool.expire_connections()
            failures_before = front.stats.tls_failures
            with pytest.raises(dv.TLSConfigurationError) as info:
                await dv.search_deal_embeddings(pool, query, pre_qualification_id="pq-none")
            # one handshake, no retry (the front counts it on its own thread: let it settle)
            for _ in range(60):
                if front.stats.tls_failures > failures_before:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert front.stats.tls_failures == failures_before + 1
            front.set_certificate(pki.server_cert, pki.server_key)
            assert await dv.search_deal_embeddings(pool, query, pre_qualification_id="pq-none") == []
    assert info.value.reason == "hostname_mismatch" and info.value.retryable is False
    assert "\n" not in str(info.value) and SECRET not in chain_text(info.value)


def test_mask_url_hides_the_key_passphrase() -> None:
    masked = mask_url(f"postgresql://u:{SECRET}@h/db?sslkey=/k.pem&sslpassword={KEY_SECRET}&sslmode=verify-full")
    assert SECRET not in masked and KEY_SECRET not in masked
    assert masked == "postgresql://u:***@h/db?sslkey=/k.pem&sslpassword=***&sslmode=verify-full"


# --------------------------------------------------------------------------- the CLI


def _doctor(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dealhunter_vectors.cli", "doctor", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("cert", "query", "fragment"),
    [
        pytest.param("server", "sslmode=verify-full&sslrootcert={other_ca}", "is not signed by a CA", id="wrong_ca"),
        pytest.param("wrong_host", "sslmode=verify-full&sslrootcert={ca}", "not valid for host", id="wrong_host"),
        pytest.param(None, "sslmode=require", "the server does not offer TLS", id="require_without_tls"),
    ],
)
def test_doctor_prints_one_line_and_exits_with_the_configuration_code(
    pki: Pki, target: Target, tmp_path: Path, cert: str | None, query: str, fragment: str
) -> None:
    with running_front(target, *_certificate(pki, cert)) as front:
        done = _doctor(front_url(front, target, _fill(query, pki, tmp_path), password=SECRET))
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)  # EXIT_USAGE: configuration
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot connect to") and fragment in lines[0], done.stderr
    assert "not retryable" in lines[0] and "Traceback" not in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_doctor_through_tls_sees_what_it_sees_without(pki: Pki, target: Target, dhv_module_database_url: str) -> None:
    direct = _doctor(dhv_module_database_url)
    with running_front(target, pki.server_cert, pki.server_key) as front:
        through = _doctor(front_url(front, target, f"sslmode=verify-full&sslrootcert={pki.ca}"))
    assert through.returncode == direct.returncode, (through.stdout, through.stderr)
    assert "server reachable" in through.stdout and front.stats.tls_sessions >= 1 and front.stats.plain_relayed == 0
