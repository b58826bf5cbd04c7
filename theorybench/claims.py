"""The claims ledger: what a figure claims, how it is decided, and the verdict its numbers give.

A figure declares its claims when it is registered (``FigureSpec(claims=...)``), before anything is
trained: each ``Claim`` states what a paper says (``statement``, ``source``: the paper's title and the
figure or section) and one or more ``Criterion``s, each a measured quantity compared with a threshold
fixed in code (``error/d at N = d+1 <= 0.02``). Running the figure returns a ``Measurement`` per
criterion: the value and an interval (over seeds: ``t_interval`` or ``bootstrap_interval``; a rate:
``binomial_interval``; a deterministic computation: ``exact``), and the ledger reads the verdict off:

- a criterion is **met** when its whole interval satisfies it, **not met** when its whole interval
  violates it, and **undecided** when the interval straddles the threshold (or nothing was measured);
- a claim is ``reproduced`` when every criterion is met; ``not reproduced`` when some criterion is not
  met and none is met; ``partly reproduced`` when some are met and some are not; ``inconclusive``
  otherwise (no criterion fails, at least one is undecided).

A threshold is part of the claim, not of the result: it is reviewed in tests and never moved to fit
a run. An undertrained run gives wide intervals or misses a precondition; its honest verdict is
``inconclusive``, which ``not_measured(reason)`` states explicitly where a scale cannot decide a claim.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "inconclusive")
OPERATORS = ("<=", ">=")
OUTCOMES = ("met", "not met", "undecided")
DEFAULT_LEVEL = 0.95

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class LedgerError(ValueError):
    """A claim or criterion is malformed, or a figure did not measure a criterion it declared."""


@dataclass(frozen=True)
class Criterion:
    """``quantity op threshold``: the measured value named ``key`` must lie on the stated side.

    ``key`` names the entry of ``FigureResult.measured`` that holds its ``Measurement``."""

    key: str
    quantity: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        _check_key("criterion", self.key)
        if self.op not in OPERATORS:
            raise LedgerError(f"criterion {self.key!r}: op={self.op!r} is not allowed: one of "
                              f"{', '.join(map(repr, OPERATORS))}")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not math.isfinite(self.threshold):
            raise LedgerError(f"criterion {self.key!r}: threshold={self.threshold!r} must be a finite number")
        if not (isinstance(self.quantity, str) and self.quantity.strip()):
            raise LedgerError(f"criterion {self.key!r}: quantity must say what is measured")

    def describe(self) -> str:
        return f"{self.quantity} {'≤' if self.op == '<=' else '≥'} {self.threshold:g}"

    def outcome(self, m: "Measurement") -> str:
        """'met' if the whole interval satisfies the criterion, 'not met' if the whole interval
        violates it, else 'undecided' (the interval straddles the threshold, or nothing was measured)."""
        low, high = m.low, m.high
        if math.isnan(low) or math.isnan(high):
            return "undecided"
        t = self.threshold
        if self.op == "<=":
            return "met" if high <= t else "not met" if low > t else "undecided"
        return "met" if low >= t else "not met" if high < t else "undecided"


@dataclass(frozen=True)
class Claim:
    """A paper's claim as this project tests it: the statement, its source, and the criteria that
    decide it, all fixed before any run."""

    key: str
    statement: str
    source: str
    criteria: tuple[Criterion, ...]

    def __post_init__(self) -> None:
        _check_key("claim", self.key)
        for name in ("statement", "source"):
            if not (isinstance(getattr(self, name), str) and getattr(self, name).strip()):
                raise LedgerError(f"claim {self.key!r}: {name} must be a non-empty string")
        object.__setattr__(self, "criteria", tuple(self.criteria))
        if not self.criteria or not all(isinstance(c, Criterion) for c in self.criteria):
            raise LedgerError(f"claim {self.key!r}: criteria must be a non-empty sequence of Criterion")
        keys = [c.key for c in self.criteria]
        if len(set(keys)) != len(keys):
            raise LedgerError(f"claim {self.key!r}: criterion keys repeat: {keys}")


@dataclass(frozen=True)
class Measurement:
    """A measured value and its interval [low, high] at ``level``; ``method`` says how the interval was
    computed and ``n`` from how many samples; ``note`` says why a value is missing."""

    value: float
    low: float
    high: float
    method: str
    n: int | None = None
    level: float | None = DEFAULT_LEVEL
    note: str = ""

    def __post_init__(self) -> None:
        for name in ("value", "low", "high"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not math.isnan(self.value) and not (self.low <= self.value <= self.high):
            raise LedgerError(f"measurement {self.value!r} lies outside its interval [{self.low!r}, {self.high!r}]")

    @property
    def measured(self) -> bool:
        return not math.isnan(self.value)

    def describe(self) -> str:
        if not self.measured:
            return f"not measured ({self.note})" if self.note else "not measured"
        if self.low == self.high == self.value:
            text = f"{_fmt(self.value)} ({self.method})"
        else:
            level = f"{self.level:.0%} " if self.level else ""
            n = f", n = {self.n}" if self.n is not None else ""
            text = f"{_fmt(self.value)} [{_fmt(self.low)}, {_fmt(self.high)}] ({level}{self.method}{n})"
        return f"{text}; {self.note}" if self.note else text


@dataclass(frozen=True)
class CriterionResult:
    criterion: Criterion
    measurement: Measurement
    outcome: str


@dataclass(frozen=True)
class ClaimVerdict:
    """A claim, the outcome of each of its criteria, and the verdict they give."""

    claim: Claim
    parts: tuple[CriterionResult, ...]
    verdict: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", combine([p.outcome for p in self.parts]))

    def markdown(self) -> list[str]:
        """The claim's lines in ``figures/README.md``: the verdict first, then each criterion."""
        lines = [f"- **Verdict: {self.verdict}** — {self.claim.statement} *({self.claim.source})*"]
        lines += [f"  - {p.outcome}: {p.criterion.describe()}; "
                  f"{'measured ' if p.measurement.measured else ''}{p.measurement.describe()}" for p in self.parts]
        return lines

    def to_dict(self) -> dict:
        return {"claim": asdict(self.claim), "verdict": self.verdict,
                "parts": [{"criterion": asdict(p.criterion), "measurement": asdict(p.measurement),
                           "outcome": p.outcome} for p in self.parts]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ClaimVerdict":
        claim = dict(d["claim"])
        claim["criteria"] = tuple(Criterion(**c) for c in claim["criteria"])
        parts = tuple(CriterionResult(Criterion(**p["criterion"]), Measurement(**p["measurement"]), p["outcome"])
                      for p in d["parts"])
        return cls(Claim(**claim), parts)


def combine(outcomes: Sequence[str]) -> str:
    """The verdict of a claim from its criteria's outcomes (see the module docstring)."""
    met, failed = "met" in outcomes, "not met" in outcomes
    if met and failed:
        return "partly reproduced"
    if failed:
        return "not reproduced"
    if outcomes and all(o == "met" for o in outcomes):
        return "reproduced"
    return "inconclusive"


def judge(claim: Claim, measured: Mapping[str, Measurement], figure: str = "?") -> ClaimVerdict:
    """Decide ``claim`` from the figure's measurements; a criterion without a measurement is a bug in
    the figure (use ``not_measured(reason)`` where a scale cannot measure it)."""
    parts = []
    for c in claim.criteria:
        if c.key not in measured:
            raise LedgerError(f"figure {figure!r} declares criterion {c.key!r} (claim {claim.key!r}) but did not "
                              f"measure it; measured: {sorted(measured) or 'nothing'}")
        m = measured[c.key]
        if not isinstance(m, Measurement):
            raise LedgerError(f"figure {figure!r}: measured[{c.key!r}] is {type(m).__name__}, expected Measurement")
        parts.append(CriterionResult(c, m, c.outcome(m)))
    return ClaimVerdict(claim, tuple(parts))


def judge_all(claims: Iterable[Claim], measured: Mapping[str, Measurement], figure: str = "?") -> list[ClaimVerdict]:
    return [judge(c, measured, figure) for c in claims]


def check_claims(claims: Sequence[Claim], figure: str) -> tuple[Claim, ...]:
    """Validate a figure's declared claims: Claim instances with distinct claim and criterion keys."""
    claims = tuple(claims)
    if not all(isinstance(c, Claim) for c in claims):
        raise LedgerError(f"figure {figure!r}: claims must be Claim instances")
    keys = [c.key for c in claims]
    crit = [k.key for c in claims for k in c.criteria]
    for kind, names in (("claim", keys), ("criterion", crit)):
        dup = sorted({k for k in names if names.count(k) > 1})
        if dup:
            raise LedgerError(f"figure {figure!r}: {kind} keys repeat: {dup}")
    return claims


# ------------------------------------------------------------------------------------ measurements
def exact(value: float, method: str = "deterministic") -> Measurement:
    """A value with no sampling error (a closed form, a solver at its stated accuracy)."""
    return Measurement(value, value, value, method, n=None, level=None)


def not_measured(reason: str) -> Measurement:
    """No value at this scale: every criterion reading it is undecided, and the reason is shown."""
    nan = float("nan")
    return Measurement(nan, nan, nan, "not measured", n=0, level=None, note=reason)


def t_interval(samples: Sequence[float], level: float = DEFAULT_LEVEL, method: str = "t interval over seeds") -> Measurement:
    """Mean ± t_{(1+level)/2, n−1} · s/√n. One sample gives an unbounded interval (nothing is decided)."""
    x = _finite(samples, "t_interval")
    n = len(x)
    mean = float(x.mean())
    if n < 2:
        return Measurement(mean, -math.inf, math.inf, method, n=n, level=level)
    from scipy import stats  # here, not at the top: scipy.stats costs the command line ~0.8 s at start-up

    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Measurement(mean, mean - half, mean + half, method, n=n, level=level)


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = DEFAULT_LEVEL) -> Measurement:
    """t interval of the mean of a_i − b_i over paired samples (same seed, two conditions)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise LedgerError(f"paired_difference needs samples of one shape, got {a.shape} and {b.shape}")
    return t_interval(a - b, level, method="paired t interval over seeds")


def binomial_interval(successes: int, n: int, level: float = DEFAULT_LEVEL) -> Measurement:
    """The rate k/n with its Clopper–Pearson (exact) interval."""
    if not (isinstance(n, (int, np.integer)) and n > 0 and 0 <= successes <= n):
        raise LedgerError(f"binomial_interval needs 0 <= successes <= n and n > 0, got {successes}/{n}")
    from scipy import stats  # here, not at the top: scipy.stats costs the command line ~0.8 s at start-up

    alpha = 1 - level
    low = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return Measurement(successes / n, low, high, f"Clopper–Pearson, {successes}/{n}", n=None, level=level)


def bootstrap_interval(samples: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                       level: float = DEFAULT_LEVEL, n_boot: int = 2000, seed: int = 0,
                       method: str = "percentile bootstrap") -> Measurement:
    """``statistic(samples)`` with a percentile-bootstrap interval from ``n_boot`` resamples (seeded,
    so the interval is reproducible). ``samples`` may be [n] or [n, k] (rows are resampled)."""
    x = np.asarray(samples, dtype=float)
    if x.ndim == 0 or len(x) == 0:
        raise LedgerError("bootstrap_interval needs at least one sample")
    value = float(statistic(x))
    if len(x) < 2:
        return Measurement(value, -math.inf, math.inf, method, n=len(x), level=level)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    boot = np.array([statistic(x[i]) for i in idx], dtype=float)
    boot = boot[np.isfinite(boot)]
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Measurement(value, min(float(low), value), max(float(high), value), method, n=len(x), level=level)


# ---------------------------------------------------------------------------------------- helpers
def _check_key(kind: str, key: str) -> None:
    if not (isinstance(key, str) and _KEY.match(key)):
        raise LedgerError(f"{kind} key {key!r} is not allowed: lower-case letters, digits and '_', starting with a letter")


def _finite(samples: Sequence[float], who: str) -> np.ndarray:
    x = np.asarray(samples, dtype=float).ravel()
    if x.size == 0:
        raise LedgerError(f"{who} needs at least one sample")
    if not np.all(np.isfinite(x)):
        raise LedgerError(f"{who}: samples must be finite, got {x.tolist()}")
    return x


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else ("−∞" if x < 0 else "∞")


__all__ = [
    "DEFAULT_LEVEL", "OPERATORS", "OUTCOMES", "VERDICTS", "Claim", "ClaimVerdict", "Criterion", "CriterionResult",
    "LedgerError", "Measurement", "binomial_interval", "bootstrap_interval", "check_claims", "combine", "exact",
    "judge", "judge_all", "not_measured", "paired_difference", "t_interval",
]
