"""The language-model job behind ``symgraph train``, ``eval`` and ``sample``.

Data flow: corpus lines (:mod:`~symgraph.models.corpus`) -> tokens and a
:class:`~symgraph.models.vocab.Vocabulary` built on the training lines -> either padded,
masked sentence batches ``[<eos>] + tokens + [<eos>]`` (bucketed by length, reshuffled
every epoch) or, with ``bptt``, one contiguous stream (every line followed by ``<eos>``)
cut into windows with the states carried between them (truncated BPTT, states passed back
as numpy values, so no gradient flows across windows) -> :func:`compile_lm` -> epochs.

Reproducibility: the weights and dropout streams come from ``seed``; the batch order of
epoch ``e`` is a pure function of ``(seed, e)``; a checkpoint written after every epoch
holds the parameters, the optimizer state, the random-stream states, the vocabulary, the
config and the history, so ``--resume`` continues exactly as an uninterrupted run would.

Losses are in nats per real token; perplexity is ``exp(loss)``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import symgraph as sg
from symgraph.models.batching import BPTTStream, check_mask, make_padded_batches
from symgraph.models.checkpoint import load_checkpoint, save_checkpoint
from symgraph.models.corpus import bundled_corpus_path, read_lines, split_lines
from symgraph.models.lm import LanguageModel, LMFunctions, compile_lm, generate
from symgraph.models.memory import current_rss_mb, peak_rss_mb
from symgraph.models.progress import progress_bar
from symgraph.models.vocab import Vocabulary, tokenize

__all__ = [
    "JobError", "TrainingDiverged", "DEFAULTS", "DEFAULT_LR", "DEFAULT_CHECKPOINT",
    "CHECKPOINT_KIND", "resolve_config", "resolve_backend", "LMData", "load_data",
    "train", "evaluate_checkpoint", "sample_checkpoint", "load_lm_checkpoint",
]

CHECKPOINT_KIND = "symgraph-lm"
DEFAULT_CHECKPOINT = "symgraph-checkpoint.npz"
#: Learning rate per optimizer when ``lr`` is not given.
DEFAULT_LR = {"sgd": 1.0, "momentum": 0.1, "adagrad": 0.1, "adam": 0.01}
#: Defaults of ``symgraph train``: a masked character LSTM on the bundled dinosaur names.
DEFAULTS = {
    "corpus": None, "valid": None, "test": None, "valid_fraction": 0.1, "level": "char",
    "lowercase": None, "cell": "lstm", "embed": 32, "hidden": [128], "layers": None,
    "dropout": 0.0, "batch_size": 32, "bptt": 0, "bucket": True, "epochs": 10,
    "optimizer": "adam", "lr": None, "lr_decay": 1.0, "decay_after": 0, "clip": 5.0,
    "init_scale": 0.1, "forget_bias": 0.0, "normalize": "token", "seed": 0,
    "samples": 5,
}
#: Options that shape the model or its data: a resumed run must not change them.
MODEL_KEYS = ("corpus", "valid_fraction", "level", "lowercase", "cell", "embed", "hidden",
              "layers", "dropout", "batch_size", "bptt", "bucket", "optimizer",
              "init_scale", "forget_bias", "normalize", "seed")


class JobError(Exception):
    """A problem with the user's input (file, option, checkpoint): one line, exit code 2."""


class TrainingDiverged(Exception):
    """The training loss became NaN or infinite."""


# ---- configuration ---------------------------------------------------------------------

