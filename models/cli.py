"""``symgraph``: train, evaluate and sample recurrent language models from the shell.

::

    symgraph train                      # char LSTM on the bundled dinosaur names
    symgraph sample --prefix ste -n 5   # from ./symgraph-checkpoint.npz
    symgraph eval --corpus names.txt    # perplexity of the checkpoint on a corpus

``main(argv)`` returns the exit status: 0 on success, 2 for a bad option, file or
checkpoint (one line on stderr, no traceback), 1 when training diverges, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import sys

from symgraph.models.checkpoint import CheckpointError
from symgraph.models.corpus import CorpusError
from symgraph.models.train import (
    DEFAULT_CHECKPOINT,
    DEFAULT_LR,
    DEFAULTS,
    JobError,
    TrainingDiverged,
    evaluate_checkpoint,
    sample_checkpoint,
    train,
)

__all__ = ["main", "build_parser"]

_BACKENDS = ("numpy", "numba", "cuda")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _add_train_options(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    data = p.add_argument_group("data")
    data.add_argument("--corpus", metavar="PATH",
                      help="UTF-8 text, one sentence per line (default: the bundled "
                           "dinosaur names, lowercased)")
    data.add_argument("--valid", metavar="PATH",
                      help="validation text (default: a held-out split of the corpus)")
    data.add_argument("--test", metavar="PATH",
                      help="test text, evaluated after training (default: the validation "
                           "data)")
    data.add_argument("--valid-fraction", type=float, metavar="F",
                      help=f"held-out fraction without --valid (default {d['valid_fraction']})")
    data.add_argument("--level", choices=("char", "word"),
                      help=f"tokens: characters or words (default {d['level']})")
    data.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None,
                      help="lowercase every line (default: only the bundled corpus)")
    data.add_argument("--bucket", action=argparse.BooleanOptionalAction, default=None,
                      help="batch sentences of similar length together (default: on)")
    data.add_argument("--bptt", type=int, metavar="N",
                      help="truncated BPTT over the contiguous stream with N steps per "
                           "window and the state carried between windows (default: padded "
                           "sentence batches with masks)")
    model = p.add_argument_group("model")
    model.add_argument("--cell", choices=("lstm", "gru", "rnn"),
                       help=f"recurrent cell (default {d['cell']})")
    model.add_argument("--embed", type=_positive_int, metavar="N",
                       help=f"embedding size (default {d['embed']})")
    model.add_argument("--hidden", metavar="N[,N...]",
                       help=f"hidden size, or one per layer (default {d['hidden'][0]})")
    model.add_argument("--layers", type=_positive_int, metavar="N",
                       help="recurrent layers (default: 1, or the number of --hidden sizes)")
    model.add_argument("--dropout", type=float, metavar="P",
                       help=f"dropout on embeddings, between layers and before the output "
                            f"(default {d['dropout']})")
    model.add_argument("--init-scale", type=float, metavar="X",
                       help=f"weights start uniform(-X, X) (default {d['init_scale']})")
    model.add_argument("--forget-bias", type=float, metavar="X",
                       help=f"added to the LSTM forget-gate biases (default "
                            f"{d['forget_bias']}; 0 for every parameter uniform)")
    opt = p.add_argument_group("optimization")
    opt.add_argument("--batch-size", type=_positive_int, metavar="N",
                     help=f"sentences (or stream rows) per batch (default {d['batch_size']})")
    opt.add_argument("--epochs", type=int, metavar="N",
                     help=f"passes over the training data (default {d['epochs']})")
    opt.add_argument("--optimizer", choices=tuple(DEFAULT_LR),
                     help=f"update rule (default {d['optimizer']})")
    opt.add_argument("--lr", type=float, metavar="X",
                     help="learning rate (default: " + ", ".join(
                         f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    opt.add_argument("--lr-decay", type=float, metavar="X",
                     help="multiply the learning rate by X every epoch after --decay-after "
                          f"(default {d['lr_decay']}: constant)")
    opt.add_argument("--decay-after", type=int, metavar="N",
                     help=f"epochs at the initial learning rate (default {d['decay_after']})")
    opt.add_argument("--clip", type=float, metavar="X",
                     help=f"clip gradients to global norm X, 0 for none (default {d['clip']})")
    opt.add_argument("--normalize", choices=("token", "sequence", "none"),
                     help="loss normalisation: per token, per sequence or summed (default "
                          f"{d['normalize']})")
    opt.add_argument("--seed", type=int, metavar="N",
                     help=f"seeds weights, dropout, split and batch order (default {d['seed']})")
    run = p.add_argument_group("run")
    run.add_argument("--backend", choices=_BACKENDS,
                     help="compilation backend (default: sg.config.mode, numpy if that "
                          "backend is unavailable)")
    run.add_argument("--checkpoint", metavar="PATH", default=DEFAULT_CHECKPOINT,
                     help=f"written after every epoch (default {DEFAULT_CHECKPOINT})")
    run.add_argument("--resume", action="store_true",
                     help="continue from --checkpoint exactly where it stopped")
    run.add_argument("--json", metavar="PATH", help="write the config and per-epoch metrics")
    run.add_argument("--samples", type=int, metavar="N",
                     help=f"samples printed after each epoch (default {d['samples']})")
    run.add_argument("--plot", metavar="PATH", help="save a loss curve (needs matplotlib)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``symgraph`` command."""
    parser = argparse.ArgumentParser(
        prog="symgraph", description="Train, evaluate and sample recurrent language models.")
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,eval}")
    p_train = sub.add_parser("train", help="train a language model (default: char LSTM on "
                                           "dinosaur names)")
    _add_train_options(p_train)

    p_sample = sub.add_parser("sample", help="generate text from a checkpoint")
    p_sample.add_argument("--checkpoint", metavar="PATH", default=DEFAULT_CHECKPOINT,
                          help=f"(default {DEFAULT_CHECKPOINT})")
    p_sample.add_argument("--prefix", default="", metavar="TEXT",
                          help="prime every sample with this text")
    p_sample.add_argument("--temperature", type=float, default=1.0, metavar="T",
                          help="softmax temperature > 0 (default 1.0)")
    p_sample.add_argument("-n", type=_positive_int, default=5, metavar="N",
                          help="number of samples (default 5)")
    p_sample.add_argument("--max-len", type=_positive_int, default=100, metavar="N",
                          help="at most N generated tokens per sample (default 100)")
    p_sample.add_argument("--seed", type=int, default=None, metavar="N",
                          help="sampling seed (default: random)")
    p_sample.add_argument("--backend", choices=_BACKENDS)

    p_eval = sub.add_parser("eval", help="perplexity of a checkpoint on a corpus")
    p_eval.add_argument("--checkpoint", metavar="PATH", default=DEFAULT_CHECKPOINT,
                        help=f"(default {DEFAULT_CHECKPOINT})")
    p_eval.add_argument("--corpus", metavar="PATH",
                        help="text to evaluate (default: the checkpoint's validation data)")
    p_eval.add_argument("--backend", choices=_BACKENDS)
    return parser


_TRAIN_KEYS = tuple(DEFAULTS)


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        given = {k: getattr(args, k, None) for k in _TRAIN_KEYS}
        train(given, checkpoint=args.checkpoint, resume=args.resume, backend=args.backend,
              json_path=args.json, quiet=args.quiet, plot=args.plot)
    elif args.command == "sample":
        if not args.temperature > 0:
            raise JobError(f"--temperature must be > 0, got {args.temperature}")
        texts = sample_checkpoint(args.checkpoint, args.prefix, args.temperature, args.n,
                                  args.seed, args.max_len, args.backend)
        for text in texts:
            print(text)
    else:
        result = evaluate_checkpoint(args.checkpoint, args.corpus, args.backend)
        ppl = "inf" if result["ppl"] is None else f"{result['ppl']:.3f}"
        print(f"perplexity {ppl} (loss {result['loss']:.4f} nats/token over "
              f"{result['tokens']:,} tokens of {result['source']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``symgraph`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("symgraph: error: choose a command: train, sample or eval", file=sys.stderr)
        return 2
    try:
        return _run(args)
    except (JobError, CorpusError, CheckpointError, ValueError, OSError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"symgraph: error: {message}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"symgraph: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("symgraph: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
