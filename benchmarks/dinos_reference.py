"""PyTorch reference: masked character LSTM on the dinosaur names.

::

    python -m benchmarks.dinos_reference [--embed 64 --hidden 128 --layers 1 --batch 32
        --optimizer adam --lr 0.01 --epochs 10 --valid-fraction 0.1 --seed 0] --json out.json

The model ``symgraph train`` (no arguments) trains, in PyTorch, for comparison; the
defaults are provisional and every size is a flag. Names are lowercased; the validation
split is ``symgraph.models.corpus.split_lines`` (the job's own split); vocabulary
``<pad>, <unk>, <eos>`` then the
training characters by frequency; each name is ``[eos] + chars + [eos]``. Training batches
are reshuffled every epoch (seed ``seed + epoch``), length-bucketed unless
``--no-bucket``, the last partial batch kept; padding is masked out of the loss (mean
over real tokens). Every parameter uniform(-0.1, 0.1).

JSON: as :mod:`benchmarks.ptb_reference` (``test_ppl`` is null: there is no test split).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.data import (
    EOS,
    UNK,
    build_vocab,
    encode_lines,
    padded_batches,
    read_lines,
    repo_root,
    split_lines,
)
from benchmarks.ptb_reference import epoch_record, make_model, run_epoch, write_json

__all__ = ["main"]

PAD = "<pad>"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The CLI arguments."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.dinos_reference", description=__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--corpus", default=str(repo_root() / "models" / "data" / "dinos.txt"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=5.0, help="global-norm clip, 0 for none")
    p.add_argument("--init", type=float, default=0.1, help="uniform init range")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--no-bucket", action="store_true", help="no length bucketing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Train for ``--epochs``, printing train/valid loss and perplexity each epoch."""
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    train_lines, valid_lines = split_lines(
        read_lines(a.corpus, lower=True), a.valid_fraction, a.seed
    )
    vocab = build_vocab(train_lines, "char", specials=(PAD, UNK, EOS))
    train_seqs = encode_lines(train_lines, vocab, "char")
    valid = padded_batches(
        encode_lines(valid_lines, vocab, "char"),
        a.batch,
        a.seed,
        drop_remainder=False,
        shuffle=False,
    )
    model = make_model(len(vocab), a.embed, [a.hidden] * a.layers, a.init, a.seed)
    opt_cls = torch.optim.Adam if a.optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(model.parameters(), lr=a.lr)
    config = {
        **vars(a),
        "vocab_size": len(vocab),
        "train_lines": len(train_lines),
        "valid_lines": len(valid_lines),
    }
    print(f"vocab {len(vocab)}, {len(train_lines)} training / {len(valid_lines)} valid names")
    epochs = []
    for e in range(1, a.epochs + 1):
        train = padded_batches(
            train_seqs, a.batch, a.seed + e, drop_remainder=False, bucket=not a.no_bucket
        )
        tr = run_epoch(model, train, opt, a.clip or None, carry=False)
        va, _, _ = run_epoch(model, valid, carry=False) if valid else (float("nan"), 0, 0)
        epochs.append(epoch_record(e, a.lr, tr, va))
    if a.json:
        write_json(a.json, config, epochs, test_loss=None, test_ppl=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
