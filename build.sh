#!/usr/bin/env bash
# Build, test and install gtp5g-operator and its C/eBPF tracer.
#
#   ./build.sh [build|deps|test|install]     (default: build)
#
# Environment: PREFIX (default /usr/local), DESTDIR (staging root for
# packaging), CARGO (default cargo), MAKE (default make).
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")"

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
CARGO=${CARGO:-cargo}
MAKE=${MAKE:-make}

say() { printf '==> %s\n' "$*"; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

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

apt_install() {
	say "apt-get install -y $*"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; then
		# Stale package indexes give 404s; refresh once and retry.
		say "apt-get install failed; running apt-get update and retrying once"
		DEBIAN_FRONTEND=noninteractive apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
	fi
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
		apt_install "${missing[@]}"
		return 0
	fi
	if [ "$debian" = 1 ]; then
		die "missing build tools: ${missing[*]} (run as root: ./build.sh deps, or apt-get install ${missing[*]})"
	fi
	die "missing build tools: ${missing[*]} (not Debian/Ubuntu: install the equivalents with your package manager)"
}

cmd_tracer() {
	say "make -C tracer-c (BPF objects, skeletons, gtp5g-tracer, gtpu-traffic, gtp5g-flood)"
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
}

cmd_install() {
	cmd_build
	local bindir="$DESTDIR$PREFIX/bin" unitdir="$DESTDIR/etc/systemd/system"
	local confdir="$DESTDIR/etc/gtp5g-operator" statedir="$DESTDIR/var/lib/gtp5g-operator"

	say "install binaries into $bindir"
	install -d -m755 "$bindir"
	install -m755 target/release/gtp5g-operator "$bindir/gtp5g-operator"
	install -m755 tracer-c/build/gtp5g-tracer "$bindir/gtp5g-tracer"
	install -m755 tracer-c/build/gtpu-traffic "$bindir/gtpu-traffic"
	if [ -x tracer-c/build/gtp5g-flood ]; then
		install -m755 tracer-c/build/gtp5g-flood "$bindir/gtp5g-flood"
	fi

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

case "${1:-build}" in
	build) cmd_build ;;
	deps) cmd_deps ;;
	test) cmd_test ;;
	install) cmd_install ;;
	-h|--help|help)
		sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
		;;
	*) die "unknown command '$1' (build|deps|test|install)" ;;
esac
