"""Jinja2 templates, one folder per compiled target (import name flowkit.templates)."""
