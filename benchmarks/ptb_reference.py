"""PyTorch reference of the PTB "seed recipe" (word-level LSTM LM, no dropout).

::

    python -m benchmarks.ptb_reference --corpus ptb.train.txt --valid ptb.valid.txt \\
        --test ptb.test.txt --epochs 6 --json out.json

Recipe (every size is a flag): embedding 200, 2 LSTM layers of 200, batch 20, 20 unrolled
steps, state carried (detached) between batches and reset at each epoch, SGD lr 1.0
decayed by 0.5 per epoch after epoch 4 (epoch ``e``, 1-based, uses
``lr * decay ** max(e - 4, 0)``), global-norm clipping 5, every parameter uniform(-0.1, 0.1).
Vocabulary: the training corpus's words plus ``<unk>`` and ``<eos>``; ``<eos>`` ends every
line; words not seen in training map to ``<unk>``. Batching: the TF PTB reader
(:func:`benchmarks.data.stream_batches`). Evaluation uses the same batching (``--eval-batch``
columns), state carried, perplexity ``exp(total nll / tokens)``.

JSON: ``{"config": {...}, "epochs": [{"epoch", "lr", "train_loss", "train_ppl",
"valid_loss", "valid_ppl", "tokens_per_s", "seconds"}], "test_loss", "test_ppl"}``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.data import EOS, UNK, Batch, build_vocab, encode_stream, read_lines, stream_batches
from benchmarks.peers.torch_lm import IGNORE, TorchLM

__all__ = ["run_epoch", "make_model", "write_json", "main"]


def make_model(vocab: int, embed: int, hidden: Sequence[int], init: float, seed: int):
    """A :class:`TorchLM` with every parameter uniform(-init, init)."""
    torch.manual_seed(seed)
    model = TorchLM(vocab, embed, tuple(hidden))
    for p in model.parameters():
        nn.init.uniform_(p, -init, init)
    return model


def run_epoch(
    model: TorchLM,
    batches: Sequence[Batch],
    opt: torch.optim.Optimizer | None = None,
    clip: float | None = None,
    carry: bool = True,
    max_batches: int | None = None,
) -> tuple[float, int, float]:
    """One pass; trains when `opt` is given, else evaluates without gradients.

    Returns ``(mean nll per real token, tokens, seconds)``. With `carry`, the (detached)
    state flows from batch to batch; otherwise every batch starts from zeros.
    """
    model.train(opt is not None)
    state = [None] * len(model.rnns)
    total, tokens = 0.0, 0
    t0 = time.perf_counter()
    for k, b in enumerate(batches):
        if max_batches is not None and k >= max_batches:
            break
        x = torch.from_numpy(b.inputs.astype("int64"))
        y = torch.from_numpy(b.targets.astype("int64"))
        if not carry or b.reset:
            state = [None] * len(model.rnns)
        if b.n_tokens < b.n_positions:
            y = y.masked_fill(torch.from_numpy(b.mask) == 0, IGNORE)
        with torch.set_grad_enabled(opt is not None):
            logits, new_state = model(x, state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
        if carry:
            state = [tuple(t.detach() for t in s) for s in new_state]
        total += loss.item() * b.n_tokens
        tokens += b.n_tokens
    return total / max(tokens, 1), tokens, time.perf_counter() - t0


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 700.0))


def write_json(path: str, config: dict, epochs: list[dict], **extra) -> None:
    """Write ``{"config", "epochs", **extra}`` (plus versions) to `path`."""
    config = {**config, "torch": torch.__version__, "python": platform.python_version()}
    out = {"config": config, "epochs": epochs, **extra}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=2) + "\n")


def epoch_record(epoch: int, lr: float, train: tuple, valid_loss: float) -> dict:
    """One entry of the JSON ``epochs`` list, also printed."""
    loss, tokens, seconds = train
    rec = {
        "epoch": epoch,
        "lr": lr,
        "train_loss": loss,
        "train_ppl": _ppl(loss),
        "valid_loss": valid_loss,
        "valid_ppl": _ppl(valid_loss),
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
        "seconds": seconds,
    }
    print(
        f"epoch {epoch:2d}  lr {lr:.4g}  train ppl {rec['train_ppl']:8.2f}  "
        f"valid ppl {rec['valid_ppl']:8.2f}  {rec['tokens_per_s'] or 0:,.0f} tokens/s  "
        f"{seconds:.1f} s",
        flush=True,
    )
    return rec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The CLI arguments."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.ptb_reference", description=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--corpus", required=True, help="training text (ptb.train.txt)")
    p.add_argument("--valid", required=True, help="validation text")
    p.add_argument("--test", help="test text (optional)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--embed", type=int, default=200)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--bptt", type=int, default=20)
    p.add_argument("--eval-batch", type=int, default=20)
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--lr-decay", type=float, default=0.5)
    p.add_argument("--decay-after", type=int, default=4, help="last epoch at the full lr")
    p.add_argument("--clip", type=float, default=5.0, help="global-norm clip, 0 for none")
    p.add_argument("--init", type=float, default=0.1, help="uniform init range")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-batches", type=int, help="cap batches per epoch (smoke tests)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate each epoch, test at the end."""
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    train_lines = read_lines(a.corpus)
    vocab = build_vocab(train_lines, "word", specials=(EOS, UNK))

    def stream(path: str, batch: int) -> list[Batch]:
        return stream_batches(encode_stream(read_lines(path), vocab, "word"), batch, a.bptt)

    train = stream_batches(encode_stream(train_lines, vocab, "word"), a.batch, a.bptt)
    valid = stream(a.valid, a.eval_batch)
    model = make_model(len(vocab), a.embed, [a.hidden] * a.layers, a.init, a.seed)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    config = {**vars(a), "vocab_size": len(vocab), "train_batches": len(train)}
    print(f"vocab {len(vocab)}, {len(train)} training batches of {a.batch}x{a.bptt}")
    epochs = []
    for e in range(1, a.epochs + 1):
        lr = a.lr * a.lr_decay ** max(e - a.decay_after, 0)
        for g in opt.param_groups:
            g["lr"] = lr
        tr = run_epoch(model, train, opt, a.clip or None, max_batches=a.max_batches)
        va, _, _ = run_epoch(model, valid, max_batches=a.max_batches)
        epochs.append(epoch_record(e, lr, tr, va))
    extra = {"test_loss": None, "test_ppl": None}
    if a.test:
        te, _, _ = run_epoch(model, stream(a.test, a.eval_batch), max_batches=a.max_batches)
        extra = {"test_loss": te, "test_ppl": _ppl(te)}
        print(f"test ppl {extra['test_ppl']:.2f}")
    if a.json:
        write_json(a.json, config, epochs, **extra)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
