"""Distributions of the variability engine: each kind draws what its scipy.stats twin says (KS or
chi-square on 20,000 draws with a fixed seed), the same test rejects a wrong parameter (so it can
fail), and bad parameters are refused with messages that say what to fix."""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from scipy import stats

from edge_collector.variability.distributions import (
    KINDS,
    BaseDistribution,
    Categorical,
    Distribution,
    parse_distribution,
)

N = 20_000
SEED = 20261124


def draws(dist: BaseDistribution, n: int = N, hours: float = 0.0, seed: int = SEED) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(seed))
    return np.array([dist.sample(rng, hours=hours) for _ in range(n)], dtype=float)


# kind -> (parameters, the scipy distribution with the same parameters, the same with one parameter wrong)
CONTINUOUS: dict[str, tuple[dict[str, Any], Any, Any]] = {
    "weibull": (
        {"shape": 1.5, "scale": 1800.0},
        stats.weibull_min(c=1.5, scale=1800.0),
        stats.weibull_min(c=1.5, scale=1900.0),
    ),
    "exponential": ({"mtbf": 3600.0}, stats.expon(scale=3600.0), stats.expon(scale=3800.0)),
    "lognormal": (
        {"median": 600.0, "sigma": 0.5},
        stats.lognorm(s=0.5, scale=600.0),
        stats.lognorm(s=0.5, scale=630.0),
    ),
    "normal": ({"mean": 0.02, "sd": 0.01}, stats.norm(0.02, 0.01), stats.norm(0.021, 0.01)),
    "uniform": ({"low": 90.0, "high": 115.0}, stats.uniform(loc=90.0, scale=25.0), stats.uniform(loc=90.0, scale=26.0)),
    "gamma": ({"shape": 2.5, "scale": 40.0}, stats.gamma(a=2.5, scale=40.0), stats.gamma(a=2.7, scale=40.0)),
    "triangular": (
        {"left": 30.0, "mode": 60.0, "right": 180.0},
        stats.triang(c=0.2, loc=30.0, scale=150.0),
        stats.triang(c=0.25, loc=30.0, scale=150.0),
    ),
}


def test_every_kind_is_covered_here() -> None:
    assert set(KINDS) == set(CONTINUOUS) | {"constant", "categorical"}


@pytest.mark.parametrize("kind", sorted(CONTINUOUS))
def test_continuous_kind_matches_scipy_and_a_wrong_parameter_is_rejected(kind: str) -> None:
    params, right, wrong = CONTINUOUS[kind]
    dist = parse_distribution({"kind": kind, **params})
    x = draws(dist, seed=SEED + zlib.crc32(kind.encode()))  # a stream per kind: the tests stay independent
    ok = stats.kstest(x, right.cdf)
    bad = stats.kstest(x, wrong.cdf)
    assert ok.pvalue > 0.01, f"{kind}: KS p={ok.pvalue:.3g} against its own parameters"
    assert bad.pvalue < 1e-4, f"{kind}: KS p={bad.pvalue:.3g}: the test cannot tell a wrong parameter apart"
    lo, hi = dist.support()
    assert lo <= x.min() and x.max() <= hi


def test_normal_drift_moves_the_mean_with_simulated_hours() -> None:
    dist = parse_distribution({"kind": "normal", "mean": 0.0, "sd": 0.01, "drift_per_hour": 0.002})
    x = draws(dist, hours=10.0)
    assert stats.kstest(x, stats.norm(0.02, 0.01).cdf).pvalue > 0.01
    assert stats.kstest(x, stats.norm(0.0, 0.01).cdf).pvalue < 1e-6  # ignoring the drift is detected
    assert stats.kstest(draws(dist, hours=0.0), stats.norm(0.0, 0.01).cdf).pvalue > 0.01


def test_lognormal_median_is_the_median() -> None:
    x = draws(parse_distribution({"kind": "lognormal", "median": 600.0, "sigma": 0.5}))
    assert np.median(x) == pytest.approx(600.0, rel=0.02)
    assert np.std(np.log(x)) == pytest.approx(0.5, rel=0.02)


def test_categorical_matches_its_weights_by_chi_square() -> None:
    dist = parse_distribution({"kind": "categorical", "weights": {"205": 3.0, "101": 5.0, "317": 2.0}})
    assert isinstance(dist, Categorical)
    rng = np.random.Generator(np.random.PCG64(SEED))
    x = [dist.sample(rng) for _ in range(N)]
    assert all(isinstance(v, int) for v in x)
    codes = [101, 205, 317]
    observed = [x.count(c) for c in codes]
    assert sum(observed) == N
    ok = stats.chisquare(observed, [N * w for w in (0.5, 0.3, 0.2)])
    bad = stats.chisquare(observed, [N * w for w in (0.45, 0.35, 0.2)])
    assert ok.pvalue > 0.01 and bad.pvalue < 1e-6
    assert dist.probabilities() == {101: 0.5, 205: 0.3, 317: 0.2}


def test_categorical_draws_do_not_depend_on_the_order_weights_are_written_in() -> None:
    a = parse_distribution({"kind": "categorical", "weights": {1: 1.0, 2: 2.0, 3: 3.0}})
    b = parse_distribution({"kind": "categorical", "weights": {3: 3.0, 1: 1.0, 2: 2.0}})
    assert list(draws(a, 200)) == list(draws(b, 200))


