# ruff: noqa: RUF002, RUF003 -- formulas are written as in the papers (α, ρ, ν, −, ≤)
"""Statistics for continuous learning: moments from rollups, anytime-valid intervals, SRM, decisions.

Pure functions of data: no I/O, no printing, no global state, no randomness. Everything works from
:class:`Moments` — the ``(n, sum, sum of squares)`` a usage rollup keeps per (day, model, version,
task) — so an answer never needs the raw rows. Statistics never pool across *phases* (DESIGN §5):
callers add up the moments of one phase only.

Intervals
    * :func:`mean_cs`, :func:`difference_cs`, :func:`relative_cs` — **asymptotic confidence
      sequences** (Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit theory
      and asymptotic confidence sequences", arXiv:2103.06476; ρ from eq. 161 of v7, 2023), the form
      GrowthBook's gbstats uses for its sequential tests. Their coverage holds
      *uniformly over time*: the chance that the interval *ever* misses the truth, however often it is
      looked at, is at most α (asymptotically). That is what lets a scheduled check peek every day.
    * :func:`welch_interval`, :func:`mean_interval` — the classic fixed-horizon Student / Welch
      intervals, valid for **one** look at a sample size fixed in advance; for reports only.

Decisions
    :func:`decide_upgrade`, :func:`decide_rollback` and :func:`ramp_step` return a :class:`Decision`
    whose evidence (n per arm, means, effect and interval, α, the test) is JSON-ready, so it can go
    into a proposal commit message as is. A sample-ratio mismatch (:func:`srm_test`, p < 0.001) blocks
    every decision.

Distribution functions (χ² survival, Student t) are written here so the library needs numpy only;
the tests check them against scipy.

Example::

    >>> control = Moments(n=4000, total=2400.0, total_sq=2400.0)     # Bernoulli, 60 %
    >>> treatment = Moments(n=4000, total=2760.0, total_sq=2760.0)   # 69 %: +15 % relative
    >>> decide_upgrade(control, treatment, min_relative_improvement=0.05).decision
    'upgrade'
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # numpy is imported only where arrays are handled (Moments.from_values)
    import numpy as np

__all__ = [
    "ANYTIME_TEST",
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_N_TUNE",
    "SRM_P_THRESHOLD",
    "Decision",
    "Interval",
    "Moments",
    "SrmResult",
    "chi2_sf",
    "cs_halfwidth",
    "cs_rho",
    "decide_rollback",
    "decide_upgrade",
    "difference_cs",
    "mean_cs",
    "mean_interval",
    "ramp_step",
    "relative_cs",
    "srm_test",
    "t_ppf",
    "t_sf",
    "welch_interval",
]

DEFAULT_ALPHA = 0.05
# gbstats' default sequentialTuningParameter. N* is the sample size (both arms together for a
# comparison) at which the sequence is tightest relative to a fixed-horizon interval; the width grows
# only like sqrt(log) away from it, so a rough guess is fine: benchmarks/sim_decisions.py (100 scored
# requests per arm per day, N* reached in ~25 days) measures N* = 1,000 / 5,000 / 20,000.
DEFAULT_N_TUNE = 5000
# The asymptotic CS is a large-sample result; below this many samples per arm decisions hold.
DEFAULT_MIN_SAMPLES = 100
SRM_P_THRESHOLD = 0.001
ANYTIME_TEST = "asymptotic confidence sequence (Waudby-Smith et al. 2023), anytime-valid"
WELCH_TEST = "Welch t interval, fixed-horizon (valid for one look only)"

_EPS = 2.220446049250313e-16
_TINY = 1e-300
_MAX_ITERATIONS = 100_000


# --------------------------------------------------------------------------- moments


@dataclass(frozen=True)
class Moments:
    """Count, sum and sum of squares of one arm (one version, one phase).

    ``mean = total / n``; ``variance = (total_sq - total·mean) / (n - 1)`` (unbiased). The sums are
    what rollups store; two rollups of the same phase pool with ``+``.

    >>> (Moments.from_values([1.0, 2.0]) + Moments.from_values([3.0])).mean
    2.0
    """

    n: int
    total: float
    total_sq: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"Moments.n must be >= 0, got {self.n}")
        if not (math.isfinite(self.total) and math.isfinite(self.total_sq)):
            raise ValueError(f"Moments sums must be finite, got total={self.total}, total_sq={self.total_sq}")
        if self.total_sq < 0:
            raise ValueError(f"Moments.total_sq must be >= 0, got {self.total_sq}")

    @classmethod
    def from_values(cls, values: Sequence[float] | np.ndarray) -> Moments:
        """Moments of raw values (NaN not allowed: a missing quality is not a value)."""
        import numpy as np

        array = np.asarray(values, dtype=np.float64).ravel()
        if array.size and not np.all(np.isfinite(array)):
            raise ValueError("Moments.from_values: values must be finite")
        # np.sum adds pairwise and BLAS' dot in blocks, so rounding grows far slower than n.
        return cls(n=int(array.size), total=float(np.sum(array)), total_sq=float(np.dot(array, array)))

    def __add__(self, other: Moments) -> Moments:
        if not isinstance(other, Moments):
            return NotImplemented
        return Moments(self.n + other.n, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        """Sample mean; 0.0 for an empty arm (check ``n`` first)."""
        return self.total / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Unbiased sample variance; 0.0 when n < 2.

        From sums alone the variance is a difference of two large numbers, so its rounding error is
        about ``eps · total_sq``. Results within a few of those roundings of zero *are* zero (a
        constant arm), and a tiny negative never leaks out as a NaN standard deviation.
        """
        if self.n < 2:
            return 0.0
        centred = self.total_sq - self.total * (self.total / self.n)
        if centred <= 16 * _EPS * self.total_sq:
            return 0.0
        return centred / (self.n - 1)

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval at level 1 - alpha.

    ``estimate`` is None when the quantity is undefined (e.g. a relative change over a control mean
    of 0); then ``low, high`` are ``-inf, +inf`` so no threshold is ever cleared, and ``note`` says
    why. ``note`` is also set when the interval is uninformative for too few samples.
    """

    estimate: float | None
    low: float
    high: float
    alpha: float
    method: str
    note: str = ""

    @property
    def defined(self) -> bool:
        return self.estimate is not None and math.isfinite(self.low) and math.isfinite(self.high)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: infinite bounds become None (JSON has no infinity)."""
        return {
            "estimate": self.estimate,
            "low": self.low if math.isfinite(self.low) else None,
            "high": self.high if math.isfinite(self.high) else None,
            "alpha": self.alpha,
            "method": self.method,
            **({"note": self.note} if self.note else {}),
        }


