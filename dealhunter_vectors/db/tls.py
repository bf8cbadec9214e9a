"""Which failed connects are TLS misconfigurations (not retryable), and their one-line messages.

A certificate signed by another CA, a certificate for another host name, an expired
certificate, ``sslmode=require`` against a server without TLS, a ``hostssl``-only server
reached with ``sslmode=disable``, an ``sslrootcert`` that cannot be read: no retry can fix
any of them, so they are a :class:`~dealhunter_vectors.errors.TLSConfigurationError`
(a :class:`~dealhunter_vectors.errors.ConfigurationError`, ``retryable`` False; the CLI's
exit code 2), not a retryable :class:`~dealhunter_vectors.errors.DatabaseUnavailableError`.
A TLS connection cut mid-handshake (``SSLEOFError``, a reset) stays retryable.
docs/reliability.md, "TLS".
"""

from __future__ import annotations

import errno
import os
import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from ..config import mask_text, mask_url
from ..errors import ConfigurationError, DatabaseUnavailableError, DealhunterVectorsError, TLSConfigurationError

__all__ = ["connect_failure", "connect_or_tls_error", "tls_failure"]

# X509_V_ERR_* codes of ssl.SSLCertVerificationError.verify_code
_EXPIRED, _NOT_YET_VALID = 10, 9
_HOST_MISMATCH, _IP_MISMATCH = 62, 64

# A TLS connection that was cut, not refused: the server went away mid-handshake.
_TRANSIENT_SSL = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError,
                  ssl.SSLWantWriteError)  # fmt: skip

# Files asyncpg loads for TLS: the URL parameter and its environment variable.
_TLS_FILES = (("sslrootcert", "PGSSLROOTCERT"), ("sslcert", "PGSSLCERT"), ("sslkey", "PGSSLKEY"),
              ("sslcrl", "PGSSLCRL"))  # fmt: skip
_FILE_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EISDIR, errno.ENOTDIR, errno.EPERM}


def _one_line(text: str) -> str:
    return " ".join(mask_text(text).split())


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 8 and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _query(masked_url: str) -> dict[str, str]:
    try:
        query = parse_qs(urlsplit(masked_url).query)
    except ValueError:
        return {}
    return {k: v[-1] for k, v in query.items() if v}


def _tls_files(query: dict[str, str]) -> list[tuple[str, str]]:
    """``(parameter, path)`` of every TLS file the URL (or the ``PGSSL*`` environment) names."""
    files = []
    for param, env in _TLS_FILES:
        path = query.get(param) or os.environ.get(env)
        if path:
            files.append((param, path))
    return files


def _unusable_file(query: dict[str, str]) -> tuple[str, str, str] | None:
    """``(reason, parameter, path)`` of the first named TLS file that cannot be read or loaded."""
    for param, path in _tls_files(query):
        expanded = os.path.expanduser(path)
        if not os.path.isfile(expanded) or not os.access(expanded, os.R_OK):
            return "unreadable_file", param, path
    for param, path in _tls_files(query):
        if param in ("sslrootcert", "sslcrl"):
            try:
                ssl.create_default_context().load_verify_locations(cafile=os.path.expanduser(path))
            except (ssl.SSLError, OSError, ValueError):
                return "unusable_file", param, path
    return None


def _what_requires_tls(query: dict[str, str]) -> str:
    mode = query.get("sslmode") or os.environ.get("PGSSLMODE")
    return f"sslmode={mode} requires it" if mode else "the connection requires it (ssl=)"


