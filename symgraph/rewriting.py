"""Rewrites as named, individually switchable passes over a FunctionGraph.

A *pass* is ``fn(fgraph) -> None`` editing the graph through ``fgraph.replace``. A
*local* rewrite is ``fn(fgraph, node) -> {old: new} | None``; :func:`local_rewrite`
wraps it into a pass that applies it to every node until nothing changes.

Passes run in ascending ``order``; a pass is skipped when its name is in
``Mode.exclude`` or ``config.excluded_rewrites``, and a non-default pass runs only when
named in ``Mode.include``.

Passes of the ``"scan-trace"`` phase run on a scan's step graph when ``sg.scan`` traces
it (see ``symgraph.scan.trace``), so that the gradient scan is derived from the rewritten
step; they are switched off with ``config.excluded_rewrites``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from symgraph.fgraph import FunctionGraph

_MAX_SWEEPS = 50


@dataclass(frozen=True)
class Rewrite:
    name: str
    order: float
    apply: Callable[[FunctionGraph], None]
    default: bool
    doc: str
    phase: str = "compile"


REGISTRY: dict[str, Rewrite] = {}


def register_pass(name: str, order: float, default: bool = True, phase: str = "compile"):
    """Decorator registering ``fn(fgraph)`` (or ``fn(traced_step)`` for the
    ``"scan-trace"`` phase) as the pass ``name``."""

    def deco(fn):
        if name in REGISTRY:
            raise ValueError(f"rewrite {name!r} registered twice")
        REGISTRY[name] = Rewrite(name, order, fn, default, (fn.__doc__ or "").strip(), phase)
        return fn

    return deco


def local_rewrite(name: str, order: float, default: bool = True):
    """Decorator registering ``fn(fgraph, node) -> {old: new} | None`` as a pass applied
    to every node until a sweep changes nothing."""

    def deco(fn):
        run = sweep(fn, name)
        run.__doc__ = fn.__doc__
        register_pass(name, order, default)(run)
        return fn

    return deco


def sweep(fn, name: str):
    """``run(fgraph)`` applying the local rewrite ``fn`` to every node until a sweep
    changes nothing."""

    def run(fgraph: FunctionGraph) -> None:
        for _ in range(_MAX_SWEEPS):
            changed = False
            for node in fgraph.toposort():
                if not _still_in_graph(fgraph, node):
                    continue
                replacements = fn(fgraph, node)
                if replacements:
                    for old, new in replacements.items():
                        fgraph.replace(old, new, reason=name)
                    changed = True
            if not changed:
                return

    return run


def _still_in_graph(fgraph: FunctionGraph, node) -> bool:
    return any(fgraph.clients.get(out) for out in node.outputs)


def selected(include=(), exclude=(), phase: str = "compile") -> list[Rewrite]:
    """The passes of ``phase`` to run, in order, for a mode's include/exclude lists."""
    from symgraph.config import config

    unknown = (set(include) | set(exclude) | set(config.excluded_rewrites)) - set(REGISTRY)
    if unknown:
        raise ValueError(f"unknown rewrite(s) {sorted(unknown)}; known: {sorted(REGISTRY)}")
    skip = set(exclude) | set(config.excluded_rewrites)
    chosen = [r for r in REGISTRY.values() if r.phase == phase
              and r.name not in skip and (r.default or r.name in include)]
    return sorted(chosen, key=lambda r: r.order)


def rewrite(fgraph: FunctionGraph, include=(), exclude=()) -> FunctionGraph:
    """Apply the selected passes to ``fgraph`` in place and return it."""
    for r in selected(include, exclude):
        r.apply(fgraph)
    return fgraph
