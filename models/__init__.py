"""Symbolic model building blocks, data handling and the language-model job
(``import symgraph.models as M``).

Built only on the public API (``import symgraph as sg``, ``import symgraph.tensor as T``):
layers expose ``.params`` (shared variables); recurrent layers take time-major
``(T, B, ...)`` inputs with a ``(T, B)`` mask.
"""

from symgraph.models.batching import BPTTStream, PaddedBatch, check_mask, make_padded_batches
from symgraph.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from symgraph.models.corpus import CorpusError, bundled_corpus_path, read_lines, split_lines
from symgraph.models.layers import Dropout, Embedding, Linear, LogisticRegression
from symgraph.models.lm import LanguageModel, compile_lm, generate
from symgraph.models.masks import masked_update, sequence_cross_entropy
from symgraph.models.optim import (
                                   adagrad,
                                   adam,
                                   clip_elementwise,
                                   clip_global_norm,
                                   global_norm,
                                   lr_at_epoch,
                                   momentum,
                                   sgd,
)
from symgraph.models.recurrent import GRU, LSTM, RNN, StackedRNN
from symgraph.models.vocab import Vocabulary, tokenize

__all__ = [
    "BPTTStream", "CheckpointError", "CorpusError", "Dropout", "Embedding", "GRU", "LSTM",
    "LanguageModel", "Linear", "LogisticRegression", "PaddedBatch", "RNN", "StackedRNN",
    "Vocabulary", "adagrad", "adam", "bundled_corpus_path", "check_mask", "clip_elementwise",
    "clip_global_norm", "compile_lm", "generate", "global_norm", "load_checkpoint",
    "lr_at_epoch", "make_padded_batches", "masked_update", "momentum", "read_lines",
    "save_checkpoint", "sequence_cross_entropy", "sgd", "split_lines", "tokenize",
]
