"""How a cache key is made, pure (no I/O, no store): value fingerprints, code fingerprints, the
typed key parts and their digest. Imports ``authoring``, ``graph`` and ``errors`` only."""

from flowkit.keys import code as _code  # noqa: F401 - registers how functions passed as values are fingerprinted
from flowkit.keys import prebuilt as _prebuilt  # noqa: F401,E402 - registers the prebuilt steps' inputs
