"""Task graphs small enough to draw: past a limit, one node per function with counts.

A notebook cell that maps a function over 10,000 items makes 10,000 task nodes, which no
browser lays out in time and nobody reads. ``collapse`` keeps graphs up to ``limit``
nodes as they are; a bigger one becomes one group node per function name (counts by
state) with the edges between groups (counted), which keeps its shape: a map, then a
reduce, is two nodes and one edge.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

Graph = dict[str, Any]


def collapse(graph: Graph, limit: int) -> Graph:
    """``graph`` (``{"nodes", "edges"}`` as ``state.task_graph`` returns it) with at most
    about ``limit`` nodes; ``"grouped"`` says whether it was collapsed."""
    nodes: list[dict[str, Any]] = graph["nodes"]
    edges: list[dict[str, Any]] = graph["edges"]
    if len(nodes) <= limit:
        return {"nodes": nodes, "edges": edges, "grouped": False}
    group_of: dict[str, str] = {}
    counts: dict[str, Counter[str]] = {}
    kinds: dict[str, str] = {}
    for node in nodes:
        gid = f"group:{node['name']}"
        group_of[node["id"]] = gid
        counts.setdefault(gid, Counter())[node["state"]] += 1
        kinds.setdefault(gid, node["kind"])
    groups = [
        {
            "id": gid,
            "group": True,
            "name": gid[len("group:") :],
            "kind": kinds[gid],
            "count": sum(states.values()),
            "states": dict(states),
        }
        for gid, states in counts.items()
    ]
    linked: Counter[tuple[str, str, str]] = Counter()
    for edge in edges:
        source = group_of.get(edge["source"])
        target = group_of.get(edge["target"])
        if source is None or target is None or source == target:
            continue  # an object put by the driver, or an edge inside one group
        linked[(source, target, edge["kind"])] += 1
    grouped_edges = [
        {"source": s, "target": t, "kind": k, "count": n} for (s, t, k), n in linked.items()
    ]
    return {"nodes": groups, "edges": grouped_edges, "grouped": True}


def select_jobs(graph: Graph, job_ids: set[str]) -> Graph:
    """The part of ``graph`` made by these jobs (a kernel's), edges inside it only."""
    nodes = [n for n in graph["nodes"] if n.get("job_id") in job_ids]
    keep = {n["id"] for n in nodes}
    edges = [e for e in graph["edges"] if e["source"] in keep and e["target"] in keep]
    return {"nodes": nodes, "edges": edges}
