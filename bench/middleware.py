"""What the middleware costs a site, and what each mode costs a triggering page view.

1. Overhead: the same HTML page bare and wrapped (``run_rate`` 0.01 and 1, nothing due,
   ``mode="auto"``) on uvicorn and gunicorn (sync worker), loaded with ``wrk`` (Debian's
   package), which is pinned to one core and the servers to the other. Three ways, from the
   coarsest to the finest:

   - ``overhead``: a server of each kind, started afresh every round, the order rotated;
     requests/s and the server's CPU time per request, and each round's ratio to its bare
     server. A second bare server ("bare again") shows what the bench cannot resolve, and a
     do-nothing middleware what any wrapping costs.
   - ``one-server``: one process serves every variant on a path of its own, loaded in turn
     (what tells two processes apart is gone).
   - ``interleaved``: the same process, every request the next path in turn (a wrk script),
     and the time each path's app call took, timed inside the server: what the middleware adds
     in microseconds, under a real server's load and caches, with the machine's noise falling
     on every path alike. For uvicorn this time includes what a request awaits, which once a
     second is the due query's thread hop: the first two ways are the check of it.

   The same comparison in-process (the app called directly, no server, no socket) gives the
   middleware's own cost per request with everything hot in the CPU's caches.
2. Modes (the figures behind ``auto``): on uvicorn, gunicorn (sync) and waitress, in ``sync``
   and ``async`` mode, a page view that dispatches a no-op job and triggers its run: the page's
   time to last byte next to the same page with nothing due, and how long after the visitor's
   last byte the job started. Medians of repeated page views.

    python bench/middleware.py [--seconds 5] [--rounds 3] [--views 15]
                               [--only overhead|one-server|interleaved|inprocess|modes]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import reqrunner  # noqa: E402
from reqrunner.web.asgi import ASGIMiddleware  # noqa: E402
from reqrunner.web.wsgi import WSGIMiddleware  # noqa: E402
from tests.middleware.servers import Server, serve, ttlb  # noqa: E402
from tests.middleware.sites import SIDE_BY_SIDE, read_stamps  # noqa: E402

_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_COUNT = re.compile(r"(\d+) requests in")
RATES = ("0.01", "1")
KINDS = ("uvicorn", "gunicorn")
"""The run rates the overhead is measured at, both with nothing due."""


def server_cpu(server: Server) -> float:
    """CPU seconds the server's processes (a gunicorn master and its worker too) have used."""
    total = 0.0
    for proc in _processes(server):
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def _processes(server: Server) -> list[psutil.Process]:
    root = psutil.Process(server.process.pid)
    return [root, *root.children(recursive=True)]


def _cores() -> tuple[set[int], set[int]] | None:
    """The cores for wrk and for the servers: one each, so that neither takes the other's
    core mid-run and every server runs on the same one (None on a single core)."""
    cores = sorted(os.sched_getaffinity(0))
    return ({cores[0]}, {cores[-1]}) if len(cores) > 1 else None


def _pin(server: Server) -> None:
    """Keep the server's processes on the core :func:`_cores` gives the servers."""
    cores = _cores()
    if cores is not None:
        for proc in _processes(server):
            proc.cpu_affinity(sorted(cores[1]))


def wrk(
    server: Server, seconds: int, path: str = "/page", *, script: Path | None = None
) -> tuple[float, float]:
    """Load ``path`` with ``wrk`` for ``seconds``: requests per second, and the server's CPU
    microseconds per request.

    One wrk thread and 4 connections: one thread saturates a single Python process, and a
    second would take the other core of a 2-core machine from the server. The CPU per request
    hardly depends on what else the machine runs, where requests per second do.
    """
    cores = _cores()
    before = server_cpu(server)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c4",
            f"-d{seconds}s",
            *(["-s", str(script)] if script else []),
            f"{server.url}{path}",
        ],
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=None if cores is None else lambda: os.sched_setaffinity(0, cores[0]),
    ).stdout
    cpu = server_cpu(server) - before
    rate, count = _RATE.search(out), _COUNT.search(out)
    if rate is None or count is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    return float(rate.group(1)), cpu / max(int(count.group(1)), 1) * 1e6