def resolve_config(given: dict) -> dict:
    """Fill in :data:`DEFAULTS` (``None`` entries of ``given`` are "not given") and check
    the values; returns a JSON-serialisable dict."""
    unknown = sorted(set(given) - set(DEFAULTS) - {"backend"})
    if unknown:
        raise JobError(f"unknown config keys {unknown}")
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in given.items() if v is not None})
    if cfg["corpus"] is None:
        cfg["corpus"] = str(bundled_corpus_path())
        if cfg["lowercase"] is None:
            cfg["lowercase"] = True  # the classic dinosaur-names task is lowercase
    cfg["lowercase"] = bool(cfg["lowercase"])
    for key in ("corpus", "valid", "test"):
        if cfg[key] is not None:
            cfg[key] = str(cfg[key])
    hidden = cfg["hidden"]
    if isinstance(hidden, str):
        try:
            hidden = [int(h) for h in hidden.split(",") if h.strip()]
        except ValueError:
            raise JobError(f"--hidden must be N or N,N,... (one size per layer), got "
                           f"{cfg['hidden']!r}") from None
    hidden = [int(h) for h in (hidden if isinstance(hidden, list | tuple) else [hidden])]
    layers = cfg["layers"]
    if layers is None:
        layers = len(hidden)
    elif len(hidden) == 1:
        hidden = hidden * int(layers)
    elif len(hidden) != layers:
        raise JobError(f"--hidden gives {len(hidden)} sizes but --layers is {layers}")
    cfg["hidden"], cfg["layers"] = hidden, int(layers)
    if cfg["lr"] is None:
        cfg["lr"] = DEFAULT_LR.get(cfg["optimizer"], 0.01)
    checks = [
        (cfg["level"] in ("char", "word"), "--level must be char or word"),
        (cfg["cell"] in ("lstm", "gru", "rnn"), "--cell must be lstm, gru or rnn"),
        (cfg["optimizer"] in DEFAULT_LR, "--optimizer must be sgd, momentum, adagrad or adam"),
        (cfg["normalize"] in ("token", "sequence", "none"),
         "--normalize must be token, sequence or none"),
        (all(h >= 1 for h in hidden) and cfg["layers"] >= 1, "--hidden/--layers must be >= 1"),
        (cfg["embed"] >= 1, "--embed must be >= 1"),
        (0.0 <= cfg["dropout"] < 1.0, "--dropout must be in [0, 1)"),
        (cfg["batch_size"] >= 1, "--batch-size must be >= 1"),
        (cfg["bptt"] >= 0, "--bptt must be >= 0 (0: padded sentence batches)"),
        (cfg["epochs"] >= 0, "--epochs must be >= 0"),
        (cfg["lr"] > 0, "--lr must be > 0"),
        (cfg["lr_decay"] > 0, "--lr-decay must be > 0"),
        (cfg["decay_after"] >= 0, "--decay-after must be >= 0"),
        (cfg["clip"] >= 0, "--clip must be >= 0 (0: no clipping)"),
        (cfg["init_scale"] > 0, "--init-scale must be > 0"),
        (0.0 <= cfg["valid_fraction"] < 1.0, "--valid-fraction must be in [0, 1)"),
        (cfg["samples"] >= 0, "--samples must be >= 0"),
        (0 <= cfg["seed"] < 2**32, "--seed must be in [0, 2**32)"),
    ]
    for ok, message in checks:
        if not ok:
            raise JobError(message)
    return cfg


def resolve_backend(name: str | None) -> tuple[str, str | None]:
    """``(backend, note)``: ``name`` if it compiles a tiny function, else an error. With
    ``name=None`` the default ``sg.config.mode`` is tried and, if it cannot compile,
    ``'numpy'`` is used with a note saying so."""
    import symgraph.tensor as T

    candidates = [name] if name else [sg.config.mode, "numpy"]
    last_error = None
    for backend in dict.fromkeys(candidates):
        try:
            v = T.vector("probe")
            sg.function([v], v * 2.0, mode=backend)([1.0])
        except Exception as e:  # a missing or broken backend fails in many ways
            last_error = f"{type(e).__name__}: {e}".splitlines()[0]
            continue
        note = None
        if backend != candidates[0]:
            note = f"backend {candidates[0]!r} is not available ({last_error}); using {backend!r}"
        return backend, note
    raise JobError(f"backend {name!r} is not available: {last_error}")


# ---- data ------------------------------------------------------------------------------