def test_constant_is_exact() -> None:
    dist = parse_distribution({"kind": "constant", "value": 42.5})
    x = draws(dist, 1000)
    assert (x == 42.5).all()
    assert dist.support() == (42.5, 42.5)


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    dist = parse_distribution({"kind": "weibull", "shape": 1.5, "scale": 1800.0})
    assert list(draws(dist, 100)) == list(draws(dist, 100))
    assert list(draws(dist, 100)) != list(draws(dist, 100, seed=SEED + 1))


def test_describe_gives_the_name_and_parameters_as_json() -> None:
    cases: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "weibull": ({"shape": 1.5, "scale": 1800}, {"shape": 1.5, "scale": 1800.0}),
        "normal": ({"mean": 0, "sd": 0.01}, {"mean": 0.0, "sd": 0.01, "drift_per_hour": 0.0}),
        "categorical": ({"weights": {7: 1, 3: 2}}, {"weights": {"3": 2.0, "7": 1.0}}),
    }
    for kind, (raw, expected) in cases.items():
        described = parse_distribution({"kind": kind, **raw}).describe()
        assert described == {"distribution": kind, **expected}
        assert json.loads(json.dumps(described)) == described


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"kind": "weibull", "shape": 0, "scale": 1800}, "weibull shape must be > 0"),
        ({"kind": "weibull", "shape": 1.5, "scale": -1}, "weibull scale must be > 0"),
        ({"kind": "exponential", "mtbf": 0}, "exponential mtbf must be > 0"),
        ({"kind": "lognormal", "median": 600, "sigma": 0}, "lognormal sigma must be > 0"),
        ({"kind": "lognormal", "median": -5, "sigma": 0.5}, "lognormal median must be > 0"),
        ({"kind": "normal", "mean": 0, "sd": -0.1}, "normal sd must be > 0"),
        ({"kind": "gamma", "shape": 2, "scale": 0}, "gamma scale must be > 0"),
        ({"kind": "uniform", "low": 5, "high": 5}, "uniform needs low < high, got low=5.0, high=5.0"),
        ({"kind": "triangular", "left": 0, "mode": 9, "right": 5}, "triangular needs left <= mode <= right"),
        ({"kind": "triangular", "left": 3, "mode": 3, "right": 3}, "left < right"),
        ({"kind": "categorical", "weights": {101: 1.0, 205: 0.0}}, "categorical weights must be > 0, got {205: 0.0}"),
        ({"kind": "categorical", "weights": {}}, "at least one code"),
        ({"kind": "exponential", "mtbf": math.inf}, "finite number"),
        ({"kind": "weibull", "shape": 1.5, "scale": 1800, "scal": 1}, "Extra inputs are not permitted"),
        ({"kind": "weibul", "shape": 1.5, "scale": 1800}, "does not match any of the expected tags: 'weibull'"),
        ({"shape": 1.5, "scale": 1800}, "Unable to extract tag using discriminator 'kind'"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        parse_distribution(raw)
    assert message in str(excinfo.value)


def test_distribution_is_a_field_type_for_config_models() -> None:
    class Holder(BaseModel):
        d: Distribution

    assert Holder.model_validate({"d": {"kind": "gamma", "shape": 2, "scale": 3}}).d.kind == "gamma"
    with pytest.raises(ValidationError, match=r"d\.uniform"):
        Holder.model_validate({"d": {"kind": "uniform", "low": 2, "high": 1}})


@st.composite
def any_distribution(draw: st.DrawFn) -> BaseDistribution:
    pos = st.floats(0.01, 1e5)
    kind = draw(st.sampled_from(KINDS))
    if kind in ("weibull", "gamma"):
        raw: dict[str, Any] = {"shape": draw(pos), "scale": draw(pos)}
    elif kind == "exponential":
        raw = {"mtbf": draw(pos)}
    elif kind == "lognormal":
        raw = {"median": draw(pos), "sigma": draw(st.floats(0.01, 3))}
    elif kind == "normal":
        raw = {"mean": draw(st.floats(-1e3, 1e3)), "sd": draw(pos), "drift_per_hour": draw(st.floats(-1, 1))}
    elif kind == "uniform":
        low = draw(st.floats(-1e5, 1e5))
        raw = {"low": low, "high": low + draw(pos)}
    elif kind == "triangular":
        left, width = draw(st.floats(-1e5, 1e5)), draw(pos)
        raw = {"left": left, "mode": left + width * draw(st.floats(0, 1)), "right": left + width}
    elif kind == "constant":
        raw = {"value": draw(st.floats(-1e6, 1e6))}
    else:
        raw = {"weights": draw(st.dictionaries(st.integers(1, 999), st.floats(0.01, 100), min_size=1, max_size=8))}
    return parse_distribution({"kind": kind, **raw})


@settings(max_examples=200, deadline=None)
@given(dist=any_distribution(), seed=st.integers(0, 2**32 - 1), hours=st.floats(0, 1000))
def test_draws_are_finite_and_inside_the_support(dist: BaseDistribution, seed: int, hours: float) -> None:
    rng = np.random.Generator(np.random.PCG64(seed))
    lo, hi = dist.support()
    for _ in range(20):
        x = dist.sample(rng, hours=hours)
        assert math.isfinite(x)
        if not dist.uses_hours:
            assert lo <= x <= hi
    assert (
        parse_distribution(
            json.loads(
                json.dumps({"kind": dist.kind, **{k: v for k, v in dist.describe().items() if k != "distribution"}})
            )
        )
        == dist
    )
