"""Alerts: rule files, the evaluator and its state machine, notifiers, scorecards and release regressions.

* ``rules/`` - the shipped rule files (YAML) and their rule unit tests (``rules/tests/``);
* :mod:`alerts.rules` - the rule model and :func:`~alerts.rules.load_rules` (all problems, one line each);
* :mod:`alerts.template` - the annotation template language;
* :mod:`alerts.statemachine` - the pure state machine (Prometheus semantics, hysteresis, min volume);
* :mod:`alerts.statestore` - alert state in ClickHouse ``alert_events``, and the status read from it;
* :mod:`alerts.evaluator` - the :class:`~alerts.evaluator.Evaluator` the worker and ``pulse alerts run`` call;
* :mod:`alerts.backtest` - the rules replayed over stored history, without notifying;
* :mod:`alerts.sources` - where rules get values (catalog metrics, burn rates, signals);
* :mod:`alerts.notify` - Alertmanager API v2 and webhook notifiers;
* :mod:`alerts.ruletest` - rule unit tests in the spirit of ``promtool test rules``;
* :mod:`alerts.scorecard` (policy in :mod:`alerts.scorecard_config`, arithmetic in :mod:`alerts.scoring`),
  :mod:`alerts.regression` - the redesign and release-regression signals.
"""
