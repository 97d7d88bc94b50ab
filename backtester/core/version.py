"""The package's version, in the kernel so that a module recording it (:func:`backtester.rundir.versions`)
need not import the package, whose public API imports the runner."""

__version__ = "0.1.0"
