"""Checkpoint converters: published model-zoo layouts -> mmkp_ext's modules.

Each converter maps every key of a published checkpoint or raises an error
listing the keys it cannot map; ``tools/model_converters/convert_*_checkpoint.py`` are thin
command-line front ends over them.
"""
