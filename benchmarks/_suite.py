"""Run the benchmark suite against one backend, in this (fresh) process.

    python benchmarks/_suite.py --backend jupyter_ray|ray [--quick] [--slow]
        [--only NAME,...] [--group GROUP,...] [--out FILE.jsonl] [--timeout S]

Prints one JSON document on stdout at the end: ``{"meta": {...}, "results": [...]}``.
With ``--out``, also appends one JSON line per finished benchmark to FILE as it goes (the
first line is the meta record), so a caller keeps what finished if this process hangs or
dies. Progress goes to stderr as lines starting with ``[bench]``. ``run.py`` is the usual
way in: it starts one of these per backend and compares them.
"""

from __future__ import annotations

import _thread
import argparse
import datetime
import json
import os
import platform
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy  # noqa: F401  (imported before the backend, so import time excludes it)
from microbench import FEATURES, REGISTRY, Benchmark, Context
from microbench.registry import select, summarize
from microbench.report import Record


class BenchmarkTimeout(Exception):
    """A benchmark ran past --timeout."""


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise BenchmarkTimeout in the main thread once ``seconds`` have passed.

    A watchdog thread interrupts the main thread (``_thread.interrupt_main``); SIGALRM
    is no use here, since Ray's init keeps the alarm's handler from ever running.
    """
    finished = threading.Event()
    fired = threading.Event()

    def watch() -> None:
        if not finished.wait(seconds):
            fired.set()
            _thread.interrupt_main()

    watchdog = threading.Thread(target=watch, name="bench-deadline", daemon=True)
    watchdog.start()
    try:
        yield
    except KeyboardInterrupt:
        if fired.is_set():
            raise BenchmarkTimeout(f"still running after {seconds:g} s") from None
        raise
    finally:
        finished.set()
        watchdog.join()


def _version(ctx: Context) -> str:
    return str(getattr(ctx.module, "__version__", "?")) if ctx.module is not None else "?"


def run_one(ctx: Context, bench: Benchmark, timeout: int, probes: dict[str, str]) -> Record:
    record: dict[str, Any] = {
        "type": "result",
        "name": bench.name,
        "title": bench.title,
        "unit": bench.unit,
        "group": bench.group,
        "higher_is_better": bench.higher_is_better,
        "samples": [],
        "median": None,
        "best": None,
        "error": None,
        "skipped": None,
        "note": None,
        "seconds": 0.0,
    }
    start = time.perf_counter()
    ctx.current = bench.name
    try:
        with _deadline(min(timeout, 60) if bench.group == "startup" else timeout):
            if ctx.module is None and bench.name != "import":
                REGISTRY["import"].fn(ctx)
            if bench.requires is not None:
                if bench.requires not in probes:
                    try:
                        FEATURES[bench.requires](ctx)
                        probes[bench.requires] = ""
                    except Exception as exc:
                        probes[bench.requires] = f"{type(exc).__name__}: {exc}"
                if probes[bench.requires]:
                    record["skipped"] = f"no {bench.requires}: {probes[bench.requires]}"
            if record["skipped"] is None:
                if bench.needs_init:
                    ctx.ensure_init()
                samples = bench.fn(ctx)
                record["samples"] = samples
                record["median"], record["best"] = summarize(samples, bench.higher_is_better)
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    record["seconds"] = round(time.perf_counter() - start, 3)
    record["note"] = ctx.notes.get(bench.name)
    return record


def _describe(record: Record) -> str:
    if record["error"]:
        return f"ERROR {record['error']}"
    if record["skipped"]:
        return f"skipped ({record['skipped']})"
    return f"{record['median']:.4g} {record['unit']} (median of {len(record['samples'])})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", required=True, help="module to import: jupyter_ray or ray")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--slow", action="store_true", help="issue-sized runs (200 actors)")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--group", default="", help="comma-separated groups")
    parser.add_argument("--out", default="", help="append JSON lines here as results come")
    parser.add_argument("--timeout", type=int, default=0, help="seconds per benchmark")
    args = parser.parse_args(argv)

    # A terminating parent still gets shutdown() run, so no runtime is left behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    only = [name for name in args.only.split(",") if name]
    groups = [group for group in args.group.split(",") if group]
    try:
        chosen = select(only, groups)
    except ValueError as exc:
        parser.error(str(exc))
    if not only:
        # Those run in a process of their own: run.py names them in --only.
        chosen = [bench for bench in chosen if not bench.own_process]
    timeout = args.timeout or (60 if args.quick else 180)
    ctx = Context(backend=args.backend, quick=args.quick, slow=args.slow)
    meta: dict[str, Any] = {
        "type": "meta",
        "backend": args.backend,
        "mode": "quick" if args.quick else "full",
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "pid": os.getpid(),
        # Other work on a 2-core machine skews every figure; the table says when it ran.
        "load_start": round(os.getloadavg()[0], 2),
    }
    out = open(args.out, "a", encoding="utf-8") if args.out else None  # noqa: SIM115

    def emit(record: Record) -> None:
        if out is not None:
            out.write(json.dumps(record) + "\n")
            out.flush()

    emit(meta)
    results: list[Record] = []
    probes: dict[str, str] = {}
    try:
        for bench in chosen:
            record = run_one(ctx, bench, timeout, probes)
            results.append(record)
            emit(record)
            _log(f"{args.backend} {bench.name}: {_describe(record)} [{record['seconds']:.1f} s]")
    finally:
        meta["version"] = _version(ctx)
        meta["load_end"] = round(os.getloadavg()[0], 2)
        if ctx.initialized:
            start = time.perf_counter()
            try:
                with _deadline(30):
                    ctx.api.shutdown()
            except Exception as exc:
                meta["shutdown_error"] = f"{type(exc).__name__}: {exc}"
            meta["shutdown_s"] = round(time.perf_counter() - start, 3)
        emit({**meta, "type": "end"})
        if out is not None:
            out.close()
    print(json.dumps({"meta": meta, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
