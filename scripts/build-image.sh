#!/usr/bin/env bash
# Builds the l5d-twisted container image without Docker: the one definition of the image
# (the chart's pods, the sample app and the `helm test` pods all run it).
#
#   sudo bash scripts/build-image.sh
#
# Makes dist/l5d-twisted-<version>.oci.tar (an OCI image archive: `skopeo copy
# oci-archive:...` to a registry keeps its digest), dist/l5d-twisted-<version>.docker.tar
# (the same image in `docker save` format, for `kind load image-archive`, `minikube image
# load`, `k3s ctr images import`) and, when podman is installed, the local image
# localhost/l5d-twisted:<version> (the chart's default).
# Prints the manifest digest and the sizes.  Needs root (or sudo) and Debian's mmdebstrap,
# buildah and skopeo (scripts/setup.sh installs them); see docs/cluster.md.
#
# What is in it: Debian bookworm minbase with python3 and ca-certificates, and a venv in
# /opt/l5d holding exactly the packages of requirements/image.lock (installed with
# `pip install --require-hashes`, wheels only) plus the project's own wheel built from this
# work tree.  No pip, setuptools, apt, compilers, docs or man pages.  It runs as
# uid/gid 10001 (the chart's runAsUser), entrypoint `l5d-twisted`, working directory /tmp.
#
# Reproducible: SOURCE_DATE_EPOCH (default: the time of the last commit) fixes every file
# time and the image's creation time, byte code is compiled with fixed hashes, and logs
# and caches that carry times are removed; two builds from the same tree and the same
# Debian mirror state give the same manifest digest (tests/image checks it).
#
# Environment: SOURCE_DATE_EPOCH, IMAGE_NAME (default localhost/l5d-twisted),
# L5D_IMAGE_WORK (work folder, default build/image; it keeps .deb and wheel caches for the
# next build), L5D_IMAGE_NO_LOAD=1 (do not load it into podman's storage).
set -euo pipefail

