"""PyTorch peer: embedding -> nn.LSTM -> linear -> cross-entropy, SGD.

float32, ``torch.set_num_threads(2)``, every parameter uniform(-0.1, 0.1). Layers of equal
size are one multi-layer ``nn.LSTM`` (oneDNN's fused kernels on the CPU, cuDNN's on a GPU);
unequal sizes are stacked. ``build`` runs on the CPU (system ``torch``), ``build_cuda`` on
the first CUDA device (system ``torch-cuda``; the batches are copied to the device once and
kept there, as the symgraph CUDA system keeps its parameters; ``loss.item()`` waits for the
device at the end of every step).

Masked workload: two honest implementations, both exactly the same loss and gradients.
- ``'padded'`` (default): ``nn.LSTM`` over the padded batch, padded targets set to the
  ignore index so the mean is over real tokens only. Padding is only at the end of each
  column, so padded steps never feed into a real position's state; their outputs get zero
  loss weight and so zero gradient. The final state (which padding does change) is unused.
- ``'packed'``: ``pack_padded_sequence``; the LSTM and the output layer skip padding.
With length bucketing padding is ~3.5% of positions, and ``'padded'`` measured faster
(packing's per-step batch-size changes and sort/unsort cost more than the padding saves);
set ``BENCH_TORCH_MASKED=packed`` to use the other.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from benchmarks.data import Batch, Dataset
from benchmarks.harness import SystemUnavailable
from benchmarks.workloads import Workload

__all__ = ["TorchLM", "TorchTrainer", "build", "build_cuda"]

THREADS = 2
IGNORE = -100


class TorchLM(nn.Module):
    """Embedding, stacked LSTM, linear output layer; time-major ``(T, B)`` ids in."""

    def __init__(self, vocab: int, embed: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        if len(set(hidden)) == 1:
            self.rnns = nn.ModuleList([nn.LSTM(embed, hidden[0], num_layers=len(hidden))])
        else:
            sizes = (embed, *hidden)
            self.rnns = nn.ModuleList(nn.LSTM(sizes[i], h) for i, h in enumerate(hidden))
        self.out = nn.Linear(hidden[-1], vocab)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def forward(self, x, state):
        """``x``: (T, B) ids or a PackedSequence of embeddings; ``state``: per-module list."""
        h = self.embedding(x) if isinstance(x, torch.Tensor) else x
        new_state = []
        for rnn, s in zip(self.rnns, state):
            h, s = rnn(h, s)
            new_state.append(s)
        if not isinstance(h, torch.Tensor):  # packed
            h = h.data
        return self.out(h), new_state


class TorchTrainer:
    """One SGD step per call; carries detached state for contiguous workloads."""

    def __init__(
        self, workload: Workload, data: Dataset, masked_impl: str = "padded", device: str = "cpu"
    ) -> None:
        torch.set_num_threads(THREADS)
        torch.manual_seed(workload.seed)
        self.workload = workload
        self.masked_impl = masked_impl
        self.device = torch.device(device)
        self.model = TorchLM(data.vocab_size, workload.embed, workload.hidden).to(self.device)
        self.params = list(self.model.parameters())
        self.opt = torch.optim.SGD(self.params, lr=workload.lr)
        self.vocab = data.vocab_size
        self.state = [None] * len(self.model.rnns)
        self._cache: dict[int, tuple] = {}

    def _tensors(self, batch: Batch) -> tuple:
        t = self._cache.get(batch.index)
        if t is None:
            x = torch.from_numpy(batch.inputs.astype("int64"))
            y = torch.from_numpy(batch.targets.astype("int64"))
            if self.workload.masked:
                lengths = torch.from_numpy(batch.lengths)
                if self.masked_impl == "packed":
                    y = pack_padded_sequence(y, lengths, enforce_sorted=False).data
                else:
                    y = y.masked_fill(torch.from_numpy(batch.mask) == 0, IGNORE)
                t = (x, y.reshape(-1), lengths)
            else:
                t = (x, y.reshape(-1), None)
            x, y = t[0].to(self.device), t[1].to(self.device)
            t = (x, y, t[2])  # pack_padded_sequence wants the lengths on the CPU
            self._cache[batch.index] = t
        return t

    def step(self, batch: Batch) -> float:
        """Forward, backward, clip, SGD; returns the loss before the update."""
        x, y, lengths = self._tensors(batch)
        if batch.reset:
            self.state = [None] * len(self.state)
        if self.workload.masked and self.masked_impl == "packed":
            x = pack_padded_sequence(self.model.embedding(x), lengths, enforce_sorted=False)
        self.opt.zero_grad(set_to_none=True)
        logits, state = self.model(x, self.state)
        loss = F.cross_entropy(logits.reshape(-1, self.vocab), y, ignore_index=IGNORE)
        loss.backward()
        if self.workload.clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.workload.clip)
        self.opt.step()
        if not self.workload.masked:
            self.state = [tuple(t.detach() for t in s) for s in state]
        return loss.item()


def build(workload: Workload, data: Dataset) -> TorchTrainer:
    """The harness factory (``BENCH_TORCH_MASKED`` picks the masked implementation)."""
    return TorchTrainer(workload, data, os.environ.get("BENCH_TORCH_MASKED", "padded"))


def build_cuda(workload: Workload, data: Dataset) -> TorchTrainer:
    """The same trainer on the first CUDA device; ``SystemUnavailable`` without one."""
    if not torch.cuda.is_available():
        raise SystemUnavailable("PyTorch sees no CUDA device (torch.cuda.is_available() is False)")
    return TorchTrainer(
        workload, data, os.environ.get("BENCH_TORCH_MASKED", "padded"), device="cuda"
    )
