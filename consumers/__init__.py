"""The Faust worker: ingest agent, batch aggregation and the ClickHouse sink."""
