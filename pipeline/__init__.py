"""ProductPulse core shared by every process: events, settings, Kafka and ClickHouse plumbing, the emitter SDK."""
