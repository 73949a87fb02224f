"""Turning a suspect's softmax share into a confidence that means what it says.

A softmax share says how much a commit stands out from the others, not how
often such a commit is the culprit: with a low temperature a modest lead
already looks like certainty. Platt scaling fixes that with two numbers,
``confidence = sigmoid(SLOPE * logit(share) + INTERCEPT)``, which is monotone
in the share (a higher share never gets a lower confidence) and leaves the
ranking unchanged.

The shipped constants were fitted by ``python -m benchmarks.diagnosis --fit``
(600 generated incidents, seed 20260302) on the training half: every
candidate among each incident's top three, labelled culprit or not, maximum
likelihood with a weak ridge on the slope (900 samples). They are checked on
the held-out half, where the benchmark reports the expected calibration error
before (the share itself) and after. Refit them whenever a feature or weight
in ``states.diagnose.commits`` changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SLOPE = 1.0981
INTERCEPT = 0.184
SHARE_FLOOR = 1e-6  # shares are clipped away from 0 and 1 so the logit stays finite
ECE_BINS = 10


def logit(share: float) -> float:
    """The log-odds of a share, clipped to stay finite."""
    p = min(max(share, SHARE_FLOOR), 1.0 - SHARE_FLOOR)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    """The logistic function, without overflow for large ``|x|``."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def confidence(share: float, slope: float = SLOPE, intercept: float = INTERCEPT) -> float:
    """The calibrated probability that a suspect with this share is the culprit."""
    return round(sigmoid(slope * logit(share) + intercept), 4)


def fit_platt(
    shares: Sequence[float], outcomes: Sequence[bool], ridge: float = 1e-3
) -> tuple[float, float]:
    """Slope and intercept maximizing the likelihood of ``outcomes`` (Newton's method)."""
    xs = [logit(s) for s in shares]
    ys = [1.0 if o else 0.0 for o in outcomes]
    a, b = 1.0, 0.0
    for _ in range(100):
        ga, gb, haa, hab, hbb = ridge * (a - 1.0), 0.0, ridge, 0.0, 1e-9
        for x, y in zip(xs, ys, strict=True):
            p = sigmoid(a * x + b)
            w = p * (1.0 - p)
            ga += (p - y) * x
            gb += p - y
            haa += w * x * x
            hab += w * x
            hbb += w
        det = haa * hbb - hab * hab
        if det <= 0:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) + abs(db) < 1e-10:
            break
    return a, b


def expected_calibration_error(
    confidences: Sequence[float], outcomes: Sequence[bool], bins: int = ECE_BINS
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    if not confidences:
        return 0.0
    totals = [[0, 0.0, 0.0] for _ in range(bins)]  # count, sum of confidence, sum of hits
    for c, hit in zip(confidences, outcomes, strict=True):
        slot = totals[min(bins - 1, int(c * bins))]
        slot[0] += 1
        slot[1] += c
        slot[2] += float(hit)
    n = len(confidences)
    return sum(abs(hits - conf) for count, conf, hits in totals if count) / n
