"""The store: the only code that names a path under a store root, over a few primitive file
operations (``fs``). Imports ``keys``, ``authoring`` and ``errors``; never the runtime."""

from flowkit.store.objects import StoredOutput
from flowkit.store.store import Store, open_store, store_path

__all__ = ["Store", "StoredOutput", "open_store", "store_path"]
