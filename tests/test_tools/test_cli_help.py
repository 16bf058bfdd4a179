"""Every command-line tool of ours answers ``--help`` with its whole
description and an example, without importing torch or mmpose (arguments
are parsed first), and the choices written out for that purpose equal the
library's."""
import glob
import os.path as osp

from _helpers import REPO_ROOT, load_tool, run_python

#: tools/train.py and tools/test.py hand over to mmpose's own scripts.
CLIS = sorted(
    osp.relpath(p, osp.join(REPO_ROOT, 'tools'))
    for p in glob.glob(osp.join(REPO_ROOT, 'tools', '*', '*.py')))

CHECK = '''
import runpy, sys
out = {}
for tool in TOOLS:
    sys.argv = [tool, '--help']
    try:
        runpy.run_path('tools/' + tool, run_name='__main__')
    except SystemExit as e:
        assert e.code in (0, None), (tool, e.code)
    heavy = [m for m in ('torch', 'mmpose', 'mmkp_ext') if m in sys.modules]
    print('HEAVY', tool, heavy)
'''


def test_every_cli_is_listed():
    assert 'demo/run_demo.py' in CLIS and len(CLIS) >= 14


def test_help_is_whole_fast_and_light():
    code = f'TOOLS = {CLIS!r}\n' + CHECK
    out = run_python(['-c', code]).stdout
    for tool in CLIS:
        doc = load_tool_doc(tool)
        first = doc.strip().splitlines()[0]
        assert first in out, f'{tool}: description missing from --help'
        # the example is shown, not cut after the first line
        assert f'tools/{tool}' in out, f'{tool}: no example in --help'
        assert f'HEAVY {tool} []' in out, (
            f'{tool} imports torch / mmpose / mmkp_ext before parsing')


def load_tool_doc(tool):
    with open(osp.join(REPO_ROOT, 'tools', tool)) as f:
        src = f.read()
    return src.split('"""')[1]


def test_written_out_choices_equal_the_library():
    from mmkp_ext.datasets import TOY_KINDS
    from mmkp_ext.datasets.lsp_conversion import LSP_LAYOUTS
    assert set(load_tool('dataset_converters/make_toy_dataset.py').TOY_KINDS
               ) == set(TOY_KINDS)
    assert set(load_tool('dataset_converters/convert_lsp.py').LSP_LAYOUTS
               ) == set(LSP_LAYOUTS)
    from mmkp_ext import grouping
    tool = load_tool('analysis_tools/group_keypoints.py')
    for name in ('DISTANCES', 'LINKAGES', 'RESTRICT'):
        assert tuple(getattr(tool, name)) == tuple(getattr(grouping, name))
