"""OpenTelemetry traces and metrics of every public operation (extra ``[otel]``).

One call turns it on (or ``DEALHUNTER_OTEL=1``, read by :func:`~dealhunter_vectors.create_pool`)::

    from dealhunter_vectors.integrations import otel
    otel.instrument()          # the global tracer and meter providers; otel.uninstrument() turns it off

It subscribes to the core's observations (:mod:`dealhunter_vectors.observe`): a span per
public search, write and schema/migration step, named after the call site, a child of the
caller's current span, with the database semantic conventions (``db.system.name``,
``db.operation.name``, ``db.namespace``, ``server.address``/``server.port``: never a user or
password) and the retrieval attributes ``dealhunter.*`` (limit, threshold, rows scored and
re-ranked, fallback, ANN candidates and widenings, result count, served by, replica lag,
retries, pool waits). Never a vector; the hybrid searches' query text only with
``instrument(record_query_text=True)``. Metrics: ``db.client.operation.duration`` (s, per
operation), ``db.client.connection.wait_time`` (s, acquires that found no idle connection),
counters ``dealhunter.search.rows_scored``, ``dealhunter.search.fallbacks``,
``dealhunter.operation.retries``, ``dealhunter.replica.skips`` (observable counters over running totals),
gauges ``dealhunter.search.recall`` and ``dealhunter.search.recall_check.duration`` (each
:func:`~dealhunter_vectors.recall_self_check`'s result). docs/observability.md has the attribute
table, Prometheus and the measured overhead.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from .. import observe
from ..errors import MissingExtraError

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - the packaging test covers it in a process of its own
    raise MissingExtraError(__name__, "otel", "opentelemetry-api") from None

__all__ = ["INSTRUMENTATION_NAME", "Instrumentation", "instrument", "server_attributes", "uninstrument"]

INSTRUMENTATION_NAME: Final = "dealhunter_vectors"
DB_SYSTEM: Final = "postgresql"
DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
"""The semantic conventions' advice for ``db.client.*`` durations, s."""

_RENAMED: Final[Mapping[str, str]] = {
    "ann_candidates": "dealhunter.ann.candidates",
    "ann_widenings": "dealhunter.ann.widenings",
    "pool_waits": "dealhunter.pool.waits",
    "pool_wait_s": "dealhunter.pool.wait_s",
}


_NAMES: dict[str, str] = {}


def attribute_name(key: str) -> str:
    """The span attribute of a core observation key (``rows_scored`` -> ``dealhunter.rows_scored``)."""
    name = _NAMES.get(key)
    if name is None:
        name = _NAMES[key] = _RENAMED.get(key, f"dealhunter.{key}")
    return name


@functools.lru_cache(maxsize=64)
def _server_attributes(masked_url: str) -> tuple[tuple[str, str | int], ...]:
    return tuple(server_attributes(masked_url).items())


def server_attributes(masked_url: str | None) -> dict[str, str | int]:
    """``server.address``, ``server.port`` and ``db.namespace`` of a (masked) URL: never its user or password.

    A Unix-socket URL (``postgresql://u@/db?host=/run/pg``) gives the socket directory as the address.
    """
    if not masked_url:
        return {}
    try:
        parts = urlsplit(masked_url)
        query = parse_qs(parts.query)
        address = parts.hostname or (query.get("host") or [""])[0]
        port = parts.port or int((query.get("port") or ["0"])[0]) or None
    except ValueError:
        return {}
    out: dict[str, str | int] = {}
    if address:
        out["server.address"] = address
    if port:
        out["server.port"] = port
    database = parts.path.lstrip("/") or (query.get("dbname") or query.get("database") or [""])[0]
    if database:
        out["db.namespace"] = database
    return out


