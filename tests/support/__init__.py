"""What the tests share and nothing ships: ground truth (``truth``), free ports (``net``), the hostile corpus
(``corpus``), scenario stores (``scenario_store``, ``dashboard_store``), JSON views of a batch (``batch_views``),
and entry points the tests start as processes (``python -m tests.support.stopping_worker``).

Tests import them as ``support.<name>`` (``tests/`` is on the path, as pytest's rootdir conftest puts it).
"""