@dataclass
class LMData:
    """Lines of each split (already lowercased when asked) and the vocabulary."""

    vocab: Vocabulary
    level: str
    train: list[str]
    valid: list[str]
    test: list[str]
    valid_source: str
    test_source: str | None

    def sequences(self, lines: list[str]) -> list[np.ndarray]:
        """Each line as ``ids + [<eos>]`` (the batcher prepends the ``<eos>`` start)."""
        eos = self.vocab.eos_id
        return [np.append(self.vocab.encode(tokenize(s, self.level)), eos).astype(np.int32)
                for s in lines]

    def stream(self, lines: list[str]) -> np.ndarray:
        """All lines as one id stream, each followed by ``<eos>``."""
        seqs = self.sequences(lines)
        return np.concatenate(seqs) if seqs else np.zeros(0, np.int32)

    def count_tokens(self, lines: list[str]) -> int:
        """Target tokens of ``lines`` as padded sentences (tokens + ``<eos>`` each)."""
        return sum(len(tokenize(s, self.level)) + 1 for s in lines)


def _read(path: str, lowercase: bool) -> list[str]:
    lines = read_lines(path)
    return [s.lower() for s in lines] if lowercase else lines


def load_data(cfg: dict, vocab: Vocabulary | None = None) -> LMData:
    """Read the corpus and the validation/test files of ``cfg``; build the vocabulary on
    the training lines unless ``vocab`` is given (a resumed or evaluated checkpoint's)."""
    lines = _read(cfg["corpus"], cfg["lowercase"])
    if cfg["valid"]:
        train, valid, valid_source = lines, _read(cfg["valid"], cfg["lowercase"]), cfg["valid"]
    else:
        train, valid = split_lines(lines, cfg["valid_fraction"], cfg["seed"])
        valid_source = f"held-out {len(valid)} of {len(lines)} lines"
    test = _read(cfg["test"], cfg["lowercase"]) if cfg["test"] else []
    if vocab is None:
        vocab = Vocabulary.build(t for s in train for t in tokenize(s, cfg["level"]))
    if not any(tokenize(s, cfg["level"]) for s in train):
        raise JobError(f"corpus {cfg['corpus']!r} has no {cfg['level']} tokens to train on")
    return LMData(vocab, cfg["level"], train, valid, test, valid_source, cfg["test"])