def tls_failure(exc: BaseException, masked_url: str) -> TLSConfigurationError | None:
    """The :class:`TLSConfigurationError` behind a failed connect to *masked_url*, None if not TLS.

    *exc* is what asyncpg raised (its ``__cause__``/``__context__`` chain is searched too).
    The message is one line, starts with ``cannot connect to <masked URL>: TLS ...``,
    names the cause and what to fix; no password (the URL is masked, driver text masked).
    """
    query = _query(masked_url)
    host = urlsplit(masked_url).hostname or "the server"
    head = f"cannot connect to {masked_url}: TLS"
    tail = "(not retryable: fix the configuration)"
    for err in _chain(exc):
        if isinstance(err, ssl.SSLCertVerificationError):
            detail = _one_line(err.verify_message or str(err))
            code = err.verify_code
            if code in (_HOST_MISMATCH, _IP_MISMATCH):
                return TLSConfigurationError(
                    "hostname_mismatch",
                    f"{head}: the server's certificate is not valid for host {host!r} ({detail}); connect with a"
                    f" host name the certificate lists, or fix the certificate {tail}",
                )
            if code == _EXPIRED:
                return TLSConfigurationError(
                    "certificate_expired",
                    f"{head}: the server's certificate has expired ({detail}); renew it on the server {tail}",
                )
            if code == _NOT_YET_VALID:
                return TLSConfigurationError(
                    "certificate_not_yet_valid",
                    f"{head}: the server's certificate is not valid yet ({detail}); check the clocks {tail}",
                )
            root = query.get("sslrootcert") or os.environ.get("PGSSLROOTCERT")
            trusted = f"sslrootcert={root}" if root else "the trusted CAs (sslrootcert / ssl=)"
            return TLSConfigurationError(
                "untrusted_certificate",
                f"{head}: the server's certificate is not signed by a CA in {trusted} ({detail}); set sslrootcert"
                f" to the CA that signed the server's certificate {tail}",
            )
        if isinstance(err, ssl.SSLError) and not isinstance(err, _TRANSIENT_SSL):
            if getattr(err, "library", None) in ("X509", "PEM") or err.reason in ("NO_CERTIFICATE_OR_CRL_FOUND",):
                found = _unusable_file(query)
                where = f"{found[1]} file {found[2]}" if found else "a TLS file (sslrootcert / sslcert / sslkey)"
                detail = _one_line(str(err))
                return TLSConfigurationError(
                    "unusable_file", f"{head}: {where} holds no usable certificate or key ({detail}) {tail}"
                )
            return TLSConfigurationError(
                "handshake_failed",
                f"{head}: the handshake failed ({_one_line(str(err))}); check ssl_min_protocol_version /"
                f" ssl_max_protocol_version, client certificates and the server's ssl settings {tail}",
            )
        if isinstance(err, ConnectionError) and "rejected SSL upgrade" in str(err):
            return TLSConfigurationError(
                "server_without_tls",
                f"{head}: the server does not offer TLS (it answered the SSLRequest with 'N') but"
                f" {_what_requires_tls(query)}; enable ssl on the server, or connect to one that has it {tail}",
            )
        if isinstance(err, OSError) and err.errno in _FILE_ERRNOS and not isinstance(err, ConnectionError):
            found = _unusable_file(query)
            if found is not None:
                reason, param, path = found
                what = "does not exist or cannot be read" if reason == "unreadable_file" else "holds no certificate"
                return TLSConfigurationError(reason, f"{head}: {param} file {path} {what} {tail}")
        text = str(err)
        if isinstance(err, asyncpg.ClientConfigurationError) and ("ssl" in text or "certificate" in text):
            # asyncpg's own check of the TLS options (sslmode=bogus, no root.crt for verify-full)
            reason = "unreadable_file" if "certificate file" in text else "invalid_option"
            return TLSConfigurationError(reason, f"{head}: {_one_line(text)} {tail}")
        if type(err).__name__ == "InvalidAuthorizationSpecificationError" and (
            "no encryption" in text or "SSL off" in text
        ):
            return TLSConfigurationError(
                "server_requires_tls",
                f"{head}: the server accepts only TLS connections ({_one_line(text)}) but this connection has TLS"
                f" off; use sslmode=verify-full with sslrootcert {tail}",
            )
    return None


def connect_failure(exc: BaseException, masked_url: str) -> DealhunterVectorsError:
    """``create_pool``'s error for a failed connect: :func:`tls_failure`; asyncpg's rejection of
    a connect option (a :class:`ConfigurationError`, asyncpg's text not shown: it may quote the
    URL); else a retryable :class:`DatabaseUnavailableError` (server down, login refused, network)."""
    tls = tls_failure(exc, masked_url)
    if tls is not None:
        return tls
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return ConfigurationError(f"unusable database URL or connect option for {masked_url} ({type(exc).__name__})")
    return DatabaseUnavailableError(f"cannot connect to {masked_url}: {type(exc).__name__}: {mask_text(str(exc))}")


async def connect_or_tls_error(dsn: str, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect(dsn, **kwargs)``; a TLS misconfiguration is raised as
    :class:`TLSConfigurationError` (nothing chained), every other failure as asyncpg raised it."""
    try:
        return await asyncpg.connect(dsn, **kwargs)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        failure = tls_failure(exc, mask_url(dsn))
        if failure is None:
            raise
    raise failure  # outside the except block: no __context__ holding the driver's view
