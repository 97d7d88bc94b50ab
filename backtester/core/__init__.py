"""The kernel: what every layer above uses and that imports nothing of ours.

``series`` (the RV bars as arrays), ``schedule`` (retrain calendars and windows), ``targets``
(scaled-target transforms), ``scores`` (the per-row losses), ``errors`` (every error class),
``validation`` (config messages), ``types`` (config value types), ``filters``, ``atomic`` (atomic
writes) and ``interrupt`` (Ctrl-C and exit codes). ``strategies`` imports only this package of
``backtester``.
"""
