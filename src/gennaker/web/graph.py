"""Lay out a stage graph: column = depth along ``requires``, so parallel branches sit side by side
(one above the other in the same column); drawn as inline SVG by the templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gennaker.engine.model import STAGE_DONE


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    status: str
    type: str
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    path: str


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    node_w: int
    node_h: int
    nodes: list[Node]
    edges: list[Edge]


def depths(stages: list[dict[str, Any]]) -> dict[str, int]:
    """Each stage's column: 0 without requirements, else one more than its deepest requirement."""
    by_id = {s["stage_id"]: s for s in stages}
    out: dict[str, int] = {}

    def depth(sid: str, seen: frozenset[str]) -> int:
        if sid in out:
            return out[sid]
        if sid in seen:  # validated pipelines have no cycles; never loop on a damaged row
            return 0
        reqs = [r for r in by_id[sid].get("requires") or [] if r in by_id]
        d = 1 + max((depth(r, seen | {sid}) for r in reqs), default=-1)
        out[sid] = d
        return d

    for s in stages:
        depth(s["stage_id"], frozenset())
    return out


def layout(
    stages: list[dict[str, Any]], node_w: int = 150, node_h: int = 34, gap_x: int = 36, gap_y: int = 12, pad: int = 4
) -> Layout:
    cols = depths(stages)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[int, int]] = {}
    nodes: list[Node] = []
    for s in stages:
        c = cols[s["stage_id"]]
        r = rows.get(c, 0)
        rows[c] = r + 1
        x, y = pad + c * (node_w + gap_x), pad + r * (node_h + gap_y)
        pos[s["stage_id"]] = (x, y)
        nodes.append(Node(s["stage_id"], s["name"], s["status"], s.get("type", ""), x, y))
    edges = []
    for s in stages:
        x2, y2 = pos[s["stage_id"]]
        for req in s.get("requires") or []:
            if req not in pos:
                continue
            x1, y1 = pos[req]
            sx, sy, ex, ey = x1 + node_w, y1 + node_h // 2, x2, y2 + node_h // 2
            mid = (sx + ex) // 2
            edges.append(Edge(f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}"))
    ncols = max(cols.values(), default=0) + 1
    nrows = max(rows.values(), default=1)
    return Layout(
        width=2 * pad + ncols * node_w + (ncols - 1) * gap_x,
        height=2 * pad + nrows * node_h + (nrows - 1) * gap_y,
        node_w=node_w,
        node_h=node_h,
        nodes=nodes,
        edges=edges,
    )


def progress(stages: list[dict[str, Any]]) -> tuple[int, int]:
    """(finished stages, all stages)."""
    return sum(1 for s in stages if s["status"] in STAGE_DONE), len(stages)
