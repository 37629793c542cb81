"""Gradient features as an engine stage (:mod:`core.engines`): examples in, projected LoRA-gradient features
out, through :func:`core.gradients.features.gradient_features`, so the ``local`` and ``ray`` engines compute
the same features.

The warmup (a short LoRA training) stays on the workspace's owner; its adapter and AdamW moments travel inside
the stage itself (a few MB for the default r=8 adapter of the 135M model), so an actor on any node can load
them without a shared folder. The random projection is rebuilt in each actor from its seed: the same matrix.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

    from core.engines import BatchFn, RowsDone


@dataclasses.dataclass(frozen=True)
class GradientStage:
    """Inputs ``key`` (the row index) and the example's texts; outputs ``key`` and ``vector`` (the row's
    feature, float32 of the float16 the features are stored in). ``feature_key`` names every setting the
    features depend on (:func:`core.gradients.pipeline._feature_info`)."""

    name: ClassVar[str] = "gradients"
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "peft", "pyarrow", "pandas")
    feature_key: str
    model: str
    adapter: dict[str, bytes]  # the warmup adapter's folder: file name -> content
    moments: bytes | None  # torch.save of (exp_avg, exp_avg_sq); None for a target's plain gradients
    d: int
    projection: str
    seed: int
    max_length: int
    batch_size: int
    precision: str

    def key(self) -> str:
        return self.feature_key

    def open(self) -> BatchFn:
        import torch
        from peft import PeftModel

        from core.engines import example_frame
        from core.gradients.features import gradient_features
        from core.models.lm import load_causal_lm

        lm = load_causal_lm(self.model)
        with tempfile.TemporaryDirectory(prefix="adapter-") as folder:
            for name, content in self.adapter.items():
                (Path(folder) / name).write_bytes(content)
            # a copy: peft wraps the model it is given, and the loaded one is shared by the process's scorers;
            # trainable: the features are gradients with respect to the adapter's weights
            model = PeftModel.from_pretrained(copy.deepcopy(lm.model), folder, is_trainable=True).eval()
        device = next(model.parameters()).device
        moments = None
        if self.moments is not None:
            first, second = torch.load(io.BytesIO(self.moments), weights_only=True)
            moments = (first.to(device), second.to(device))

        def batch(table: pa.Table, rows_done: RowsDone | None = None) -> pa.Table:
            from core.embed.stage import vector_table

            features = gradient_features(
                model,
                lm.tokenizer,
                example_frame(table),
                moments=moments,
                d=self.d,
                projection=self.projection,  # type: ignore[arg-type]  # checked by GradientConfig
                seed=self.seed,
                max_length=self.max_length,
                batch_size=self.batch_size,
                precision=self.precision,  # type: ignore[arg-type]
                progress=rows_done,
            )
            return vector_table(table.column("key"), features.astype(np.float32))

        return batch


def adapter_files(folder: Path) -> dict[str, bytes]:
    """The files of a saved adapter folder, by name (what a :class:`GradientStage` carries)."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def moments_bytes(moments: tuple[Any, Any] | None) -> bytes | None:
    """``moments`` serialised for a :class:`GradientStage` (None stays None)."""
    if moments is None:
        return None
    import torch

    buffer = io.BytesIO()
    torch.save((moments[0].detach().cpu(), moments[1].detach().cpu()), buffer)
    return buffer.getvalue()
