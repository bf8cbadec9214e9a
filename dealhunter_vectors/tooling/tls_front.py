"""A TLS front for a PostgreSQL server built without SSL (test tooling, stdlib only).

The embedded server's binaries cannot do TLS (``ssl=on`` fails), so the tests put this
in front of it to get a real TLS handshake. It listens on ``127.0.0.1:<free port>`` and
speaks PostgreSQL's negotiation the way a server does:

* ``SSLRequest``: answers ``S`` and runs the server side of the TLS handshake with the
  given certificate and key, then relays the decrypted stream to the upstream server;
  without a certificate it answers ``N``, like a server with ``ssl=off`` (the client then
  continues in plain text or gives up).
* ``GSSENCRequest``: answers ``N`` (no GSSAPI encryption).
* a plain ``StartupMessage`` (a client with ``sslmode=disable``): ``plain="relay"`` (default)
  relays it as is, like ``host`` lines in ``pg_hba.conf``; ``plain="refuse"`` answers with
  the ``FATAL 28000`` a ``hostssl``-only server sends ("no pg_hba.conf entry ..., no
  encryption") and closes.
* ``CancelRequest``: always relayed (a server checks cancel keys, not ``pg_hba.conf``).

Direct TLS (PostgreSQL 17's ``sslnegotiation=direct``) is not spoken: such a connection is
closed. Counters (:attr:`TLSFront.tls_sessions`, ...) let a test prove which path a
connection took. Use::

    with TLSFront(upstream="/path/to/.s.PGSQL.5432", certfile=..., keyfile=...) as front:
        url = f"postgresql://postgres@localhost:{front.port}/db?sslmode=verify-full&sslrootcert=..."

``python -m dealhunter_vectors.tooling.tls_front --upstream ... --cert ... --key ...`` runs one by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FrontStats", "TLSFront", "upstream_of"]

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
_MAX_STARTUP = 10_000  # PostgreSQL's own limit on a startup packet


@dataclass
class FrontStats:
    """What the front saw, per path a connection took (updated on the front's thread)."""

    tls_sessions: int = 0  # completed server-side TLS handshakes
    tls_failures: int = 0  # handshakes the client aborted (it rejected our certificate)
    refused_ssl: int = 0  # SSLRequests answered 'N' (front without TLS)
    plain_relayed: int = 0  # plain StartupMessages relayed
    plain_refused: int = 0  # plain StartupMessages refused (plain="refuse")
    cancels: int = 0
    tls_versions: list[str] = field(default_factory=list)


def upstream_of(url: str) -> str | tuple[str, int]:
    """The upstream address of a ``postgresql://`` URL: a Unix socket path or ``(host, port)``.

    Understands the embedded server's form ``postgresql://user@/db?host=/socket/dir``.
    """
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    port = parts.port or int(query.get("port", ["5432"])[0])
    host = query.get("host", [parts.hostname or ""])[0]
    if not host or host.startswith("/"):
        return os.path.join(host or "/var/run/postgresql", f".s.PGSQL.{port}")
    return host, port


def _error_response(sqlstate: str, message: str) -> bytes:
    pairs = ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
    fields = b"".join(code + text.encode() + b"\x00" for code, text in pairs)
    body = fields + b"\x00"
    return b"E" + struct.pack("!i", len(body) + 4) + body


def _startup_params(payload: bytes) -> dict[str, str]:
    items = payload[4:].split(b"\x00")[:-2]  # after the protocol version, before the final empty name
    pairs = zip(items[::2], items[1::2], strict=True)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs if k}


