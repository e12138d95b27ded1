"""``debugprint``: a text dump of a graph or a compiled function, one node per line."""

from __future__ import annotations

import io

from symgraph.graph import Constant, SharedVariable, Variable


def debugprint(obj, file=None, print_type: bool = True) -> str:
    """Print the graph behind ``obj`` (a Variable, a list of them, or a compiled
    Function) as an indented tree to ``file`` (default stdout; ``False`` prints nothing);
    return the text.

    Each line shows the op (or the variable for roots), an id, and the type. A node
    already printed is shown again only by its id (``*``).
    """
    from symgraph.compile import Function

    if isinstance(obj, Function):
        roots = obj.fgraph.outputs
        header = f"compiled function ({obj.mode.backend}), {len(obj.fgraph.toposort())} nodes"
    else:
        roots = [obj] if isinstance(obj, Variable) else list(obj)
        header = None
    out = io.StringIO()
    if header:
        out.write(header + "\n")
    ids: dict = {}
    for root in roots:
        _print_var(root, out, "", ids, print_type)
    text = out.getvalue()
    if file is None:
        print(text, end="")
    elif file is not False:
        file.write(text)
    return text


def _label(var: Variable, ids: dict) -> str:
    if var not in ids:
        ids[var] = f"id{chr(65 + len(ids) % 26)}{len(ids) // 26 or ''}"
    return ids[var]


def _print_var(var, out, indent, ids, print_type) -> None:
    stack = [(var, indent)]
    while stack:
        v, ind = stack.pop()
        seen = v in ids
        ident = _label(v, ids)
        typ = f" '{v.type}'" if print_type else ""
        name = f" '{v.name}'" if v.name else ""
        if v.owner is None:
            kind = ("Shared" if isinstance(v, SharedVariable)
                    else repr(v) if isinstance(v, Constant) else "Input")
            out.write(f"{ind}{kind}{name} [{ident}]{typ}\n")
            continue
        index = f".{v.index}" if len(v.owner.outputs) > 1 else ""
        out.write(f"{ind}{v.owner.op}{index}{name} [{ident}]{typ}{' *' if seen else ''}\n")
        if seen:
            continue
        for inp in reversed(v.owner.inputs):
            stack.append((inp, ind + " |"))
