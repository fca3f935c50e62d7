"""``pulse load``: send synthetic traffic (:mod:`pipeline.tools.synth`) into Kafka at a steady rate.

Used on its own to load a running pipeline, and by ``pulse demo``. Releases of
the generated products are announced first, then events go out in event-time
order, paced to ``rate`` events per second, with a progress bar.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.emitter import EXIT_TIMEOUT_S, EmitFailed, Emitter
from pipeline.settings import Settings
from pipeline.tools import synth

EVENTS_PER_USER_DAY = 23  # what synth's defaults produce per user and day, measured


def traffic_config(
    events: int, span: timedelta, scenario: str, seed: int, end: datetime | None = None
) -> synth.TrafficConfig:
    """A config whose traffic over ``span`` (ending at ``end``, by default now) holds about ``events`` events."""
    users = max(5, round(events / (5 * EVENTS_PER_USER_DAY * max(span / timedelta(days=1), 1 / 24))))
    return synth.TrafficConfig(
        seed=seed,
        start=(end or datetime.now(UTC)) - span,
        span=span,
        users_per_product=users,
        scenario=scenario,
        max_events=events,
    )


def send_traffic(settings: Settings, cfg: synth.TrafficConfig, rate: int, console: Console) -> int:
    """Emit the releases, then the traffic paced at ``rate`` events/s; returns the events sent."""
    columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    sent = 0
    with Emitter(settings) as em, Progress(*columns, console=console) as progress:
        for rel in synth.releases(cfg):
            em.release(rel)
        task = progress.add_task("events", total=cfg.max_events)
        started = time.monotonic()
        for event in synth.traffic(cfg):
            em.emit(event)
            sent += 1
            if sent % 1000 == 0:
                progress.update(task, completed=sent)
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        progress.update(task, completed=sent)
        # The emitter delivers from a background thread: wait for the acks here, so a broker that went
        # away is an error of `pulse load`, not a silent shortfall.
        left = em.flush(timeout=EXIT_TIMEOUT_S)
        if left or em.failed:
            raise EmitFailed(f"{left + em.failed} of {sent} events were not acknowledged by Kafka")
    return sent


def run_load(settings: Settings, duration_s: float, rate: int, span_days: float, scenario: str, seed: int) -> int:
    console = Console(stderr=True)
    ensure_topics(settings)
    cfg = traffic_config(int(duration_s * rate), timedelta(days=span_days), scenario, seed)
    sent = send_traffic(settings, cfg, rate, console)
    console.print(f"sent {sent:,} events to {settings.events_topic}")
    return 0