def epoch_seed(seed: int, epoch: int) -> int:
    """The batch-shuffling seed of 1-based ``epoch``: a pure function of ``(seed, epoch)``."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def padded_batches(data: LMData, lines: list[str], batch_size: int, bucket: bool,
                   shuffle_seed: int | None, dtype: str):
    """Padded, masked batches of ``lines`` (``[<eos>] + tokens + [<eos>]`` each)."""
    return make_padded_batches(data.sequences(lines), batch_size, data.vocab.pad_id,
                               bos_id=data.vocab.eos_id, bucket=bucket,
                               shuffle_seed=shuffle_seed, dtype=dtype)


def eval_stream(ids: np.ndarray, batch_size: int, bptt: int) -> BPTTStream:
    """A BPTT stream over ``ids`` with at most ``batch_size`` rows, fewer (down to one
    row and a shorter window) when the text is too short for a full window."""
    if len(ids) < 2:
        raise JobError("evaluation text is too short: it needs at least 2 tokens")
    rows = max(1, min(batch_size, len(ids) // (bptt + 1)))
    return BPTTStream(ids, rows, min(bptt, len(ids) // rows - 1))


# ---- evaluation ------------------------------------------------------------------------

def evaluate_lines(fns: LMFunctions, model: LanguageModel, data: LMData, lines: list[str],
                   cfg: dict) -> tuple[float, int]:
    """``(loss in nats per token, number of tokens)`` of ``lines``, the way the model was
    trained: padded batches, or one contiguous stream with the states carried."""
    if not lines:
        return float("nan"), 0
    total, count = 0.0, 0
    if cfg["bptt"]:
        stream = eval_stream(data.stream(lines), cfg["batch_size"], cfg["bptt"])
        states = model.zero_states(stream.batch_size)
        for x, y in stream:
            loss, *states = fns.evaluate(x, y, *states)
            total, count = total + float(loss), count + x.size
    else:
        for batch in padded_batches(data, lines, cfg["batch_size"], True, None, model.dtype):
            check_mask(batch.mask, batch.inputs.shape)
            (loss,) = fns.evaluate(batch.inputs, batch.targets, batch.mask)
            total, count = total + float(loss), count + batch.n_tokens
    return total / max(count, 1), count


def _ppl(loss: float | None) -> float | None:
    if loss is None or not math.isfinite(loss):
        return None
    return math.exp(min(loss, 700.0))


# ---- checkpoints -----------------------------------------------------------------------

def _state_arrays(model: LanguageModel, fns: LMFunctions, vocab: Vocabulary) -> dict:
    arrays = model.state_arrays()
    if fns.updates is not None:
        arrays.update({f"optim/{s.name}": s.get_value() for s in fns.updates.state})
    arrays.update({f"rng/{s.name}": s.get_value() for s in model.streams.states})
    arrays.update({f"vocab/{k}": v for k, v in vocab.to_arrays().items()})
    return arrays


def save_lm_checkpoint(path: str, model, fns, vocab, cfg: dict, epoch: int,
                       history: list) -> None:
    """Write the model, optimizer and random-stream states, vocabulary and history."""
    meta = {"kind": CHECKPOINT_KIND, "config": cfg, "epoch": epoch, "history": history}
    save_checkpoint(path, _state_arrays(model, fns, vocab), meta)


def load_lm_checkpoint(path: str) -> tuple[dict, dict, Vocabulary]:
    """``(arrays, meta, vocab)`` of a language-model checkpoint; a foreign or broken
    file raises :class:`~symgraph.models.checkpoint.CheckpointError` / :class:`JobError`."""
    arrays, meta = load_checkpoint(path)
    if meta.get("kind") != CHECKPOINT_KIND or not isinstance(meta.get("config"), dict):
        raise JobError(f"{str(path)!r} is a symgraph checkpoint but not a language-model "
                       f"checkpoint written by 'symgraph train'")
    try:
        vocab = Vocabulary.from_arrays({k[len("vocab/"):]: v for k, v in arrays.items()
                                        if k.startswith("vocab/")})
    except ValueError as e:
        raise JobError(f"checkpoint {str(path)!r} has a broken vocabulary: {e}") from None
    return arrays, meta, vocab


def _restore_states(arrays: dict, variables, prefix: str, path: str) -> None:
    for var in variables:
        key = f"{prefix}/{var.name}"
        if key not in arrays:
            raise JobError(f"checkpoint {path!r} lacks {key!r}; it was written by another "
                           "configuration")
        value = np.asarray(arrays[key])
        if value.shape != var.get_value(borrow=True).shape:
            raise JobError(f"checkpoint {path!r}: {key!r} has shape {value.shape}, expected "
                           f"{var.get_value(borrow=True).shape}")
        var.set_value(value.astype(var.get_value(borrow=True).dtype))


def build_model(cfg: dict, vocab: Vocabulary) -> LanguageModel:
    """The model ``cfg`` describes, initialised from ``cfg['seed']``."""
    return LanguageModel(len(vocab), cfg["embed"], cfg["hidden"], cfg["cell"], cfg["dropout"],
                         cfg["init_scale"], cfg["forget_bias"], cfg["seed"])


def _model_from_checkpoint(path: str, backend: str, parts):
    arrays, meta, vocab = load_lm_checkpoint(path)
    cfg = resolve_config({k: v for k, v in meta["config"].items() if k in DEFAULTS})
    model = build_model(cfg, vocab)
    try:
        model.load_arrays(arrays, where=f"checkpoint {str(path)!r}")
    except ValueError as e:
        raise JobError(str(e)) from None
    fns = compile_lm(model, None, mode=backend, masked=not cfg["bptt"],
                     stateful=bool(cfg["bptt"]), parts=parts)
    return cfg, meta, vocab, model, fns


# ---- generation ------------------------------------------------------------------------

def sample_texts(fns, model, vocab: Vocabulary, level: str, n: int, rng, prefix: str = "",
                 temperature: float = 1.0, max_len: int = 100) -> list[str]:
    """``n`` samples, each ``prefix`` followed by generated tokens up to ``<eos>``.

    ``<pad>`` is never sampled, nor, at character level, ``<unk>`` (a character vocabulary
    holds every training character; at word level ``<unk>`` is a real word of corpora
    such as PTB)."""
    prefix_tokens = tokenize(prefix, level)
    prime = [vocab.eos_id, *vocab.encode(prefix_tokens).tolist()]
    banned = [vocab.pad_id] + ([vocab.unk_id] if level == "char" else [])
    rows = generate(fns.step, model, prime, n, rng, temperature, max_len,
                    stop_id=vocab.eos_id, banned_ids=banned)
    sep = "" if level == "char" else " "
    return [sep.join(prefix_tokens + vocab.decode(row)) for row in rows]


def sample_checkpoint(path: str, prefix: str = "", temperature: float = 1.0, n: int = 5,
                      seed: int | None = None, max_len: int = 100,
                      backend: str | None = None) -> list[str]:
    """Samples from a checkpoint with a compiled single-step function."""
    backend, _ = resolve_backend(backend)
    cfg, _, vocab, model, fns = _model_from_checkpoint(path, backend, ("step",))
    if cfg["lowercase"]:
        prefix = prefix.lower()
    return sample_texts(fns, model, vocab, cfg["level"], n, np.random.default_rng(seed),
                        prefix, temperature, max_len)


def evaluate_checkpoint(path: str, corpus: str | None = None,
                        backend: str | None = None) -> dict:
    """Perplexity of a checkpoint on ``corpus`` (default: the checkpoint's validation
    data, rebuilt from its config). Returns ``loss``, ``ppl``, ``tokens``, ``source``."""
    backend, _ = resolve_backend(backend)
    cfg, _, vocab, model, fns = _model_from_checkpoint(path, backend, ("evaluate",))
    if corpus is not None:
        lines, source = _read(corpus, cfg["lowercase"]), str(corpus)
    else:
        data = load_data(cfg, vocab)
        lines, source = data.valid, data.valid_source
        if not lines:
            raise JobError("the checkpoint's config has no validation data; give --corpus")
    data = LMData(vocab, cfg["level"], lines, [], [], "", None)
    loss, tokens = evaluate_lines(fns, model, data, lines, cfg)
    return {"loss": loss, "ppl": _ppl(loss), "tokens": tokens, "source": source}


# ---- training --------------------------------------------------------------------------

def _run_epoch(fns: LMFunctions, model, data: LMData, cfg: dict, epoch: int,
               quiet: bool) -> tuple[float, int, float, float]:
    """One pass over the training data: ``(mean loss per token, tokens, seconds, MiB the
    resident memory grew from the end of the first batch to the end of the epoch)``."""
    if cfg["bptt"]:
        stream = BPTTStream(data.stream(data.train), cfg["batch_size"], cfg["bptt"])
        batches, n_batches = iter(stream), len(stream)
    else:
        batches = padded_batches(data, data.train, cfg["batch_size"], cfg["bucket"],
                                 epoch_seed(cfg["seed"], epoch), model.dtype)
        n_batches = len(batches)
    states = model.zero_states(cfg["batch_size"]) if cfg["bptt"] else []
    total, count = 0.0, 0
    bar = progress_bar(n_batches, desc=f"epoch {epoch}/{cfg['epochs']}", disable=quiet)
    started = time.perf_counter()
    for k, batch in enumerate(batches):
        if cfg["bptt"]:
            x, y = batch
            loss, *states = fns.train(x, y, *states)
            n_tok = x.size
        else:
            check_mask(batch.mask, batch.inputs.shape)
            (loss,) = fns.train(batch.inputs, batch.targets, batch.mask)
            n_tok = batch.n_tokens
        loss = float(loss)
        if not math.isfinite(loss):
            bar.close()
            raise TrainingDiverged(f"training diverged at epoch {epoch}, batch {k + 1}: the "
                                   f"loss is {loss}; lower --lr or clip with --clip")
        total, count = total + loss * n_tok, count + n_tok
        bar.update(1, loss=total / count)
        if k == 0:
            rss_after_first = current_rss_mb()
    seconds = time.perf_counter() - started
    bar.close()
    growth = current_rss_mb() - rss_after_first if count else 0.0
    return total / max(count, 1), count, seconds, growth


def _print(out, text: str) -> None:
    print(text, file=out, flush=True)


def train(given: dict, checkpoint: str = DEFAULT_CHECKPOINT, resume: bool = False,
          backend: str | None = None, json_path: str | None = None, quiet: bool = False,
          plot: str | None = None, out=None) -> dict:
    """Train (or resume) a language model; returns the ``--json`` record.

    Parameters
    ----------
    given : dict
        Options as in :data:`DEFAULTS`; ``None`` values take the default.
    checkpoint : str
        Written after every epoch (atomically); read with ``resume``.
    resume : bool
        Continue from ``checkpoint``: its config holds for the model and data (options in
        :data:`MODEL_KEYS` given again must agree), ``epochs`` and the schedule may change.
    out : file, optional
        Where the report goes (stdout).
    """
    out = out if out is not None else sys.stdout
    for what, path in (("--checkpoint", checkpoint), ("--json", json_path), ("--plot", plot)):
        if path and not Path(path).resolve().parent.is_dir():
            raise JobError(f"{what} {str(path)!r}: directory {str(Path(path).parent)!r} "
                           "does not exist")
    backend, note = resolve_backend(backend)
    if note:
        _print(sys.stderr, f"symgraph: note: {note}")
    history: list[dict] = []
    start_epoch = 1
    if resume:
        arrays, meta, vocab = load_lm_checkpoint(checkpoint)
        stored = resolve_config({k: v for k, v in meta["config"].items() if k in DEFAULTS})
        for key in MODEL_KEYS:
            if given.get(key) is not None:
                new = resolve_config({**{k: stored[k] for k in DEFAULTS}, key: given[key]})
                if new[key] != stored[key]:
                    raise JobError(f"--resume: option {key} = {new[key]!r} differs from the "
                                   f"checkpoint's {stored[key]!r}; drop it or train afresh")
        cfg = resolve_config({**{k: stored[k] for k in DEFAULTS},
                              **{k: v for k, v in given.items()
                                 if k not in MODEL_KEYS and v is not None}})
        data = load_data(cfg, vocab)
        history, start_epoch = list(meta.get("history", [])), int(meta["epoch"]) + 1
    else:
        cfg = resolve_config(given)
        data = load_data(cfg)
    model = build_model(cfg, data.vocab)
    fns = compile_lm(model, cfg["optimizer"], cfg["lr"], cfg["clip"] or None, backend,
                     masked=not cfg["bptt"], stateful=bool(cfg["bptt"]),
                     normalize=cfg["normalize"])
    if resume:
        model.load_arrays(arrays, where=f"checkpoint {checkpoint!r}")
        _restore_states(arrays, fns.updates.state, "optim", checkpoint)
        _restore_states(arrays, model.streams.states, "rng", checkpoint)

    layout = (f"BPTT windows of {cfg['bptt']} x {cfg['batch_size']}" if cfg["bptt"]
              else f"padded batches of {cfg['batch_size']}")
    _print(out, f"corpus {cfg['corpus']} ({cfg['level']} level): {len(data.train)} training "
                f"lines, validation: {data.valid_source}; vocabulary {len(data.vocab)}")
    _print(out, f"model: {cfg['cell']} {cfg['layers']}x{cfg['hidden']}, embed {cfg['embed']}, "
                f"{model.n_params:,} parameters; {cfg['optimizer']} lr {cfg['lr']:g}, "
                f"{layout}, backend {backend} (compiled in {fns.compile_s:.1f} s)")
    if not cfg["bptt"] and data.train:
        probe = padded_batches(data, data.train, cfg["batch_size"], cfg["bucket"],
                               epoch_seed(cfg["seed"], 1), model.dtype)
        pad = 1.0 - sum(b.n_tokens for b in probe) / sum(b.mask.size for b in probe)
        how = "bucketed by length" if cfg["bucket"] else "not bucketed"
        _print(out, f"padding: {pad:.1%} of positions ({how})")
    if resume:
        _print(out, f"resuming from {checkpoint} after epoch {start_epoch - 1}")

    try:
        for epoch in range(start_epoch, cfg["epochs"] + 1):
            started = time.perf_counter()
            fns.lr.set_value(np.array(_lr(cfg, epoch), dtype=model.dtype))
            train_loss, tokens, train_s, growth = _run_epoch(fns, model, data, cfg, epoch,
                                                             quiet)
            valid_loss = (evaluate_lines(fns, model, data, data.valid, cfg)[0]
                          if data.valid else None)
            record = {"epoch": epoch, "train_loss": train_loss, "train_ppl": _ppl(train_loss),
                      "valid_loss": valid_loss, "valid_ppl": _ppl(valid_loss),
                      "tokens_per_s": tokens / max(train_s, 1e-9),
                      "seconds": time.perf_counter() - started,
                      "peak_memory_mb": peak_rss_mb(), "memory_growth_mb": growth}
            history.append(record)
            _report_epoch(out, record, cfg)
            if cfg["samples"]:
                texts = sample_texts(fns, model, data.vocab, cfg["level"], cfg["samples"],
                                     np.random.default_rng([cfg["seed"], epoch]),
                                     max_len=40 if cfg["level"] == "char" else 30)
                sep = ", " if cfg["level"] == "char" else "\n    "
                _print(out, "    samples: " + sep.join(texts))
            save_lm_checkpoint(checkpoint, model, fns, data.vocab, cfg, epoch, history)
    except KeyboardInterrupt:
        done = history[-1]["epoch"] if history else start_epoch - 1
        if done >= start_epoch:
            _print(sys.stderr, f"symgraph: the checkpoint {checkpoint!r} holds epoch {done}: "
                               "continue with --resume")
        raise

    test_ppl = None
    if data.test:
        test_ppl = _ppl(evaluate_lines(fns, model, data, data.test, cfg)[0])
        _print(out, f"test perplexity ({data.test_source}): {test_ppl:.3f}")
    elif data.valid:
        test_ppl = _ppl(evaluate_lines(fns, model, data, data.valid, cfg)[0])
        _print(out, f"held-out perplexity ({data.valid_source}): {test_ppl:.3f}")
    _print(out, f"checkpoint: {checkpoint}")
    record = {"config": {**cfg, "backend": backend}, "epochs": history, "test_ppl": test_ppl}
    if json_path:
        Path(json_path).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if plot:
        _plot(plot, history)
    return record


def _lr(cfg: dict, epoch: int) -> float:
    from symgraph.models.optim import lr_at_epoch

    return lr_at_epoch(cfg["lr"], cfg["lr_decay"], cfg["decay_after"], epoch)


def _report_epoch(out, r: dict, cfg: dict) -> None:
    valid = (f"valid {r['valid_loss']:.4f} (ppl {r['valid_ppl']:.2f})"
             if r["valid_loss"] is not None else "no validation")
    _print(out, f"epoch {r['epoch']:>3}/{cfg['epochs']}  train {r['train_loss']:.4f} "
                f"(ppl {r['train_ppl']:.2f})  {valid}  {r['tokens_per_s']:,.0f} tokens/s  "
                f"{r['seconds']:.1f} s  peak memory {r['peak_memory_mb']:,.0f} MiB")


def _plot(path: str, history: list[dict]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _print(sys.stderr, "symgraph: note: --plot needs matplotlib "
                           "(pip install 'symgraph[plot]'); no plot written")
        return
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train")
    if any(r["valid_loss"] is not None for r in history):
        ax.plot(epochs, [r["valid_loss"] for r in history], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
