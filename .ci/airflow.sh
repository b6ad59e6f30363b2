#!/usr/bin/env bash
# Airflow virtualenv for the consumer tests: .ci/airflow.sh VERSION DEST
#
# One venv per Airflow version, installed with Airflow's own constraints file
# (from ../shared/airflow beside the repo), plus this flowkit checkout
# (editable): compiled DAG tasks run `python -m flowkit run-step` with this
# venv's interpreter, so flowkit must import there next to Airflow.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 VERSION DEST" >&2; exit 2; }
version=$1
dest=$(realpath -m "$2")
repo=$(cd "$(dirname "$0")/.." && pwd)
constraints="$(dirname "$repo")/shared/airflow/constraints-$version.txt"
[ -f "$constraints" ] || { echo "no constraints file: $constraints" >&2; exit 1; }
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# -qq: errors only (the machine's pip config adds noisy "is ignored" warnings).
pip=("$dest/bin/python" -m pip -qq)

# The check also used as the cache test: this Airflow version, and flowkit
# installed from this checkout. `import flowkit` only once the core exists.
check() {
  # -I: not the cwd on sys.path, where a flowkit.egg-info may sit.
  "$dest/bin/python" -I - "$version" "$repo" <<'EOF'
import importlib.metadata as md, json, os, sys
version, repo = sys.argv[1:]
assert md.version("apache-airflow") == version, md.version("apache-airflow")
url = json.loads(md.distribution("flowkit").read_text("direct_url.json") or "{}").get("url", "")
assert url == "file://" + repo, f"flowkit installed from {url!r}, not {repo}"
import airflow
if os.path.exists(os.path.join(repo, "flowkit", "__init__.py")):
    import flowkit
EOF
}

if [ -x "$dest/bin/python" ] && check 2>/dev/null; then
  echo "airflow $version already in $dest: skipped"
  exit 0
fi

rm -rf "$dest"
python3 -m venv "$dest"
"${pip[@]}" install "apache-airflow==$version" -c "$constraints"
# Under the same constraints, so flowkit's dependencies can never move one of
# Airflow's pins (checked for 2.11.2 and 3.3.2: attrs, jinja2 and dill are
# pinned within flowkit's ranges; networkx, docker, blake3 are not pinned).
if ! "${pip[@]}" install -e "$repo" -c "$constraints"; then
  # A pin outside flowkit's range: keep Airflow's pins, add flowkit without
  # its dependencies, then the dependencies Airflow does not pin, and let
  # `pip check` say which requirement is left unmet.
  echo "flowkit's requirements clash with Airflow $version's constraints; installing with --no-deps" >&2
  "${pip[@]}" install --no-deps -e "$repo"
  mapfile -t deps < <("$dest/bin/python" - "$repo/pyproject.toml" "$constraints" <<'EOF'
import re, sys, tomllib
deps = tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
pinned = {norm(l.split("==")[0]) for l in open(sys.argv[2]) if "==" in l}
for d in deps:
    if norm(re.match(r"[A-Za-z0-9._-]+", d).group()) not in pinned:
        print(d)
EOF
)
  [ ${#deps[@]} -eq 0 ] || "${pip[@]}" install -c "$constraints" "${deps[@]}"
  "$dest/bin/python" -m pip check >&2 || true
fi
check
echo "airflow $version in $dest: $("$dest/bin/python" -c 'import airflow; print(airflow.__version__)')"
