"""Privacy statements and the per-line bound, for metric and group mechanisms."""

import pytest

from dpsanitize import privacy
from dpsanitize.mechanisms import create


@pytest.fixture(scope="module")
def metric_and_group(toy_store):
    return create("laplace", epsilon=8, store=toy_store), create("custext", epsilon=3, store=toy_store)


def test_statement_names_epsilon_unit_and_composition(metric_and_group):
    metric, group = metric_and_group
    s = privacy.statement(metric)
    assert s["epsilon"] == 8 and s["unit"] == privacy.METRIC_UNIT
    assert "exp(8 * sum_i d(w_i, w'_i))" in s["per_line_composition"]
    assert s["repeated_runs"] == privacy.REPEATED_RUNS and "--oov keep" in s["released_as_is"]
    assert metric.privacy_statement() == s
    assert "exp(3 * k)" in privacy.statement(group)["per_line_composition"]


def test_per_line_bound_is_the_worst_case_by_hand(metric_and_group):
    metric, group = metric_and_group
    bound = privacy.per_line_bound(metric, max_words=12, d_max=2.5)
    assert bound["worst_case_log_ratio"] == pytest.approx(8 * 12 * 2.5)
    assert bound["max_words_per_line"] == 12
    assert privacy.per_line_bound(group, 12, 2.5)["worst_case_log_ratio"] == pytest.approx(3 * 12)
