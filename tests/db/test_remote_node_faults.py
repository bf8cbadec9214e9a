"""The classification of a Citus worker's failure (``db/faults.py``), form by form.

The forms were taken from a real cluster (``tests/layout/test_citus_worker_faults.py`` stops
a worker mid-search and checks the error end to end): SQLSTATE 08006 "connection to the
remote node user@host:port failed ...", the worker's 57P01 relayed with the context "while
executing command on host:port", and XX000 with a connection message (Citus's internal
errors). A constraint violation relayed from a worker (XX000 with the same context) is not
a connection failure.
"""

from __future__ import annotations

import asyncpg
import pytest

from dealhunter_vectors.db.faults import is_connection_error, remote_node_failure, translate_error
from dealhunter_vectors.errors import DatabaseUnavailableError


def relayed(cls: type[asyncpg.PostgresError], message: str, context: str | None = None) -> asyncpg.PostgresError:
    err = cls(message)
    if context is not None:
        err.context = context  # set by asyncpg from the server's 'W' field
    return err


@pytest.mark.parametrize(
    ("err", "node"),
    [
        (
            relayed(
                asyncpg.ConnectionFailureError,
                "connection to the remote node postgres@127.0.0.1:53885 failed with the following error: "
                "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally",
            ),
            "127.0.0.1:53885",
        ),
        (
            relayed(
                asyncpg.AdminShutdownError,
                "terminating connection due to administrator command",
                "while executing command on 10.1.2.3:5432",
            ),
            "10.1.2.3:5432",
        ),
        (
            relayed(
                asyncpg.InternalServerError,
                "connection to the remote node citus@worker-2.internal:6432 failed with the following error: "
                "connection not open",
            ),
            "worker-2.internal:6432",
        ),
        (
            relayed(
                asyncpg.InternalServerError,
                "connection to the remote node [fd00::12]:5432 failed with the following error: Connection refused",
            ),
            "[fd00::12]:5432",
        ),
    ],
)
def test_a_workers_failure_names_it(err: asyncpg.PostgresError, node: str) -> None:
    assert remote_node_failure(err) == node
    assert is_connection_error(err)
    typed = translate_error(err, object(), "search_deal_embeddings")
    assert isinstance(typed, DatabaseUnavailableError) and typed.retryable
    assert f"the Citus worker {node} is unreachable" in str(typed) and "\n" not in str(typed)


def test_a_violation_relayed_from_a_worker_is_not_a_connection_failure() -> None:
    err = relayed(
        asyncpg.InternalServerError,
        'duplicate key value violates unique constraint "deal_embeddings_pkey_102008"',
        "while executing command on 127.0.0.1:5433",
    )
    assert remote_node_failure(err) is None
    assert not is_connection_error(err)
    assert translate_error(err, object()) is None  # the caller's own mapping (layout.citus.copy_violation) applies


def test_the_coordinators_own_connection_loss_is_not_a_worker() -> None:
    err = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    assert remote_node_failure(err) is None and is_connection_error(err)
    typed = translate_error(err, object())
    assert isinstance(typed, DatabaseUnavailableError) and "lost the connection to the server" in str(typed)
