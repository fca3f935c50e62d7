"""The decision harness: scenarios with known truth, simulated hour by hour, judged as the worker would.

``pulse eval`` (and ``tests/decisions/``) run the release judge of
:mod:`alerts.regression` at every hourly look over scenario files
(``tests/decisions/scenarios/*.yaml``) under several seeds, and count what it
got right: regressions paged and their delay in event time, false pages,
pages on A/A releases (identical behaviour). The judge reads the same
:class:`~alerts.traffic.ProductTraffic` here as from the store; only the
source of the hours differs.

It also runs the redesign flag over simulated products with known truth
(:mod:`alerts.harness.redesign`, days from :mod:`alerts.harness.daily`):
precision, recall and flag flips per product-month.
"""
