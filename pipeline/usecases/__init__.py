"""The application layer: what the commands and the worker do, composed from the core and every room."""
