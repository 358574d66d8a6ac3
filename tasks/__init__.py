"""The task suite shipped with phenomena-bench: one YAML spec per task, by family, and `suites.yaml`.

Read as package data (:func:`phenomena_bench.registry.shipped_tasks_dir`); this file only makes the folder a
package so `importlib.resources` finds it in any install.
"""
