"""Benchmarks: each case runs our implementation and the obvious alternative side by side, in one process,
and reports both times, their ratio and the largest difference between outputs. Run all with
``python -m benchmarks`` (or ``make bench``); results land in ``benchmarks/results/``.
"""
