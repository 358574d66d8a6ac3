"""The phenomenon families, one sub-package each.

A family folder holds ``spec.py`` (its spec sections), ``api.py`` (all a submitter reads: the method base
with its abstract hooks, the context and return types), its training and scoring, and exposes ``FAMILY``
in its ``__init__``. :mod:`phenomena_bench.registry` finds every folder here, and families installed by
other packages through the ``phenomena_bench.families`` entry-point group. Adding a family is one folder
here plus its task YAML under ``tasks/<family>/``.
"""
