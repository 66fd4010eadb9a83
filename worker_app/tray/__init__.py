"""The tray app: a thin Qt view over the worker core. Only this package imports Qt."""