class TLSFront:
    """The front: ``start()``/``stop()`` (or ``with``) run it on a thread with its own event loop."""

    def __init__(
        self,
        upstream: str | tuple[str, int],
        *,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        plain: Literal["relay", "refuse"] = "relay",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.upstream = upstream
        self.plain = plain
        self.host = host
        self.port = port
        self.stats = FrontStats()
        self._context: ssl.SSLContext | None = None
        self.set_certificate(certfile, keyfile)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def set_certificate(
        self, certfile: str | os.PathLike[str] | None, keyfile: str | os.PathLike[str] | None = None
    ) -> None:
        """Serve *certfile* from the next handshake on (None: answer ``N``, no TLS); open sessions stay."""
        context = None
        if certfile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
        self._context = context

    # ------------------------------------------------------------------ running

    def start(self) -> TLSFront:
        """Listen (on a free port unless one was given) and serve on a background thread."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(self._serve, self.host, self.port))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"tls-front-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Stop listening; connections still open after *grace* seconds are closed; end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            if self._tasks:  # a handshake the client just aborted: let it end (and be counted)
                await asyncio.wait(list(self._tasks), timeout=grace)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> TLSFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ one client

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._negotiate(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            pass  # the client went away or spoke nonsense: drop it, as a server would
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _negotiate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        encrypted = False
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            if not 8 <= length <= _MAX_STARTUP:
                return  # direct TLS (0x16...) or garbage
            if length == 8 and code == SSL_REQUEST and not encrypted:
                if self._context is None:
                    self.stats.refused_ssl += 1
                    writer.write(b"N")
                    await writer.drain()
                    continue  # the client may go on in plain text
                writer.write(b"S")
                await writer.drain()
                try:
                    await writer.start_tls(self._context)
                except (OSError, ssl.SSLError):
                    self.stats.tls_failures += 1
                    return
                self.stats.tls_sessions += 1
                ssl_object = writer.get_extra_info("ssl_object")
                self.stats.tls_versions.append(ssl_object.version() if ssl_object is not None else "?")
                encrypted = True
                continue
            if length == 8 and code == GSSENC_REQUEST and not encrypted:
                writer.write(b"N")
                await writer.drain()
                continue
            rest = await reader.readexactly(length - 8)
            if code == CANCEL_REQUEST:
                self.stats.cancels += 1
            elif not encrypted and self.plain == "refuse":
                self.stats.plain_refused += 1
                params = _startup_params(head[4:] + rest)
                writer.write(
                    _error_response(
                        "28000",
                        f'no pg_hba.conf entry for host "{self.host}", user "{params.get("user", "")}", '
                        f'database "{params.get("database", params.get("user", ""))}", no encryption',
                    )
                )
                await writer.drain()
                return
            elif not encrypted:
                self.stats.plain_relayed += 1
            await self._relay(reader, writer, head + rest)
            return

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes) -> None:
        if isinstance(self.upstream, str):
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            up_writer.write(first)
            await up_writer.drain()
            pumps = [
                asyncio.ensure_future(_pump(reader, up_writer.write, up_writer.drain)),
                asyncio.ensure_future(_pump(up_reader, writer.write, writer.drain)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for p in pumps:
                    p.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            with contextlib.suppress(Exception):
                up_writer.close()


async def _pump(
    source: asyncio.StreamReader, write: Callable[[bytes], None], drain: Callable[[], Awaitable[None]]
) -> None:
    with contextlib.suppress(OSError, ssl.SSLError):
        while data := await source.read(65536):
            write(data)
            await drain()


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - a manual tool
    """Run a front until Ctrl-C (``python -m dealhunter_vectors.tooling.tls_front``)."""
    p = argparse.ArgumentParser(
        prog="python -m dealhunter_vectors.tooling.tls_front", description=__doc__.split("\n")[0]
    )
    p.add_argument("--upstream", required=True, help="the server's URL, socket path, or host:port")
    p.add_argument("--cert", help="server certificate (PEM); without it the front answers 'N' to SSLRequest")
    p.add_argument("--key", help="the certificate's private key (PEM)")
    p.add_argument("--plain", choices=["relay", "refuse"], default="relay")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    up: str | tuple[str, int]
    if "://" in args.upstream:
        up = upstream_of(args.upstream)
    elif args.upstream.startswith("/"):
        up = args.upstream
    else:
        h, _, port = args.upstream.rpartition(":")
        up = (h, int(port))
    front = TLSFront(up, certfile=args.cert, keyfile=args.key, plain=args.plain, port=args.port).start()
    print(f"listening on 127.0.0.1:{front.port} -> {up}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        front.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
