"""Funnel stages from calibrated probabilities: lead, MQL and SQL cut-offs set by business policy.

Marketing and sales agree on what an MQL and an SQL are; the model only learns where those
agreements fall on its probability scale. Each stage's cut-off comes from its own rule, chosen
on held-out leads (the calibration fold, never the leads the booster learnt from):

``recall`` (``mql_recall``)
    the share of eventual wins that must reach at least this stage ("90 % of future customers
    must be nurtured as MQLs"): the highest cut-off that keeps that share of wins.
``precision`` (``sql_precision``)
    the share of leads at this stage or above that should convert ("sales wants half of its
    calls to win"): the lowest cut-off whose leads convert at least that often, among the
    groups of at least ``min_leads`` held-out leads (30 by default). A target only a handful
    of top leads reaches by luck (3 of 3 won against a 99% target, when their calibrated
    probabilities say 68%) is no promise to sales: the stage stays empty, with a warning
    that says what the best group of that size converts at.
``capacity`` (``sales_capacity``)
    leads per period the team can take ("the call centre handles 200 SQLs a month"): the
    cut-off that yields that many per period on the held-out leads, scaled by how many periods
    they span on the calendar (first to last date plus one step: a day for flat tables, the
    as-of spacing for event data). Given the lead of each example, distinct leads are
    counted: a lead scored at three as-of dates of one period is one lead for sales. A lead
    that crosses the cut-off between two snapshots and falls back is not seen, so sparser
    snapshots than the scoring runs hand sales more than the capacity (fitted for 20 a week
    on 30-day snapshots: 30 a week on weekly runs, 51 on daily ones), and the fold's first
    snapshot counts the leads already above the cut-off as if they came within the fold. The
    scorer therefore counts each period's new SQLs against the capacity
    (:class:`leadscore.scoring.CapacityCheck`), and the README says how to adjust.
``expected_value``
    a lead is worth the contact when ``p * deal_value`` exceeds its cost: ``contact_cost`` for
    SQL, ``nurture_cost`` for MQL.
``probability``
    a fixed cut-off on the calibrated probability, for teams that already agreed on one.

Any policy can set either stage; the issue's names (``mql_recall``, ``sql_precision``,
``sales_capacity``) are accepted as aliases. The defaults adapt to any base rate: MQL holds
90 % of eventual wins, SQL the top leads that hold half of them.

Stages are monotone in the probability by construction: SQL needs ``p >= sql_threshold_``,
MQL ``p >= mql_threshold_``, and the MQL cut-off is never above the SQL one, so a higher
probability never gets a lower stage. Cut-offs are absolute probabilities, so tiers stay put
across retrains instead of moving with the score distribution as quartiles would.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from leadscore.errors import ModelError, SpecError

logger = logging.getLogger(__name__)

PolicyName = Literal["recall", "precision", "capacity", "expected_value", "probability"]

#: How far above its recall target a stage may reach before :meth:`StageThresholds.fit` warns
#: that ties at its cut-off did it: without ties a cut-off overshoots by one win at most. A
#: high target leaves less to overshoot into, so the bound is also at most three quarters of
#: what the target leaves out (0.075 for 90%): a 90% MQL target met at 100% by a tie holding
#: every lead had emptied the lead stage without a word, while olist's isotonic steps meet it
#: at 95%, which is no such news.
TIE_OVERSHOOT = 0.1

#: Below this share of what a capacity allows, :meth:`StageThresholds.fit` says that ties at
#: the next probability kept the stage short (10 SQLs where 100 were allowed, in silence).
CAPACITY_SHORTFALL = 0.5


def tie_overshoot(target: float) -> float:
    """How far past a recall ``target`` a stage may reach before ties are named."""
    return min(TIE_OVERSHOOT, 0.75 * (1.0 - target))


#: The names the issue and marketers use, accepted for the policies above.
POLICY_ALIASES: dict[str, str] = {
    "mql_recall": "recall",
    "sql_precision": "precision",
    "sales_capacity": "capacity",
}


class StageRule(BaseModel):
    """How one stage's cut-off is chosen: a policy and its target.

    ``target`` is a share in (0, 1] for ``recall`` and ``precision``, leads per period
    for ``capacity``, a probability for ``probability`` and unused for
    ``expected_value`` (which reads the costs of :class:`StagePolicy`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    policy: PolicyName
    target: float | None = None

    @field_validator("policy", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        return POLICY_ALIASES.get(value, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_target(self) -> StageRule:
        if self.policy == "expected_value":
            return self
        if self.target is None:
            raise ValueError(f"policy {self.policy} needs a target")
        if self.policy in ("recall", "precision", "probability") and not (0 < self.target <= 1):
            raise ValueError(f"policy {self.policy} needs a target in (0, 1], got {self.target}")
        if self.policy == "capacity" and self.target <= 0:
            raise ValueError(f"capacity needs a positive target, got {self.target}")
        return self

    @property
    def goal(self) -> float:
        """The target of a policy that needs one: every policy but ``expected_value``, as
        checked when the rule is made."""
        if self.target is None:
            raise ValueError(f"policy {self.policy} has no target")
        return self.target


class StagePolicy(BaseModel):
    """The stage agreement between marketing and sales, as configuration.

    MQL and SQL rules of one kind whose targets contradict on their face (an MQL cut-off
    that would sit above the SQL one: :func:`contradiction`) are refused, in one line naming
    both targets and the fix; rules of two kinds meet only on data, where
    :meth:`StageThresholds.fit` lowers the MQL cut-off to SQL's with a warning. A policy read
    back from a saved model (validation context :data:`SAVED_POLICY`) is not refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mql: StageRule = StageRule(policy="recall", target=0.9)
    sql: StageRule = StageRule(policy="recall", target=0.5)
    period_days: float = 30.0
    min_leads: int = 30
    deal_value: float | None = None
    contact_cost: float | None = None
    nurture_cost: float | None = None

    @model_validator(mode="after")
    def _check_costs(self, info: ValidationInfo) -> StagePolicy:
        if self.period_days <= 0:
            raise ValueError("period_days must be positive")
        if self.min_leads < 1:
            raise ValueError("min_leads must be at least 1")
        for stage, cost_name in (("mql", "nurture_cost"), ("sql", "contact_cost")):
            if getattr(self, stage).policy != "expected_value":
                continue
            cost = getattr(self, cost_name)
            if self.deal_value is None or cost is None:
                raise ValueError(f"{stage} by expected_value needs deal_value and {cost_name}")
            if self.deal_value <= 0 or cost < 0:
                raise ValueError("deal_value must be positive and costs not negative")
        # a model saved before this check keeps loading: its cut-offs were fitted (the MQL one
        # moved to SQL's, with a warning), and refusing them now would strand it
        if not (isinstance(info.context, Mapping) and info.context.get(SAVED_POLICY)):
            problem = contradiction(self)
            if problem is not None:
                raise PydanticCustomError("config_value", problem[0], {"fix": problem[1]})
        return self


#: Validation context key (``StagePolicy.model_validate(data, context={SAVED_POLICY: True})``)
#: of a policy read back from a saved model, which :func:`contradiction` does not refuse.
SAVED_POLICY = "saved_policy"

#: Per policy whose MQL and SQL targets compare on their face: the relation an MQL target
#: must keep to the SQL one (``"<="``: at most SQL's, ``">="``: at least SQL's), and why. An
#: equal target is allowed: it empties the MQL stage, which a team may want.
_TARGET_ORDER: dict[str, tuple[str, str]] = {
    "probability": ("<=", "the MQL cut-off cannot be above the SQL one"),
    "recall": (">=", "MQL and above must hold at least the wins SQL holds"),
    "precision": ("<=", "MQL and above hold more leads than SQL and cannot convert more often"),
    "capacity": (">=", "MQL and above count at least the leads SQL counts"),
}


def contradiction(policy: StagePolicy) -> tuple[str, str] | None:
    """``(problem, fix)`` when the MQL and SQL rules are of one kind and their targets
    contradict on their face, else ``None``: by ``probability`` or ``precision`` an MQL target
    above SQL's, by ``recall`` or ``capacity`` one below it (the MQL stage holds the SQL one),
    by ``expected_value`` a ``nurture_cost`` above ``contact_cost``. Each would put the MQL
    cut-off above the SQL one, which :meth:`StageThresholds.fit` could only move down to
    SQL's; rules of two kinds compare only on data, and are warned about there."""
    mql, sql = policy.mql, policy.sql
    if mql.policy != sql.policy:
        return None
    given = policy.model_fields_set
    mql_default, sql_default = ("" if k in given else " (the default)" for k in ("mql", "sql"))
    if mql.policy == "expected_value":
        nurture, contact = policy.nurture_cost, policy.contact_cost
        if nurture is None or contact is None or nurture <= contact:
            return None
        return (
            f"nurture_cost {nurture:g} is above contact_cost {contact:g}, with mql and sql both "
            "by expected_value: an MQL would need a higher probability than an SQL",
            f"Give nurture_cost at most {contact:g} (equal leaves the MQL stage empty), or "
            "swap the two costs.",
        )
    order, why = _TARGET_ORDER[mql.policy]
    low, high = mql.goal, sql.goal
    if (low <= high) if order == "<=" else (low >= high):
        return None
    relation, bound = ("above", "at most") if order == "<=" else ("below", "at least")
    return (
        f"mql.target {low:g}{mql_default} is {relation} sql.target {high:g}{sql_default}, both by "
        f"{mql.policy}: {why}",
        f"Give mql.target {bound} {high:g} (equal leaves the MQL stage empty), or swap "
        "the two targets.",
    )


def _probabilities(p: Any) -> np.ndarray:
    """``p`` as float64, refused (``ValueError``) unless every value is in [0, 1]."""
    pv = np.asarray(p, dtype="float64")
    bad = ~((pv >= 0) & (pv <= 1))  # NaN too
    if bad.any():
        raise ValueError(
            f"p must hold probabilities in [0, 1], none missing: {float(pv[bad].flat[0]):g} is "
            "not one"
        )
    return pv


def calendar_step_days(order: Any) -> float | None:
    """The usual number of days between the distinct calendar dates of ``order``, or ``None``
    with fewer than two dates (or without time).

    Dates, not timestamps: leads that arrive in business hours or only on weekdays still come
    one day apart, and event-form as-of dates come ``every_days`` apart.
    """
    days = _calendar_days(order)
    if days is None or days.size < 2:
        return None
    return float(np.median(np.diff(days)))


def periods_spanned(
    order: Any, period_days: float, *, step_days: float | None = None
) -> float | None:
    """How many periods of ``period_days`` the examples' times cover, or ``None`` without time.

    Measured on the calendar, from the first date to the last plus one step, the time each
    date stands for: nights, weekends and the days between event-form snapshots count, so
    capacity is spread over the real span. ``step_days`` is that step (pass the as-of spacing
    for event data, whose fold may hold a single snapshot); by default the fold's own
    :func:`calendar_step_days`, or one day for a single date.
    """
    days = _calendar_days(order)
    if days is None:
        return None
    step = step_days if step_days is not None else calendar_step_days(order)
    return float((days[-1] - days[0] + (1.0 if step is None else step)) / period_days)


def _calendar_days(order: Any) -> np.ndarray | None:
    """Distinct calendar dates of ``order`` as sorted day numbers, ``None`` without time."""
    if order is None:
        return None
    if isinstance(getattr(order, "dtype", None), pd.DatetimeTZDtype):
        order = pd.DatetimeIndex(order).tz_convert("UTC").tz_localize(None)  # numpy has no zone
    values = np.asarray(order)
    if not np.issubdtype(values.dtype, np.datetime64) or values.size == 0:
        return None
    return np.unique(values.astype("datetime64[D]")).astype("int64").astype("float64")


class StageThresholds(BaseEstimator):
    """Fitted MQL and SQL cut-offs on the calibrated probability.

    Parameters
    ----------
    policy : a :class:`StagePolicy` or a mapping of its fields; ``None`` for the defaults
        (MQL holds 90 % of wins, SQL the top leads holding 50 %).

    Attributes
    ----------
    mql_threshold_, sql_threshold_ : cut-offs; a lead is at a stage when ``p >= cut-off``.
        ``inf`` means nobody reaches the stage.
    achieved_ : what each rule achieved on the leads it was fitted on.
    warnings_ : targets that could not be met, in words.

    Examples
    --------
    >>> p = np.array([0.05, 0.1, 0.2, 0.4, 0.6, 0.9])
    >>> y = np.array([0, 0, 1, 0, 1, 1])
    >>> st = StageThresholds({"mql": {"policy": "mql_recall", "target": 1.0},
    ...                       "sql": {"policy": "precision", "target": 1.0},
    ...                       "min_leads": 2}).fit(p, y)
    >>> st.mql_threshold_, st.sql_threshold_
    (0.2, 0.6)
    >>> st.transform(p).tolist()
    ['lead', 'lead', 'mql', 'mql', 'sql', 'sql']
    """

    def __init__(self, policy: StagePolicy | dict[str, Any] | None = None) -> None:
        self.policy = policy

    def _policy(self) -> StagePolicy:
        if isinstance(self.policy, StagePolicy):
            return self.policy
        try:
            return StagePolicy.model_validate(self.policy or {})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "stages"
            raise SpecError(
                f"stage policy {where}: {first['msg']}",
                "Fix the stages section of the training config.",
            ) from err

    def fit(
        self,
        p: np.ndarray,
        y: np.ndarray,
        *,
        periods: float | None = None,
        leads: np.ndarray | None = None,
    ) -> StageThresholds:
        """Learn the cut-offs from held-out calibrated probabilities ``p`` and outcomes ``y``.

        ``periods`` is how many periods of ``policy.period_days`` the leads span on the
        calendar (see :func:`periods_spanned`); only ``capacity`` needs it, and
        ``achieved_[stage]["per_period"]`` divides by it. ``leads`` names the lead of each
        example (event data holds a lead at several as-of dates): ``capacity`` then counts
        distinct leads, each at its highest probability.
        """
        policy = self._policy()
        pv = _probabilities(p).ravel()  # a NaN cut-off would stage nobody SQL
        yv = _outcomes(y)
        if pv.shape != yv.shape or pv.size == 0:
            raise ValueError("p and y must be of the same, non-zero length")
        if leads is not None and len(leads) != pv.size:
            raise ValueError("leads must name the lead of each example")
        # each lead at its highest probability: it reaches a stage when any example does
        top = pv if leads is None else pd.Series(pv).groupby(np.asarray(leads)).max().to_numpy()
        self.warnings_: list[str] = []
        cut = {
            stage: self._cut(stage, getattr(policy, stage), policy, pv, yv, periods, top)
            for stage in ("mql", "sql")
        }
        for stage in ("mql", "sql"):
            if 1 < cut[stage] < math.inf:
                # only expected_value reaches above 1 (a cost above the deal value): no
                # probability gets there, and "nobody" is written as inf, so that a saved
                # cut-off is always a probability or null
                self.warnings_.append(
                    f"the {stage.upper()} cut-off ({cut[stage]:.3f}) is above any probability: "
                    f"the {stage.upper()} stage stays empty"
                )
                cut[stage] = math.inf
        mql_read = cut["mql"]
        if cut["mql"] >= cut["sql"] and math.isfinite(cut["sql"]):
            relation = "below" if cut["mql"] > cut["sql"] else "the same as"
            text = (
                f"the SQL cut-off ({cut['sql']:.3f}) is {relation} the MQL cut-off "
                f"({cut['mql']:.3f}): every lead past MQL is an SQL, the MQL stage is empty"
            )
            # the MQL policy's own figure is gone with it: the leads it left at lead go to sales
            promoted = int(((pv >= cut["sql"]) & (pv < cut["mql"])).sum())
            if promoted:
                text += (
                    f", and {promoted:,} of the {pv.size:,} held-out examples "
                    f"({promoted / pv.size:.0%}) that the MQL policy left at lead are SQLs"
                )
            self.warnings_.append(text)
            cut["mql"] = cut["sql"]
        lowered = {"mql"} if cut["mql"] < mql_read else set()
        self.mql_threshold_ = float(cut["mql"])
        self.sql_threshold_ = float(cut["sql"])
        self.policy_ = policy
        self.achieved_ = {
            stage: _achieved(pv, yv, getattr(self, f"{stage}_threshold_"), periods, top)
            for stage in ("mql", "sql")
        }
        self._warn_of_ties(policy, pv, yv, skip=lowered)
        for w in self.warnings_:
            logger.warning("stages: %s", w)
        return self

    def _warn_of_ties(
        self, policy: StagePolicy, p: np.ndarray, y: np.ndarray, skip: set[str]
    ) -> None:
        """Say when ties at a cut-off put far more wins in a stage than its recall asks for.

        A cut-off cannot split leads of one probability: where thousands share it (a model
        that cannot rank them, or a wide step of isotonic calibration), "SQL holds half of
        the wins" became "every lead is an SQL" without a word (a model of ROC-AUC 0.50 put
        9,240 of 9,240 leads in SQL). The stage keeps the cut-off its policy reads, which
        meets the target; the warning says what it costs. Ties did it only where two wins or
        more share the cut-off's probability (a cut-off on 3 wins overshoots by a third without
        a tie); a stage in ``skip`` had its cut-off moved by another rule (MQL lowered to an
        SQL cut-off below it, which :meth:`fit` warns of itself).
        """
        cuts = {"mql": self.mql_threshold_, "sql": self.sql_threshold_}
        for stage, cut in cuts.items():
            rule = getattr(policy, stage)
            if rule.policy != "recall" or not math.isfinite(cut) or stage in skip:
                continue
            recall = self.achieved_[stage]["recall"]
            if recall is None or recall - rule.goal <= tie_overshoot(rule.goal):
                continue
            at_cut = p == cut
            if y[at_cut].sum() < 2:
                continue
            tied = int(np.count_nonzero(at_cut))
            self.warnings_.append(
                f"{tied:,} held-out leads share the {stage.upper()} cut-off's probability "
                f"({cut:.1%}), so {stage.upper()} or above holds {recall:.0%} of the held-out wins "
                f"where {stage}.target asks for {rule.goal:.0%}: the model cannot tell these "
                "leads apart (check its ROC-AUC against the baselines, or calibrate with fewer "
                "ties: calibration.method sigmoid)"
            )

    def _cut(
        self,
        stage: str,
        rule: StageRule,
        policy: StagePolicy,
        p: np.ndarray,
        y: np.ndarray,
        periods: float | None,
        top: np.ndarray,
    ) -> float:
        """One stage's cut-off; ``top`` is each lead's highest probability (capacity counts
        leads, the other rules examples)."""
        name = stage.upper()
        if rule.policy == "expected_value":
            cost = policy.nurture_cost if stage == "mql" else policy.contact_cost
            # Strictly worth it: p * value > cost, so the cut-off is the next float above.
            return float(np.nextafter(cost / policy.deal_value, np.inf))  # type: ignore[operator]
        target = rule.goal
        if rule.policy == "probability":
            return target
        if rule.policy == "recall":
            wins = np.sort(p[y == 1])[::-1]
            if wins.size == 0:
                self.warnings_.append(
                    f"no win among the held-out leads: {name} by recall "
                    "falls back to the top probability"
                )
                return float(p.max())
            k = max(1, math.ceil(target * wins.size - 1e-9))
            return float(wins[k - 1])
        if rule.policy == "precision":
            values, counts, wins_at = _by_threshold(p, y)
            precision = wins_at / counts
            # min_leads counts leads: a lead held at several as-of dates is one lead
            reached = top.size - np.searchsorted(np.sort(top), values, side="left")
            enough = reached >= min(policy.min_leads, top.size)
            ok = np.flatnonzero((precision >= target - 1e-12) & enough)
            if ok.size == 0:
                self.warnings_.append(_precision_unmet(stage, rule, policy, precision, reached))
                return math.inf
            return float(values[ok.max()])
        if periods is None:
            raise ModelError(
                f"{name} by capacity needs leads with dates to count them per period",
                "Use recall, precision or expected_value for data without time.",
            )
        if periods < 1:
            self.warnings_.append(
                f"the held-out leads stand for {math.floor(periods * 1000) / 1000:g} of a "
                f"{policy.period_days:g}-day "
                f"period: the {name} capacity cut-off rests on less than one period of leads"
            )
        allowed = math.floor(target * periods + 1e-9)
        values, counts, _ = _by_threshold(top, np.zeros_like(top))
        ok = np.flatnonzero(counts <= allowed)
        if allowed < 1:
            self.warnings_.append(
                f"a capacity of {target:g} per period is less than one lead over the "
                f"{periods:.1f} held-out periods: the {name} stage stays empty"
            )
            return math.inf
        if ok.size == 0:
            # a cut-off cannot split leads of one probability (isotonic calibration's steps)
            self.warnings_.append(
                f"the top {int(counts[0]):,} held-out leads share one probability "
                f"({values[0]:.1%}), more than the {allowed:,} that a capacity of {target:g} "
                f"per period allows over {periods:.1f} periods: the {name} stage stays empty "
                f"(raise {stage}.target, or calibrate with fewer ties: calibration.method "
                "sigmoid)"
            )
            return math.inf
        chosen = ok.max()
        if chosen == values.size - 1:
            self.warnings_.append(
                f"a capacity of {target:g} per period is at least the lead flow "
                f"({top.size:,} held-out leads over {periods:.1f} periods): every lead is an "
                f"{name}, whatever its probability (set {stage}.target to what sales can "
                "take, or choose the stage by recall or precision)"
            )
        elif counts[chosen] < CAPACITY_SHORTFALL * allowed and chosen + 1 < values.size:
            tied = int(counts[chosen + 1] - counts[chosen])
            self.warnings_.append(
                f"{tied:,} held-out leads share the next probability ({values[chosen + 1]:.1%}), "
                f"so {name} holds {int(counts[chosen]):,} leads where a capacity of {target:g} "
                f"per period allows {allowed:,} over {periods:.1f} periods: a cut-off cannot "
                "split them (calibrate with fewer ties: calibration.method sigmoid)"
            )
        return float(values[chosen])

    def transform(self, p: np.ndarray) -> np.ndarray:
        """Stage of each probability: ``"lead"``, ``"mql"`` or ``"sql"``.

        Raises ``ValueError`` for a value outside [0, 1] or missing, as :meth:`fit` does: a
        NaN had read as stage ``lead`` and score -9223372036854775808.
        """
        check_is_fitted(self, "sql_threshold_")
        pv = _probabilities(p)
        return np.where(
            pv >= self.sql_threshold_, "sql", np.where(pv >= self.mql_threshold_, "mql", "lead")
        ).astype(object)

    def scores(self, p: np.ndarray) -> np.ndarray:
        """The 0-100 integer score people read, never at odds with the stage.

        The probability in percent, rounded, then kept within its stage's band of scores: an
        SQL scores at least ``ceil(100 * sql_threshold_)``, anything below SQL at most one
        less (and so for MQL). Plain rounding would give a lead at ``p = 0.1525`` (MQL under a
        cut-off of 0.153) and one at 0.1535 (SQL) the same 15, and a marketer reading "SQL
        from 15" would find a 15 in MQL; here the SQL reads 16. No score moves more than one
        point from the rounded percent, and a higher probability never scores lower. Two
        cut-offs within one point of each other leave MQL no score of its own: it shares the
        highest score below SQL with the leads under it.
        """
        check_is_fitted(self, "sql_threshold_")
        pv = _probabilities(p)
        score = np.clip(np.rint(pv * 100.0), 0.0, 100.0)
        cuts = np.array([self.mql_threshold_, self.sql_threshold_], dtype="float64")
        # round away float noise first: 100 * 0.15 is 15.000000000000002, and a cut-off of
        # 0.15 lets in p = 0.15, whose rounded score is 15; a stage nobody reaches (inf)
        # bounds no score; a cut-off above 0 leaves 0 to the leads below it
        first = np.ceil(np.round(cuts * 100.0, 9))
        first = np.where(cuts > 0, np.maximum(first, 1.0), first)
        first = np.where(np.isfinite(cuts), first, 101.0)
        # the stage as transform gives it (p >= cut-off), as 0, 1, 2
        rank = np.where(pv >= cuts[1], 2, np.where(pv >= cuts[0], 1, 0))
        below_sql = first[1] - 1.0
        low = np.array([0.0, min(first[0], below_sql), first[1]])[rank]
        high = np.array([min(first[0] - 1.0, below_sql), below_sql, 100.0])[rank]
        high = np.maximum(high, low)
        return np.clip(score, low, high).astype("int64")

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """The fitted cut-offs and their policy as JSON-ready values (``inf`` as ``null``)."""
        check_is_fitted(self, "sql_threshold_")
        return {
            "policy": self.policy_.model_dump(),
            "mql_threshold_": _finite_or_none(self.mql_threshold_),
            "sql_threshold_": _finite_or_none(self.sql_threshold_),
            "achieved_": self.achieved_,
            "warnings_": list(self.warnings_),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageThresholds:
        """Rebuild fitted cut-offs written by :meth:`to_dict`.

        The cut-offs are checked as :meth:`fit` leaves them: each a probability in [0, 1] or
        ``null`` (nobody reaches the stage), the MQL one never above the SQL one. A damaged
        file fails here instead of staging every lead as ``lead`` or skipping the MQL stage.

        Raises
        ------
        ModelError
            A missing or mistyped field, a cut-off that is no probability, or MQL above SQL.
        """
        if not isinstance(data, Mapping):
            raise _damaged(f"they are {type(data).__name__}, not a mapping")
        missing = [k for k in ("policy", "mql_threshold_", "sql_threshold_") if k not in data]
        if missing:
            raise _damaged(f"there is no {missing[0]!r}")
        try:
            policy = StagePolicy.model_validate(data["policy"], context={SAVED_POLICY: True})
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "policy"
            raise _damaged(f"policy {where}: {first['msg']}") from err
        mql, sql = (_read_cut(data, f"{stage}_threshold_") for stage in ("mql", "sql"))
        if mql > sql:
            raise _damaged(f"the MQL cut-off ({mql:g}) is above the SQL cut-off ({sql:g})")
        achieved, warnings = data.get("achieved_", {}), data.get("warnings_", [])
        if not isinstance(achieved, Mapping):
            raise _damaged("achieved_ is not a mapping")
        if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
            raise _damaged("warnings_ is not a list of texts")
        st = cls(policy)
        st.mql_threshold_, st.sql_threshold_ = mql, sql
        st.policy_ = policy
        st.achieved_ = dict(achieved)
        st.warnings_ = list(warnings)
        return st


def _precision_unmet(
    stage: str,
    rule: StageRule,
    policy: StagePolicy,
    precision: np.ndarray,
    counts: np.ndarray,
) -> str:
    """The warning of a precision target no group of ``min_leads`` held-out leads reaches:
    what the best such group converts at, and the few top leads that reach it by chance.
    ``counts`` is the leads at or above each threshold of ``precision``."""
    size = min(policy.min_leads, int(counts[-1]))
    enough = counts >= size
    best = int(np.argmax(np.where(enough, precision, -1.0)))
    text = (
        f"no group of {size:,} or more held-out leads converts at {rule.target:.0%} "
        f"(the best, the top {int(counts[best]):,}, converts at {precision[best]:.0%})"
    )
    lucky = np.flatnonzero((precision >= rule.goal - 1e-12) & ~enough)
    if lucky.size:
        text += (
            f"; the top {int(counts[lucky.max()]):,} that do are too few to trust "
            f"(stages.min_leads: {policy.min_leads})"
        )
    return f"{text}: the {stage.upper()} stage stays empty (lower {stage}.target)"


#: The achieved measure each policy promises (``None``: a rule, nothing to check).
POLICY_MEASURE: dict[str, str | None] = {
    "recall": "recall",
    "precision": "precision",
    "capacity": "per_period",
    "expected_value": "value_per_contact",
    "probability": None,
}


def _outcomes(y: np.ndarray) -> np.ndarray:
    """``y`` as 0.0/1.0, or a ``ValueError`` that says what the outcomes must be (``"won"``
    text had reached numpy's "could not convert string to float")."""
    values = np.asarray(y).ravel()
    try:
        out = values.astype("float64")
    except (TypeError, ValueError):
        out = np.array([np.nan])
    if not np.isin(out, (0.0, 1.0)).all():
        shown = ", ".join(
            repr(v.item() if hasattr(v, "item") else v) for v in pd.unique(values)[:3]
        )
        raise ValueError(f"y must hold outcomes as 1 (won) and 0 (lost), got {shown}")
    return out


def policy_check(
    stages: StageThresholds,
    p: np.ndarray,
    y: np.ndarray,
    *,
    periods: float | None = None,
    leads: np.ndarray | None = None,
) -> dict[str, dict[str, Any]]:
    """Each stage's policy against what it gave where the cut-offs were set (``fitted``,
    the calibration fold) and on other held-out leads ``p``, ``y`` (``test``), in the measure
    the policy promises: a target met on the leads it was fitted on may not hold on later
    leads, and sales should see both. ``periods`` and ``leads`` as in
    :meth:`StageThresholds.fit`, for a capacity."""
    check_is_fitted(stages, "sql_threshold_")
    pv = np.asarray(p, dtype="float64").ravel()
    yv = np.asarray(y, dtype="float64").ravel()
    top = pv if leads is None else pd.Series(pv).groupby(np.asarray(leads)).max().to_numpy()
    out: dict[str, dict[str, Any]] = {}
    policy = stages.policy_
    for stage in ("mql", "sql"):
        rule = getattr(policy, stage)
        measure = POLICY_MEASURE[rule.policy]
        cut = getattr(stages, f"{stage}_threshold_")
        test = _achieved(pv, yv, cut, periods, top)
        fitted = stages.achieved_[stage]
        if measure == "value_per_contact":
            # what a lead at the stage brought on average: a win's value times the share that
            # won, less what reaching it cost (the promise: more than nothing)
            cost = policy.nurture_cost if stage == "mql" else policy.contact_cost
            fitted, test = (
                {measure: _value_per_contact(a.get("precision"), policy.deal_value, cost)}
                for a in (fitted, test)
            )
        out[stage] = {
            "policy": rule.policy,
            "target": rule.target,
            "measure": measure,
            "fitted": None if measure is None else fitted.get(measure),
            "test": None if measure is None else test[measure],
            "period_days": policy.period_days,
        }
    # an MQL cut-off at or above the SQL's is lowered to it (fit), so SQL's set MQL's figures
    out["mql"]["set_by_sql"] = bool(
        math.isfinite(stages.sql_threshold_) and stages.mql_threshold_ == stages.sql_threshold_
    )
    return out


def _value_per_contact(
    precision: float | None, deal_value: float | None, cost: float | None
) -> float | None:
    """A win's value times the share of leads that won, less the cost of the contact."""
    if precision is None or deal_value is None or cost is None:
        return None
    return float(precision * deal_value - cost)


def _damaged(what: str) -> ModelError:
    return ModelError(
        f"the stage thresholds in the model file are damaged: {what}",
        "Retrain the model or restore its model.json as it was saved.",
    )


def _read_cut(data: Mapping[str, Any], key: str) -> float:
    """A saved cut-off: a probability, or ``None`` for "nobody" (``inf``)."""
    value = data[key]
    if value is None:
        return math.inf
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not 0.0 <= value <= 1.0:  # NaN fails the range test too
        raise _damaged(f"{key} is {value!r}, not a probability in [0, 1] or null")
    return float(value)


def _by_threshold(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct probabilities from high to low, with the leads and wins at or above each."""
    values, inverse = np.unique(p, return_inverse=True)
    counts = np.bincount(inverse, minlength=values.size)[::-1].cumsum()
    wins = np.bincount(inverse, weights=y, minlength=values.size)[::-1].cumsum()
    return values[::-1], counts.astype("float64"), wins


def _achieved(
    p: np.ndarray, y: np.ndarray, cut: float, periods: float | None, top: np.ndarray
) -> dict[str, float | None]:
    """What a cut-off gives on the fitted examples: ``count`` examples, ``leads`` distinct
    leads (``per_period`` counts those, as capacity does)."""
    at = p >= cut
    n_at = int(at.sum())
    leads = int((top >= cut).sum())
    wins = float(y.sum())
    return {
        "count": n_at,
        "leads": leads,
        "precision": float(y[at].mean()) if n_at else None,
        "recall": float(y[at].sum() / wins) if wins else None,
        "per_period": (leads / periods) if periods else None,
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
