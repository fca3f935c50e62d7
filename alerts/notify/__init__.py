"""Notifiers: Alertmanager API v2 (:mod:`.alertmanager`) and a generic JSON webhook (:mod:`.webhook`).

Both hand their deliveries to a :class:`~alerts.notify.delivery.DeliveryQueue`: a
background thread with a bounded queue and bounded retries, so a notifier
outage never blocks or fails an evaluation; results are counted in
``pulse_notifications_total{notifier,target,result}``.
"""

from alerts.notify.message import Notification, Notifier, generator_url

__all__ = ["Notification", "Notifier", "generator_url"]