if [ "${1:-}" = "--customize-rootfs" ]; then
  # Run by mmdebstrap inside the build (as a --customize-hook): $2 is the root filesystem.
  root=$2
  mkdir -p "$root/tmp/wheels"
  cp "$L5D_IMAGE_WORK"/wheels/*.whl "$L5D_IMAGE_WORK/image.lock" "$root/tmp/wheels/"
  # A clean environment: no PIP_* settings of the machine building it leak in.
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 /bin/sh -euc '
    export PYTHONHASHSEED=0 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
    python3 -m venv /opt/l5d
    /opt/l5d/bin/python -m pip install -q --no-index --find-links /tmp/wheels --no-compile \
      --require-hashes --no-deps --only-binary :all: -r /tmp/wheels/image.lock
    /opt/l5d/bin/python -m pip install -q --no-index --no-compile --no-deps /tmp/wheels/l5d_twisted-*.whl
    /opt/l5d/bin/python -m pip uninstall -q -y pip setuptools
    # Tools only the build needed: the venv creation and apt, with what only they use.
    apt-get purge -y -qq --allow-remove-essential --autoremove \
      apt python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl >/dev/null 2>&1
    rm -rf /tmp/wheels
    # Byte code for a read-only root filesystem: compiled once, checked by nothing (the
    # image never changes), the same bytes every build.
    find /usr/lib/python3* /opt/l5d -name "*.pyc" -delete
    python3 -m compileall -q -j 1 --invalidation-mode unchecked-hash /usr/lib/python3.11 /opt/l5d/lib >/dev/null
    # A fixed uid/gid, so Kubernetes runAsNonRoot can check it without /etc/passwd.
    echo "l5d:x:10001:10001:l5d-twisted:/nonexistent:/usr/sbin/nologin" >>/etc/passwd
    echo "l5d:x:10001:" >>/etc/group
    echo "l5d:!:::::::" >>/etc/shadow
  '
  # Things that carry the build time or only serve a package manager.
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/usr/share/common-licenses \
    "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
    "$root"/var/lib/dpkg/*-old "$root"/var/cache/ldconfig/aux-cache "$root"/var/log/* \
    "$root"/etc/machine-id "$root"/var/lib/dbus/machine-id "$root"/tmp/* \
    "$root"/usr/lib/python3.11/ensurepip "$root"/usr/lib/python3.11/lib2to3 \
    "$root"/usr/lib/python3.11/pydoc_data "$root"/usr/lib/python3.11/idlelib \
    "$root"/usr/lib/python3.11/tkinter "$root"/usr/lib/python3.11/turtledemo
  find "$root/opt/l5d" -depth -type d \( -name tests -o -name test \) -path "*/site-packages/*" -exec rm -rf {} +
  exit 0
fi

cd "$(dirname "$0")/.."
REPO=$PWD
[ "$(id -u)" = 0 ] || { echo "build-image: run as root (sudo bash scripts/build-image.sh): mmdebstrap and buildah need it" >&2; exit 1; }
for tool in mmdebstrap buildah skopeo git python3; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is missing (bash scripts/setup.sh installs it)" >&2; exit 1; }
done

VERSION=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' l5d_twisted/__init__.py)
IMAGE_NAME=${IMAGE_NAME:-localhost/l5d-twisted}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export SOURCE_DATE_EPOCH
export L5D_IMAGE_WORK=${L5D_IMAGE_WORK:-$REPO/build/image}
ARCHIVE=$REPO/dist/l5d-twisted-$VERSION.oci.tar
DOCKER_ARCHIVE=$REPO/dist/l5d-twisted-$VERSION.docker.tar
DEB_ARCH=$(dpkg --print-architecture)
case "$DEB_ARCH" in
  amd64) PY_ARCH=x86_64 ;;
  arm64) PY_ARCH=aarch64 ;;
  *) echo "build-image: no wheels for $DEB_ARCH" >&2; exit 1 ;;
esac
started=$(date +%s)
# pip's notes about this machine's own pip settings (find-links, root user) are noise here.
quiet() { grep -v -e "^WARNING: Location" -e "Running pip as the 'root'" -e "^WARNING: Running pip" || true; }
mkdir -p "$L5D_IMAGE_WORK/debs" "$L5D_IMAGE_WORK/wheels" "$REPO/dist"
echo "build-image: l5d-twisted $VERSION for $DEB_ARCH, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"

# 1. Wheels: the lock's (hash-checked, for bookworm's CPython 3.11, glibc 2.36) and the project's.
platforms=(--platform "manylinux2014_$PY_ARCH")
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_$PY_ARCH"); done
rm -f "$L5D_IMAGE_WORK"/wheels/l5d_twisted-*.whl
python3 -m pip download -q --disable-pip-version-check --dest "$L5D_IMAGE_WORK/wheels" \
  --require-hashes --no-deps --only-binary :all: "${platforms[@]}" \
  --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
  -r requirements/image.lock 2>&1 | quiet
cp requirements/image.lock "$L5D_IMAGE_WORK/image.lock"
src=$L5D_IMAGE_WORK/src
rm -rf "$src" && mkdir -p "$src"
# The files the wheel is built from (tracked or new, never ignored ones such as __pycache__).
git ls-files -z --cached --others --exclude-standard -- setup.py pyproject.toml README.md l5d_twisted \
  | xargs -0 cp --parents -t "$src"
# Built by the pinned backend of requirements/build.lock, in a venv of the build's own.
[ -x "$L5D_IMAGE_WORK/buildenv/bin/python" ] || python3 -m venv "$L5D_IMAGE_WORK/buildenv"
"$L5D_IMAGE_WORK/buildenv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes \
  -r requirements/build.lock 2>&1 | quiet
"$L5D_IMAGE_WORK/buildenv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps \
  --no-build-isolation --wheel-dir "$L5D_IMAGE_WORK/wheels" "$src" 2>&1 | quiet
ls "$L5D_IMAGE_WORK"/wheels/l5d_twisted-"$VERSION"-*.whl >/dev/null

# 2. The root filesystem, from the Debian mirror apt uses here (.debs cached between builds).
mirror=/etc/apt/sources.list.d/debian.sources
if ! grep -qs bookworm "$mirror"; then
  mirror="deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main"
fi
rootfs=$L5D_IMAGE_WORK/rootfs.tar
mmdebstrap --quiet --variant=minbase --architectures="$DEB_ARCH" \
  --include=python3,python3-venv,ca-certificates \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --skip=download/empty --skip=essential/unlink \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
  --setup-hook="sync-in $L5D_IMAGE_WORK/debs /var/cache/apt/archives/" \
  --customize-hook="sync-out /var/cache/apt/archives $L5D_IMAGE_WORK/debs" \
  --customize-hook="bash $REPO/scripts/build-image.sh --customize-rootfs \"\$1\"" \
  bookworm "$rootfs" "$mirror"

# 3. The image: one layer, its config, every time set to SOURCE_DATE_EPOCH.
store=(--root "$L5D_IMAGE_WORK/storage" --runroot "$L5D_IMAGE_WORK/run" --storage-driver vfs)
trap 'buildah "${store[@]}" rm --all >/dev/null 2>&1 || true; rm -rf "$L5D_IMAGE_WORK/storage" "$L5D_IMAGE_WORK/run"' EXIT
ctr=$(buildah "${store[@]}" from scratch)
buildah "${store[@]}" add --quiet "$ctr" "$rootfs" /
buildah "${store[@]}" config \
  --entrypoint '["l5d-twisted"]' --cmd '["run", "/config/linkerd.yaml"]' \
  --user 10001:10001 --workingdir /tmp \
  --port 4140 --port 4141 --port 9990 \
  --env PATH=/opt/l5d/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1 \
  --label org.opencontainers.image.title=l5d-twisted \
  --label "org.opencontainers.image.description=A linkerd 1.x style service mesh proxy on the Twisted reactor" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.revision=$(git rev-parse HEAD)" \
  "$ctr"
buildah "${store[@]}" commit --quiet --rm --format oci --timestamp "$SOURCE_DATE_EPOCH" "$ctr" "$IMAGE_NAME:$VERSION" >/dev/null
rm -f "$ARCHIVE"
buildah "${store[@]}" push --quiet "$IMAGE_NAME:$VERSION" "oci-archive:$ARCHIVE:$IMAGE_NAME:$VERSION"

# The same image as `docker save` would write it (tagged, uncompressed layers): the form
# `kind load image-archive`, `minikube image load` and `k3s ctr images import` document.
rm -f "$DOCKER_ARCHIVE"
skopeo copy --quiet "oci-archive:$ARCHIVE" "docker-archive:$DOCKER_ARCHIVE:$IMAGE_NAME:$VERSION"
digest=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$ARCHIVE")
if [ "${L5D_IMAGE_NO_LOAD:-0}" != 1 ] && command -v podman >/dev/null; then
  previous=$(podman --events-backend file image inspect --format '{{.Id}}' "$IMAGE_NAME:$VERSION" 2>/dev/null || true)
  skopeo copy --quiet "oci-archive:$ARCHIVE" "containers-storage:$IMAGE_NAME:$VERSION"
  # The build it replaces, now untagged, goes (unless a container still uses it).
  current=$(podman --events-backend file image inspect --format '{{.Id}}' "$IMAGE_NAME:$VERSION")
  if [ -n "$previous" ] && [ "$previous" != "$current" ]; then podman --events-backend file rmi "$previous" >/dev/null 2>&1 || true; fi
  echo "build-image: loaded $IMAGE_NAME:$VERSION into podman's storage"
fi
echo "build-image: archive  $ARCHIVE (OCI; for registries: skopeo copy keeps the digest)"
echo "build-image: archive  $DOCKER_ARCHIVE (docker save format; for kind, minikube, k3s)"
echo "build-image: image    $IMAGE_NAME:$VERSION"
echo "build-image: digest   $digest"
echo "build-image: size     $(stat -c %s "$ARCHIVE") bytes compressed, $(stat -c %s "$rootfs") bytes unpacked (root filesystem tar)"
echo "build-image: took     $(($(date +%s) - started)) s"
