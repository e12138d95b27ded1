"""Reverse mode of Scan: a second Scan that runs the other way.

Forward, for t = 0 .. T-1:  ``(c[t+1], y[t]) = step(x[t], c[t], w)``, and the node returns
the carry history ``H = (c[1] .. c[T])`` (or only ``c[T]``) and ``Y = (y[0] .. y[T-1])``.

Plan:
1. What the backward loop reads from the forward one: the state each step started from,
   ``c[t]``, and the value ``P[t]`` of each matrix product in the step, or of the sum
   it is added into (rewrite ``scan_save_products``: products are saved, not
   recomputed; the elementwise work around them is cheap to redo). Both are extra
   per-step outputs of the forward loop: the node is rebuilt with them appended, and
   the compile-time rewrite ``scan_merge_extended`` makes it replace the original, so
   the loop runs once.
2. The backward step, traced on placeholders: rebuild the forward step, seed it with
   ``c̄[t+1] + H̄[t]`` on the new carries and ``Ȳ[t]`` on the step outputs, and
   backpropagate to ``x[t]``, ``c[t]`` and ``w``; then read each product's value from
   ``P[t]`` (its pullback needs only its operands, so the recomputed product is dead).
3. Run it as a Scan over the reversed ``(x, c, H̄, Ȳ, P)``. Its carries are the state
   cotangents ``c̄`` (starting at the final carries' cotangents, else zero) and the
   accumulated cotangents ``w̄`` of the non-sequences (starting at zero); its per-step
   outputs are ``x̄[t]``. A weight ``W`` used only in products ``dot(a[t], W)`` with
   ``a`` a sequence or a carry is not accumulated in the loop (rewrite
   ``scan_weight_grad_gemm``): the loop emits the products' cotangents ``P̄[t]`` and
   ``W̄ = dot(flat(a).T, flat(P̄))`` runs once after it, one large GEMM.
4. With ``truncate_gradient = k`` only the last k steps run back: earlier ``x̄[t]`` are
   zero and the initial states get no cotangent.
5. Return ``x̄`` in forward order, ``c̄`` for the initial states and ``w̄`` for the
   non-sequences; ``n_steps`` and integer inputs are disconnected.
"""

from __future__ import annotations

from symgraph.autodiff import backpropagate
from symgraph.graph import Constant, rebuild
from symgraph.op import disconnected


