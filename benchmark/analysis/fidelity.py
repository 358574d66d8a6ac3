"""Fidelity badges: does each baseline reproduce, on this benchmark, the effect its own paper reports?

A baseline declares its paper's claims (``claims``, :class:`~phenomena_bench.core.claims.Claim`): Muon
groks in fewer steps than AdamW, IMP keeps more accuracy than a random mask at 99.5% sparsity, SNIP's mask
is no better than its own layer-wise shuffle. Each claim is tested on every (task, tier) it is about with
the calibrated test the verdicts use (:func:`comparison.compare`: an exact sign-flip test of the
seed-paired differences, its t interval, restricted times for a time-to-event metric). A claim is one
test declared before the runs, so it is adjusted alone (:func:`comparison.adjust` of one comparison) and
needs :func:`comparison.seeds_for_verdict` (1) = 6 paired seeds:

* ``reproduced``: the test says the method is better (``effect: better``), or — for ``no_better`` — a
  verdict was attainable and the test did not find it better;
* ``not reproduced``: the comparator wins or ties (``better``), or the method is significantly better
  (``no_better``); shown with the measured effect and its interval;
* ``underpowered``: too few paired seeds for any verdict (a ``no_better`` claim is never "reproduced" by a
  test that could not have rejected it).

This is a result about the benchmark's setting (sizes, budgets, tier), not a verdict on the paper.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from phenomena_bench.analysis.comparison import Comparison, adjust, compare
from phenomena_bench.analysis.gates import Groups, latest_groups, method_records, metric_observations
from phenomena_bench.analysis.rows import Families, FamilyLike, _family_lookup
from phenomena_bench.analysis.statistics import Observations
from phenomena_bench.core.claims import Claim
from phenomena_bench.core.seeds import group_seed
from phenomena_bench.store import RunRecord

Fidelity = Literal["reproduced", "not_reproduced", "underpowered"]
FIDELITY_TEXT: dict[Fidelity, str] = {
    "reproduced": "reproduced",
    "not_reproduced": "not reproduced",
    "underpowered": "underpowered",
}


@dataclass(frozen=True)
class FidelityResult:
    """One claim of one baseline on one (task, tier): the paired comparison and what it says of the claim.

    `comparison` is method − comparator (or the in-run gain against 0) on the seeds both ran.
    """

    method: str
    claim: Claim
    task: str
    tier: str
    status: Fidelity
    comparison: Comparison

    def effect(self) -> str:
        """The mean paired difference with its 95% interval, ``+0.31 [+0.20, +0.42]`` (``-`` without pairs)."""
        c = self.comparison
        if c.diff_mean is None:
            return "-"
        if c.diff_low is None or c.diff_high is None:
            return _signed(c.diff_mean)
        return f"{_signed(c.diff_mean)} [{_signed(c.diff_low)}, {_signed(c.diff_high)}]"

    def summary(self) -> str:
        """The badge with its evidence: ``not reproduced: -120 [-300, +60], p=0.41, 6 seeds``."""
        c = self.comparison
        p = "" if c.p_adjusted is None else f", p={c.p_adjusted:.2g}"
        return f"{FIDELITY_TEXT[self.status]}: {self.effect()}{p}, {c.n_paired} paired seeds"


def _signed(x: float) -> str:
    """A difference with its sign, three significant digits, whole numbers shown whole (``+1975``)."""
    return f"{x:+.0f}" if abs(x) >= 1000 else f"{x:+.3g}"


def _outcome(claim: Claim, comparison: Comparison) -> Fidelity:
    if comparison.verdict == "underpowered":
        return "underpowered"
    better = comparison.verdict == "better"
    return "reproduced" if better == (claim.effect == "better") else "not_reproduced"


def _zeros_like(obs: Observations) -> Observations:
    """A control at 0 on the same seeds: an in-run paired gain is tested against no gain."""
    return Observations(obs.seeds, tuple(0.0 for _ in obs.seeds), tuple(False for _ in obs.seeds))


def check_claim(method: str, claim: Claim, groups: Groups, task: str, tier: str, family: FamilyLike) -> FidelityResult:
    """One claim of `method` on (task, tier), from the stored runs."""
    direction = claim.direction or family.direction
    obs, horizon = metric_observations(groups, task, tier, method, claim.column, family)
    if claim.better_than is None:
        other = _zeros_like(obs)
    else:
        other, _ = metric_observations(groups, task, tier, claim.better_than, claim.column, family)
    raw = compare(
        direction,
        obs,
        other,
        horizon=horizon,
        seed=group_seed(task, tier, method, "claim", claim.column, claim.comparator),
    )
    (adjusted,) = adjust([raw], direction)  # one pre-declared test: Holm over one comparison
    return FidelityResult(method, claim, task, tier, _outcome(claim, adjusted), adjusted)


def evaluate_claims(
    records: Iterable[RunRecord], claims: Mapping[str, tuple[Claim, ...]], families: Families = None
) -> list[FidelityResult]:
    """Every claim of every method in `claims` (method name -> its claims) on each (task, tier) of the store
    where the method ran, the claim applies and its tier is one the claim names."""
    groups = latest_groups(records)
    lookup = _family_lookup(families)
    tables = sorted({(task, tier, recs[0].family) for (task, tier, _), recs in groups.items()})
    out: list[FidelityResult] = []
    for method, method_claims in sorted(claims.items()):
        for task, tier, family_name in tables:
            if not method_records(groups, task, tier, method):
                continue
            family = lookup(family_name)
            for claim in method_claims:
                if tier in claim.tiers and claim.applies_to(task, family_name):
                    out.append(check_claim(method, claim, groups, task, tier, family))
    return out


def baseline_claims() -> dict[str, tuple[Claim, ...]]:
    """The claims of every shipped baseline that declares some (method name -> claims)."""
    from phenomena_bench.registry import baseline_classes

    return {name: tuple(cls.claims) for name, cls in baseline_classes().items() if cls.claims}