class _Subscriber:
    """Turns observations into spans and metric points (an :class:`observe.Subscriber`)."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter, *, record_query_text: bool) -> None:
        self.tracer = tracer
        self.record_query_text = record_query_text
        self.duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of dealhunter_vectors' public operations",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.wait_time = meter.create_histogram(
            "db.client.connection.wait_time",
            unit="s",
            description="Time an acquire that found no idle pool connection waited for one",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.recall = meter.create_gauge(
            "dealhunter.search.recall",
            unit="1",
            description="Recall@k of the global index search against the exact scan on stored rows (recall_self_check)",
        )
        self.recall_latency = meter.create_gauge(
            "dealhunter.search.recall_check.duration",
            unit="s",
            description="recall_self_check's median latency of the global search, index or exact",
        )
        # Counters as observable instruments over running totals: a call adds to a dict (well under
        # a microsecond) instead of a synchronous counter's attribute hashing (~15 us each).
        self.totals: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        for name, unit, description in (
            ("dealhunter.search.rows_scored", "{row}", "Rows scored by their half-precision copy"),
            ("dealhunter.search.fallbacks", "{search}", "Searches answered by a fallback"),
            ("dealhunter.operation.retries", "{retry}", "Operations run again after a lost connection"),
            ("dealhunter.replica.skips", "{skip}", "Replicas passed over by routed reads"),
        ):
            meter.create_observable_counter(name, [self._observer(name)], unit=unit, description=description)

    def _observer(self, metric: str) -> Callable[[metrics.CallbackOptions], Iterable[metrics.Observation]]:
        def observe_totals(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            # list(): one atomic copy, the event loop's thread may add a key meanwhile
            return [
                metrics.Observation(value, {"db.system.name": DB_SYSTEM, **dict(attrs)})
                for (name, attrs), value in list(self.totals.items())
                if name == metric
            ]

        return observe_totals

    def _count(self, metric: str, amount: int, attrs: tuple[tuple[str, str], ...]) -> None:
        key = (metric, attrs)
        self.totals[key] = self.totals.get(key, 0) + amount

    # ---- observe.Subscriber
    def started(self, observation: observe.Observation) -> None:
        parent = observation.parent.handles.get(id(self)) if observation.parent is not None else None
        context = trace.set_span_in_context(parent[0]) if parent is not None else None
        span = self.tracer.start_span(
            observation.name,
            context=context,
            kind=SpanKind.INTERNAL if observation.kind == "step" else SpanKind.CLIENT,
            attributes={"db.system.name": DB_SYSTEM, "db.operation.name": observation.name},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        observation.handles[id(self)] = (span, token)

    def finished(self, observation: observe.Observation) -> None:
        handle = observation.handles.pop(id(self), None)
        if handle is None:
            return
        span, token = handle
        with contextlib.suppress(Exception):  # a context detached elsewhere must not break the caller
            otel_context.detach(token)
        attributes = self._span_attributes(observation)
        error_type = type(observation.error).__qualname__ if observation.error is not None else None
        if span.is_recording():
            span.set_attributes(attributes)
            if error_type is not None:
                span.set_attribute("error.type", error_type)
                # the type only: a message may quote an argument the caller passed
                span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()
        if observation.kind != "step":
            self._record_metrics(observation, error_type)

    def measured(self, name: str, value: float, attributes: Mapping[str, observe.AttributeValue]) -> None:
        if name == "pool_wait":
            self.wait_time.record(value, {"db.system.name": DB_SYSTEM})
        elif name == "replica_skip":
            self._count("dealhunter.replica.skips", int(value), (("dealhunter.reason", str(attributes.get("reason"))),))
        elif name == "recall":
            self.recall.set(value, {"db.system.name": DB_SYSTEM, "dealhunter.recall.k": int(attributes["limit"])})
        elif name == "recall_latency":
            search = str(attributes["search"])
            self.recall_latency.set(value, {"db.system.name": DB_SYSTEM, "dealhunter.search.kind": search})

    # ---- helpers
    def _span_attributes(self, observation: observe.Observation) -> dict[str, Any]:
        out: dict[str, Any] = dict(_server_attributes(observation.server)) if observation.server else {}
        names = _NAMES
        for key, value in observation.attributes.items():
            out[names.get(key) or attribute_name(key)] = value
        if self.record_query_text and observation.query_text is not None:
            out["dealhunter.query_text"] = observation.query_text
        return out

    def _record_metrics(self, observation: observe.Observation, error_type: str | None) -> None:
        timed: dict[str, Any] = {"db.system.name": DB_SYSTEM, "db.operation.name": observation.name}
        if error_type is not None:
            timed["error.type"] = error_type
        self.duration.record(observation.duration, timed)
        attrs = observation.attributes
        op = (("db.operation.name", observation.name),)
        if "rows_scored" in attrs:
            self._count("dealhunter.search.rows_scored", int(attrs["rows_scored"]), op)
        if "fallback" in attrs:
            self._count("dealhunter.search.fallbacks", 1, (*op, ("dealhunter.fallback", str(attrs["fallback"]))))
        if "retries" in attrs:
            self._count("dealhunter.operation.retries", int(attrs["retries"]), op)


class Instrumentation:
    """What :func:`instrument` installed; :meth:`uninstrument` removes it."""

    def __init__(self, subscriber: _Subscriber) -> None:
        self._subscriber = subscriber

    def uninstrument(self) -> None:
        """Stop observing (spans already open still end)."""
        global _ACTIVE
        observe.unsubscribe(self._subscriber)
        if _ACTIVE is self:
            _ACTIVE = None


_ACTIVE: Instrumentation | None = None


def instrument(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    record_query_text: bool = False,
) -> Instrumentation:
    """Turn tracing and metrics on (again: the previous instrumentation is replaced).

    Providers default to OpenTelemetry's global ones (configured by the application or
    ``opentelemetry-instrument``); without an SDK the API's no-op providers record nothing.
    ``record_query_text=True`` adds the hybrid searches' query text (``dealhunter.query_text``).
    """
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.uninstrument()
    version = _package_version()
    tracer = trace.get_tracer(INSTRUMENTATION_NAME, version, tracer_provider)
    meter = metrics.get_meter(INSTRUMENTATION_NAME, version, meter_provider)
    subscriber = _Subscriber(tracer, meter, record_query_text=record_query_text)
    observe.subscribe(subscriber)
    _ACTIVE = Instrumentation(subscriber)
    return _ACTIVE


def _package_version() -> str:
    try:
        return importlib.metadata.version("dealhunter-vectors")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "0+unknown"


def uninstrument() -> None:
    """Turn off what :func:`instrument` turned on (nothing on: no effect)."""
    if _ACTIVE is not None:
        _ACTIVE.uninstrument()
