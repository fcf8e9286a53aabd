"""Corral executor: the daemon, the in-container runner and the restricted interpreter.

`executor.interpreter` and `executor.runner` import only the standard library
and RestrictedPython: they are copied into the sandbox image. Everything else
in this package runs on the host.
"""
