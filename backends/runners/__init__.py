"""Runners: local, process and docker, on one scheduler state machine. Import ``execution``,
``store`` and the backends' ``base`` and ``_command``; never a compiler."""
