"""Covariates declared by their availability, as neuralforecast declares them.

    hist_exog   known up to the forecast origin only (users by default): hidden wherever traffic is hidden
    futr_exog   known for the horizon too (planned events, a mobility forecast the user supplies): shown
                at the hidden steps of a forecast, the way the future calendar is
    stat_exog   static per cell (POI counts by category)

A city carries one declaration (`City.covariates`; None means the default: users hist, POI stat). The
network reads one dynamic covariate, `users`, and the static POI counts; further dynamic covariates travel
with the city (its frames round-trip, baselines may read them) but UoMo does not read them: map the one
that should drive the network to `users` (e.g. `columns={"users": "mobility_forecast"}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

from .errors import DataError

Availability = Literal["hist", "futr", "stat"]
AVAILABILITY = ("hist", "futr", "stat")
#: names the model layer gives a meaning: the dynamic users channel and the static POI counts
USERS, POI = "users", "poi"


@dataclass(frozen=True)
class Covariates:
    """Which covariate is known when: names of historic, future-known and static covariates."""

    hist_exog: tuple[str, ...] = ()
    futr_exog: tuple[str, ...] = ()
    stat_exog: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in ("hist_exog", "futr_exog", "stat_exog"):
            object.__setattr__(self, key, tuple(_names(getattr(self, key))))
        seen: dict[str, str] = {}
        for key in ("hist_exog", "futr_exog", "stat_exog"):
            for name in getattr(self, key):
                if name in seen:
                    raise DataError(f"covariate {name!r} is declared both in {seen[name]} and in {key}: "
                                    "a covariate has one availability")
                seen[name] = key

    @classmethod
    def declare(cls, hist_exog: Iterable[str] | None = None, futr_exog: Iterable[str] | None = None,
                stat_exog: Iterable[str] | None = None, has_users: bool = False, has_poi: bool = False) -> "Covariates":
        """A declaration with the defaults filled in: users hist and POI stat unless declared otherwise."""
        hist, futr, stat = _names(hist_exog), _names(futr_exog), _names(stat_exog)
        if has_users and USERS not in hist + futr + stat:
            hist.append(USERS)
        if has_poi and POI not in hist + futr + stat:
            stat.append(POI)
        return cls(tuple(hist), tuple(futr), tuple(stat))

    def availability(self, name: str) -> Availability | None:
        """'hist', 'futr' or 'stat' for a declared covariate, None otherwise."""
        for key in AVAILABILITY:
            if name in getattr(self, f"{key}_exog"):
                return key  # type: ignore[return-value]
        return None

    @property
    def dynamic(self) -> tuple[str, ...]:
        """The time-varying covariates (hist, then futr)."""
        return self.hist_exog + self.futr_exog

    def to_dict(self) -> dict[str, list[str]]:
        return {"hist_exog": list(self.hist_exog), "futr_exog": list(self.futr_exog), "stat_exog": list(self.stat_exog)}


def _names(value) -> list[str]:
    """A declared list of names: None -> [], one name -> [name]."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


#: the declaration of a city that declares nothing
DEFAULT_COVARIATES = Covariates(hist_exog=(USERS,), stat_exog=(POI,))


def users_availability(covariates: Covariates | None) -> Availability:
    """'futr' when users are declared known for the horizon, else 'hist' (the default, no peeking)."""
    return "futr" if covariates is not None and covariates.availability(USERS) == "futr" else "hist"
