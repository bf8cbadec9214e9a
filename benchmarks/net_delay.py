"""A network round trip for a benchmark on one machine: a TCP relay that delays every byte.

The app talks to its database over a network; the benchmarks here reach the embedded server over
a Unix socket, where a round trip costs microseconds, so a write path's round-trip savings do not
show. :func:`delayed_tcp` starts a relay in a process of its own that listens on
``127.0.0.1:<free port>``, connects each client to the server and forwards every chunk in both
directions **half the RTT later** (order kept; no bandwidth limit, no loss).

``tc qdisc ... netem`` would be the usual tool; this machine's kernel has no ``sch_netem`` or
``sch_prio`` module, hence a relay. Each direction of a connection is a reader thread and a
sender thread that sleeps until a chunk is due (``time.sleep`` is precise to ~0.1 ms here; an
event loop's timers round up to whole milliseconds). The relay's own cost (a thread hop and a
copy per chunk, ~30-60 us on this machine) comes on top of the delay, in a process of its own.

    with delayed_tcp(server_url, rtt_ms=0.5) as url:
        ...  # every round trip through url takes >= 0.5 ms longer

``python -m benchmarks.net_delay --upstream URL --rtt-ms 0.5`` runs one by hand.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from dealhunter_vectors.tooling.tls_front import upstream_of

__all__ = ["delayed_tcp"]


def _forward(source: socket.socket, target: socket.socket, delay: float) -> None:
    """Copy *source* to *target*, each chunk *delay* seconds after it arrived."""
    pending: collections.deque[tuple[float, bytes]] = collections.deque()
    ready = threading.Condition()

    def send() -> None:
        while True:
            with ready:
                while not pending:
                    ready.wait()
                due, data = pending.popleft()
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    target.shutdown(socket.SHUT_WR)
                return
            try:
                target.sendall(data)
            except OSError:
                return

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    while True:
        try:
            data = source.recv(1 << 16)
        except OSError:
            data = b""
        with ready:
            pending.append((time.perf_counter() + delay, data))
            ready.notify()
        if not data:
            break
    sender.join()


def _serve(upstream: str | tuple[str, int], rtt_ms: float, port: int) -> None:
    delay = rtt_ms / 2000
    listener = socket.create_server(("127.0.0.1", port))
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        family = socket.AF_UNIX if isinstance(upstream, str) else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        server.connect(upstream)
        for s in (client, server):
            if s.family == socket.AF_INET:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for a, b in ((client, server), (server, client)):
            threading.Thread(target=_forward, args=(a, b, delay), daemon=True).start()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def delayed_tcp(server_url: str, rtt_ms: float) -> Iterator[str]:
    """A URL that reaches *server_url*'s server over TCP with *rtt_ms* of added round-trip delay."""
    port = _free_port()
    command = ["-m", "benchmarks.net_delay", "--upstream", server_url, "--rtt-ms", str(rtt_ms), "--port", str(port)]
    relay = subprocess.Popen(
        [sys.executable, *command],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None
        relay.stdout.readline()  # "listening on ..."
        parts = urlsplit(server_url)
        user = parts.username or "postgres"
        database = parts.path.lstrip("/") or "postgres"
        yield f"postgresql://{user}@127.0.0.1:{port}/{database}"
    finally:
        relay.terminate()
        relay.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="the server's URL")
    p.add_argument("--rtt-ms", type=float, required=True)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    _serve(upstream_of(args.upstream), args.rtt_ms, args.port)


if __name__ == "__main__":
    main()
