"""The package list of the `phenomena_bench` import package, computed from the repository's folders.

Everything else is in pyproject.toml. setuptools cannot discover packages under a renamed folder
(`benchmark/` is installed as `phenomena_bench`), so this lists them: every folder with an `__init__.py`
under the mapped folders, so adding a family folder needs no edit here.
"""

from setuptools import find_packages, setup

ROOTS = {
    "phenomena_bench": "benchmark",
    "phenomena_bench.baselines": "baselines",
    "phenomena_bench.tasks": "tasks",
    "phenomena_bench.leaderboard": "leaderboard",
}

packages = list(ROOTS)
for name, folder in ROOTS.items():
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]
packages = sorted(set(packages))

setup(packages=packages)
