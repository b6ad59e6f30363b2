#!/usr/bin/env bash
# Build the test image: .ci/image.sh TAG   (needs DOCKER_HOST, debootstrap, docker)
#
# No image registry is reachable, so the image is made from Debian packages
# and PyPI wheels only:
#   1. base: a debootstrap'ed bookworm root with Debian's python3 (3.11),
#      tarred once into $FLOWKIT_CI_CACHE and `docker import`ed;
#   2. on the host, pip installs flowkit (a wheel built from this checkout)
#      and its dependencies + numpy into a folder, asking for wheels for the
#      container's Python (cp311, manylinux) rather than the host's;
#   3. `docker build` COPYs that folder into the image's dist-packages.
# No RUN step: builds need no network in the container, and no pip there.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 TAG" >&2; exit 2; }
tag=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${FLOWKIT_CI_CACHE:-/var/cache/flowkit-ci}
extra=${FLOWKIT_IMAGE_EXTRA:-numpy}     # extra packages the example steps import
py=${PYTHON:-python3}                   # host Python, only used to run pip
suite=bookworm                          # Debian 12: python3 is 3.11, like the wheels
arch=$(uname -m)
# python-is-python3: the step command (SPEC §7) is `python -m flowkit ...`.
include=python3,python-is-python3
base_tar="$cache/$suite-$arch-${include//,/-}.tar"
base_tag="flowkit-ci-base:$suite-py3"

t0=$SECONDS
mkdir -p "$cache"
if [ ! -s "$base_tar" ]; then
  # Use the host's own Debian mirror (as apt is configured); if the host is
  # not bookworm, debootstrap's default mirror.
  # shellcheck disable=SC2016  # $(SITE) is apt's format, not the shell's
  mirror=$(apt-get indextargets --format '$(SITE)' 'Created-By: Packages' "Codename: $suite" 2>/dev/null | head -n1 || true)
  root=$(mktemp -d "$cache/root.XXXXXX")
  echo "debootstrap $suite into $root (about 45 s)"
  debootstrap --variant=minbase --include="$include" "$suite" "$root" ${mirror:+"$mirror"} \
    >"$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; rm -rf "$root" "$root.log"; exit 1; }
  # The .debs and package lists are useless in the image (it has no network).
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root.log"
  tar -C "$root" --numeric-owner -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"          # atomic: a killed run leaves no half tarball
  rm -rf "$root"
fi
if ! docker image inspect "$base_tag" >/dev/null 2>&1; then
  docker import "$base_tar" "$base_tag" >/dev/null
fi
echo "base image $base_tag ready ($((SECONDS - t0)) s)"

t1=$SECONDS
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# Build from a copy: an in-tree build would leave build/ and *.egg-info behind.
tar -C "$repo" --exclude=.git --exclude='.venv*' --exclude=.flowkit --exclude=build \
  --exclude=dist --exclude='*.egg-info' --exclude=__pycache__ -cf - . | (mkdir "$ctx/src" && tar -C "$ctx/src" -xf -)
"$py" -m pip wheel -qq --no-deps -w "$ctx/wheels" "$ctx/src"
# Install the wheel by its path: by name, pip would take PyPI's unrelated
# "FlowKit" project. pip compiles .pyc with the host's 3.11; the bytecode
# format is the same for every 3.11.x, so the container reuses them.
plat=()
for p in manylinux_2_36 manylinux_2_28 manylinux_2_17 manylinux2014; do plat+=(--platform "${p}_$arch"); done
# shellcheck disable=SC2086  # $extra is a list of package names
"$py" -m pip install -qq --target "$ctx/site" --only-binary=:all: \
  --python-version 3.11 --implementation cp "${plat[@]}" \
  "$ctx"/wheels/flowkit-*.whl $extra
rm -rf "$ctx/site/bin"                  # console scripts with the host's shebang
cat >"$ctx/Dockerfile" <<EOF
FROM $base_tag
COPY site /usr/local/lib/python3.11/dist-packages/
ENV PYTHONUNBUFFERED=1
CMD ["python3"]
EOF
# The legacy builder needs no buildx plugin and no network for COPY.
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null 2>"$ctx/build.log" ||
  { cat "$ctx/build.log" >&2; exit 1; }
echo "image $tag built ($((SECONDS - t1)) s)"

# Check it works the way the tests use it: no network, Debian's python.
check="import sys, blake3, dill, numpy, attrs, jinja2, networkx, docker; assert sys.version_info[:2] == (3, 11)"
# flowkit's core may not exist yet while it is being written; check it once it does.
if [ -f "$repo/flowkit/__init__.py" ]; then check="$check; import flowkit"; fi
docker run --rm --network=none "$tag" python -c "$check"
echo "image $tag verified: $(docker run --rm --network=none "$tag" python -V 2>&1)"
