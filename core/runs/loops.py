"""The selection-and-fine-tune loops (iterative kMQ, IterIT) behind one registry of frozen configs.

Each loop's settings are a frozen dataclass registered in :data:`LOOPS` (``IterativeKMQConfig`` in
:mod:`core.runs.iterative_kmq`, ``IterITConfig`` in :mod:`core.runs.iterit`), so the CLI's loop
parameters, the Runs page form and a run's ``loop_params`` all come from the same fields. A few fields
come from the run itself, not from ``loop_params``: its budget, its number of rounds and its seed
(``run_fields``; the config's ``for_run`` maps them). :class:`LoopHooks` carries what a caller plugs in
to watch and steer a loop while it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from core.registry import Registry

if TYPE_CHECKING:
    from core.select.pool import Decisions
    from core.train.trainer import TrainStatus


class LoopConfig(Protocol):
    """A loop's settings. ``title`` is its human name in the Runs page's picker, ``rounds_label`` names its
    rounds there; ``run_fields`` are set by the run."""

    name: ClassVar[str]
    title: ClassVar[str]
    rounds_label: ClassVar[str]
    run_fields: ClassVar[tuple[str, ...]]

    @classmethod
    def for_run(cls, budget: int, rounds: int, seed: int, **params: Any) -> LoopConfig: ...


LOOPS: Registry[LoopConfig] = Registry("loop")


@dataclasses.dataclass(frozen=True)
class LoopHooks:
    """What a caller plugs into a running loop.

    on_round : called with each finished round's record (IterIT: each epoch's).
    on_step : called with the trainer's status after every optimizer step.
    should_stop : checked between rounds and passed to training; True cancels.
    decisions : called at the start of every round for the curator's decisions in force then
        (:func:`core.select.loading.current_decisions`); None: every example eligible, the pool's weights.
    """

    on_round: Callable[[Any], None] | None = None
    on_step: Callable[[TrainStatus], None] | None = None
    should_stop: Callable[[], bool] | None = None
    decisions: Callable[[], Decisions] | None = None


def config_for_run(name: str, *, budget: int, rounds: int, seed: int, params: dict[str, Any]) -> LoopConfig:
    """Loop ``name``'s config for a run of ``budget`` examples (a count) over ``rounds``, with ``params``
    (checked by ``LOOPS.parse``: the budget, rounds and seed are the run's, not parameters)."""
    return LOOPS.get(name).for_run(budget, rounds, seed, **LOOPS.parse(name, params))


# The loops register their configs on import; import them here so LOOPS is complete wherever it is used.
from core.runs import iterative_kmq, iterit  # noqa: E402, F401
