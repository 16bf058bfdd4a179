"""Keypoint codecs; importing registers them into ``mmpose.registry.KEYPOINT_CODECS``."""