def _unbounded(alpha: float, method: str, note: str, estimate: float | None = None) -> Interval:
    return Interval(estimate, -math.inf, math.inf, alpha, method, note)


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def cs_rho(alpha: float, n_tune: float) -> float:
    """Mixture parameter ρ of the asymptotic CS, tuned to be tightest at sample size ``n_tune``.

    ρ = √((−2 ln α + ln(−2 ln α + 1)) / N*)   (Waudby-Smith et al., arXiv:2103.06476v7, eq. 161)
    """
    _check_alpha(alpha)
    if not n_tune > 0:
        raise ValueError(f"n_tune must be > 0, got {n_tune}")
    minus_2_log_alpha = -2.0 * math.log(alpha)
    return math.sqrt((minus_2_log_alpha + math.log(minus_2_log_alpha + 1.0)) / n_tune)


def cs_halfwidth(variance: float, n: float, alpha: float, n_tune: float) -> float:
    """Half-width of the two-sided asymptotic CS for a mean of ``n`` observations of variance s².

    half-width = √( s² · 2(nρ² + 1) · ln(√(nρ² + 1) / α) / (nρ)² )

    For a two-arm effect pass ``n = n_control + n_treatment`` and ``variance = n · Var(effect)``,
    as gbstats does, so the estimator's variance takes the place of s²/n.
    """
    if not n > 0 or variance < 0:
        raise ValueError(f"cs_halfwidth needs n > 0 and variance >= 0, got n={n}, variance={variance}")
    rho = cs_rho(alpha, n_tune)
    n_rho_sq = n * rho * rho
    return math.sqrt(variance * 2.0 * (n_rho_sq + 1.0) * math.log(math.sqrt(n_rho_sq + 1.0) / alpha) / (n * rho) ** 2)


