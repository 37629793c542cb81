"""Seeded random projections of per-example gradients (P values each) down to d dimensions.

LESS and G2IS project LoRA gradients with a Rademacher matrix (docs/algorithms.md 1.5-1.6). A dense P x d float
matrix does not fit in memory (P = 0.9 M, d = 8192: 30 GB), so neither projector here ever holds one:

- ``sparse`` (the default): the very sparse random projection of Li, Hastie and Church (Achlioptas with
  density 1/sqrt(P)), drawn by scikit-learn's ``SparseRandomProjection`` and kept as a torch CSR matrix of
  about P x d / sqrt(P) non-zeros (1 M at P = 0.9 M, d = 1024: 12 MB). Projecting 8 rows takes ~25 ms.
- ``rademacher``: entries +-1/sqrt(d), regenerated block by block over the P rows from a torch generator
  seeded by (seed, block index), so only one block of at most 2^24 entries (64 MB) exists at a time. Drawing
  the signs dominates (~4 s per call at P = 0.9 M, d = 1024, whatever the rows), so callers should project
  many rows per call: :attr:`Projector.rows_per_call` says how many.

Both give E[<Px, Py>] = <x, y>; the same (kind, n_params, d, seed) gives the same matrix in every call and
every process.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

BLOCK_ENTRIES = 2**24  # entries of one Rademacher block: 64 MB of float32


class Projector(Protocol):
    """Maps (b, n_params) float32 rows to (b, d) float32 rows with a fixed seeded matrix."""

    n_params: int
    d: int
    rows_per_call: int

    def project(self, grads: torch.Tensor) -> torch.Tensor: ...


@dataclasses.dataclass
class SparseProjector:
    """Very sparse random projection (density 1/sqrt(n_params)); the matrix lives as a (d, P) torch CSR tensor."""

    n_params: int
    d: int
    seed: int
    rows_per_call: int = 1  # projecting costs ~3 ms per row: nothing to gain from buffering rows
    _matrix: torch.Tensor | None = dataclasses.field(default=None, init=False, repr=False)

    def matrix(self) -> torch.Tensor:
        """The (d, n_params) CSR matrix, drawn on first use."""
        if self._matrix is None:
            import scipy.sparse
            import torch
            from sklearn.random_projection import SparseRandomProjection

            # fitting on an empty sparse row tells sklearn the number of features without allocating them
            empty = scipy.sparse.csr_matrix((1, self.n_params), dtype=np.float32)
            fitted = SparseRandomProjection(n_components=self.d, density="auto", random_state=self.seed).fit(empty)
            components = fitted.components_.tocsr().astype(np.float32)
            with warnings.catch_warnings():  # torch calls its CSR support "beta"; CSR @ dense is all we use
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                self._matrix = torch.sparse_csr_tensor(
                    torch.from_numpy(components.indptr.astype(np.int64)),
                    torch.from_numpy(components.indices.astype(np.int64)),
                    torch.from_numpy(components.data),
                    size=components.shape,
                    check_invariants=False,  # scipy's CSR is valid by construction
                )
        return self._matrix

    def project(self, grads: torch.Tensor) -> torch.Tensor:
        """(b, n_params) -> (b, d). CSR @ dense is as fast as scipy here and also runs on CUDA."""
        _check_width(grads, self.n_params)
        matrix = self.matrix()
        if matrix.device != grads.device:
            self._matrix = matrix = matrix.to(grads.device)
        return (matrix @ grads.float().T).T.contiguous()


@dataclasses.dataclass(frozen=True)
class RademacherProjector:
    """Dense +-1/sqrt(d) projection regenerated block by block; one (block_rows, d) block in memory at a time."""

    n_params: int
    d: int
    seed: int
    rows_per_call: int = 64  # 64 rows of 0.9 M float32 gradients (236 MB) share one ~4 s regeneration

    @property
    def block_rows(self) -> int:
        """Rows of the P x d matrix per block: the block (and its seed) depends on d only, never on the input."""
        return max(1, BLOCK_ENTRIES // self.d)

    def block(self, index: int) -> torch.Tensor:
        """Block ``index`` of the matrix as 0/1 float32 signs (row r of the block is matrix row index*block_rows+r)."""
        import torch

        start = index * self.block_rows
        rows = min(self.block_rows, self.n_params - start)
        if rows <= 0:
            raise IndexError(f"block {index} is past the {self.n_params} rows of the matrix")
        generator = torch.Generator().manual_seed(_block_seed(self.seed, index))
        return torch.empty(rows, self.d).random_(0, 2, generator=generator)

    def project(self, grads: torch.Tensor) -> torch.Tensor:
        """(b, n_params) -> (b, d), accumulated over the blocks."""
        import torch

        _check_width(grads, self.n_params)
        grads = grads.float()
        out = torch.zeros(grads.shape[0], self.d, device=grads.device)
        for index in range(math.ceil(self.n_params / self.block_rows)):
            start = index * self.block_rows
            part = grads[:, start : start + self.block_rows]
            bits = self.block(index).to(grads.device)
            # with signs s = 2*bits - 1: x @ s = 2 (x @ bits) - sum(x); saves a full pass over the block
            out += 2 * (part @ bits) - part.sum(dim=1, keepdim=True)
        return out / math.sqrt(self.d)


@functools.lru_cache(maxsize=4)
def build_projector(kind: Literal["sparse", "rademacher"], n_params: int, d: int, seed: int) -> Projector:
    """A seeded projector from ``n_params`` to ``d`` dimensions (see the module docstring for the two kinds).

    Cached per process: pool and target features share one projector, and drawing the sparse matrix takes
    ~2.5 s at P = 0.9 M, d = 1024.
    """
    if n_params < 1 or d < 1:
        raise ValueError(f"n_params and d must be positive, not {n_params} and {d}")
    if kind == "sparse":
        return SparseProjector(n_params, d, seed)
    if kind == "rademacher":
        return RademacherProjector(n_params, d, seed)
    raise ValueError(f"projection must be 'sparse' or 'rademacher', not {kind!r}")


def _block_seed(seed: int, index: int) -> int:
    """A 63-bit generator seed per (seed, block): SeedSequence mixes them so nearby pairs are unrelated streams."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _check_width(grads: torch.Tensor, n_params: int) -> None:
    if grads.ndim != 2 or grads.shape[1] != n_params:
        raise ValueError(f"expected gradients of shape (b, {n_params}), got {tuple(grads.shape)}")
