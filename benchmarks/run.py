"""Microbenchmarks of jupyter_ray next to Ray, with the project's targets.

    python benchmarks/run.py [--backend jupyter_ray|ray|both] [--quick] [--json OUT]

Each backend runs the same suite (``benchmarks/_suite.py``) in a fresh process of its own;
this script starts them one after the other, then prints one table: each figure for
jupyter_ray and for Ray, how many times better jupyter_ray is, and the target with
pass/fail. ``--backend`` defaults to ``both`` when Ray is installed. A full run also
starts two more fresh processes per backend for the start-up figures. See
docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from microbench import Benchmark, ordered
from microbench.registry import select
from microbench.report import (
    JR,
    RAY,
    Record,
    build_rows,
    markdown_table,
    merge_samples,
    noise_warnings,
    problems,
    text_table,
)

HERE = Path(__file__).resolve().parent
SUITE = HERE / "_suite.py"
STARTUP = ("import", "init_first_result")


class SuiteRun:
    """One ``_suite.py`` process: its records, its meta, how it ended."""

    def __init__(self, backend: str, args: list[str], logdir: Path, tag: str) -> None:
        self.backend = backend
        self.args = args
        self.out = logdir / f"{tag}.jsonl"
        self.log = logdir / f"{tag}.log"
        self.records: dict[str, Record] = {}
        self.meta: dict[str, Any] = {}
        self.returncode: int | None = None
        self.timed_out = False
        self._partial = b""

    def run(self, timeout: float, echo: bool) -> None:
        """Start the suite, echo its ``[bench]`` lines, stop it (by its pid) on timeout."""
        cmd = [sys.executable, str(SUITE), "--backend", self.backend, *self.args]
        cmd += ["--out", str(self.out)]
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        with open(self.log, "wb") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env
            )
        deadline = time.monotonic() + timeout
        with open(self.log, "rb") as tail:
            while True:
                done = proc.poll() is not None
                self._echo(tail, echo)
                if done:
                    break
                if time.monotonic() > deadline and not self.timed_out:
                    self.timed_out = True
                    print(f"  {self.backend}: no end after {timeout:.0f} s, stopping it")
                    proc.terminate()  # the suite's SIGTERM handler still shuts down
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                time.sleep(0.2)
        self.returncode = proc.returncode
        self._load()

    def _echo(self, tail: BinaryIO, echo: bool) -> None:
        self._partial += tail.read()
        *lines, self._partial = self._partial.split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if echo and line.startswith("[bench] "):
                print("  " + line[len("[bench] ") :], flush=True)

    def _load(self) -> None:
        if not self.out.exists():
            return
        for line in self.out.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("type") == "result":
                self.records[record["name"]] = record
            elif record.get("type") in ("meta", "end"):
                self.meta.update(record)

    def log_tail(self, lines: int = 25) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


def default_backend() -> str:
    return "both" if importlib.util.find_spec("ray") is not None else JR


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Backends run one after the other, each in a fresh process.",
    )
    parser.add_argument("--backend", choices=(JR, RAY, "both"), default=None)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--slow", action="store_true", help="issue-sized runs (200 actors)")
    parser.add_argument("--json", metavar="OUT", help="write every sample and verdict here")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--group", default="", help="comma-separated groups (see --list)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    parser.add_argument(
        "--startup-runs",
        type=int,
        default=None,
        help="fresh processes that measure import and init (default 3, 1 with --quick)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds per backend process")
    return parser.parse_args(argv)


def list_benchmarks() -> None:
    for bench in ordered():
        targets = "; ".join(t.describe(bench.unit) for t in bench.targets) or "no target"
        print(f"{bench.name}  [{bench.group}, {bench.unit}, {targets}]")
        print(f"    {bench.doc}")


def run_backend(
    backend: str, args: argparse.Namespace, chosen: list[Benchmark], logdir: Path
) -> tuple[dict[str, Record], dict[str, Any], list[str]]:
    """Run ``chosen`` on ``backend``: one suite process for most, extra fresh processes for
    the start-up figures and for each ``own_process`` benchmark. Returns merged records,
    the main process's meta, and notes on what went wrong."""
    timeout = args.timeout or (180.0 if args.quick else 600.0)
    others = other_cpu_percent()
    busy = f" (other work is using {others:.0f}% of the CPUs; figures will be low)"
    print(f"{backend}:{busy if others > 20 else ''}", flush=True)
    base = suite_args_base(args)
    records: dict[str, Record] = {}
    meta: dict[str, Any] = {}
    notes: list[str] = []
    if others > 20:
        notes.append(f"{backend}: other work used {others:.0f}% of the CPUs just before it ran")

    def run(names: list[str], tag: str, limit: float, echo: bool) -> SuiteRun:
        suite = SuiteRun(backend, [*base, "--only", ",".join(names)], logdir, tag)
        suite.run(limit, echo=echo)
        if suite.returncode != 0 or suite.timed_out or not suite.records:
            notes.append(
                f"{backend} ({', '.join(names)}): the suite process ended with code "
                f"{suite.returncode}{' after a timeout' if suite.timed_out else ''}; last "
                f"lines of its log ({suite.log}):\n{suite.log_tail()}"
            )
        return suite

    shared = [b.name for b in chosen if not b.own_process]
    if shared:
        first = run(shared, backend, timeout, echo=True)
        records.update(first.records)
        meta = first.meta

    # Start-up figures get one sample per process: more fresh processes, if they worked.
    startup = [n for n in STARTUP if records.get(n, {}).get("median") is not None]
    runs = args.startup_runs if args.startup_runs is not None else (1 if args.quick else 3)
    extra = [
        run(startup, f"{backend}-startup{i}", 120.0, echo=False)
        for i in range(1, runs if startup else 0)
    ]
    for suite in extra:
        notes += [
            f"{backend} {r['name']} (extra start-up run): {r['error']}"
            for r in suite.records.values()
            if r.get("error")
        ]
    for name in startup:
        records[name] = merge_samples(
            records[name], [r.records[name] for r in extra if name in r.records]
        )
        if extra:
            fig = records[name]
            print(
                f"  {backend} {name}: median {fig['median']:.4g} s of "
                f"{len(fig['samples'])} fresh processes",
                flush=True,
            )

    for bench in chosen:
        if bench.own_process:
            alone = run([bench.name], f"{backend}-{bench.name}", min(timeout, 300.0), True)
            records.update(alone.records)
            meta = meta or alone.meta
    meta["other_cpu_percent_before"] = others
    return records, meta, notes


