"""Evaluation: parallel rollouts, statistics, oracle and reports (see the evaluation issue)."""