def _spread(values: list[float], digits: int = 0) -> str:
    return (
        f"{statistics.median(values):7.{digits}f} "
        f"({min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def overhead(seconds: int, rounds: int) -> None:
    print(f"\n== overhead: /page bare vs wrapped (nothing due), {rounds} rounds of {seconds:g} s"
          " on servers started afresh each round; req/s and server CPU us per request, medians"
          " (ranges); ratios to the bare server of the same round, medians (ranges). 'bare"
          " again' is a second bare server: how far its ratio is from 1 is what the bench"
          " cannot resolve; 'do-nothing' wraps the app in a middleware that only calls it, the"
          " least any middleware costs")  # fmt: skip
    variants = {
        "bare": {"RR_BARE": "1"},
        "bare again": {"RR_BARE": "1"},
        "do-nothing": {"RR_BARE": "noop"},
        **{f"rate {rate}": {"RR_RATE": rate, "RR_MODE": "auto"} for rate in RATES},
    }
    names = list(variants)
    for kind in KINDS:
        with tempfile.TemporaryDirectory() as tmp:
            # One hash seed for all: dicts laid out alike in every server process.
            base = _site(tmp, PYTHONHASHSEED="0")
            starts = {
                name: partial(serve, kind, Path(tmp), **base, **variants[name]) for name in names
            }
            rates, cpus = _rotated(names, rounds, partial(_fresh, starts, seconds))
        _ratios(kind, names, rates, cpus)


def _site(tmp: str, **settings: str) -> dict[str, str]:
    # The environment of a bench site (tests/middleware/sites.py) whose files are in ``tmp``.
    return {"RR_DB": f"sqlite:///{tmp}/jobs.sqlite3", "RR_STAMPS": f"{tmp}/stamps", **settings}


def _fresh(
    starts: dict[str, Callable[[], contextlib.AbstractContextManager[Server]]],
    seconds: int,
    name: str,
) -> tuple[float, float]:
    # A new process every round, because one process can run a percent or two faster than
    # another of the same code for as long as it lives (where its memory happened to land).
    with starts[name]() as server:
        _pin(server)
        wrk(server, 1)  # warm up: first connections, the due cache
        return wrk(server, seconds)


def _rotated(
    names: list[str], rounds: int, measure: Callable[[str], tuple[float, float]]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """``measure(name)`` of every name, round after round, in an order that rotates so that no
    side always runs first or on a warmer machine: requests/s and CPU per request, by name."""
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            rate, cpu = measure(name)
            rates[name].append(rate)
            cpus[name].append(cpu)
    return rates, cpus


def one_server(seconds: int, rounds: int) -> None:
    print(f"\n== overhead in one server: the same page bare, bare again, in a do-nothing"
          f" middleware and in reqrunner's (run_rate 0.01 and 1, nothing due), each on a path of"
          f" its own, loaded in turn, {rounds} rounds of {seconds:g} s, the order rotated; ratios"
          f" to the bare path of the same round, medians (ranges)")  # fmt: skip
    names = [path.removeprefix("/p/") for path in SIDE_BY_SIDE]
    for kind in KINDS:
        with tempfile.TemporaryDirectory() as tmp:
            env = _site(tmp, RR_MODE="auto", RR_BARE="paths")
            with serve(kind, Path(tmp), **env) as server:
                _pin(server)
                for name in names:
                    wrk(server, 1, f"/p/{name}")  # warm up: first connections, the due cache
                rates, cpus = _rotated(
                    names, rounds, lambda name: wrk(server, seconds, f"/p/{name}")
                )
        _ratios(kind, names, rates, cpus)


_ROUND_ROBIN = """
paths = {%s}
n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
"""


def interleaved(seconds: int, rounds: int) -> None:
    print(f"\n== overhead interleaved: one server, every request the next path of those above in"
          f" turn (wrk's script), {rounds} rounds of {seconds:g} s; the time each path took until"
          f" its response was out, timed inside the server, what it adds to the bare path's, and"
          f" the ratio that gives against the server's CPU per request; then what the whole app"
          f" call adds (on uvicorn, with what it awaits after the response); medians"
          f" (ranges)")  # fmt: skip
    names = list(SIDE_BY_SIDE)
    for kind in KINDS:
        added: dict[str, list[float]] = {name: [] for name in names}
        called: dict[str, list[float]] = {name: [] for name in names}
        ratios: dict[str, list[float]] = {name: [] for name in names}
        whole: list[float] = []
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "round-robin.lua"
            script.write_text(_ROUND_ROBIN % ", ".join(f'"{name}"' for name in names))
            env = _site(tmp, RR_MODE="auto", RR_BARE="paths")
            with serve(kind, Path(tmp), **env) as server, httpx.Client() as client:
                _pin(server)
                wrk(server, 1, script=script)  # warm up: first connections, the due cache
                for _ in range(rounds):
                    client.get(f"{server.url}/p-spent")  # zero the tallies
                    _, cpu = wrk(server, seconds, script=script)
                    spent = client.get(f"{server.url}/p-spent").json()
                    out = {name: _mean_us(spent[name], 1) for name in names}
                    call = {name: _mean_us(spent[name], 2) for name in names}
                    bare = out[names[0]]
                    # The server's CPU per request of the bare path: the mixed load's, less
                    # what the others added on average.
                    base = cpu - statistics.mean(out.values()) + bare
                    whole.append(base)
                    for name in names:
                        added[name].append(out[name] - bare)
                        called[name].append(call[name] - call[names[0]])
                        ratios[name].append(base / (base + out[name] - bare))
        print(f"{kind:9} {names[0]:16} server CPU {_spread(whole, 1)} us per request")
        for name in names[1:]:
            print(f"{kind:9} {name:16} adds {_spread(added[name], 2)} us"
                  f"   ratio {_spread(ratios[name], 4)}"
                  f"   whole call adds {_spread(called[name], 2)} us")  # fmt: skip


def _mean_us(tally: list[int], which: int) -> float:
    # A path's tally from /p-spent: [requests, ns until out, ns of the call].
    return tally[which] / max(tally[0], 1) / 1e3


def _ratios(
    kind: str, names: list[str], rates: dict[str, list[float]], cpus: dict[str, list[float]]
) -> None:
    bare = names[0]
    print(f"{kind:9} {bare:12} {_spread(rates[bare])} req/s  {_spread(cpus[bare])} us")
    for name in names[1:]:
        by_rate = [w / b for w, b in zip(rates[name], rates[bare], strict=True)]
        by_cpu = [b / w for w, b in zip(cpus[name], cpus[bare], strict=True)]
        print(f"{kind:9} {name:12} {_spread(rates[name])} req/s  {_spread(cpus[name])} us"
              f"   ratio {_spread(by_rate, 3)} by req/s,"
              f" {_spread(by_cpu, 3)} by CPU")  # fmt: skip


PAGE = b"<!doctype html><html><body><p>hello</p></body></html>"
HEADERS = [(b"content-type", b"text/html"), (b"content-length", str(len(PAGE)).encode())]


async def bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": PAGE})


def bare_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [(k.decode(), v.decode()) for k, v in HEADERS])
    return [PAGE]


def inprocess(n: int, rounds: int) -> None:
    print(f"\n== in-process: microseconds per request of the same page, bare and what the "
          f"middleware adds (nothing due), {rounds} rounds of {n}, medians")  # fmt: skip
    scope = {
        "type": "http", "method": "GET", "path": "/page", "root_path": "", "scheme": "http",
        "query_string": b"", "headers": [(b"host", b"bench")], "server": ("bench", 80),
    }  # fmt: skip
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/page", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "bench", "SERVER_PORT": "80", "HTTP_HOST": "bench",
        "wsgi.url_scheme": "http", "wsgi.run_once": False,
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    def start_response(status: str, headers: list[tuple[str, str]]) -> Any:
        return None

    async def asgi_loop(app: Any) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await app(scope, receive, send)
        return (time.perf_counter() - start) / n

    def wsgi_loop(app: Any) -> float:
        start = time.perf_counter()
        for _ in range(n):
            body = app(environ, start_response)
            b"".join(body)
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return (time.perf_counter() - start) / n

    with tempfile.TemporaryDirectory() as tmp:
        queue = reqrunner.JobQueue(f"sqlite:///{tmp}/jobs.sqlite3")
        # run_rate 0.01: 99 pages in 100 stop at the die. run_rate 1: every page is looked at
        # (qualified, its headers read, "are jobs due" answered from the per-process cache).
        apps: dict[str, dict[str, Any]] = {
            "asgi": {
                "bare": bare_asgi,
                "rate 0.01": ASGIMiddleware(bare_asgi, queue, run_rate=0.01),
                "rate 1": ASGIMiddleware(bare_asgi, queue, run_rate=1.0),
            },
            "wsgi": {
                "bare": bare_wsgi,
                "rate 0.01": WSGIMiddleware(bare_wsgi, queue, run_rate=0.01),
                "rate 1": WSGIMiddleware(bare_wsgi, queue, run_rate=1.0),
            },
        }
        for protocol, variants in apps.items():
            times: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, app in variants.items():
                    if protocol == "asgi":
                        times[name].append(anyio.run(asgi_loop, app))
                    else:
                        times[name].append(wsgi_loop(app))
            medians = {name: statistics.median(values) for name, values in times.items()}
            bare = medians.pop("bare")
            added = "   ".join(
                f"{name} +{(value - bare) * 1e6:6.2f} us" for name, value in medians.items()
            )
            print(f"{protocol:9} bare {bare * 1e6:7.2f} us   {added} per request")
        queue.close()


def modes(views: int) -> None:
    print(f"\n== modes: a page view that dispatches a no-op job and triggers its run; "
          f"medians of {views} views, ms")  # fmt: skip
    for kind in ("uvicorn", "gunicorn", "waitress"):
        for mode in ("sync", "async"):
            with tempfile.TemporaryDirectory() as tmp:
                stamps = Path(tmp) / "stamps"
                env = _site(tmp, RR_MODE=mode)
                with serve(kind, Path(tmp), **env) as server, httpx.Client() as c:
                    quiet, loud, start_after = [], [], []
                    for i in range(views):
                        quiet.append(ttlb(c, f"{server.url}/dispatch?n=0")[0])
                        took, _ = ttlb(c, f"{server.url}/dispatch?n=1&key=v{i}&seconds=0")
                        received = time.time()
                        loud.append(took)
                        deadline = time.monotonic() + 10
                        while len(read_stamps(stamps)) <= i:
                            if time.monotonic() > deadline:
                                raise RuntimeError(f"{kind} {mode}: job {i} did not run")
                            time.sleep(0.002)
                        start_after.append(read_stamps(stamps)[i]["start"] - received)
                        time.sleep(0.05)  # let the run finish and release its lease
            print(f"{kind:9} {mode:5}  nothing due {statistics.median(quiet) * 1000:6.1f}"
                  f"  triggering {statistics.median(loud) * 1000:6.1f}"
                  f"  job started {statistics.median(start_after) * 1000:+7.1f} after the last"
                  f" byte (max {max(start_after) * 1000:+.1f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--views", type=int, default=15)
    parser.add_argument(
        "--only", choices=["overhead", "one-server", "interleaved", "inprocess", "modes"]
    )
    args = parser.parse_args()
    wrk_needed = (None, "overhead", "one-server", "interleaved")
    if args.only in wrk_needed and shutil.which("wrk") is None:
        sys.exit("the overhead benchmark needs wrk: apt-get install wrk")
    if args.only in (None, "overhead"):
        overhead(args.seconds, args.rounds)
    if args.only in (None, "one-server"):
        one_server(args.seconds, args.rounds)
    if args.only in (None, "interleaved"):
        interleaved(args.seconds, args.rounds)
    if args.only in (None, "inprocess"):
        inprocess(20_000, max(args.rounds, 5))
    if args.only in (None, "modes"):
        modes(args.views)


if __name__ == "__main__":
    main()