def mean_cs(m: Moments, alpha: float = DEFAULT_ALPHA, n_tune: float = DEFAULT_N_TUNE) -> Interval:
    """Anytime-valid CS for one arm's mean: ``mean ± cs_halfwidth(variance, n)``."""
    _check_alpha(alpha)
    if m.n < 2:
        return _unbounded(alpha, ANYTIME_TEST, f"needs at least 2 samples, has {m.n}", m.mean if m.n else None)
    half = cs_halfwidth(m.variance, m.n, alpha, n_tune)
    return Interval(m.mean, m.mean - half, m.mean + half, alpha, ANYTIME_TEST)


def _too_few(control: Moments, treatment: Moments) -> str:
    if control.n < 2 or treatment.n < 2:
        return f"needs at least 2 samples per arm, has control n={control.n}, treatment n={treatment.n}"
    return ""


def difference_cs(
    control: Moments, treatment: Moments, alpha: float = DEFAULT_ALPHA, n_tune: float = DEFAULT_N_TUNE
) -> Interval:
    """Anytime-valid CS for ``mean(treatment) − mean(control)``.

    Var(effect) = s_c²/n_c + s_t²/n_t; the CS half-width is ``cs_halfwidth(N·Var, N)`` with
    N = n_c + n_t.
    """
    _check_alpha(alpha)
    if note := _too_few(control, treatment):
        return _unbounded(alpha, ANYTIME_TEST, note)
    effect = treatment.mean - control.mean
    var_effect = control.variance / control.n + treatment.variance / treatment.n
    n = control.n + treatment.n
    half = cs_halfwidth(var_effect * n, n, alpha, n_tune)
    return Interval(effect, effect - half, effect + half, alpha, ANYTIME_TEST)


def _relative_variance(control: Moments, treatment: Moments) -> float:
    """Delta-method variance of μ_t/μ_c − 1:  s_t²/(μ_c² n_t) + s_c² μ_t²/(μ_c⁴ n_c)."""
    mc, mt = control.mean, treatment.mean
    return treatment.variance / (mc * mc * treatment.n) + control.variance * mt * mt / (mc**4 * control.n)


def _relative_undefined(control: Moments, alpha: float, n_tune: float | None) -> str:
    """Why a relative change over this control cannot be estimated ('' when it can).

    A ratio's delta-method interval is only meaningful when the denominator is clearly away from 0
    (otherwise the exact, Fieller-type interval is unbounded). So: undefined when the control mean is
    0, or when the control mean's own interval at the same α reaches 0.
    """
    mc = control.mean
    scale = math.sqrt(control.total_sq / control.n) if control.n else 0.0
    if mc == 0.0 or abs(mc) <= 1e-12 * scale:
        return "control mean is 0: a relative change is undefined"
    if n_tune is None:
        half = t_ppf(1 - alpha / 2, control.n - 1) * math.sqrt(control.variance / control.n)
    else:
        half = cs_halfwidth(control.variance, control.n, alpha, n_tune)
    if abs(mc) <= half:
        return (
            f"control mean {mc:.6g} is not distinguishable from 0 (± {half:.3g}): "
            "a relative change is unbounded"
        )
    return ""


def relative_cs(
    control: Moments, treatment: Moments, alpha: float = DEFAULT_ALPHA, n_tune: float = DEFAULT_N_TUNE
) -> Interval:
    """Anytime-valid CS for the relative lift ``mean(treatment) / mean(control) − 1``.

    The variance of the ratio is the delta method's (see ``_relative_variance``); the half-width is
    ``cs_halfwidth(N·Var, N)`` with N = n_c + n_t, as gbstats' sequential test does. Undefined (an
    unbounded interval with a note, never NaN) when the control mean is 0 or not clearly away from 0.
    """
    _check_alpha(alpha)
    if note := _too_few(control, treatment):
        return _unbounded(alpha, ANYTIME_TEST, note)
    if note := _relative_undefined(control, alpha, n_tune):
        return _unbounded(alpha, ANYTIME_TEST, note)
    effect = treatment.mean / control.mean - 1.0
    n = control.n + treatment.n
    half = cs_halfwidth(_relative_variance(control, treatment) * n, n, alpha, n_tune)
    return Interval(effect, effect - half, effect + half, alpha, ANYTIME_TEST)