def scan_pullback(op, inputs, outputs, cotangents):
    from symgraph.ops.math import lt, minimum, switch
    from symgraph.ops.shape import zeros_like
    from symgraph.ops.subtensor import set_subtensor
    from symgraph.scan.build import build_scan
    from symgraph.scan.trace import enabled

    n_steps, seqs, inits, nonseqs = op.split_inputs(list(inputs))
    T = n_steps
    # 1. states before each step, and the products' values
    saved = _products(op) if enabled("scan_save_products") else []
    if enabled("scan_save_activations"):
        saved += [v for v in _activations(op) if v not in saved]
    carry_in = op.inner.inputs[op.n_seq: op.n_seq + op.n_carry]
    extended = op.with_step_outputs([*carry_in, *saved]).make_node(*inputs).outputs
    first = op.n_carry + op.n_out
    prev = extended[first: first + op.n_carry]
    saved_values = extended[first + op.n_carry:]
    seqs_used = seqs if op.exact_length else [s[:T] for s in seqs]

    diff_seq = [i for i, s in enumerate(seqs) if s.type.is_float]
    diff_carry = [k for k, c in enumerate(inits) if c.type.is_float]
    diff_nonseq = [j for j, w in enumerate(nonseqs)
                   if w.type.is_float and not isinstance(w, Constant)]
    g_hist = {k: cotangents[k] for k in diff_carry
              if op.keep_history[k] and cotangents[k] is not None}
    g_final = {k: cotangents[k] for k in diff_carry
               if not op.keep_history[k] and cotangents[k] is not None}
    g_out = {j: g for j, g in enumerate(cotangents[op.n_carry:])
             if g is not None and outputs[op.n_carry + j].type.is_float}
    gemm_after = _products_by_weight(op, diff_nonseq) if enabled("scan_weight_grad_gemm") else {}
    acc_nonseq = [j for j in diff_nonseq if j not in gemm_after]
    products = [d for j in gemm_after for d in gemm_after[j]]

    # 2. the backward step
    def backward_step(*args):
        xs, args = args[: op.n_seq], args[op.n_seq:]
        cs, args = args[: op.n_carry], args[op.n_carry:]
        gh, args = dict(zip(g_hist, args[: len(g_hist)])), args[len(g_hist):]
        gy, args = dict(zip(g_out, args[: len(g_out)])), args[len(g_out):]
        products_now, args = args[: len(saved)], args[len(saved):]
        cbar, args = dict(zip(diff_carry, args[: len(diff_carry)])), args[len(diff_carry):]
        wbar, ws = dict(zip(acc_nonseq, args[: len(acc_nonseq)])), args[len(acc_nonseq):]
        new, memo = rebuild(op.inner.outputs, dict(zip(op.inner.inputs, [*xs, *cs, *ws])))
        seeds: dict = {}
        for k in diff_carry:
            _seed(seeds, new[k], cbar[k] + gh[k] if k in gh else cbar[k])
        for j, g in gy.items():
            _seed(seeds, new[op.n_carry + j], g)
        wrt = ([xs[i] for i in diff_seq] + [cs[k] for k in diff_carry]
               + [ws[j] for j in diff_nonseq])
        totals = backpropagate(seeds, wrt)
        new_cbar = [totals.get(cs[k], zeros_like(cs[k])) for k in diff_carry]
        new_wbar = [wbar[j] + totals[ws[j]] if ws[j] in totals else wbar[j]
                    for j in acc_nonseq]
        xbar = [totals.get(xs[i], zeros_like(xs[i])) for i in diff_seq]
        pbar = [totals.get(memo[d], zeros_like(memo[d])) for d, _ in products]
        results = new_cbar + new_wbar + xbar + pbar
        return rebuild(results, {memo[d]: p for d, p in zip(saved, products_now)})[0]

    # 3. run it backwards
    rev = lambda v: v[::-1]  # noqa: E731
    bwd_seqs = ([rev(s) for s in seqs_used] + [rev(p) for p in prev]
                + [rev(g) for g in g_hist.values()] + [rev(g) for g in g_out.values()]
                + [rev(p) for p in saved_values])
    bwd_inits = ([g_final.get(k, zeros_like(inits[k])) for k in diff_carry]
                 + [zeros_like(nonseqs[j]) for j in acc_nonseq]
                 + [None] * (len(diff_seq) + len(products)))
    truncated = op.truncate_gradient >= 0
    n_back = minimum(T, op.truncate_gradient) if truncated else T
    results = build_scan(backward_step, bwd_seqs, bwd_inits, list(nonseqs), n_back,
                         exact_length=op.exact_length and not truncated,
                         truncate_gradient=-1, name=f"grad_of_{op.name}", keep_history=False)
    cbar, results = dict(zip(diff_carry, results)), results[len(diff_carry):]
    wbar, results = dict(zip(acc_nonseq, results)), results[len(acc_nonseq):]
    xbar, results = dict(zip(diff_seq, results)), results[len(diff_seq):]
    pbar = results
    # the weight gradients as one product each, after the loop (forward time order)
    for j, uses in gemm_after.items():
        for (_, (kind, k)), p in zip(uses, pbar[: len(uses)]):
            left = (seqs_used if kind == "seq" else prev)[k]
            if truncated:
                left = left[T - n_back: T]
            term = _flat_product(left, rev(p))
            wbar[j] = wbar[j] + term if j in wbar else term
        pbar = pbar[len(uses):]

    # 4. truncation and prefixes: place x̄ into the last n_back steps of a zero sequence
    g_seqs = []
    for i, s in enumerate(seqs):
        if i not in xbar:
            g_seqs.append(disconnected())
        elif op.exact_length and not truncated:
            g_seqs.append(rev(xbar[i]))
        else:
            g_seqs.append(set_subtensor(zeros_like(s)[T - n_back: T], rev(xbar[i])))
    g_inits = []
    for k, c0 in enumerate(inits):
        if k not in cbar:
            g_inits.append(disconnected())
        elif truncated:
            g_inits.append(switch(lt(n_back, T), zeros_like(c0), cbar[k]))
        else:
            g_inits.append(cbar[k])
    g_nonseqs = [wbar[j] if j in wbar else disconnected() for j in range(len(nonseqs))]
    # 5.
    return [disconnected(), *g_seqs, *g_inits, *g_nonseqs]


