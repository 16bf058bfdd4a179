"""Metrics; importing registers them into ``mmpose.registry.METRICS``."""