def mean_interval(m: Moments, alpha: float = DEFAULT_ALPHA) -> Interval:
    """Fixed-horizon Student t interval for one mean: ``mean ± t_{1−α/2, n−1} · s/√n``."""
    _check_alpha(alpha)
    if m.n < 2:
        return _unbounded(alpha, "Student t interval, fixed-horizon", f"needs at least 2 samples, has {m.n}")
    half = t_ppf(1 - alpha / 2, m.n - 1) * math.sqrt(m.variance / m.n)
    return Interval(m.mean, m.mean - half, m.mean + half, alpha, "Student t interval, fixed-horizon")


def welch_interval(
    control: Moments, treatment: Moments, alpha: float = DEFAULT_ALPHA, *, relative: bool = False
) -> Interval:
    """Fixed-horizon Welch interval for ``mean(t) − mean(c)`` (or the relative lift when ``relative``).

    Standard error from s_c²/n_c + s_t²/n_t (or the delta method for the ratio), degrees of freedom
    by Welch–Satterthwaite: ν = (v_c + v_t)² / (v_c²/(n_c−1) + v_t²/(n_t−1)), v = s²/n. Only valid
    for a single look at a sample size fixed in advance; repeated peeking inflates its error rate.
    """
    _check_alpha(alpha)
    if note := _too_few(control, treatment):
        return _unbounded(alpha, WELCH_TEST, note)
    if relative and (note := _relative_undefined(control, alpha, None)):
        return _unbounded(alpha, WELCH_TEST, note)
    vc, vt = control.variance / control.n, treatment.variance / treatment.n
    if relative:
        effect = treatment.mean / control.mean - 1.0
        var_effect = _relative_variance(control, treatment)
    else:
        effect = treatment.mean - control.mean
        var_effect = vc + vt
    if var_effect == 0.0:
        return Interval(effect, effect, effect, alpha, WELCH_TEST)
    denominator = vc * vc / (control.n - 1) + vt * vt / (treatment.n - 1)
    dof = (vc + vt) ** 2 / denominator if denominator > 0 else float(control.n + treatment.n - 2)
    half = t_ppf(1 - alpha / 2, dof) * math.sqrt(var_effect)
    return Interval(effect, effect - half, effect + half, alpha, WELCH_TEST)


# --------------------------------------------------------------------------- distributions


def _gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a).

    Series for P = 1 − Q when x < a + 1, Lentz continued fraction for Q otherwise
    (Numerical Recipes, 3rd ed., §6.2), so small tail probabilities keep their relative precision.
    """
    if x <= 0.0:
        return 1.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(_MAX_ITERATIONS):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return min(1.0, math.exp(log_prefactor) * h)


def chi2_sf(x: float, dof: float) -> float:
    """P(χ²_dof > x) = Q(dof/2, x/2)."""
    if dof <= 0:
        raise ValueError(f"dof must be > 0, got {dof}")
    if math.isinf(x):
        return 0.0
    return _gamma_q(dof / 2.0, x / 2.0)


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; NR 3rd ed., §6.4)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (_TINY if abs(d) < _TINY else d)
    h = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (_TINY if abs(d) < _TINY else d)
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (_TINY if abs(d) < _TINY else d)
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def _log_gamma_ratio(a: float, b: float) -> float:
    """ln Γ(a + b) − ln Γ(a) without the cancellation of two huge lgamma values when a is large.

    For a ≥ 1000 Stirling's series, (z − ½) ln z − z + ½ ln 2π + 1/(12z) − 1/(360z³), differenced by
    hand: (a + b − ½)·log1p(b/a) + b·ln a − b + the 1/z terms (next term ~ 1/(1260 a⁵) < 1e-18).
    """
    if a < 1000.0:
        return math.lgamma(a + b) - math.lgamma(a)
    z = a + b
    return (
        (z - 0.5) * math.log1p(b / a)
        + b * math.log(a)
        - b
        + (1.0 / (12.0 * z) - 1.0 / (12.0 * a))
        - (1.0 / (360.0 * z**3) - 1.0 / (360.0 * a**3))
    )


def _beta_inc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta I_x(a, b); ``y`` is 1 − x computed by the caller without cancellation."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    big, small = max(a, b), min(a, b)
    # log1p of the smaller complement keeps ln x (or ln y) exact when x (or y) is close to 1.
    log_x = math.log1p(-y) if y < 0.5 else math.log(x)
    log_y = math.log1p(-x) if x < 0.5 else math.log(y)
    log_front = _log_gamma_ratio(big, small) - math.lgamma(small) + a * log_x + b * log_y
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, y) / b


def t_sf(t: float, dof: float) -> float:
    """P(T_dof > t) for Student's t: ½ · I_{ν/(ν+t²)}(ν/2, ½) for t ≥ 0, by symmetry otherwise."""
    if dof <= 0:
        raise ValueError(f"dof must be > 0, got {dof}")
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    t_sq = t * t
    tail = 0.5 * _beta_inc(dof / 2.0, 0.5, dof / (dof + t_sq), t_sq / (dof + t_sq))
    return tail if t >= 0 else 1.0 - tail


