"""Turn the suite's per-backend records into comparison rows and text or markdown tables.

Pure functions over plain dicts (the JSON the suite writes), so ``run.py`` and anyone
reading a saved ``--json`` file get the same verdicts.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from .registry import REGISTRY, Target, ordered

JR = "jupyter_ray"
RAY = "ray"

Record = dict[str, Any]


@dataclass
class Row:
    """One benchmark compared across backends. ``ratio`` is how many times better
    jupyter_ray's median is than Ray's (inverted for figures where lower is better)."""

    name: str
    title: str
    unit: str
    jupyter_ray: str
    ray: str
    ratio: float | None
    target: str
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_samples(first: Record, extra: list[Record]) -> Record:
    """``first`` with the samples of ``extra`` (same benchmark, other processes) added."""
    samples = list(first.get("samples") or [])
    for record in extra:
        if not record.get("error") and not record.get("skipped"):
            samples.extend(record.get("samples") or [])
    if not samples:
        return first
    higher = bool(first.get("higher_is_better", True))
    merged = dict(first)
    merged["samples"] = samples
    merged["median"] = statistics.median(samples)
    merged["best"] = max(samples) if higher else min(samples)
    if first.get("error") and samples:
        merged["error"] = None
    return merged


def fmt(value: float) -> str:
    """A figure with about three significant digits and thousands separators."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _ok(record: Record | None) -> bool:
    return record is not None and record.get("median") is not None


def cell(record: Record | None, show_best: bool) -> str:
    if record is None:
        return "-"
    if record.get("error"):
        return "error"
    if record.get("skipped"):
        return "skipped"
    if record.get("median") is None:
        return "-"
    text = fmt(record["median"])
    if show_best and len(record.get("samples") or []) > 1:
        text += f" (best {fmt(record['best'])})"
    return text


def ratio(jr: Record | None, ray: Record | None, higher_is_better: bool) -> float | None:
    if not (_ok(jr) and _ok(ray)):
        return None
    assert jr is not None and ray is not None
    a, b = float(jr["median"]), float(ray["median"])
    if a <= 0 or b <= 0:
        return None
    return a / b if higher_is_better else b / a


def verdict(
    target: Target, jr: Record | None, speedup: float | None, jr_results: dict[str, Record]
) -> str:
    """'pass', 'FAIL' or 'n/a' (a figure it needs is missing) for one target."""
    if not _ok(jr):
        return "n/a"
    assert jr is not None
    value = float(jr["median"])
    if target.kind == "at_most":
        return "pass" if value <= target.value else "FAIL"
    if target.kind == "vs_ray":
        if speedup is None:
            return "n/a"
        return "pass" if speedup >= target.value else "FAIL"
    reference = jr_results.get(target.reference)
    if not _ok(reference):
        return "n/a"
    assert reference is not None
    return "pass" if value >= target.value * float(reference["median"]) else "FAIL"


def build_rows(results: dict[str, dict[str, Record]]) -> list[Row]:
    """Rows for every benchmark that either backend reported, in the suite's order.

    ``results`` maps a backend (``jupyter_ray``, ``ray``) to its records by name.
    """
    jr_results = results.get(JR, {})
    ray_results = results.get(RAY, {})
    known = [b.name for b in ordered()]
    names = [n for n in known if n in jr_results or n in ray_results]
    rows: list[Row] = []
    for name in names:
        bench = REGISTRY[name]
        jr, ray = jr_results.get(name), ray_results.get(name)
        speedup = ratio(jr, ray, bench.higher_is_better)
        title = bench.title
        note = (jr or {}).get("note") or (ray or {}).get("note")
        if note:
            title += f" ({note})"
        targets = [t.describe(bench.unit) for t in bench.targets]
        verdicts = [verdict(t, jr, speedup, jr_results) for t in bench.targets]
        rows.append(
            Row(
                name=name,
                title=title,
                unit=bench.unit,
                jupyter_ray=cell(jr, bench.show_best),
                ray=cell(ray, bench.show_best),
                ratio=speedup,
                target="; ".join(targets) or "-",
                verdict=", ".join(verdicts) or "-",
            )
        )
    return rows


HEADERS = ("benchmark", "unit", "jupyter_ray", "Ray", "x Ray", "target", "result")


def _cells(row: Row) -> tuple[str, ...]:
    speedup = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    return (row.title, row.unit, row.jupyter_ray, row.ray, speedup, row.target, row.verdict)


def text_table(rows: list[Row]) -> str:
    table = [HEADERS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    numeric = {2, 3, 4}
    lines = []
    for i, line in enumerate(table):
        parts = [
            c.rjust(widths[j]) if j in numeric and i else c.ljust(widths[j])
            for j, c in enumerate(line)
        ]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|---|---|--:|--:|--:|---|---|",
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def problems(results: dict[str, dict[str, Record]]) -> list[str]:
    """One line per benchmark that failed or was skipped, with the backend's message."""
    out = []
    for backend, records in results.items():
        for name, record in records.items():
            if record.get("error"):
                out.append(f"{backend} {name}: {record['error']}")
            elif record.get("skipped"):
                out.append(f"{backend} {name}: skipped, {record['skipped']}")
    return out


# Figures that do not depend on the backend: if they differ between the backends'
# processes, something else was using the machine during one of them.
REFERENCES = ("numpy_copy_touched", "numpy_copy_fresh")


def noise_warnings(results: dict[str, dict[str, Record]], tolerance: float = 0.15) -> list[str]:
    """Warnings when a backend-independent reference figure differs between backends."""
    jr, ray = results.get(JR, {}), results.get(RAY, {})
    out = []
    for name in REFERENCES:
        a, b = jr.get(name), ray.get(name)
        if not (_ok(a) and _ok(b)):
            continue
        assert a is not None and b is not None
        low, high = sorted((float(a["median"]), float(b["median"])))
        if high > 0 and low / high < 1 - tolerance:
            slower = JR if float(a["median"]) < float(b["median"]) else RAY
            out.append(
                f"warning: {name} is {100 * (1 - low / high):.0f}% lower in {slower}'s run "
                "than in the other; the machine was likely busier then, so compare with care"
            )
    return out
