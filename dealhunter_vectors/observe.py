"""Observation hooks: what each public operation did, for whoever subscribes.

The core reports, it never imports a telemetry framework: every public coroutine
(``db.faults.operation``) opens an :class:`Observation` named after its call site, the
search, routing and pool code add attributes to the current one (:func:`note`, :func:`add`)
and report measurements (:func:`measure`), and :func:`step` opens a child (a migration
step). Subscribers (the OpenTelemetry adapter, ``integrations/otel.py``; a test) register
with :func:`subscribe`. With none registered, every hook is one module-attribute read and a
branch: nothing is allocated, timed or imported (overhead: docs/observability.md).

The attribute vocabulary is :data:`ATTRIBUTES`; values are ``str``/``int``/``float``/``bool``,
never a vector, a password or (unless a subscriber asks for it) the query text.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Final, Protocol, TypeAlias

from .errors import ConfigurationError

__all__ = [
    "ATTRIBUTES",
    "ENTRY_POINT_GROUP",
    "AttributeValue",
    "Observation",
    "Subscriber",
    "add",
    "begin",
    "current",
    "enable",
    "end",
    "measure",
    "note",
    "observed",
    "step",
    "subscribe",
    "subscribed",
    "unsubscribe",
]

AttributeValue: TypeAlias = str | int | float | bool

ATTRIBUTES: Final[Mapping[str, str]] = {
    "limit": "the limit the caller asked for (int)",
    "threshold": "the similarity threshold the caller asked for (float)",
    "rows_scored": "rows whose half-precision distance was computed (owner-scoped searches; summed over sub-searches)",
    "rows_reranked": "rows whose exact distance was computed (owner-scoped searches; summed over sub-searches)",
    "fallback": "the fallback that produced the result: 'filter', 'top_k' or 'top_k+filter' (absent: none)",
    "ann_candidates": "candidates the HNSW scan of the global search produced (its last pass)",
    "ann_widenings": "times the global search widened its candidate count",
    "exact_scan": "the global search scanned every row (no limit, or exact=True)",
    "result_count": "items returned (hits, rows read back, ids written, rows deleted)",
    "served_by": "which server answered: 'primary', 'replica N' (1-based) or 'citus' (absent: a plain pool)",
    "replica_lag_s": "the serving replica's lag at its last check, s",
    "replica_skips": "replicas passed over by a routed read (unhealthy, lagging, busy or failed)",
    "retries": "times the operation ran again after a lost connection",
    "pool_waits": "acquires that found no idle connection",
    "pool_wait_s": "seconds those acquires waited, summed",
    "layout": "the deployment layout that ran the statements ('single node', 'citus')",
    "table": "the table a migration step loads",
    "migration": "the schema migration a step applies (e.g. '003_hnsw_m32')",
    "recall_mean": "recall_self_check: mean recall@k of the global index search against the exact scan (float)",
    "recall_min": "recall_self_check: the lowest recall of one sampled query (float)",
    "samples": "recall_self_check: stored rows used as queries (int)",
}
"""Every attribute the core reports, and what it means."""

ENTRY_POINT_GROUP: Final = "dealhunter_vectors.observers"
"""Entry points ``name = "module:function"`` that :func:`enable` loads (``otel`` ships with the package)."""


class Observation:
    """One public operation (or one step of it) while it runs.

    ``name`` is the call site (``search_deal_embeddings``, ``migrate_sqlite``, a step's name),
    ``kind`` ``"read"``, ``"write"`` or ``"step"``, ``server`` the masked URL of the server it
    ran on (never a password), ``attributes`` what the core noted, ``query_text`` the text
    of a hybrid search (for subscribers that opt in), ``handles`` each subscriber's own state
    (e.g. its span), keyed by ``id(subscriber)``.
    """

    __slots__ = (
        "attributes",
        "duration",
        "error",
        "handles",
        "kind",
        "name",
        "parent",
        "query_text",
        "server",
        "started",
        "token",
    )

    def __init__(self, name: str, kind: str, parent: Observation | None, server: str | None) -> None:
        self.name = name
        self.kind = kind
        self.parent = parent
        self.server: str | None = server if server is not None or parent is None else parent.server
        self.attributes: dict[str, AttributeValue] = {}
        self.query_text: str | None = None
        self.handles: dict[int, Any] = {}
        self.error: BaseException | None = None
        self.duration = 0.0
        self.started = time.perf_counter()
        self.token: contextvars.Token[Observation | None] | None = None

    def __repr__(self) -> str:
        return f"<Observation {self.name} {self.attributes}>"


class Subscriber(Protocol):
    """What a subscriber implements (all three are called synchronously, in the operation's task)."""

    def started(self, observation: Observation) -> None:
        """An observation began (its ``attributes`` hold what is known at the start)."""

    def finished(self, observation: Observation) -> None:
        """It ended (``duration`` in s, ``error`` set when it raised)."""

    def measured(self, name: str, value: float, attributes: Mapping[str, AttributeValue]) -> None:
        """A measurement outside the attribute set: ``"pool_wait"`` (s), ``"replica_skip"`` (1),
        ``"recall"`` (recall_self_check's mean recall, attribute ``limit``), ``"recall_latency"`` (s,
        its median latency, attribute ``search``: ``"index"`` or ``"exact"``)."""


SUBSCRIBERS: tuple[Subscriber, ...] = ()
"""The registered subscribers (read by the hooks: empty means every hook returns at once)."""

_CURRENT: contextvars.ContextVar[Observation | None] = contextvars.ContextVar("dhv_observation", default=None)


def subscribe(subscriber: Subscriber) -> None:
    """Register *subscriber* (again: no effect)."""
    global SUBSCRIBERS
    if subscriber not in SUBSCRIBERS:
        SUBSCRIBERS = (*SUBSCRIBERS, subscriber)


def unsubscribe(subscriber: Subscriber) -> None:
    """Remove *subscriber* (not registered: no effect)."""
    global SUBSCRIBERS
    SUBSCRIBERS = tuple(s for s in SUBSCRIBERS if s is not subscriber)


def subscribed() -> bool:
    """Whether anything listens."""
    return bool(SUBSCRIBERS)


def current() -> Observation | None:
    """The observation of the operation running in this task (None when none, or nobody listens)."""
    return _CURRENT.get() if SUBSCRIBERS else None


def begin(
    name: str, kind: str, *, server: str | None = None, attributes: Mapping[str, AttributeValue] | None = None
) -> Observation | None:
    """Open an observation as the current one (a child of the current one, if any); None when nobody listens.

    Close it with :func:`end` in the same task.
    """
    if not SUBSCRIBERS:
        return None
    obs = Observation(name, kind, _CURRENT.get(), server)
    if attributes:
        obs.attributes.update(attributes)
    obs.token = _CURRENT.set(obs)
    for subscriber in SUBSCRIBERS:
        subscriber.started(obs)
    return obs


def end(obs: Observation | None, error: BaseException | None = None) -> None:
    """Close *obs* (None: nothing to do) and tell the subscribers."""
    if obs is None:
        return
    obs.duration = time.perf_counter() - obs.started
    obs.error = error
    if obs.token is not None:
        # closed in another context than it was opened in: leave the variable alone
        with contextlib.suppress(ValueError):
            _CURRENT.reset(obs.token)
        obs.token = None
    for subscriber in SUBSCRIBERS:
        subscriber.finished(obs)


def note(key: str, value: AttributeValue) -> None:
    """Set an attribute of the current observation (nothing when none)."""
    if SUBSCRIBERS:
        obs = _CURRENT.get()
        if obs is not None:
            obs.attributes[key] = value


def add(key: str, amount: int | float = 1) -> None:
    """Add *amount* to a numeric attribute of the current observation (nothing when none)."""
    if SUBSCRIBERS:
        obs = _CURRENT.get()
        if obs is not None:
            obs.attributes[key] = obs.attributes.get(key, 0) + amount  # type: ignore[operator]


def measure(name: str, value: float, **attributes: AttributeValue) -> None:
    """Report a measurement to every subscriber (nothing when none listens)."""
    for subscriber in SUBSCRIBERS:
        subscriber.measured(name, value, attributes)


@contextlib.contextmanager
def observed(name: str, kind: str, *, server: str | None = None, **attributes: AttributeValue) -> Iterator[None]:
    """An observation around a block (a call that is not an ``operation``); nothing when nobody listens."""
    obs = begin(name, kind, server=server, attributes=attributes) if SUBSCRIBERS else None
    if obs is None:
        yield
        return
    try:
        yield
    except BaseException as exc:
        end(obs, exc)
        raise
    end(obs)


def step(name: str, **attributes: AttributeValue) -> contextlib.AbstractContextManager[None]:
    """A child observation (kind ``"step"``) around one step of an operation, e.g. a migration step."""
    return observed(name, "step", server=None, **attributes)


_ENABLED: set[str] = set()


def enable(name: str) -> None:
    """Load the observer registered as *name* in :data:`ENTRY_POINT_GROUP` and call it (once per process).

    ``DEALHUNTER_OTEL=1`` makes :func:`~dealhunter_vectors.create_pool` call ``enable("otel")``.
    A name with no installed entry point is a :class:`ConfigurationError` naming the extra.
    """
    if name in _ENABLED:
        return
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        raise ConfigurationError(
            f"no observer {name!r} is installed (entry point group {ENTRY_POINT_GROUP!r}): "
            f"pip install 'dealhunter-vectors[{name}]'"
        )
    found[0].load()()
    _ENABLED.add(name)
