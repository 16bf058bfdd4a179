"""Losses; importing registers them into ``mmpose.registry.MODELS``."""
