"""Run mmpose's stock training script (shipped in the mmpose wheel).

    python tools/train.py CONFIG [mmpose train.py options]

Same arguments as mmpose's ``tools/train.py``; this file only locates it.
"""
import runpy
import sys

from mmkp_ext.utils import mmpose_tool_path

if __name__ == '__main__':
    script = mmpose_tool_path('train.py')
    sys.argv[0] = script
    runpy.run_path(script, run_name='__main__')
