"""The scenario's `mode`: `backtest` (plan inside the history, replay on the real series) or `plan` (forecast
past the end of the data and plan it: no replay, no oracle); the keys that make no sense in plan mode."""

from __future__ import annotations

from typing import Any

MODES = ("backtest", "plan")
#: how far past the end plan mode forecasts when `<problem>.horizon.days` is not given
PLAN_DAYS = 1.0
#: why a strategy other than the forecast cannot be planned without the future
NEEDS_FUTURE = {
    "rolling": "re-plans on the load as it is observed",
    "threshold": "reacts to the observed load",
    "always_on": "is scored only on a replay of the real load",
    "poi": "is calibrated on the real demand of the planned period",
    "residents": "is calibrated on the real demand of the planned period",
}


def plan_mode_problems(scenario: Any) -> list[tuple[str, str]]:
    """(YAML key, what to change) for every key of `scenario` that plan mode cannot honour."""
    out = []
    for name in scenario.problems:
        spec = getattr(scenario, name)
        given = spec.model_fields_set
        if spec.horizon.start_day is not None:
            out.append((f"{name}.horizon.start_day", "plan mode forecasts from the end of the data: remove "
                        f"start_day ({name}.horizon.days says how far ahead to plan)"))
        if "task" in given and spec.task != "long":
            out.append((f"{name}.task", f"{spec.task} forecasts areas inside the observed period; plan mode "
                        "forecasts past the end with long-term windows: remove the key or set task: long"))
        others = [s for s in spec.strategies if s != "forecast"] if "strategies" in given else []
        if others:
            why = ", ".join(f"{s!r} {NEEDS_FUTURE[s]}" for s in others)
            out.append((f"{name}.strategies", f"{why}: that needs the real series of the planned period; plan "
                        f"mode plans the forecast only: set {name}.strategies: [forecast] (or remove it), or use "
                        "mode: backtest"))
        elif "strategies" in given and "forecast" not in spec.strategies:
            out.append((f"{name}.strategies", "plan mode plans the forecast: include 'forecast'"))
    return out
