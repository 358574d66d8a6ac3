"""What a task and a baseline claim, declared beside them and checked against the stored runs.

Two kinds of claim make a phenomena benchmark's numbers readable:

* A **gate** (:class:`Gate`, a task spec's ``expect:`` list) says what the task's reference must show on a
  tier for that tier to measure the phenomenon at all: a grokking tier whose reference memorises and
  generalises at the same step measures plain learning, not grokking. A gate never changes what a run
  produces, so ``expect:`` is left out of the run key (editing a gate redoes nothing).
* A **claim** (:class:`Claim`, a baseline's ``claims`` class attribute) is the direction of effect the
  method's paper reports against a named comparator (Muon groks in fewer steps than AdamW). Whether the
  benchmark reproduces it is a result, computed by :mod:`phenomena_bench.analysis.fidelity`.

Both are checked by :mod:`phenomena_bench.analysis.gates` and :mod:`phenomena_bench.analysis.fidelity` with
the statistics the tables already use; this module only declares and validates them. It imports nothing
from the rest of the package, so the spec models and the method base can both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

GateTier = Literal["smoke", "default", "full"]
#: How a gate reads the method's seeds: the median or the mean over seeds, every seed on its own, or the 95%
#: t interval of the mean (of the paired difference to `versus` when set).
GateStatistic = Literal["median", "mean", "every_seed", "interval"]
GateOp = Literal[">=", ">", "<=", "<", "in", "=="]
#: The tiers a gate or claim is about unless it says otherwise: smoke tiers check plumbing, not phenomena.
CLAIMING_TIERS: tuple[GateTier, ...] = ("default", "full")
#: Seeds a gate needs before it is checked; fewer is ``not_enough_runs`` ("not checked"), never a pass.
MIN_GATE_SEEDS = 3


class Gate(BaseModel):
    """One check a tier's reference must pass for the tier to claim the phenomenon.

    `metric` is a metric name as runs record it (``delay_ratio``, ``gap_vs_random@99.5``, ``eos_ratio``).
    `method` is whose runs are read (default: the family's reference). `statistic` and `op`/`value` say what
    must hold: ``median``/``mean`` compare that statistic over seeds with `value`; ``every_seed`` requires
    each seed's value to satisfy the comparison (a run that failed or does not report the metric does not);
    ``interval`` requires the whole 95% t interval of the mean — of the seed-paired difference method −
    `versus` when `versus` names a method — to satisfy it (``> 0``: the interval lies above 0). ``in`` takes
    ``[low, high]`` (inclusive); ``==`` a number or true/false (a boolean metric reads as 1/0).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    metric: str = Field(min_length=1, max_length=120)
    method: str | None = Field(default=None, min_length=1, description="Whose runs; default: the reference.")
    statistic: GateStatistic = "median"
    op: GateOp
    value: bool | float | list[float]
    versus: str | None = Field(default=None, min_length=1, description="Paired comparator (interval only).")
    tiers: list[GateTier] = Field(default_factory=lambda: list(CLAIMING_TIERS), min_length=1)
    min_seeds: int = Field(default=MIN_GATE_SEEDS, ge=1, le=1000)
    why: str = Field(min_length=1, description="Why this gate is the phenomenon (shown with a failure).")

    @model_validator(mode="after")
    def _consistent(self) -> Gate:
        if self.op == "in":
            if not (isinstance(self.value, list) and len(self.value) == 2 and self.value[0] <= self.value[1]):
                raise ValueError(f"gate on {self.metric}: `op: in` needs `value: [low, high]` with low <= high")
        elif isinstance(self.value, list):
            raise ValueError(f"gate on {self.metric}: `op: {self.op}` needs one number, not a list (or use `op: in`)")
        elif isinstance(self.value, bool) and self.op != "==":
            raise ValueError(f"gate on {self.metric}: true/false is compared only with `op: ==`")
        if self.versus is not None and self.statistic != "interval":
            raise ValueError(f"gate on {self.metric}: `versus` is a paired comparison: use `statistic: interval`")
        if self.statistic == "interval" and self.op == "==":
            raise ValueError(f"gate on {self.metric}: an interval cannot equal a value: use >, >=, <, <= or in")
        if len(set(self.tiers)) != len(self.tiers):
            raise ValueError(f"gate on {self.metric}: a tier is listed twice in `tiers`")
        return self

    def describe(self) -> str:
        """The gate as one short phrase: ``median delay_ratio >= 2``, ``interval of gap_vs_random@99.5 > 0``."""
        value = f"[{self.value[0]:g}, {self.value[1]:g}]" if isinstance(self.value, list) else _fmt(self.value)
        subject = {"median": "median", "mean": "mean", "every_seed": "every seed's", "interval": "95% CI of"}
        what = f"{self.metric} - {self.versus}" if self.versus else self.metric
        return f"{subject[self.statistic]} {what} {self.op} {value}"


def _fmt(value: bool | float) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}"


ClaimEffect = Literal["better", "no_better"]


@dataclass(frozen=True)
class Claim:
    """The effect a baseline's paper reports, as the benchmark can test it on seed-paired runs.

    `metric` is the record's metric (with `at` appended as ``metric@at``: a budget or a sparsity). The method
    is compared with `better_than`, another method's runs on the same seeds; when `better_than` is ``None``
    the metric is already a paired gain over a control inside each run (``gain_over_shuffle@99``: the
    method's mask against its own layer-wise shuffle), named by `control`, and is tested against 0.
    `effect` is ``better`` (the paper says the method wins) or ``no_better`` (it says the method does not
    beat the comparator: the control ties it or wins). `direction` is the metric's better side (default:
    the family's). `tasks` are task ids or family names (empty: every task of the method's family); `tiers`
    the tiers where the paper's setting is approached (smoke tiers are plumbing checks). `source` says where
    the paper states it ("paper, figure").
    """

    metric: str
    source: str
    better_than: str | None = None
    control: str = ""
    effect: ClaimEffect = "better"
    at: str | None = None
    tasks: tuple[str, ...] = ()
    tiers: tuple[GateTier, ...] = CLAIMING_TIERS
    direction: Literal["min", "max"] | None = None

    def __post_init__(self) -> None:
        if not self.metric or not self.source:
            raise ValueError("a Claim needs a metric and a source (the paper and figure that state it)")
        if (self.better_than is None) == (not self.control):
            raise ValueError(
                f"claim on {self.metric}: give exactly one of better_than (a comparator method) and control "
                "(what an in-run paired gain is measured against)"
            )
        if not self.tiers:
            raise ValueError(f"claim on {self.metric}: list at least one tier")

    @property
    def column(self) -> str:
        """The metric as records name it."""
        return f"{self.metric}@{self.at}" if self.at else self.metric

    @property
    def comparator(self) -> str:
        """Who the method is compared with, for tables: the comparator method or the in-run control."""
        return self.better_than or self.control

    def applies_to(self, task_id: str, family: str) -> bool:
        """Whether the claim is about `task_id` (listed by id or by family, or no list: the whole family)."""
        return not self.tasks or task_id in self.tasks or family in self.tasks

    def describe(self) -> str:
        """``steps_to_target better than adamw`` / ``gain_over_shuffle@99 no better than its shuffle``."""
        word = "better than" if self.effect == "better" else "no better than"
        return f"{self.column} {word} {self.comparator}"
