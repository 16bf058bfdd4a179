"""Describe the Python environment tools/install_deps.sh is about to
install into, as ``key=value`` lines (standard library only, so it runs on a
bare interpreter):

* ``version``: ``major.minor``;
* ``venv``: 1 inside a virtual environment (``sys.prefix != sys.base_prefix``);
* ``externally_managed``: 1 if the interpreter's stdlib carries PEP 668's
  ``EXTERNALLY-MANAGED`` marker (a distribution's system Python);
* ``writable``: 1 if site-packages (purelib) can be written;
* ``purelib``: that directory;
* ``python_h``: 1 if the interpreter's C headers (``Python.h``) are present;
* ``opencv``: the installed OpenCV distributions, comma-separated;
* ``setuptools``: the installed setuptools version, or ``none``.
"""
import os
import sys
import sysconfig
from importlib import metadata

OPENCV_DISTS = ('opencv-python', 'opencv-python-headless',
                'opencv-contrib-python', 'opencv-contrib-python-headless')


def _installed(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def probe():
    paths = sysconfig.get_paths()
    purelib = paths['purelib']
    stdlib = paths['stdlib']
    in_venv = sys.prefix != getattr(sys, 'base_prefix', sys.prefix)
    return dict(
        version='%d.%d' % sys.version_info[:2],
        venv=int(in_venv),
        externally_managed=int(
            os.path.isfile(os.path.join(stdlib, 'EXTERNALLY-MANAGED'))),
        writable=int(os.access(purelib, os.W_OK)
                     if os.path.isdir(purelib) else
                     os.access(os.path.dirname(purelib), os.W_OK)),
        purelib=purelib,
        python_h=int(
            os.path.isfile(os.path.join(paths['include'], 'Python.h'))),
        opencv=','.join(d for d in OPENCV_DISTS if _installed(d)),
        setuptools=_installed('setuptools') or 'none',
    )


if __name__ == '__main__':
    for key, value in probe().items():
        print(f'{key}={value}')
