"""Splitting a long generated function into chunk functions.

numba's compile time grows faster than linearly with a function's length (LLVM's SROA
pass on a 300-line LSTM training function took 5 s; on 60-line pieces it is a small
fraction of that), so the body of the graph function, and the body of each loop inside
it, are cut into chunks of at most ``limit`` statements. Each chunk becomes a function
``sg_chunk_<i>(inputs..., _kp)`` returning the values later code needs, and is called
through its address like a kernel (``sg_call``), so that it is compiled on its own.

This works on the generated text: every local name follows the patterns in
:data:`LOCAL` and every statement is a plain assignment, a call, an ``if ...: raise``,
an indexed assignment or a ``for`` loop, so reads and writes can be found with regular
expressions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Names local to generated functions (values, constants, placeholders, the tables).
LOCAL = re.compile(r"\b(v\d+\w*|k\d+|_e\d+_\w+|_kp|_prof|_c\d+)\b")
_ASSIGN = re.compile(r"^\s*((?:[A-Za-z_]\w*\s*,\s*)*[A-Za-z_]\w*,?)\s*=(?!=)")
_COND_ASSIGN = re.compile(r"^\s*if .*:\s*([A-Za-z_]\w*)\s*=(?!=)")
_FOR = re.compile(r"^\s*for ([A-Za-z_]\w*) in ")


@dataclass
class Stmt:
    """A line, its comments, and (for ``for``) the statements of its body."""

    line: str
    comments: list[str] = field(default_factory=list)
    body: list = field(default_factory=list)

    def size(self) -> int:
        return 1 + sum(s.size() for s in self.body)

    def render(self, indent: int) -> list[str]:
        pad = "    " * indent
        out = [pad + c for c in self.comments] + [pad + self.line]
        for s in self.body:
            out += s.render(indent + 1)
        return out

    def writes(self) -> set:
        names = set()
        m = _ASSIGN.match(self.line) or _COND_ASSIGN.match(self.line) or _FOR.match(self.line)
        if m:
            names |= {n.strip() for n in m.group(1).split(",") if n.strip()}
        for s in self.body:
            names |= s.writes()
        return names

    def reads(self) -> set:
        names = set(LOCAL.findall(self.line))
        for s in self.body:
            names |= s.reads()
        return names


def parse(lines: list[str]) -> list[Stmt]:
    """Statements of an indented block (4 spaces per level, first line at level 0)."""
    root: list[Stmt] = []
    stack: list[tuple[int, list]] = [(0, root)]
    pending: list[str] = []
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        depth = (len(raw) - len(raw.lstrip(" "))) // 4
        if text.startswith("#"):
            pending.append(text)
            continue
        while stack[-1][0] > depth:
            stack.pop()
        stmt = Stmt(text, pending)
        pending = []
        stack[-1][1].append(stmt)
        if text.endswith(":"):  # for / with blocks
            stack.append((depth + 1, stmt.body))
    if pending:
        root.append(Stmt("pass", pending))
    return root


class Splitter:
    """Cuts statement lists into chunk functions (see the module docstring)."""

    def __init__(self, limit: int, new_site, prefix: str = "sg_chunk_") -> None:
        self.limit = limit
        self.new_site = new_site  # (chunk name, arguments) -> call expression
        self.prefix = prefix  # of the chunk functions' names
        self.chunks: list[tuple[str, str]] = []

    def split(self, stmts: list[Stmt], outside_reads: set, defined_before: set) -> list:
        """``stmts`` with runs of statements replaced by chunk calls. ``outside_reads``:
        names read by code outside ``stmts`` (after them, or in later loop steps);
        ``defined_before``: names that exist when ``stmts`` start."""
        for k, s in enumerate(stmts):
            if s.body and s.size() > self.limit and _FOR.match(s.line):
                # the body repeats: anything read anywhere in this list may be read later
                inner_outside = outside_reads | set().union(*(t.reads() for t in stmts))
                loop_var = set(_FOR.match(s.line).groups())
                inner_before = (defined_before | loop_var
                                | set().union(*(t.writes() for t in stmts[:k])))
                s.body = self.split(s.body, inner_outside, inner_before)
        out, group = [], []
        for k, s in enumerate(stmts):
            if group and sum(g.size() for g in group) + s.size() > self.limit:
                out.append(self._chunk(group, stmts[k:], outside_reads, defined_before, out))
                group = []
            group.append(s)
        if group:
            if out:
                out.append(self._chunk(group, [], outside_reads, defined_before, out))
            else:
                out = group
        return out

    def _chunk(self, group, rest, outside_reads, defined_before, done) -> Stmt:
        writes = set().union(*(s.writes() for s in group))
        reads = set().union(*(s.reads() for s in group))
        before = defined_before | set().union(*(s.writes() for s in done))
        later = outside_reads | set().union(*(s.reads() for s in rest))
        inputs = sorted((reads | writes) & before)
        outputs = sorted(writes & later)
        name = f"{self.prefix}{len(self.chunks)}"
        body = [line for s in group for line in s.render(1)]
        ret = ", ".join(outputs) + ("," if len(outputs) == 1 else "")
        params = inputs + (["_kp"] if "_kp" not in inputs else [])
        source = (f"def {name}({', '.join(params)}):\n" + "\n".join(body)
                  + f"\n    return ({ret})\n")
        self.chunks.append((name, source))
        call = self.new_site(name, params)
        if outputs:
            return Stmt(f"{ret} = {call}", [f"# {name}: {len(group)} statements"])
        return Stmt(call, [f"# {name}: {len(group)} statements"])
