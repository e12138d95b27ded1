"""The benchmark workloads: sizes, optimizer and data source of each.

A :class:`Workload` is a plain, frozen description; :mod:`benchmarks.data` turns it into
batches (once, in numpy) and every system trains the same model on those batches.

Model, for every workload: embedding ``embed`` -> stacked LSTM layers with ``hidden`` units
-> linear layer to the vocabulary -> softmax cross-entropy averaged over the real (unmasked)
target tokens of the batch -> backward -> optional global-norm gradient clipping -> plain
SGD step. Every parameter is initialised uniform(-0.1, 0.1).

Learning rates: lr=1.0 with the per-token mean loss is the classic PTB (Zaremba et al.)
setting and also makes the dinos loss fall clearly within a few hundred steps (from
ln(27) ~ 3.3 to an epoch-mean of about 2.0 after 300 steps, in both peers); 0.1 learns
too slowly to show a clear fall inside a 15 s benchmark budget.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["Workload", "WORKLOADS", "DEFAULT_PTB_PATH", "get_workload"]

#: PTB validation text, relative to the repository root (benchmarks may read ../shared;
#: the symgraph package itself never does).
DEFAULT_PTB_PATH = "../shared/data/ptb/ptb.valid.txt"
#: The bundled dinosaur names, relative to the repository root.
DINOS_PATH = "models/data/dinos.txt"


@dataclass(frozen=True)
class Workload:
    """One benchmark configuration.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``'lstm-dinos'``.
    source : {'dinos-chars', 'ptb-words', 'ptb-chars'}
        How :mod:`benchmarks.data` tokenizes the corpus.
    layout : {'masked', 'contiguous'}
        ``'masked'``: padded sentence batches with a (T, B) mask, states reset every batch.
        ``'contiguous'``: TF PTB-reader stream of ``bptt`` steps, states carried (detached)
        from one batch to the next and reset at the start of every pass over the data.
    embed : int
        Embedding size.
    hidden : tuple of int
        Hidden size of each stacked LSTM layer.
    batch : int
        Sequences (columns) per batch.
    bptt : int or None
        Unrolled steps per batch for ``'contiguous'``; ``None`` for ``'masked'`` (the padded
        length of each batch is its longest sequence).
    lr : float
        SGD learning rate (loss = mean over real target tokens).
    clip : float or None
        Global-norm gradient clipping threshold, or ``None`` for no clipping.
    data_path : str
        Corpus file, relative to the repository root (or absolute).
    fallback_path : str or None
        Used when ``data_path`` does not exist (``char-512`` falls back to dinos).
    seed : int
        Seed of the batch order (masked) and of the parameter init.
    """

    name: str
    source: str
    layout: str
    embed: int
    hidden: tuple[int, ...]
    batch: int
    bptt: int | None
    lr: float
    clip: float | None
    data_path: str
    fallback_path: str | None = None
    seed: int = 0
    optimizer: str = field(default="sgd")

    @property
    def masked(self) -> bool:
        """True for padded batches with a mask."""
        return self.layout == "masked"

    def to_dict(self) -> dict:
        """JSON-friendly dict of the spec."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            name="lstm-dinos",
            source="dinos-chars",
            layout="masked",
            embed=128,
            hidden=(128,),
            batch=64,
            bptt=None,
            lr=1.0,
            clip=None,
            data_path=DINOS_PATH,
        ),
        Workload(
            name="ptb-small",
            source="ptb-words",
            layout="contiguous",
            embed=200,
            hidden=(200, 200),
            batch=20,
            bptt=20,
            lr=1.0,
            clip=5.0,
            data_path=DEFAULT_PTB_PATH,
        ),
        Workload(
            name="char-512",
            source="ptb-chars",
            layout="contiguous",
            embed=128,
            hidden=(512,),
            batch=32,
            bptt=64,
            lr=1.0,
            clip=5.0,
            data_path=DEFAULT_PTB_PATH,
            fallback_path=DINOS_PATH,
        ),
    )
}


def get_workload(name: str) -> Workload:
    """The workload called `name`; a clear error lists the known names."""
    try:
        return WORKLOADS[name]
    except KeyError:
        known = ", ".join(WORKLOADS)
        raise KeyError(f"unknown workload {name!r}; known: {known}") from None
