"""Compilers: airflow, argo and shell, pure (they return text), with their checks and Jinja2
rendering. Import ``graph``, ``keys``, ``authoring`` and the backends' ``base``; never a runner."""
