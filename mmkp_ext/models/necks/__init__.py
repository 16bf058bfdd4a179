"""Necks; importing registers them into ``mmpose.registry.MODELS``."""
