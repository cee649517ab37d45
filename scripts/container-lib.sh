# shellcheck shell=bash
# Shared by the container tests (sourced, not run): picks a container engine
# that can run here and builds cached Debian 12 root file system images.
#
#   . scripts/container-lib.sh
#   ct_engine_setup [podman|docker|any] || ct_skip "$CT_SKIP_REASON"
#   image=$(debian_rootfs_image localhost/gtp5g-systemd systemd systemd-sysv dbus)
#   ct run -d --privileged "$image" ...
#
# Messages go to stderr, prefixed "container-lib:"; stdout carries only
# results (the image reference). Sourcing only defines; ct_engine_setup
# sets CT_ENGINE (and CT_SKIP_REASON when there is none).

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CT_CONF=$GTP5G_REPO/scripts/containers.conf

ct_say() { printf 'container-lib: %s\n' "$*" >&2; }

# Runs the chosen engine. podman gets runc explicitly: crun is refused on
# this machine's cgroup layout (also set in scripts/containers.conf).
ct() {
	case "${CT_ENGINE:-}" in
		podman) podman --runtime runc "$@" ;;
		docker) docker "$@" ;;
		*) ct_say "ct: no engine (call ct_engine_setup first)"; return 1 ;;
	esac
}

# A skip where no engine can run; a failure when GTP5G_REQUIRE_LIVE=1 says
# this machine must run it (CI).
ct_skip() {
	if [ "${GTP5G_REQUIRE_LIVE:-0}" = 1 ]; then
		printf '%s: FAILED (GTP5G_REQUIRE_LIVE=1 forbids skipping): %s\n' "$(basename "$0")" "$*" >&2
		exit 1
	fi
	printf '%s: skipped: %s\n' "$(basename "$0")" "$*" >&2
	exit 0
}

ct_podman_works() {
	command -v podman >/dev/null && command -v runc >/dev/null &&
		CONTAINERS_CONF=$CT_CONF podman --runtime runc info >/dev/null 2>&1
}

# A docker client alone is not an engine: the daemon has to answer.
ct_docker_works() {
	command -v docker >/dev/null && docker info >/dev/null 2>&1
}

ct_use_podman() {
	export CONTAINERS_CONF=$CT_CONF
	CT_ENGINE=podman
	ct_say "engine: podman $(podman --version | awk '{print $3}') with runc, CONTAINERS_CONF=$CONTAINERS_CONF"
}

# Sets CT_ENGINE to a working engine, installing podman + runc when neither
# works and this is root on Debian. Returns 1 with CT_SKIP_REASON set when
# no engine can run. WANT: podman, docker or any (default; podman first).
# shellcheck disable=SC2034 # CT_SKIP_REASON is for the caller
ct_engine_setup() {
	local want=${1:-any}
	if [ "$want" != docker ] && ct_podman_works; then
		ct_use_podman
		return 0
	fi
	if [ "$want" != podman ] && ct_docker_works; then
		CT_ENGINE=docker
		ct_say "engine: docker (daemon answers)"
		return 0
	fi
	if [ "$want" != docker ] && is_debian_root; then
		ct_say "no working container engine; installing podman and runc"
		if apt_install podman runc && ct_podman_works; then
			ct_use_podman
			return 0
		fi
		CT_SKIP_REASON="podman and runc installed but 'podman info' fails"
		return 1
	fi
	CT_SKIP_REASON="no working container engine (want $want): install podman and runc (root on Debian: this script does)"
	return 1
}

# Prints NAME:bookworm-<hash of the sorted package list>, the image of a
# Debian 12 minbase root file system with PACKAGES, building and importing
# it (mmdebstrap, about 30 s on an idle machine) only when that tag is
# missing. A changed package list is a new tag, hence a rebuild. Parallel
# callers for the same tag wait for one build (flock).
debian_rootfs_image() {
	local name=$1
	shift
	local packages hash ref lock
	packages=$(printf '%s\n' "$@" | sort -u | paste -sd, -)
	hash=$(printf '%s' "$packages" | sha256sum | cut -c1-12)
	ref="$name:bookworm-$hash"
	lock=/tmp/gtp5g-operator-rootfs-$hash.lock
	(
		flock 8
		if ct image inspect "$ref" >/dev/null 2>&1; then
			ct_say "image $ref cached (packages: $packages)"
			exit 0
		fi
		if ! command -v mmdebstrap >/dev/null; then
			is_debian_root || { ct_say "mmdebstrap missing (apt-get install mmdebstrap)"; exit 1; }
			apt_install mmdebstrap || exit 1
		fi
		ct_say "building $ref: mmdebstrap --variant=minbase --include=$packages bookworm (about 30 s)"
		local started=$SECONDS
		set -o pipefail
		mmdebstrap --quiet --variant=minbase --include="$packages" bookworm - |
			ct import --change "LABEL gtp5g.packages=$packages" - "$ref" >/dev/null ||
			{ ct_say "building $ref failed"; exit 1; }
		ct_say "built $ref in $((SECONDS - started)) s"
	) 8>"$lock" || return 1
	printf '%s\n' "$ref"
}
