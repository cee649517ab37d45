#!/usr/bin/env bash
# Build, test and install gtp5g-operator and its C/eBPF tracer.
#
#   ./build.sh [build|deps|test|install|uninstall|image|version]  (default: build)
#
# Environment: PREFIX (default /usr/local), DESTDIR (staging root for
# packaging), CARGO (default cargo), MAKE (default make). For `image`:
# IMAGE (default gtp5g-operator:<Cargo.toml version>), GTP5G_IMAGE_FROM
# (auto|source|host), RUST_IMAGE, DEBIAN_IMAGE (see cmd_image).
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
CARGO=${CARGO:-cargo}
MAKE=${MAKE:-make}

# bpftool is in /usr/sbin on Debian, which a non-root PATH may lack.
have_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

os_id() {
	if [ -r /etc/os-release ]; then
		# shellcheck disable=SC1091
		(. /etc/os-release && printf '%s %s\n' "${ID:-}" "${ID_LIKE:-}")
	fi
}

# Prints the Debian package names of what is missing. Checks look for the
# tool or header itself, not the package, so tools installed some other way
# (source builds) also count.
deps_missing() {
	local ubuntu=$1 missing=()
	have_cmd clang || missing+=(clang)
	have_cmd llvm-strip || have_cmd llvm-objdump || missing+=(llvm)
	{ pkg-config --exists libbpf 2>/dev/null || [ -r /usr/include/bpf/libbpf.h ]; } || missing+=(libbpf-dev)
	# Ubuntu's /usr/sbin/bpftool is a wrapper that fails without the
	# kernel-specific linux-tools package, so run it rather than look for it.
	if ! "$(command -v bpftool || echo /usr/sbin/bpftool)" version >/dev/null 2>&1; then
		if [ "$ubuntu" = 1 ]; then
			missing+=(linux-tools-common "linux-tools-$(uname -r)")
		else
			missing+=(bpftool)
		fi
	fi
	[ -r /usr/include/libelf.h ] || [ -r /usr/include/elfutils/libelf.h ] || missing+=(libelf-dev)
	[ -r /usr/include/zlib.h ] || missing+=(zlib1g-dev)
	have_cmd make || missing+=(make)
	have_cmd pkg-config || missing+=(pkg-config)
	have_cmd gcc || missing+=(gcc)
	printf '%s\n' "${missing[@]}"
}

cmd_deps() {
	local ids debian=0 ubuntu=0
	ids=$(os_id)
	case " $ids " in *" ubuntu "*) ubuntu=1; debian=1 ;; esac
	case " $ids " in *" debian "*) debian=1 ;; esac

	local missing
	mapfile -t missing < <(deps_missing "$ubuntu" | sed '/^$/d')
	if [ "${#missing[@]}" -eq 0 ]; then
		say "deps: all build tools present (clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make pkg-config gcc)"
		return 0
	fi
	if [ "$ubuntu" = 1 ]; then
		say "deps: on Ubuntu bpftool comes from linux-tools-common and linux-tools-$(uname -r)"
	fi
	if [ "$debian" = 1 ] && [ "$(id -u)" = 0 ]; then
		say "deps: installing missing: ${missing[*]}"
		apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
		return 0
	fi
	if [ "$debian" = 1 ]; then
		die "missing build tools: ${missing[*]} (run as root: ./build.sh deps, or apt-get install ${missing[*]})"
	fi
	die "missing build tools: ${missing[*]} (not Debian/Ubuntu: install the equivalents with your package manager)"
}

cmd_tracer() {
	say "make -C tracer-c (the tracer, its BPF objects, and the tools: ran-sim, gtpu-traffic, gtp5g-flood, gtp5g-floor)"
	"$MAKE" -C tracer-c
}

cmd_build() {
	cmd_deps
	cmd_tracer
	say "$CARGO build --release"
	"$CARGO" build --release
}

