"""One Jinja2 environment for every target: strict, unescaped, with one escaping filter per language.

Templates hold loops and ifs; every value reaches generated code through ``pyrepr`` (Python),
``tojson`` (JSON and YAML), or ``shquote`` (POSIX shell), never raw.
"""

from __future__ import annotations

import functools
import json
import shlex
from typing import Any

import jinja2


def pyrepr(value: Any) -> str:
    """A Python literal that evaluates to ``value`` (str, numbers, bool, None, lists, dicts)."""
    return repr(value)


def tojson(value: Any) -> str:
    """Deterministic JSON; ASCII only, so it is also a safe YAML flow scalar."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def shquote(value: Any) -> str:
    """One shell word, whatever the value holds."""
    return shlex.quote(str(value))


@functools.lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flowkit.templates", "."),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pyrepr=pyrepr, tojson=tojson, shquote=shquote)
    return env


def render(template: str, **context: Any) -> str:
    """Render ``<target>/<name>.j2`` with ``context``."""
    return environment().get_template(template).render(**context)