def _t_pdf(t: float, dof: float) -> float:
    log_norm = _log_gamma_ratio(dof / 2, 0.5) - 0.5 * math.log(dof * math.pi)
    return math.exp(log_norm - (dof + 1) / 2 * math.log1p(t * t / dof))


def t_ppf(p: float, dof: float) -> float:
    """Quantile of Student's t: the t with P(T_dof ≤ t) = p.

    Newton on :func:`t_sf` from a Cornish–Fisher start, kept inside a bracket that each step
    narrows (bisection when Newton would leave it). Memoised: reports ask for the same few levels.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if dof <= 0:
        raise ValueError(f"dof must be > 0, got {dof}")
    if p == 0.5:
        return 0.0
    # Work with the smaller tail so that p = 1e-12 keeps its digits (1 - (1 - 1e-12) would not).
    return -_t_isf(float(p), float(dof)) if p < 0.5 else _t_isf(1.0 - p, float(dof))


@functools.lru_cache(maxsize=4096)
def _t_isf(q: float, dof: float) -> float:
    """The t > 0 with P(T_dof > t) = q, for 0 < q < ½."""
    z = -NormalDist().inv_cdf(q)
    # Cornish–Fisher expansion of t in z (Abramowitz & Stegun 26.7.5, terms to ν⁻⁴): for ν ≳ 30 it is
    # within ~1e-9, so one Newton step finishes. For small ν it can be far off; the bracket then takes
    # over and plain Newton/bisection converges.
    z2 = z * z
    t = z * (
        1.0
        + (z2 + 1) / (4 * dof)
        + ((5 * z2 + 16) * z2 + 3) / (96 * dof**2)
        + (((3 * z2 + 19) * z2 + 17) * z2 - 15) / (384 * dof**3)
        + ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) / (92160 * dof**4)
    )
    if not (math.isfinite(t) and t > 0):
        t = z
    low, high = 0.0, math.inf
    for _ in range(400):
        excess = t_sf(t, dof) - q  # t_sf decreases in t
        if excess > 0:
            low = t
        else:
            high = t
        step = excess / max(_t_pdf(t, dof), _TINY)
        candidate = t + step
        if low < candidate < high and abs(step) <= 1e-9 * max(1.0, t):
            # Newton converges quadratically: after a step this small the error left is ~step², far
            # below double precision relative to t, so no further (costly) t_sf evaluation is needed.
            return candidate
        if not low < candidate < high:
            candidate = (low + high) / 2 if math.isfinite(high) else 2.0 * t
        t = candidate
    return t


# --------------------------------------------------------------------------- sample-ratio mismatch


@dataclass(frozen=True)
class SrmResult:
    """Pearson χ² goodness-of-fit of observed arm counts against the committed split.

    ``mismatch`` when p < 0.001 (the usual SRM threshold: strict, because a true SRM is a bug in
    assignment or logging, not an effect), or when traffic reached an arm whose committed share is 0
    (then ``chi2`` is inf and ``p_value`` 0).
    """

    chi2: float
    dof: int
    p_value: float
    mismatch: bool
    observed: dict[str, int] = field(default_factory=dict)
    expected_percent: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "test": "sample-ratio mismatch, Pearson chi-squared against the committed split",
            "chi2": self.chi2 if math.isfinite(self.chi2) else None,
            "dof": self.dof,
            "p_value": self.p_value,
            "mismatch": self.mismatch,
            "threshold": SRM_P_THRESHOLD,
            "observed": dict(self.observed),
            "expected_percent": dict(self.expected_percent),
        }

    def describe(self) -> str:
        chi2 = "inf" if math.isinf(self.chi2) else f"{self.chi2:.2f}"
        return f"chi2={chi2}, dof={self.dof}, p={self.p_value:.3g}"


def srm_test(observed: Mapping[str, int], expected_percent: Mapping[str, float]) -> SrmResult:
    """χ² = Σ (O_i − E_i)² / E_i over arms with a committed share, E_i = N · share_i; dof = k − 1.

    Shares are normalised by their sum (so a split of 90/10 and one of 0.9/0.1 agree). Arms missing
    from ``observed`` count 0. No observations at all, or a single arm, is no evidence: p = 1.

    >>> srm_test({"a": 5000, "b": 5000}, {"a": 50, "b": 50}).mismatch
    False
    """
    for arm, share in expected_percent.items():
        if not (math.isfinite(share) and share >= 0):
            raise ValueError(f"expected share of {arm!r} must be finite and >= 0, got {share}")
    for arm, count in observed.items():
        if count < 0:
            raise ValueError(f"observed count of {arm!r} must be >= 0, got {count}")
    observed_d = {arm: int(count) for arm, count in observed.items()}
    expected_d = {arm: float(share) for arm, share in expected_percent.items()}
    arms = [arm for arm, share in expected_d.items() if share > 0]
    total_share = sum(expected_d[arm] for arm in arms)
    stray = sum(count for arm, count in observed_d.items() if expected_d.get(arm, 0.0) <= 0)
    dof = max(len(arms) - 1, 0)
    if stray > 0:
        return SrmResult(math.inf, dof, 0.0, True, observed_d, expected_d)
    n = sum(observed_d.get(arm, 0) for arm in arms)
    if n == 0 or dof == 0:
        return SrmResult(0.0, dof, 1.0, False, observed_d, expected_d)
    chi2 = 0.0
    for arm in arms:
        expected = n * expected_d[arm] / total_share
        chi2 += (observed_d.get(arm, 0) - expected) ** 2 / expected
    p_value = chi2_sf(chi2, dof)
    return SrmResult(chi2, dof, p_value, p_value < SRM_P_THRESHOLD, observed_d, expected_d)


# --------------------------------------------------------------------------- decisions

DecisionKind = Literal["upgrade", "rollback", "hold"]


@dataclass(frozen=True)
class Decision:
    """What to do and why. ``evidence`` is JSON-ready (numbers, strings, None, dicts, lists)."""

    decision: DecisionKind
    reason: str
    evidence: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "reason": self.reason, "evidence": self.evidence}


def _arm(m: Moments) -> dict[str, Any]:
    return {"n": m.n, "mean": m.mean if m.n else None, "std": m.std if m.n >= 2 else None}


def _srm_block(srm: SrmResult | None, evidence: dict[str, Any]) -> Decision | None:
    if srm is None:
        return None
    evidence["srm"] = srm.as_dict()
    if srm.mismatch:
        reason = (
            f"hold: sample-ratio mismatch ({srm.describe()} < {SRM_P_THRESHOLD}): the observed split does "
            "not match the committed traffic, so the comparison cannot be trusted; fix assignment or logging"
        )
        return Decision("hold", reason, evidence)
    return None


def _pct(x: float) -> str:
    return f"{x * 100:+.2f} %"


def decide_upgrade(
    control: Moments,
    treatment: Moments,
    *,
    min_relative_improvement: float,
    alpha: float = DEFAULT_ALPHA,
    n_tune: float = DEFAULT_N_TUNE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    srm: SrmResult | None = None,
) -> Decision:
    """``upgrade`` when the CS lower bound of the relative quality gain ≥ ``min_relative_improvement``.

    Quality: higher is better. Anytime-valid, so calling this every day does not inflate the false
    upgrade rate: under no true gain the chance that it *ever* upgrades is at most α (about α/2 in
    practice: only one side of the two-sided CS can trigger it), however often it is called.
    Otherwise ``hold``, saying why: a sample-ratio mismatch, too few samples, a relative change that
    is undefined, the treatment significantly worse, the gain significantly below the threshold, or
    an interval that still includes the threshold.
    """
    evidence: dict[str, Any] = {
        "control": _arm(control),
        "treatment": _arm(treatment),
        "effect": "relative change of mean quality, treatment / control - 1",
        "min_relative_improvement": min_relative_improvement,
        "alpha": alpha,
        "n_tune": n_tune,
        "min_samples": min_samples,
        "test": ANYTIME_TEST,
    }
    if blocked := _srm_block(srm, evidence):
        return blocked
    if min(control.n, treatment.n) < min_samples:
        return Decision(
            "hold",
            f"hold: not enough samples (control n={control.n}, treatment n={treatment.n}; need {min_samples} each)",
            evidence,
        )
    rel = relative_cs(control, treatment, alpha, n_tune)
    evidence["interval"] = rel.as_dict()
    if not rel.defined:
        return Decision("hold", f"hold: {rel.note}", evidence)
    assert rel.estimate is not None
    shown = f"relative gain {_pct(rel.estimate)}, CS [{_pct(rel.low)}, {_pct(rel.high)}] at alpha={alpha}"
    # `high > threshold` only matters for a zero-width interval (both arms constant): [0, 0] does not
    # clear a threshold of 0, it sits on it.
    if rel.low >= min_relative_improvement and rel.high > min_relative_improvement:
        return Decision("upgrade", f"upgrade: {shown} clears {_pct(min_relative_improvement)}", evidence)
    if rel.high < 0:
        return Decision("hold", f"hold: treatment is significantly worse ({shown})", evidence)
    if rel.high < min_relative_improvement:
        below = f"hold: gain is significantly below {_pct(min_relative_improvement)} ({shown})"
        return Decision("hold", below, evidence)
    return Decision("hold", f"hold: interval still includes {_pct(min_relative_improvement)} ({shown})", evidence)


def decide_rollback(
    active: Moments,
    *,
    floor: float | None,
    previous: Moments | None,
    alpha: float = DEFAULT_ALPHA,
    n_tune: float = DEFAULT_N_TUNE,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    srm: SrmResult | None = None,
) -> Decision:
    """``rollback`` when the active version is surely under the floor or surely worse than before.

    * floor: the upper bound of the active mean's CS < ``floor``;
    * previous: the relative CS of active vs previous (active / previous − 1) lies entirely below 0.

    When both checks run each gets α/2 (Bonferroni), so the chance of any false rollback stays ≤ α
    however often this is called. ``previous`` normally comes from the phase before the promotion,
    so that comparison is across time, not randomised: a drift in traffic between the phases is
    read as a difference between versions. Otherwise ``hold``.
    """
    checks = (floor is not None) + (previous is not None)
    per_check_alpha = alpha / checks if checks else alpha
    evidence: dict[str, Any] = {
        "active": _arm(active),
        "floor": floor,
        "alpha": alpha,
        "alpha_per_check": per_check_alpha,
        "n_tune": n_tune,
        "min_samples": min_samples,
        "test": ANYTIME_TEST,
    }
    if previous is not None:
        evidence["previous"] = _arm(previous)
        evidence["effect"] = "relative change of mean quality, active / previous - 1"
    if blocked := _srm_block(srm, evidence):
        return blocked
    if checks == 0:
        return Decision("hold", "hold: no floor and no previous version to compare with", evidence)
    if active.n < min_samples:
        return Decision("hold", f"hold: not enough samples (active n={active.n}; need {min_samples})", evidence)
    reasons = []
    if floor is not None:
        cs = mean_cs(active, per_check_alpha, n_tune)
        evidence["mean_interval"] = cs.as_dict()
        shown = f"mean quality {active.mean:.4g}, CS [{cs.low:.4g}, {cs.high:.4g}]"
        if cs.high < floor:
            return Decision("rollback", f"rollback: {shown} is entirely under the floor {floor:g}", evidence)
        reasons.append(f"{shown} is not entirely under the floor {floor:g}")
    if previous is not None:
        if previous.n < min_samples:
            reasons.append(f"previous version has too few samples (n={previous.n}; need {min_samples})")
        else:
            rel = relative_cs(previous, active, per_check_alpha, n_tune)
            evidence["interval"] = rel.as_dict()
            if not rel.defined:
                reasons.append(rel.note)
            else:
                assert rel.estimate is not None
                shown = f"change vs previous {_pct(rel.estimate)}, CS [{_pct(rel.low)}, {_pct(rel.high)}]"
                if rel.high < 0:
                    worse = f"rollback: significantly worse than the previous version ({shown})"
                    return Decision("rollback", worse, evidence)
                reasons.append(f"{shown} is not entirely below 0")
    return Decision("hold", "hold: " + "; ".join(reasons), evidence)


def ramp_step(
    current_percent: float,
    ramp: Sequence[int],
    *,
    control: Moments,
    treatment: Moments,
    min_samples_per_step: int = DEFAULT_MIN_SAMPLES,
    min_relative_improvement: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    n_tune: float = DEFAULT_N_TUNE,
    srm: SrmResult | None = None,
) -> Decision:
    """Next step of a progressive ramp (e.g. ``[10, 25, 50, 100]`` percent to the new version).

    ``control``/``treatment`` are the moments of the *current step* (each step is a new split, hence
    a new phase). Verdicts:

    * ``rollback`` — the treatment is significantly worse (relative CS entirely below 0): the step
      failed;
    * ``upgrade`` — both arms have ``min_samples_per_step`` and the step passed: not significantly
      worse (a guardrail), or, when ``min_relative_improvement`` is given, its lower bound cleared.
      ``evidence["next_percent"]`` is the next step (100 means promote);
    * ``hold`` — otherwise (SRM, too few samples, undecided, or the ramp is complete).

    At 0 % (not started) the answer is the first step. Each step is tested at ``alpha`` on its own
    data, so over a ramp of k steps the chance of some false rollback is at most k·α (pass
    ``alpha / len(ramp)`` to keep the whole ramp at α).
    """
    steps = [int(step) for step in ramp]
    if not steps or any(b <= a for a, b in itertools.pairwise(steps)) or steps[0] <= 0 or steps[-1] > 100:
        raise ValueError(f"ramp must be strictly increasing percentages in (0, 100], got {list(ramp)}")
    following = [step for step in steps if step > current_percent]
    evidence: dict[str, Any] = {
        "current_percent": current_percent,
        "ramp": steps,
        "next_percent": following[0] if following else None,
        "control": _arm(control),
        "treatment": _arm(treatment),
        "effect": "relative change of mean quality, treatment / control - 1",
        "min_samples_per_step": min_samples_per_step,
        "min_relative_improvement": min_relative_improvement,
        "alpha": alpha,
        "n_tune": n_tune,
        "test": ANYTIME_TEST,
    }
    if not following:
        return Decision("hold", f"hold: ramp complete at {current_percent:g} %", evidence)
    if current_percent <= 0:
        return Decision("upgrade", f"upgrade: start the ramp at {following[0]} %", evidence)
    if blocked := _srm_block(srm, evidence):
        return blocked
    rel = relative_cs(control, treatment, alpha, n_tune)
    evidence["interval"] = rel.as_dict()
    shown = (
        f"relative change {_pct(rel.estimate)}, CS [{_pct(rel.low)}, {_pct(rel.high)}]"
        if rel.defined and rel.estimate is not None
        else rel.note
    )
    # A significantly worse step fails at once, even before the step's sample target: stopping harm
    # early is what the anytime-valid interval allows.
    if rel.defined and rel.high < 0:
        failed = f"rollback: step at {current_percent:g} % failed, significantly worse ({shown})"
        return Decision("rollback", failed, evidence)
    if min(control.n, treatment.n) < min_samples_per_step:
        return Decision(
            "hold",
            f"hold: step at {current_percent:g} % needs {min_samples_per_step} samples per arm "
            f"(control n={control.n}, treatment n={treatment.n})",
            evidence,
        )
    if not rel.defined:
        return Decision("hold", f"hold: {shown}", evidence)
    step = f"step at {current_percent:g} %"
    if min_relative_improvement is None:
        passed = f"upgrade: {step} is not significantly worse ({shown}); go to {following[0]} %"
        return Decision("upgrade", passed, evidence)
    threshold = _pct(min_relative_improvement)
    if rel.low >= min_relative_improvement and rel.high > min_relative_improvement:
        return Decision("upgrade", f"upgrade: {step} clears {threshold} ({shown}); go to {following[0]} %", evidence)
    return Decision("hold", f"hold: {step} not yet clear of {threshold} ({shown})", evidence)