def _seed(seeds: dict, var, g) -> None:
    seeds[var] = seeds[var] + g if var in seeds else g


def _products(op) -> list:
    """What the backward loop reads instead of recomputing: the step's matrix products
    (inner ``Dot`` outputs, in graph order), each replaced by the sum it is added into
    when that sum is its only use and has its shape (no broadcasting), repeatedly: for a gate
    pre-activation :math:`z = x_t W + h U + b`, the loop saves :math:`z` once, not
    :math:`x_t W` and :math:`h U`, and the backward loop adds nothing up again (nor
    reads :math:`x_t`)."""
    from symgraph.ops import scalar as S
    from symgraph.ops.blas import Dot
    from symgraph.ops.elemwise import Elemwise

    clients = op.inner.clients
    saved: list = []
    for node in op.inner.toposort():
        if not isinstance(node.op, Dot) or not node.outputs[0].type.is_float:
            continue
        var = node.outputs[0]
        while len(clients.get(var, [])) == 1:
            user = clients[var][0][0]
            if not (isinstance(getattr(user, "op", None), Elemwise)
                    and isinstance(user.op.scalar_op, S.Add)
                    and _broadcastable(user.outputs[0]) == _broadcastable(var)):
                break
            var = user.outputs[0]
        if var not in saved:
            saved.append(var)
    return saved


def _activations(op) -> list:
    """The outputs of the step's sigmoid, tanh and exp: their derivatives need only
    these, so a backward loop that reads them recomputes no exponential (the values they
    were computed from, e.g. a saved gate pre-activation, are then read by nothing and
    the compile-time passes stop stacking them)."""
    from symgraph.ops import scalar as S
    from symgraph.ops.elemwise import Elemwise

    return [n.outputs[0] for n in op.inner.toposort()
            if isinstance(n.op, Elemwise) and isinstance(n.op.scalar_op, S.Sigmoid | S.Tanh | S.Exp)
            and n.outputs[0].type.is_float and n.outputs[0] not in op.inner.inputs]


def _broadcastable(var) -> tuple:
    """Which axes of ``var`` have static length 1 (equal patterns: equal shapes)."""
    return tuple(d == 1 for d in var.type.shape)


def _products_by_weight(op, diff_nonseq) -> dict:
    """``{j: [(product_output, ('seq'|'carry', index)), ...]}`` for non-sequences ``j``
    whose every use in the step is ``dot(a, W_j)`` with ``a`` a sequence slice or a carry
    (a matrix)."""
    from symgraph.ops.blas import Dot

    inputs = op.inner.inputs
    seq_in = {v: ("seq", i) for i, v in enumerate(inputs[: op.n_seq])}
    carry_in = {v: ("carry", k) for k, v in enumerate(inputs[op.n_seq: op.n_seq + op.n_carry])}
    sources = {**seq_in, **carry_in}
    clients = op.inner.clients
    found = {}
    for j in diff_nonseq:
        w = inputs[op.n_seq + op.n_carry + j]
        uses = clients.get(w, [])
        if uses and all(node != "output" and isinstance(node.op, Dot) and i == 1
                        and w.ndim == 2 and node.inputs[0] in sources
                        and node.inputs[0].ndim == 2 for node, i in uses):
            found[j] = [(node.outputs[0], sources[node.inputs[0]]) for node, _ in uses]
    return found


def _flat_product(left, right):
    """``sum_t left[t].T @ right[t]`` as one product of the time-flattened operands."""
    from symgraph.ops.blas import dot
    from symgraph.ops.shape import reshape

    a = reshape(left, [-1, left.shape[left.ndim - 1]])
    b = reshape(right, [-1, right.shape[right.ndim - 1]])
    return dot(a.T, b)
