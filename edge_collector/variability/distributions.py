"""Probability distributions of the variability engine, as validated pydantic models.

Every distribution is one small class: a `kind` literal (the discriminator of the `Distribution`
union, and the name written to `injected_events.distribution`), its parameters with their
constraints, `sample(rng, hours=0.0)` and `support()`. `describe()` turns the parameters into the
JSON-ready dict stored in `injected_events.params`. The `Distribution` union is built from every
subclass defined in this module, so adding a kind means adding one class here, nothing else.

Parameterisations (all match scipy.stats so the ground truth can be checked against it):

| kind | parameters | numpy draw | scipy.stats equivalent |
|---|---|---|---|
| weibull | shape k > 0, scale > 0 | scale * weibull(k) | weibull_min(c=k, scale=scale) |
| exponential | mtbf > 0 (the mean) | exponential(mtbf) | expon(scale=mtbf) |
| lognormal | median > 0, sigma > 0 (sd of ln X) | lognormal(ln median, sigma) | lognorm(s=sigma, scale=median) |
| normal | mean, sd > 0, drift_per_hour | normal(mean + drift * hours, sd) | norm(mean + drift * hours, sd) |
| uniform | low < high | uniform(low, high) | uniform(loc=low, scale=high - low) |
| gamma | shape k > 0, scale > 0 | gamma(k, scale) | gamma(a=k, scale=scale) |
| triangular | left <= mode <= right, left < right | triangular(...) | triang((mode-l)/(right-l), l, right-l), l=left |
| constant | value | value | (degenerate) |
| categorical | weights: {code: weight > 0} | code with P = weight / sum | multinomial over the codes |

Lognormal takes the median rather than mu because a maintenance engineer quotes "a typical
repair takes 10 minutes" (the median, e^mu), and sigma as the spread of ln(repair time).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

_REGISTRY: dict[str, type[BaseDistribution]] = {}


class BaseDistribution(BaseModel):
    """Common behaviour; subclasses add `kind`, parameters, `sample` and `support`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: str
    #: True when `sample` depends on `hours` (simulated time since the engine started).
    uses_hours: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Register every concrete kind, so the `Distribution` union needs no hand-kept list."""
        super().__pydantic_init_subclass__(**kwargs)
        default = cls.model_fields["kind"].default
        if isinstance(default, str) and default:
            if default in _REGISTRY:
                raise TypeError(f"distribution kind {default!r} is defined twice")
            _REGISTRY[default] = cls

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> float:
        """One draw. `hours` is simulated time since the engine started (only drifting kinds use it)."""
        raise NotImplementedError

    def support(self) -> tuple[float, float]:
        """Smallest and largest value a draw can take (used to validate what a signal accepts)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Name and parameters, JSON-ready, for `injected_events.params`."""
        return {"distribution": self.kind, **self.model_dump(mode="json", exclude={"kind"})}


def _positive(name: str, value: float, unit_hint: str = "") -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0{unit_hint}, got {value}")
    return value


class Weibull(BaseDistribution):
    """Time to failure with an ageing (shape > 1) or infant-mortality (shape < 1) hazard."""

    kind: Literal["weibull"] = "weibull"
    shape: float = Field(description="shape k (1 = exponential, > 1 wear-out)")
    scale: float = Field(description="scale (characteristic life), same unit as the draws")

    @field_validator("shape", "scale")
    @classmethod
    def _check(cls, v: float, info: Any) -> float:
        return _positive(f"weibull {info.field_name}", v)

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> float:
        return float(self.scale * rng.weibull(self.shape))

    def support(self) -> tuple[float, float]:
        return (0.0, math.inf)


class Exponential(BaseDistribution):
    """Memoryless time to failure: constant hazard 1 / mtbf."""

    kind: Literal["exponential"] = "exponential"
    mtbf: float = Field(description="mean time between failures (the mean of the draws)")

    @field_validator("mtbf")
    @classmethod
    def _check(cls, v: float) -> float:
        return _positive("exponential mtbf", v)

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> float:
        return float(rng.exponential(self.mtbf))

    def support(self) -> tuple[float, float]:
        return (0.0, math.inf)


class LogNormal(BaseDistribution):
    """Repair times: right-skewed, parameterised by the median and the sd of ln(X)."""

    kind: Literal["lognormal"] = "lognormal"
    median: float = Field(description="median of the draws (= e^mu)")
    sigma: float = Field(description="standard deviation of ln(draw)")

    @field_validator("median", "sigma")
    @classmethod
    def _check(cls, v: float, info: Any) -> float:
        return _positive(f"lognormal {info.field_name}", v)

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> float:
        return float(rng.lognormal(math.log(self.median), self.sigma))

    def support(self) -> tuple[float, float]:
        return (0.0, math.inf)


class Normal(BaseDistribution):
    """Process noise; `drift_per_hour` moves the mean linearly with simulated time (tool wear)."""

    kind: Literal["normal"] = "normal"
    mean: float
    sd: float = Field(description="standard deviation")
    drift_per_hour: float = Field(0.0, description="added to the mean per simulated hour since the engine started")
    uses_hours: ClassVar[bool] = True

    @field_validator("sd")
    @classmethod
    def _check(cls, v: float) -> float:
        return _positive("normal sd", v, " (use kind = 'constant' for a fixed value)")

    def mean_at(self, hours: float) -> float:
        return self.mean + self.drift_per_hour * hours

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> float:
        return float(rng.normal(self.mean_at(hours), self.sd))

    def support(self) -> tuple[float, float]:
        return (-math.inf, math.inf)


class Uniform(BaseDistribution):
    """Flat between `low` and `high`: e.g. a feed rate that wanders within a band."""

    kind: Literal["uniform"] = "uniform"
    low: float
    high: float

    @model_validator(mode="after")
    def _check(self) -> Uniform:
        if not self.low < self.high:
            raise ValueError(f"uniform needs low < high, got low={self.low}, high={self.high}")
        return self

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> float:
        return float(rng.uniform(self.low, self.high))

    def support(self) -> tuple[float, float]:
        return (self.low, self.high)


class Gamma(BaseDistribution):
    """Sum-of-stages durations (e.g. a repair made of k exponential steps)."""

    kind: Literal["gamma"] = "gamma"
    shape: float = Field(description="shape k")
    scale: float = Field(description="scale theta (mean = k * theta)")

    @field_validator("shape", "scale")
    @classmethod
    def _check(cls, v: float, info: Any) -> float:
        return _positive(f"gamma {info.field_name}", v)

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> float:
        return float(rng.gamma(self.shape, self.scale))

    def support(self) -> tuple[float, float]:
        return (0.0, math.inf)


class Triangular(BaseDistribution):
    """Three-point estimate (minimum, most likely, maximum), as planners quote durations."""

    kind: Literal["triangular"] = "triangular"
    left: float
    mode: float
    right: float

    @model_validator(mode="after")
    def _check(self) -> Triangular:
        if not (self.left <= self.mode <= self.right and self.left < self.right):
            raise ValueError(
                f"triangular needs left <= mode <= right and left < right, got left={self.left}, "
                f"mode={self.mode}, right={self.right}"
            )
        return self

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> float:
        return float(rng.triangular(self.left, self.mode, self.right))

    def support(self) -> tuple[float, float]:
        return (self.left, self.right)


class Constant(BaseDistribution):
    """A fixed value: switches a signal to a known setting without randomness."""

    kind: Literal["constant"] = "constant"
    value: float

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> float:
        return float(self.value)

    def support(self) -> tuple[float, float]:
        return (self.value, self.value)


class Categorical(BaseDistribution):
    """Integer codes with relative weights (fault codes); weights need not sum to 1."""

    kind: Literal["categorical"] = "categorical"
    weights: dict[int, float] = Field(description="code -> relative weight (> 0)")

    @field_validator("weights")
    @classmethod
    def _check(cls, v: dict[int, float]) -> dict[int, float]:
        if not v:
            raise ValueError("categorical needs at least one code in weights, e.g. {101 = 1.0}")
        bad = {code: w for code, w in v.items() if not (math.isfinite(w) and w > 0)}
        if bad:
            raise ValueError(f"categorical weights must be > 0, got {bad}")
        return dict(sorted(v.items()))  # sorted: the draw does not depend on the order in the file

    def probabilities(self) -> dict[int, float]:
        total = sum(self.weights.values())
        return {code: w / total for code, w in self.weights.items()}

    def sample(self, rng: np.random.Generator, hours: float = 0.0) -> int:
        codes = list(self.weights)
        cumulative = np.cumsum(list(self.weights.values()))
        i = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        return codes[min(i, len(codes) - 1)]

    def support(self) -> tuple[float, float]:
        return (float(min(self.weights)), float(max(self.weights)))

    def describe(self) -> dict[str, Any]:
        return {"distribution": self.kind, "weights": {str(k): w for k, w in self.weights.items()}}


# The discriminated union of every kind defined above (built from the registry, so a new class
# is the only change needed to add a kind).
if TYPE_CHECKING:
    Distribution = BaseDistribution
else:
    Distribution = Annotated[Union[tuple(_REGISTRY.values())], Field(discriminator="kind")]  # noqa: UP007 - a Union of a run-time tuple has no | spelling

KINDS: tuple[str, ...] = tuple(_REGISTRY)
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Distribution, config=ConfigDict(title="distribution"))


def parse_distribution(raw: dict[str, Any] | BaseDistribution) -> BaseDistribution:
    """Validate a `{kind = ..., ...}` table into its distribution model."""
    if isinstance(raw, BaseDistribution):
        return raw
    return _ADAPTER.validate_python(raw)