def other_cpu_percent(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds``, measured while no suite process runs."""
    try:
        import psutil
    except ImportError:
        return 0.0
    return float(psutil.cpu_percent(interval=seconds))


def suite_args_base(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    if args.quick:
        out.append("--quick")
    if args.slow:
        out.append("--slow")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        list_benchmarks()
        return 0
    backend = args.backend or default_backend()
    backends = [JR, RAY] if backend == "both" else [backend]
    try:
        chosen = select(
            [n for n in args.only.split(",") if n], [g for g in args.group.split(",") if g]
        )
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    started = datetime.datetime.now().astimezone()
    command = "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    logdir = Path(tempfile.mkdtemp(prefix="jupyter-ray-bench-"))
    results: dict[str, dict[str, Record]] = {}
    metas: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for name in backends:
        results[name], metas[name], backend_notes = run_backend(name, args, chosen, logdir)
        notes += backend_notes

    rows = build_rows(results)
    versions = ", ".join(f"{b} {metas[b].get('version', '?')}" for b in backends)
    header = (
        f"{started:%Y-%m-%d %H:%M %Z}; {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cores; Python {platform.python_version()}; {versions}; "
        f"{'quick' if args.quick else 'full'} run"
    )
    print()
    print(header)
    print(f"command: {command}")
    print()
    print(text_table(rows))
    if args.markdown:
        print()
        print(markdown_table(rows))
    issues = problems(results) + noise_warnings(results)
    for line in [*issues, *notes]:
        print(line)
    if issues or notes:
        print(f"logs: {logdir}")
    else:
        shutil.rmtree(logdir, ignore_errors=True)
    if args.backend is None and backend == JR:
        print("Ray is not installed, so there is no Ray column: pip install ray==2.60.0")

    if args.json:
        document = {
            "date": started.isoformat(timespec="seconds"),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(),
            "command": command,
            "mode": "quick" if args.quick else "full",
            "backends": {b: {"meta": metas[b], "results": results[b]} for b in backends},
            "rows": [row.as_dict() for row in rows],
            "problems": issues + notes,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")

    jr_broken = JR in results and not results[JR]
    if args.check and (jr_broken or any("FAIL" in row.verdict for row in rows)):
        return 1
    return 1 if jr_broken else 0


if __name__ == "__main__":
    sys.exit(main())
