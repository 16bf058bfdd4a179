import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

STARTUP_PTH = 'mmkp_ext_startup.pth'


def read_requirements(path):
    with open(path) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith(('#', '-'))
        ]


class BuildPyWithStartupHook(build_py):
    """Also put ``mmkp_ext_startup.pth`` at the top of the built tree, so a
    wheel installs it into site-packages beside ``mmkp_ext_startup.py``
    (see that module: it lets mmpose's own APIs import on mmcv-lite).
    Editable installs get the file from tools/install_deps.sh."""

    def run(self):
        super().run()
        if not self.dry_run:
            shutil.copy(osp.join(osp.dirname(osp.abspath(__file__)),
                                 STARTUP_PTH), self.build_lib)

    def get_outputs(self, *args, **kwargs):
        return super().get_outputs(*args, **kwargs) + [
            osp.join(self.build_lib, STARTUP_PTH)
        ]


version = {}
with open('mmkp_ext/version.py') as f:
    exec(f.read(), version)

setup(
    name='mmkp_ext',
    version=version['__version__'],
    description='Keypoint detection methods as an MMPose 1.x plugin',
    packages=find_packages(include=['mmkp_ext', 'mmkp_ext.*']),
    py_modules=['mmkp_ext_startup'],
    cmdclass={'build_py': BuildPyWithStartupHook},
    include_package_data=True,
    package_data={'mmkp_ext': ['datasets/metainfo/*.py']},
    python_requires='>=3.8',
    # The heavy, version-sensitive stack (torch, mmcv, mmpose, mmdet) is
    # installed by tools/install_deps.sh, because mmpose's and mmdet's own
    # dependency lists are broken on current Python (see README). OpenCV is
    # not listed either: the installer keeps exactly one distribution
    # (opencv-python-headless unless the environment already has one).
    install_requires=read_requirements('requirements/runtime.txt'),
    extras_require={'tests': read_requirements('requirements/tests.txt')},
    license='Apache-2.0',
)
