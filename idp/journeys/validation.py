"""Is what a key proved good enough for the journey?  Pure, checked before the
journey is claimed: a result that fails here never starts a session and is
never answered to a portal as ``Success``."""
from __future__ import annotations

from adapters.base import AuthResult


def refusal(*, result: AuthResult, key: str, acceptable: list[str], key_levels: tuple[int, int],
            min_level: int, requirement) -> str | None:
    """None when the result may complete the journey, else why not (an audit reason).

    ``requirement`` is the ``LevelRequirement`` of the request (None: none).
    """
    if result.key != key:
        return "result_of_another_key"
    if key not in acceptable:
        return "key_not_acceptable"
    low, high = key_levels
    if not low <= result.level <= high:
        return "level_outside_key_range"
    if result.level < min_level:
        return "level_below_minimum"
    if requirement is not None and not requirement.accepts(result.level, key):
        return "level_not_requested"
    return None
