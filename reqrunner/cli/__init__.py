"""The ``reqrunner`` console script: its parser, app loading, commands, output and the worker."""
