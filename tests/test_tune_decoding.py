"""bench/tune_decoding.py's search over the length penalty α and the coverage penalty β, with made-up scores."""
from __future__ import annotations

import pytest

from tiny import bench_script


@pytest.fixture(scope="module")
def tune():
    return bench_script("tune_decoding")


def scorer(peak_alpha: float, best_beta: float = 0.0):
    """BLEU that falls off with the distance from (peak_alpha, best_beta); records every call."""
    calls = []

    def score_at(alpha, beta):
        calls.append((alpha, beta))
        return dict(length_penalty=alpha, coverage_penalty=beta, bleu=50 - abs(alpha - peak_alpha) - abs(beta - best_beta))
    return score_at, calls


def test_alpha_inside_the_grid_then_beta_at_the_best_alpha(tune):
    score_at, calls = scorer(peak_alpha=1.4, best_beta=0.2)
    results = tune.grid_search(score_at, [0.6, 1.0, 1.4, 1.8, 2.2], [0.0, 0.1, 0.2, 0.4])
    assert calls == [(0.6, 0), (1.0, 0), (1.4, 0), (1.8, 0), (2.2, 0), (1.4, 0.1), (1.4, 0.2), (1.4, 0.4)]
    best = max(results, key=lambda r: r["bleu"])
    assert (best["length_penalty"], best["coverage_penalty"]) == (1.4, 0.2)


def test_a_best_alpha_on_the_upper_edge_extends_the_grid_until_it_stops_winning(tune):
    score_at, calls = scorer(peak_alpha=2.6)
    results = tune.grid_search(score_at, [0.6, 1.0, 1.4, 1.8, 2.2], [0.0, 0.2])
    assert [alpha for alpha, beta in calls if beta == 0] == [0.6, 1.0, 1.4, 1.8, 2.2, 2.6, 3.0]
    assert calls[-1] == (2.6, 0.2)
    assert max(results, key=lambda r: r["bleu"])["length_penalty"] == 2.6


def test_the_upward_search_stops_at_its_cap(tune):
    score_at, calls = scorer(peak_alpha=99)
    tune.grid_search(score_at, [1.0, 2.0], [0.0])
    assert [alpha for alpha, _ in calls] == [1.0, 2.0, 3.0]
    assert max(alpha for alpha, _ in calls) <= tune.MAX_LENGTH_PENALTY


def test_a_single_or_repeated_alpha_does_not_loop(tune):
    score_at, calls = scorer(peak_alpha=99)
    tune.grid_search(score_at, [2.2, 2.2], [0.0])
    assert calls == [(2.2, 0), (2.2, 0)]
