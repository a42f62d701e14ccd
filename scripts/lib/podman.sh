# shellcheck shell=bash
# Shell helpers shared by scripts/base-image, scripts/image and
# scripts/cluster. Source it; it defines functions and exports
# CONTAINERS_CONF.
#
#   podman_ready      installs podman, runc and mmdebstrap with apt-get when
#                     one is missing (root, or sudo), then checks that podman
#                     answers
#   need_tool BIN PKG apt-get installs PKG when BIN is missing
#
# podman reads only deploy/podman/containers.conf (CONTAINERS_CONF): runc
# with cgroupfs (crun refuses this kind of machine's hybrid cgroups) and no
# default ulimits (podman's default RLIMIT_NPROC/RLIMIT_NOFILE cannot be
# set here). Export CONTAINERS_CONF yourself to use another file.

_podman_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$_podman_root/deploy/podman/containers.conf}

_sudo=()
[[ $(id -u) -ne 0 ]] && _sudo=(sudo)

# apt-get update runs once per script, and only when something is missing.
_apt_updated=
_apt_install() {
  local log
  log=$(mktemp)
  if [[ -z $_apt_updated ]]; then
    "${_sudo[@]}" apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; return 1; }
    _apt_updated=1
  fi
  if ! DEBIAN_FRONTEND=noninteractive "${_sudo[@]}" apt-get install -y -qq "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "apt-get install $* failed" >&2
    return 1
  fi
  rm -f "$log"
}

need_tool() { # need_tool BINARY PACKAGE
  command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 ]] && return 0
  echo "==> installing $2 (apt-get)" >&2
  _apt_install "$2"
}

podman_ready() {
  local missing=() bin
  for bin in podman runc mmdebstrap; do
    command -v "$bin" >/dev/null 2>&1 || [[ -x /usr/sbin/$bin ]] || missing+=("$bin")
  done
  if ((${#missing[@]} > 0)); then
    # Debian's podman brings netavark and aardvark-dns (networks whose
    # containers find each other by name) and buildah (podman build).
    echo "==> installing ${missing[*]} (apt-get)" >&2
    _apt_install podman runc mmdebstrap
  fi
  podman info --format '{{.Host.OCIRuntime.Name}}' >/dev/null 2>&1 || {
    podman info >&2
    echo "podman does not work here (CONTAINERS_CONF=$CONTAINERS_CONF)" >&2
    return 1
  }
}
