"""What the activation wizards share (the authenticator app's, the token's):
the step order, enforced from the journey's state, never from the browser."""
from __future__ import annotations

from typing import Mapping

from adapters.base import Failure


def reached_step(ctx, step: str, steps: Mapping[str, int]) -> int | Failure:
    """The number of ``step`` when the wizard (``ctx.state["reached"]``) has come
    that far; otherwise the ``Failure`` to return: no person (``activation_level``),
    no such step, or a step not reached yet (a forged URL or post: ``step_order``)."""
    if ctx.person_fedid is None:
        return Failure("activation_level")
    number = steps.get(step)
    if number is None:
        return Failure("unknown_step")
    if number > ctx.state.get("reached", 0):
        return Failure("step_order")
    return number