cmd_test() {
	cmd_deps
	cmd_tracer
	# The Rust tests serialise trace_pipe access themselves.
	say "$CARGO test"
	"$CARGO" test
	# The image and the Kubernetes manifests (skips without an engine,
	# saying why).
	scripts/test-container.sh
	# The units under a real systemd in a container; skips, saying why,
	# where no container engine can run (fails instead under
	# GTP5G_REQUIRE_LIVE=1).
	say "scripts/test-systemd-container.sh"
	scripts/test-systemd-container.sh
	# Stock Debian kernels in virtme-ng guests: the live and tracer tests,
	# and fentry against a gtp5g module (skips, saying why, without qemu
	# or virtme-ng; fails instead under GTP5G_REQUIRE_LIVE=1): the whole
	# matrix; GTP5G_VM_SERIES picks a part (e.g. "6.1").
	local series
	read -ra series <<<"${GTP5G_VM_SERIES:-6.1 6.12 newest 5.10}"
	say "scripts/test-vm.sh ${series[*]}"
	scripts/test-vm.sh "${series[@]}"
}

cargo_version() {
	sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1
}

# The container image (deploy/container/Containerfile), tagged IMAGE.
# GTP5G_IMAGE_FROM=source compiles both halves inside RUST_IMAGE and
# DEBIAN_IMAGE; host puts this machine's release build in the image; auto
# (default) is source when both builder images are present locally, else
# host (a machine without registry access cannot pull them).
cmd_image() {
	local version from
	version=$(cargo_version)
	IMAGE=${IMAGE:-gtp5g-operator:$version}
	RUST_IMAGE=${RUST_IMAGE:-docker.io/library/rust:1-bookworm}
	DEBIAN_IMAGE=${DEBIAN_IMAGE:-docker.io/library/debian:bookworm}
	# shellcheck source=scripts/container-lib.sh
	. scripts/container-lib.sh
	ct_engine_setup any || die "image: $CT_SKIP_REASON"
	from=${GTP5G_IMAGE_FROM:-auto}
	if [ "$from" = auto ]; then
		from=source
		local img
		for img in "$RUST_IMAGE" "$DEBIAN_IMAGE"; do
			if ! ct image inspect "$img" >/dev/null 2>&1; then
				say "image: builder image $img is not here: using binaries built on this machine (GTP5G_IMAGE_FROM=source pulls it)"
				from=host
			fi
		done
	fi
	case "$from" in
		source) image_from_source "$version" ;;
		host) image_from_host "$version" ;;
		*) die "GTP5G_IMAGE_FROM=$from: expected auto, source or host" ;;
	esac
	say "image: built $IMAGE ($(ct image inspect --format '{{.Size}}' "$IMAGE") bytes)"
}

image_from_source() {
	say "image: compiling in $RUST_IMAGE and $DEBIAN_IMAGE"
	ct build -f deploy/container/Containerfile --build-arg "VERSION=$1" \
		--build-arg "RUST_IMAGE=$RUST_IMAGE" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
		-t "$IMAGE" .
}

image_from_host() {
	cmd_build
	local ctx=${CARGO_TARGET_DIR:-target}/image-context base=$DEBIAN_IMAGE
	say "image: staging the host's release binaries in $ctx"
	rm -rf "$ctx"
	install -d "$ctx/host-bin" "$ctx/config" "$ctx/deploy/container"
	install -s -m755 "${CARGO_TARGET_DIR:-target}/release/gtp5g-operator" tracer-c/build/gtp5g-tracer "$ctx/host-bin/"
	install -m644 config/gtp5g-operator.toml "$ctx/config/"
	install -m755 deploy/container/collect-rootfs.sh "$ctx/deploy/container/"
	if ! ct image inspect "$base" >/dev/null 2>&1; then
		base=$(debian_rootfs_image localhost/gtp5g-operator-base libbpf1 libelf1 zlib1g) ||
			die "image: could not create a Debian base image"
		say "image: $DEBIAN_IMAGE is not here: created $base locally from Debian 12 packages (mmdebstrap)"
	fi
	ct build -f deploy/container/Containerfile --build-arg "VERSION=$1" --target runtime-host \
		--build-arg "DEBIAN_IMAGE=$base" -t "$IMAGE" "$ctx"
}

