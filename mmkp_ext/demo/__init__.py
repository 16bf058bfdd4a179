"""The toy-data demos as declared recipes and their runner (library side of
``tools/demo/run_demo.py`` and the ``make demo*`` targets)."""
from .recipes import RECIPES, DataSpec, PostStep, Recipe, Stage, TestSpec
from .runner import DemoError, plan, run_recipe, stage_options, summary

__all__ = [
    'RECIPES', 'DataSpec', 'PostStep', 'Recipe', 'Stage', 'TestSpec',
    'DemoError', 'plan', 'run_recipe', 'stage_options', 'summary'
]
