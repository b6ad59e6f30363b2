"""Where everything lives under a store's root: the one module that names paths in a store.

::

    objects/ab/<blake3 of the bytes>       serialized outputs over 2 KiB (smaller ones are inline in
                                             the records), verified on every read
    keys/ab/<cache key>.json                 key parts + output of one step execution
    sources/ab/<code digest>.json            normalized source of one function a key names (explain)
    manifests/ab/<object id>.json            the files an output names (it held fk.File / fk.Dir): their objects
    files/<digest>/<name>                    such a file or folder, restored from its objects for a step to read
    runs/<run id>/run.json                   flow, params, node list (written once at start)
    runs/<run id>/nodes/<node>.json          one node's outcome, from run-step (one process per node)
    runs/<run id>/batches/<time>-<pid>.json  node outcomes of in-process runners, written in batches
    runs/<run id>/end.json                   final status (written once at the end)
    runs/<run id>/logs/<node>.log            what a step printed (stdout and stderr), once it ended
    runs/<run id>/logs/<node>.live           the same while the step runs (or after it was killed)
    runs/<run id>/heartbeat                  touched while the run's process lives (seen from other hosts)
    bundles/<digest>/                        a code bundle, unpacked (``compile --bundle``)
    trash/<run id>-<hex>/                    a run ``gc`` is removing (moved here first, in one rename)
    index.sqlite                             history index, rebuilt from the records by reindex
    index.sqlite.rebuild-<pid>-<hex>         an index being rebuilt aside, then swapped in

Files being written are ``.<name>.tmp-<pid>-<hex>`` beside their real name (``fs.atomic_write``).
"""

from __future__ import annotations

from urllib.parse import quote

OBJECTS, KEYS, RUNS, BUNDLES, TRASH = "objects", "keys", "runs", "bundles", "trash"
SOURCES = "sources"
MANIFESTS, FILES = "manifests", "files"
INDEX = "index.sqlite"
INDEX_FILES = (INDEX, f"{INDEX}-wal", f"{INDEX}-shm")
TOP_LEVEL = (OBJECTS, KEYS, SOURCES, MANIFESTS, FILES, RUNS, TRASH, *INDEX_FILES)  # what `cache clear` removes
INDEX_ASIDE = f"{INDEX}.rebuild-"  # prefix of an index being rebuilt (a killed reindex leaves one)


def index_aside(tag: str) -> str:
    return f"{INDEX_ASIDE}{tag}"


def object_path(object_id: str) -> str:
    return f"{OBJECTS}/{object_id[:2]}/{object_id}"


def key_path(key: str) -> str:
    return f"{KEYS}/{key[:2]}/{key}.json"


def is_key_path(path: str) -> bool:
    return path.startswith(f"{KEYS}/") and path.endswith(".json") and path.count("/") == 2


def source_path(digest: str) -> str:
    return f"{SOURCES}/{digest[:2]}/{digest}.json"


def source_digest(path: str) -> str | None:
    """The code digest a file under ``sources/`` is named by; None for any other file."""
    if not (path.startswith(f"{SOURCES}/") and path.endswith(".json") and path.count("/") == 2):
        return None
    return path.rsplit("/", 1)[1].removesuffix(".json")


def manifest_path(object_id: str) -> str:
    return f"{MANIFESTS}/{object_id[:2]}/{object_id}.json"


def manifest_object(path: str) -> str | None:
    """The output object a file under ``manifests/`` is named by; None for any other file."""
    if not (path.startswith(f"{MANIFESTS}/") and path.endswith(".json") and path.count("/") == 2):
        return None
    return path.rsplit("/", 1)[1].removesuffix(".json")


def restored_folder(digest: str) -> str:
    return f"{FILES}/{digest}"


def restored_path(digest: str, name: str) -> str:
    return f"{FILES}/{digest}/{name}"


def run_folder(run_id: str) -> str:
    return f"{RUNS}/{run_id}"


def trash_folder(run_id: str, tag: str) -> str:
    return f"{TRASH}/{run_id}-{tag}"


def run_header_path(run_id: str) -> str:
    return f"{RUNS}/{run_id}/run.json"


def run_end_path(run_id: str) -> str:
    return f"{RUNS}/{run_id}/end.json"


def run_heartbeat_path(run_id: str) -> str:
    return f"{RUNS}/{run_id}/heartbeat"


def node_filename(name: str) -> str:
    """A node name as a safe, reversible file name (names may hold any character)."""
    return quote(name, safe="-_") + ".json"


def nodes_folder(run_id: str) -> str:
    return f"{RUNS}/{run_id}/nodes"


def node_path(run_id: str, node: str) -> str:
    return f"{RUNS}/{run_id}/nodes/{node_filename(node)}"


def log_path(run_id: str, node: str, *, live: bool = False) -> str:
    return f"{RUNS}/{run_id}/logs/{node_filename(node).removesuffix('.json')}.{'live' if live else 'log'}"


def batches_folder(run_id: str) -> str:
    return f"{RUNS}/{run_id}/batches"


def batch_path(run_id: str, name: str) -> str:
    return f"{RUNS}/{run_id}/batches/{name}.json"


def bundle_folder(digest: str) -> str:
    return f"{BUNDLES}/{digest}"