cmd_install() {
	cmd_build
	local bindir="$DESTDIR$PREFIX/bin" unitdir="$DESTDIR/etc/systemd/system"
	local libexecdir="$DESTDIR$PREFIX/libexec/gtp5g-operator"
	local confdir="$DESTDIR/etc/gtp5g-operator" statedir="$DESTDIR/var/lib/gtp5g-operator"

	say "install binaries into $bindir"
	install -d -m755 "$bindir"
	install -m755 target/release/gtp5g-operator "$bindir/gtp5g-operator"
	install -m755 tracer-c/build/gtp5g-tracer "$bindir/gtp5g-tracer"
	# The UERANSIM stand-in, to try an installed tracer and daemon without
	# a RAN; not a command of the product, so off PATH. The benchmark tools
	# stay in the source tree.
	say "install ran-sim into $libexecdir"
	install -d -m755 "$libexecdir"
	install -m755 tracer-c/build/ran-sim "$libexecdir/ran-sim"

	if [ -d systemd ]; then
		say "install systemd units into $unitdir"
		install -d -m755 "$unitdir"
		local unit
		for unit in systemd/*.service; do
			[ -e "$unit" ] || continue
			install -m644 "$unit" "$unitdir/$(basename "$unit")"
		done
		# The local API's environment file (its schema): never overwritten.
		local defaults="$DESTDIR/etc/default/gtp5g-local-api"
		if [ -e "$defaults" ]; then
			say "keep existing $defaults (never overwritten)"
		else
			say "install systemd/gtp5g-local-api.default as $defaults"
			install -d -m755 "$(dirname "$defaults")"
			install -m644 systemd/gtp5g-local-api.default "$defaults"
		fi
	fi

	if [ -f config/gtp5g-operator.toml ]; then
		if [ -e "$confdir/config.toml" ]; then
			say "keep existing $confdir/config.toml (never overwritten)"
		else
			say "install config/gtp5g-operator.toml as $confdir/config.toml"
			install -d -m755 "$confdir"
			install -m644 config/gtp5g-operator.toml "$confdir/config.toml"
		fi
	fi

	say "mkdir $statedir"
	install -d -m755 "$statedir"

	# Only on the live system: a DESTDIR staging tree is not loaded by systemd.
	if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
		say "systemctl daemon-reload"
		systemctl daemon-reload
	fi
}

# Undoes `install`, the operator's tracing instance included; the
# configuration and state.dir stay (delete /etc/gtp5g-operator and
# /var/lib/gtp5g-operator to purge).
cmd_uninstall() {
	local bindir="$DESTDIR$PREFIX/bin" unitdir="$DESTDIR/etc/systemd/system" unit live=
	[ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && live=1
	if [ -n "$live" ]; then
		# The operator first (its on_stop = keep leaves the boosts in force),
		# then this node's boosts cleared through the API it used, with its
		# environment file, while a local API still runs.
		systemctl stop gtp5g-operator.service 2>/dev/null || true
		if [ -x "$bindir/gtp5g-operator" ]; then
			say "gtp5g-operator api post (no pids: this node's boosts cleared)"
			(
				set -a
				# shellcheck disable=SC1091 # the installed unit's, if any
				[ ! -r /etc/gtp5g-operator/environment ] || . /etc/gtp5g-operator/environment
				"$bindir/gtp5g-operator" api post
			) || say "could not clear the boosts at the API (see above): they stay until it restarts"
		fi
		say "systemctl disable --now the gtp5g units"
		for unit in systemd/*.service; do
			systemctl disable --now "$(basename "$unit")" 2>/dev/null || true
		done
	fi
	# Only once the daemon is stopped: the kernel keeps an instance being read.
	if [ -z "$DESTDIR" ] && [ -x "$bindir/gtp5g-operator" ]; then
		say "gtp5g-operator trace-instance remove"
		"$bindir/gtp5g-operator" trace-instance remove
	fi
	say "remove binaries, ran-sim and units"
	rm -f "$bindir/gtp5g-operator" "$bindir/gtp5g-tracer"
	rm -rf "$DESTDIR$PREFIX/libexec/gtp5g-operator"
	for unit in systemd/*.service; do
		rm -f "$unitdir/$(basename "$unit")"
	done
	if [ -n "$live" ]; then systemctl daemon-reload; fi
}

case "${1:-build}" in
	build) cmd_build ;;
	deps) cmd_deps ;;
	test) cmd_test ;;
	install) cmd_install ;;
	uninstall) cmd_uninstall ;;
	image) cmd_image ;;
	version) cargo_version ;;
	-h|--help|help)
		sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
		;;
	*) die "unknown command '$1' (build|deps|test|install|uninstall|image|version)" ;;
esac
