"""Plain-Python install (`pip install .`); all metadata is in setup.cfg. ROS 2 builds use CMakeLists.txt."""
from setuptools import setup

setup()
