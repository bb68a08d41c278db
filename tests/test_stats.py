# ruff: noqa: RUF003 -- formulas are written as in the papers (α, ρ, −, ≤)
"""modelgit.stats against independent references: numpy and scipy for moments, Welch intervals and the
χ² / Student t distributions; coverage of the confidence sequences by simulation with known truth;
decisions on constructed data whose answer is known; edge cases that must not crash or leak NaN."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as ss

from modelgit import stats as S
from modelgit.stats import Moments


def _bernoulli(n: int, successes: int) -> Moments:
    return Moments(n=n, total=float(successes), total_sq=float(successes))


def _json(evidence: dict) -> str:
    return json.dumps(evidence, allow_nan=False)  # raises on NaN/inf: the evidence must be clean JSON


# -- moments -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 10, 1000, 100_000])
def test_moments_match_numpy(n: int) -> None:
    values = np.random.default_rng(n).beta(2, 5, n)
    m = Moments.from_values(values)
    assert m.n == n
    assert m.mean == pytest.approx(np.mean(values), rel=1e-13)
    assert m.variance == pytest.approx(np.var(values, ddof=1), rel=1e-9)
    assert m.std == pytest.approx(np.std(values, ddof=1), rel=1e-9)


def test_moments_pool_by_addition_within_a_phase() -> None:
    rng = np.random.default_rng(7)
    days = [rng.uniform(0, 1, size) for size in (120, 1, 0, 333)]
    pooled = Moments(0, 0.0, 0.0)
    for day in days:
        pooled = pooled + Moments.from_values(day)
    everything = np.concatenate(days)
    assert pooled.n == everything.size
    assert pooled.mean == pytest.approx(everything.mean(), rel=1e-13)
    assert pooled.variance == pytest.approx(np.var(everything, ddof=1), rel=1e-10)


def test_moments_edge_cases() -> None:
    assert Moments(0, 0.0, 0.0).mean == 0.0 and Moments(0, 0.0, 0.0).variance == 0.0
    assert Moments.from_values([0.4]).variance == 0.0  # n < 2
    # A constant arm: total_sq - total²/n is a rounding residue, possibly negative; it must be exactly 0.
    for value in (0.1, 0.7, 1 / 3, 0.9999):
        assert Moments.from_values(np.full(10_007, value)).variance == 0.0
    with pytest.raises(ValueError, match="finite"):
        Moments.from_values([0.1, float("nan")])
    with pytest.raises(ValueError, match="n must be >= 0"):
        Moments(-1, 0.0, 0.0)
    with pytest.raises(ValueError, match="sums must be finite"):
        Moments(3, float("nan"), 1.0)


# -- distributions against scipy -----------------------------------------------------------------------
CHI2_X = [1e-6, 0.01, 0.3, 1.0, 2.5, 3.84, 7.0, 15.0, 40.0, 100.0, 500.0, 2000.0]
CHI2_DOF = [1, 2, 3, 4, 7, 10, 29, 100, 1000]


def test_chi2_sf_matches_scipy_over_a_grid() -> None:
    for dof in CHI2_DOF:
        for x in CHI2_X:
            expected = ss.chi2.sf(x, dof)
            got = S.chi2_sf(x, dof)
            if expected < 1e-300:
                assert got < 1e-290
            else:
                assert got == pytest.approx(expected, rel=1e-10, abs=1e-300), (x, dof)
    assert S.chi2_sf(0.0, 3) == 1.0
    assert S.chi2_sf(math.inf, 3) == 0.0


@pytest.mark.parametrize("dof", [0.7, 1, 2, 3, 5.5, 12, 40, 333.3, 5000, 1e6])
def test_student_t_matches_scipy(dof: float) -> None:
    for p in (1e-12, 1e-6, 0.005, 0.025, 0.3, 0.5, 0.6, 0.9, 0.975, 0.995, 1 - 1e-9):
        assert S.t_ppf(p, dof) == pytest.approx(ss.t.ppf(p, dof), rel=1e-9, abs=1e-12), p
    for t in (-40.0, -2.0, -0.1, 0.0, 0.5, 1.96, 3.0, 12.0, 100.0):
        assert S.t_sf(t, dof) == pytest.approx(ss.t.sf(t, dof), rel=1e-9, abs=1e-300), t


# -- fixed-horizon intervals against scipy -------------------------------------------------------------
@pytest.mark.parametrize(("n_c", "n_t", "seed"), [(2, 2, 0), (5, 40, 1), (300, 120, 2), (5000, 5000, 3)])
def test_welch_interval_matches_scipy(n_c: int, n_t: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    control, treatment = rng.normal(0.5, 0.2, n_c), rng.normal(0.55, 0.35, n_t)
    mc, mt = Moments.from_values(control), Moments.from_values(treatment)
    for alpha in (0.05, 0.01):
        result = ss.ttest_ind(treatment, control, equal_var=False)
        low, high = result.confidence_interval(confidence_level=1 - alpha)
        got = S.welch_interval(mc, mt, alpha)
        assert got.estimate == pytest.approx(treatment.mean() - control.mean(), rel=1e-12)
        assert (got.low, got.high) == pytest.approx((low, high), rel=1e-9)
        # Relative: delta-method variance written out here, scipy's Welch dof and t quantile.
        rel = S.welch_interval(mc, mt, alpha, relative=True)
        # Undefined when the control mean's own t interval reaches 0 (with n=2, t(1)'s quantile is 12.7).
        if abs(control.mean()) <= ss.t.ppf(1 - alpha / 2, n_c - 1) * ss.sem(control):
            assert rel.estimate is None and "not distinguishable from 0" in rel.note
            continue
        a, b = control.mean(), treatment.mean()
        var = np.var(treatment, ddof=1) / (a**2 * n_t) + np.var(control, ddof=1) * b**2 / (a**4 * n_c)
        half = ss.t.ppf(1 - alpha / 2, result.df) * math.sqrt(var)
        assert rel.estimate == pytest.approx(b / a - 1, rel=1e-12)
        assert (rel.low, rel.high) == pytest.approx((b / a - 1 - half, b / a - 1 + half), rel=1e-9)


def test_mean_interval_matches_scipy() -> None:
    values = np.random.default_rng(11).uniform(0, 1, 57)
    low, high = ss.t.interval(0.95, 56, loc=values.mean(), scale=ss.sem(values))
    got = S.mean_interval(Moments.from_values(values))
    assert (got.low, got.high) == pytest.approx((low, high), rel=1e-10)


# -- confidence sequences -------------------------------------------------------------------------------
def test_cs_halfwidth_follows_the_published_formula() -> None:
    alpha, n_tune = 0.05, 5000
    # ρ² = (−2 ln α + ln(−2 ln α + 1)) / N*; at n = N*, nρ² = −2 ln 0.05 + ln(1 − 2 ln 0.05) = 7.93615…
    n_rho_sq = -2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))
    assert n_rho_sq == pytest.approx(7.936155, rel=1e-6)
    # half-width · √n / s at n = N*: √(2(nρ²+1) ln(√(nρ²+1)/α) / nρ²) = 3.0352… (vs 1.96 fixed-horizon)
    assert S.cs_halfwidth(1.0, n_tune, alpha, n_tune) * math.sqrt(n_tune) == pytest.approx(3.03521, rel=1e-5)
    assert S.cs_rho(alpha, n_tune) == pytest.approx(math.sqrt(n_rho_sq / n_tune), rel=1e-15)
    # Arbitrary n: the formula as DESIGN §5 writes it.
    rho = S.cs_rho(alpha, n_tune)
    for n, s2 in ((10, 0.25), (777, 2.0), (10**6, 0.01)):
        expected = math.sqrt(s2 * 2 * (n * rho**2 + 1) * math.log(math.sqrt(n * rho**2 + 1) / alpha) / (n * rho) ** 2)
        assert S.cs_halfwidth(s2, n, alpha, n_tune) == pytest.approx(expected, rel=1e-14)


def test_two_arm_cs_uses_the_pooled_n_and_the_effect_variance() -> None:
    control, treatment = Moments.from_values([0.2, 0.4, 0.9, 0.5]), Moments.from_values([0.6, 0.8, 0.3])
    var_effect = np.var([0.2, 0.4, 0.9, 0.5], ddof=1) / 4 + np.var([0.6, 0.8, 0.3], ddof=1) / 3
    got = S.difference_cs(control, treatment, 0.1, 100)
    half = S.cs_halfwidth(var_effect * 7, 7, 0.1, 100)
    assert got.estimate == pytest.approx(np.mean([0.6, 0.8, 0.3]) - 0.5, rel=1e-12)
    assert got.high - got.estimate == pytest.approx(half, rel=1e-12)
    assert got.method == S.ANYTIME_TEST


PEEKS = np.unique(np.geomspace(100, 20_000, 40).astype(int))


def _ever_misses(intervals: list[S.Interval], truth: float) -> bool:
    return any(not iv.contains(truth) for iv in intervals)


def test_mean_cs_covers_uniformly_over_time_while_a_peeked_t_interval_does_not() -> None:
    """300 Bernoulli(0.3) streams, each looked at 40 times from n=100 to n=20,000."""
    streams, truth, alpha = 300, 0.3, 0.05
    rng = np.random.default_rng(2023)
    sums = np.cumsum(rng.random((streams, PEEKS[-1])) < truth, axis=1)[:, PEEKS - 1]
    cs_misses = naive_misses = 0
    for row in sums:
        arms = [_bernoulli(int(n), int(k)) for n, k in zip(PEEKS, row, strict=True)]
        cs_misses += _ever_misses([S.mean_cs(m, alpha, 5000) for m in arms], truth)
        naive_misses += _ever_misses([S.mean_interval(m, alpha) for m in arms], truth)
    # Anytime-valid: P(ever miss) ≤ α; with 300 streams allow 3 points of slack (≈ 3 standard errors).
    assert cs_misses / streams <= alpha + 0.03
    # A fixed 95 % interval looked at 40 times misses at some look far more often than 5 % (≈ 37 % here).
    assert naive_misses / streams >= 0.25, naive_misses


def test_relative_and_difference_cs_cover_the_true_lift_uniformly() -> None:
    """300 two-arm streams with a true +15 % lift (0.50 → 0.575), looked at 40 times."""
    streams, alpha = 300, 0.05
    p_c, p_t = 0.5, 0.575
    rng = np.random.default_rng(99)
    n_max = PEEKS[-1] // 2
    peeks = np.unique(np.geomspace(100, n_max, 40).astype(int))
    sums_c = np.cumsum(rng.random((streams, n_max)) < p_c, axis=1)[:, peeks - 1]
    sums_t = np.cumsum(rng.random((streams, n_max)) < p_t, axis=1)[:, peeks - 1]
    rel_misses = diff_misses = naive_misses = 0
    for row_c, row_t in zip(sums_c, sums_t, strict=True):
        pairs = [
            (_bernoulli(int(n), int(kc)), _bernoulli(int(n), int(kt)))
            for n, kc, kt in zip(peeks, row_c, row_t, strict=True)
        ]
        rel_misses += _ever_misses([S.relative_cs(c, t, alpha, 5000) for c, t in pairs], p_t / p_c - 1)
        diff_misses += _ever_misses([S.difference_cs(c, t, alpha, 5000) for c, t in pairs], p_t - p_c)
        naive_misses += _ever_misses([S.welch_interval(c, t, alpha, relative=True) for c, t in pairs], p_t / p_c - 1)
    assert rel_misses / streams <= alpha + 0.03
    assert diff_misses / streams <= alpha + 0.03
    assert naive_misses / streams >= 0.25, naive_misses


def test_interval_edge_cases_are_clear_results_not_nan() -> None:
    one, empty = Moments.from_values([0.5]), Moments(0, 0.0, 0.0)
    for interval in (S.mean_cs(one), S.mean_cs(empty), S.difference_cs(one, one), S.relative_cs(empty, one)):
        assert not interval.defined
        assert (interval.low, interval.high) == (-math.inf, math.inf)
        assert "at least 2 samples" in interval.note
        _json(interval.as_dict())
    # Zero variance in both arms: the interval collapses to the (exact) difference.
    flat_c, flat_t = Moments.from_values([0.5] * 200), Moments.from_values([0.6] * 200)
    for interval in (S.difference_cs(flat_c, flat_t), S.welch_interval(flat_c, flat_t)):
        assert interval.low == interval.high == pytest.approx(0.1)
    # Control mean 0 (or indistinguishable from 0): the relative change is undefined, said in words.
    zero = Moments.from_values([0.0] * 500)
    for interval in (S.relative_cs(zero, flat_t), S.welch_interval(zero, flat_t, relative=True)):
        assert interval.estimate is None and not interval.defined
        assert interval.note == "control mean is 0: a relative change is undefined"
        assert interval.as_dict()["low"] is None
    noisy_zero = Moments.from_values(np.random.default_rng(1).normal(0.0, 1.0, 400))
    interval = S.relative_cs(noisy_zero, flat_t)
    assert not interval.defined and "not distinguishable from 0" in interval.note
    with pytest.raises(ValueError, match="alpha"):
        S.mean_cs(flat_c, alpha=1.5)


# -- sample-ratio mismatch -----------------------------------------------------------------------------
def test_srm_matches_scipy_chisquare() -> None:
    cases = [
        ({"a": 5050, "b": 4950}, {"a": 50, "b": 50}),
        ({"a": 9100, "b": 900}, {"a": 90, "b": 10}),
        ({"a": 3300, "b": 3350, "c": 3100}, {"a": 1, "b": 1, "c": 1}),
    ]
    for observed, shares in cases:
        counts = [observed[arm] for arm in shares]
        total_share = sum(shares.values())
        expected = [sum(counts) * shares[arm] / total_share for arm in shares]
        reference = ss.chisquare(counts, expected)
        got = S.srm_test(observed, shares)
        assert got.chi2 == pytest.approx(reference.statistic, rel=1e-12)
        assert got.p_value == pytest.approx(reference.pvalue, rel=1e-9)
        assert got.dof == len(shares) - 1
        assert got.mismatch == bool(reference.pvalue < 0.001)


def test_srm_flags_mismatch_and_handles_edges() -> None:
    mismatch = S.srm_test({"a": 5200, "b": 4800}, {"a": 50, "b": 50})  # χ² = 16, p ≈ 6.3e-5
    assert mismatch.mismatch and mismatch.chi2 == pytest.approx(16.0)
    assert mismatch.p_value == pytest.approx(ss.chi2.sf(16.0, 1), rel=1e-10)
    assert not S.srm_test({"a": 5100, "b": 4900}, {"a": 50, "b": 50}).mismatch  # p ≈ 0.046
    stray = S.srm_test({"a": 90, "b": 10, "c": 3}, {"a": 90, "b": 10})  # traffic to an arm with no share
    assert stray.mismatch and stray.p_value == 0.0 and stray.as_dict()["chi2"] is None
    assert S.srm_test({}, {"a": 50, "b": 50}).p_value == 1.0
    assert S.srm_test({"a": 10}, {"a": 100}).mismatch is False
    assert S.srm_test({"a": 9000, "b": 1000}, {"a": 0.9, "b": 0.1}).p_value == pytest.approx(1.0)
    with pytest.raises(ValueError, match="observed count"):
        S.srm_test({"a": -1}, {"a": 1})


# -- decisions ---------------------------------------------------------------------------------------------
def test_upgrade_when_the_lower_bound_clears_the_threshold() -> None:
    control, treatment = _bernoulli(20_000, 10_000), _bernoulli(20_000, 12_000)  # +20 %
    decision = S.decide_upgrade(control, treatment, min_relative_improvement=0.1)
    assert decision.decision == "upgrade"
    assert decision.reason.startswith("upgrade: relative gain +20.00 %, CS [+")
    evidence = decision.evidence
    assert evidence["control"]["n"] == 20_000 and evidence["treatment"]["mean"] == pytest.approx(0.6)
    assert evidence["interval"]["estimate"] == pytest.approx(0.2)
    assert evidence["interval"]["low"] >= 0.1 and evidence["alpha"] == 0.05
    assert evidence["test"] == "asymptotic confidence sequence (Waudby-Smith et al. 2023), anytime-valid"
    _json(decision.as_dict())


@pytest.mark.parametrize(
    ("treatment_successes", "threshold", "reason"),
    [
        (10_300, 0.05, "hold: interval still includes +5.00 %"),  # +3 %: undecided
        (10_100, 0.20, "hold: gain is significantly below +20.00 %"),  # +1 %, surely not +20 %
        (8_000, 0.05, "hold: treatment is significantly worse"),  # −20 %
    ],
)
def test_upgrade_holds_with_the_reason(treatment_successes: int, threshold: float, reason: str) -> None:
    decision = S.decide_upgrade(
        _bernoulli(20_000, 10_000), _bernoulli(20_000, treatment_successes), min_relative_improvement=threshold
    )
    assert decision.decision == "hold"
    assert decision.reason.startswith(reason), decision.reason


def test_upgrade_holds_on_too_few_samples_srm_and_zero_control() -> None:
    few = S.decide_upgrade(_bernoulli(50, 10), _bernoulli(50, 50), min_relative_improvement=0.1, min_samples=100)
    assert few.decision == "hold"
    assert few.reason == "hold: not enough samples (control n=50, treatment n=50; need 100 each)"
    srm = S.srm_test({"control": 20_000, "treatment": 18_000}, {"control": 50, "treatment": 50})
    blocked = S.decide_upgrade(
        _bernoulli(20_000, 10_000), _bernoulli(18_000, 12_000), min_relative_improvement=0.1, srm=srm
    )
    assert blocked.decision == "hold"
    assert blocked.reason.startswith("hold: sample-ratio mismatch (chi2=105.26, dof=1, p=")
    assert blocked.evidence["srm"]["mismatch"] is True
    _json(blocked.evidence)
    perfect = _bernoulli(1000, 1000)  # both arms constant: a zero-width interval sitting on the threshold 0
    constant = S.decide_upgrade(perfect, perfect, min_relative_improvement=0.0)
    assert constant.decision == "hold" and constant.reason.startswith("hold: interval still includes +0.00 %")
    non_inferior = S.decide_upgrade(
        _bernoulli(20_000, 10_000), _bernoulli(20_000, 10_050), min_relative_improvement=-0.05
    )  # a cheaper version allowed to be up to 5 % worse
    assert non_inferior.decision == "upgrade"
    zero = S.decide_upgrade(_bernoulli(1000, 0), _bernoulli(1000, 300), min_relative_improvement=0.1)
    assert (zero.decision, zero.reason) == ("hold", "hold: control mean is 0: a relative change is undefined")
    _json(zero.evidence)


def test_rollback_under_the_floor_or_significantly_worse() -> None:
    active = _bernoulli(5000, 2500)  # 0.50
    under = S.decide_rollback(active, floor=0.6, previous=None)
    assert under.decision == "rollback" and "entirely under the floor 0.6" in under.reason
    assert under.evidence["alpha_per_check"] == 0.05
    assert S.decide_rollback(active, floor=0.5, previous=None).decision == "hold"
    worse = S.decide_rollback(active, floor=None, previous=_bernoulli(5000, 3000))  # 0.60 → 0.50
    assert worse.decision == "rollback"
    assert worse.reason.startswith(
        "rollback: significantly worse than the previous version (change vs previous -16.67 %"
    )
    same = S.decide_rollback(active, floor=0.3, previous=_bernoulli(5000, 2480))
    assert same.decision == "hold" and same.evidence["alpha_per_check"] == 0.025  # Bonferroni over 2 checks
    _json(same.evidence)
    assert S.decide_rollback(_bernoulli(20, 1), floor=0.9, previous=None).reason.startswith("hold: not enough")
    assert S.decide_rollback(active, floor=None, previous=None).decision == "hold"
    unknown_previous = S.decide_rollback(active, floor=None, previous=_bernoulli(30, 30))
    assert unknown_previous.reason == "hold: previous version has too few samples (n=30; need 100)"
    srm = S.srm_test({"v1": 100, "v2": 300}, {"v1": 50, "v2": 50})
    assert S.decide_rollback(active, floor=0.9, previous=None, srm=srm).reason.startswith("hold: sample-ratio mismatch")


def test_ramp_steps() -> None:
    ramp = [10, 25, 50, 100]
    control, same, worse = _bernoulli(5000, 2500), _bernoulli(5000, 2510), _bernoulli(5000, 2000)
    start = S.ramp_step(0, ramp, control=control, treatment=same)
    assert (start.decision, start.evidence["next_percent"]) == ("upgrade", 10)
    step = S.ramp_step(10, ramp, control=control, treatment=same, min_samples_per_step=1000)
    assert (step.decision, step.evidence["next_percent"]) == ("upgrade", 25)
    assert "not significantly worse" in step.reason
    failed = S.ramp_step(25, ramp, control=control, treatment=worse)
    assert failed.decision == "rollback" and "step at 25 % failed" in failed.reason
    waiting = S.ramp_step(50, ramp, control=control, treatment=same, min_samples_per_step=10_000)
    assert waiting.decision == "hold" and "needs 10000 samples per arm" in waiting.reason
    strict = S.ramp_step(50, ramp, control=control, treatment=same, min_relative_improvement=0.05)
    assert strict.decision == "hold" and "not yet clear of +5.00 %" in strict.reason
    assert S.ramp_step(100, ramp, control=control, treatment=same).reason == "hold: ramp complete at 100 %"
    srm = S.srm_test({"control": 9000, "treatment": 1300}, {"control": 90, "treatment": 10})
    blocked = S.ramp_step(10, ramp, control=control, treatment=same, srm=srm)
    assert blocked.decision == "hold" and blocked.reason.startswith("hold: sample-ratio mismatch")
    for bad in ([], [50, 25], [10, 120], [0, 50]):
        with pytest.raises(ValueError, match="strictly increasing"):
            S.ramp_step(10, bad, control=control, treatment=same)
    _json(failed.evidence)


# -- module hygiene ------------------------------------------------------------------------------------------
def test_public_api_exists_and_the_module_imports_neither_scipy_nor_numpy() -> None:
    for name in S.__all__:
        assert hasattr(S, name), name
    code = "import sys, modelgit.stats; print('scipy' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_sim_decisions_benchmark_runs_and_meets_its_target_on_a_small_run() -> None:
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "sim_decisions.py"
    args = [sys.executable, str(script), "--experiments", "40", "--days", "10", "--seed", "5"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "upgrade A/A, threshold +0 %" in run.stdout and "rollback -15 %, floor 0.50" in run.stdout
    assert "false decisions, upgrade A/A, threshold +0 %:" in run.stdout
