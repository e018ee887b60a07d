"""Build hook: a wheel carries the app and the shipped data inside the package.

The repository keeps ``app/`` and ``data/`` at the top level; building copies them to
``workbench/_app`` and ``workbench/_data`` so that a non-editable ``pip install .`` can run
``workbench app`` and ``workbench demo``. ``workbench.demo.shipped`` finds either location. All other
metadata is in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = {"app": "workbench/_app", "data": "workbench/_data"}
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.pyc", "screenshots", "checkpoint.*", "*.tmp")


class BuildPyWithShippedFiles(build_py):
    """``build_py`` that also copies the shipped folders into the built package."""

    def run(self) -> None:
        super().run()
        for source, target in SHIPPED.items():
            shutil.copytree(source, Path(self.build_lib) / target, ignore=LEFT_OUT, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithShippedFiles})
