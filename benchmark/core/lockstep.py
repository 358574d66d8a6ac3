"""Several runs of sequential method code, whose expensive requests are served together as one batch.

A method is ordinary Python: IMP asks for one training after another, Lanczos for one Hessian-vector product
after another. Rewriting every method to work on a batch of seeds would make each submission harder to write
and easy to get subtly wrong. Instead the harness runs R copies of the *same* sequential code — one per seed
or per draw, the *lanes* — and batches only what the harness itself computes for them: when every live lane
has asked for something (:meth:`Lockstep.ask`), the driver serves all the requests in one call (one batched
training, one block of Hessian-vector products) and hands each lane its answer.

Lanes run in threads but never at the same time: one baton passes between them in a fixed order, so the run
is deterministic and uses one core, like a run alone. Each lane keeps its own global random state (Python's
``random``, NumPy's global generator, torch's CPU generator), saved and restored at every hand-off, so a lane
that seeds the global generators and draws from them sees exactly the numbers it would see alone. What is
*not* per lane: anything else global the lane mutates (module-level caches, ``torch.set_num_threads``). Grad
mode and dispatch modes (the FLOP meter) are thread-local in PyTorch: a lane starts with grad enabled and no
mode, whatever the driver had.

``serve`` runs in the driver's thread, outside any lane's meter (it is harness work, charged in its own unit),
and must not draw from the global generators (it would see the driver's state, not a lane's).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from phenomena_bench.core.seeds import GlobalGeneratorState, global_generator_state, set_global_generator_state

__all__ = ["LaneResult", "Lockstep"]

Q = TypeVar("Q")  # a request
A = TypeVar("A")  # its answer
T = TypeVar("T")  # what a lane returns


@dataclass
class LaneResult(Generic[T]):
    """What one lane ended with: its return value, or the exception it raised."""

    value: T | None = None
    error: BaseException | None = None


class _Lane:
    def __init__(self, index: int, fn: Callable[[], Any]) -> None:
        self.index = index
        self.fn = fn
        self.rng: GlobalGeneratorState | None = None
        self.request: Any = None
        self.waiting = False
        self.done = False
        self.answer: Any = None
        self.error: BaseException | None = None  # raised into the lane by `ask` (serve failed)
        self.result: LaneResult[Any] = LaneResult()
        self.go = threading.Semaphore(0)  # released by the driver when it is this lane's turn


class Lockstep(Generic[Q, A]):
    """Run lanes one at a time; serve their requests together.

    ``serve(requests) -> answers`` gets the requests of every waiting lane that share one ``group(request)``
    key (default: all of them), in lane order, and returns one answer per request. If ``serve`` raises, each
    lane of that group gets the exception raised from its :meth:`ask`.
    """

    def __init__(self, serve: Callable[[list[Q]], Sequence[A]], group: Callable[[Q], Hashable] | None = None) -> None:
        self._serve = serve
        self._group = group or (lambda request: None)
        self._back = threading.Semaphore(0)  # released by a lane when it hands the baton back
        self._local = threading.local()
        self.batches: list[int] = []  # the size of every batch served, for tests and benchmarks

    # -- inside a lane -------------------------------------------------------------------------------------
    def ask(self, request: Q) -> A:
        """The answer to `request`: served with the other lanes' requests inside :meth:`run`, at once alone."""
        lane: _Lane | None = getattr(self._local, "lane", None)
        if lane is None:  # not inside a lockstep run: a run alone asks and is served directly
            answers = self._serve([request])
            self.batches.append(1)
            return answers[0]
        lane.request, lane.waiting = request, True
        self._hand_back(lane)
        if lane.error is not None:
            error, lane.error = lane.error, None
            raise error
        answer, lane.answer = lane.answer, None
        return answer

    def _hand_back(self, lane: _Lane) -> None:
        """Give the baton to the driver and wait for it to come back to `lane`."""
        lane.rng = global_generator_state()
        self._back.release()
        lane.go.acquire()
        assert lane.rng is not None
        set_global_generator_state(lane.rng)

    def _lane_main(self, lane: _Lane) -> None:
        lane.go.acquire()
        self._local.lane = lane
        if lane.rng is not None:
            set_global_generator_state(lane.rng)
        try:
            lane.result = LaneResult(value=lane.fn())
        except BaseException as err:  # a lane's failure is its own: the others go on
            lane.result = LaneResult(error=err)
        lane.done = True
        self._back.release()

    # -- the driver ----------------------------------------------------------------------------------------
    def _give_turn(self, lane: _Lane) -> None:
        lane.go.release()
        self._back.acquire()

    def run(self, lanes: Sequence[Callable[[], T]]) -> list[LaneResult[T]]:
        """Run every lane to its end; one :class:`LaneResult` per lane, in order."""
        driver_rng = global_generator_state()
        states = [_Lane(i, fn) for i, fn in enumerate(lanes)]
        for lane in states:  # every lane starts from the driver's random state, as a run alone would
            lane.rng = driver_rng
        threads = [threading.Thread(target=self._lane_main, args=(lane,), daemon=True) for lane in states]
        for thread in threads:
            thread.start()
        try:
            ready = list(states)
            while ready:
                for lane in ready:
                    self._give_turn(lane)
                waiting = [lane for lane in states if lane.waiting and not lane.done]
                ready = []
                groups: dict[Hashable, list[_Lane]] = {}
                for lane in waiting:
                    groups.setdefault(self._group(lane.request), []).append(lane)
                for members in groups.values():
                    self._serve_group(members)
                    ready.extend(members)
                ready.sort(key=lambda lane: lane.index)
        finally:
            set_global_generator_state(driver_rng)
        for thread in threads:
            thread.join()
        return [lane.result for lane in states]

    def _serve_group(self, members: list[_Lane]) -> None:
        for lane in members:
            lane.waiting = False
        try:
            answers = list(self._serve([lane.request for lane in members]))
            if len(answers) != len(members):
                raise RuntimeError(f"serve returned {len(answers)} answers for {len(members)} requests")
        except Exception as err:
            for lane in members:
                lane.error = err
            return
        self.batches.append(len(members))
        for lane, answer in zip(members, answers):
            lane.answer, lane.request = answer, None
