from setuptools import find_packages, setup


def read_requirements(path):
    with open(path) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith(('#', '-'))
        ]


version = {}
with open('mmkp_ext/version.py') as f:
    exec(f.read(), version)

setup(
    name='mmkp_ext',
    version=version['__version__'],
    description='Keypoint detection methods as an MMPose 1.x plugin',
    packages=find_packages(include=['mmkp_ext', 'mmkp_ext.*']),
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
