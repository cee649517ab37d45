#!/usr/bin/env bash
# The VM test bed: boots stock Debian kernels with virtme-ng over this
# machine's root file system and runs the project's tests inside each guest
# against this machine's build outputs, then gtp5g-tracer's fentry mode
# against a gtp5g module (the test stand-in in tests/vm/gtp5g-standin, or
# GTP5G_KO's). See docs/TESTING.md.
#
#   scripts/test-vm.sh [SERIES...]     (default: 6.1 6.12 newest 5.10)
#
# SERIES: 6.1 and 6.12 (bookworm), newest (the newest amd64 kernel in the
# lists: sid's) and 5.10 (bullseye). Each is the newest version of the
# series in the package lists, downloaded and extracted, never installed.
#
# Environment:
#   GTP5G_VM_CACHE     kernels, packages, lists (default /var/cache/gtp5g-operator/vm)
#   GTP5G_KO=FILE      load this gtp5g module (a real one, built with module
#                      BTF for the kernel it names) instead of the stand-in;
#                      tests/vm/gtp5g-link gives it a UPF's N3 socket, link
#                      and session
#   GTP5G_VM_ACCEL     auto (default: KVM when a guest really boots), kvm or tcg
#   GTP5G_VM_TIMEOUT_S one guest's limit (default 900)
#   GTP5G_REQUIRE_LIVE=1  a missing tool, kernel or module build fails
#                      (naming it) instead of skipping
set -euo pipefail

cd "$(dirname "$(readlink -f "$0")")/.."
REPO=$PWD
VM_CACHE=${GTP5G_VM_CACHE:-/var/cache/gtp5g-operator/vm}
# One guest's last-resort limit: inside, every test binary, tracer start
# and stop is bounded (scripts/vm/guest.sh), so a hang ends as a failed step
# with its output well before this; a slow, loaded host (a quiet 6.1 guest
# takes 2-4 minutes, twice that at load 6) still finishes, and a guest
# spinning in its kernel leaves .ci/run time to report it.
TIMEOUT_S=${GTP5G_VM_TIMEOUT_S:-900}
RUNS=${CARGO_TARGET_DIR:-$REPO/target}/vm-test
# Where the stand-in must build: the kernels the fentry tests need.
STANDIN_REQUIRED="6.1 6.12"
# Where the cargo tests run; on 5.10 only the tracer's fentry fallback is
# checked, which keeps .ci/run in its time.
CARGO_TESTS_ON="6.1 6.12 newest"

say() { printf '==> test-vm: %s\n' "$*"; }

# Fails under GTP5G_REQUIRE_LIVE=1, else says why it skips.
skip_or_fail() {
	if [ "${GTP5G_REQUIRE_LIVE:-}" = 1 ]; then
		printf 'test-vm: error: GTP5G_REQUIRE_LIVE=1 but %s\n' "$*" >&2
		exit 1
	fi
	say "skipped: $*"
}

# shellcheck source=scripts/vm/kernels.sh
. scripts/vm/kernels.sh

missing_tools() {
	local tool
	for tool in qemu-system-x86_64 vng apt-get dpkg-deb depmod modinfo python3 make gcc pahole; do
		command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || echo "$tool"
	done
	# virtme-ng builds its initramfs with a static busybox.
	[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || echo busybox-static
}

# The cargo test binaries run in the guest (netdev live and tracer tests).
test_binaries() {
	cargo test --no-run --message-format=json --test live --test tracer 2>/dev/null |
		python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
'
}

# virtme-ng serves the guest's /lib/modules/REL from the host's: a link to
# the extraction, which boot_guest also hands to the guest (the guest's
# /var/cache is a tmpfs).
link_modules() {
	local root=$1 rel=$2
	mkdir -p /lib/modules
	if [ -L "/lib/modules/$rel" ] || [ ! -e "/lib/modules/$rel" ]; then
		ln -sfn "$root/lib/modules/$rel" "/lib/modules/$rel"
	fi
}

# The headers of an extraction name their -common part by an absolute
# /usr/src path; Kbuild skips module BTF without a vmlinux (its BTF is
# enough: pahole reads it as the base).
prepare_headers() {
	local root=$1 rel=$2 hdr
	hdr=$root/usr/src/linux-headers-$rel
	[ -d "$hdr" ] || return 1
	sed -i "s| /usr/src/| $root/usr/src/|; s|=/usr/src/|=$root/usr/src/|" "$hdr/Makefile"
	[ -s "$hdr/vmlinux" ] || scripts/vm/vmlinux-btf.py "$(kernel_image "$root" "$rel")" "$hdr/vmlinux"
	echo "$hdr"
}

# The compiler the kernel was built with (gcc-N), from its headers.
kernel_cc() {
	sed -n 's/^CC = .*)gcc-\([0-9]*\)$/gcc-\1/p' "$1/.kernelvariables" 2>/dev/null
}

# Builds the stand-in for REL into DIR; prints the .ko. The headers ship no
# resolve_btfids, which the module does not need (no BTF_ID sets). Without
# the kernel's own gcc-N, this machine's gcc is tried (it works for 5.10's
# gcc-10; a newer kernel's flags may be unknown to an older gcc).
build_standin() {
	local root=$1 rel=$2 out=$3 hdr cc opts=()
	hdr=$(prepare_headers "$root" "$rel") || { echo "no headers for $rel" >"$out/standin.log"; return 1; }
	cc=$(kernel_cc "$hdr")
	if [ -n "$cc" ] && ! command -v "$cc" >/dev/null; then
		say "$rel was built with $cc, absent here: building the stand-in with gcc" >&2
		opts+=(CC=gcc)
	fi
	rm -rf "$out/standin"
	cp -r tests/vm/gtp5g-standin "$out/standin"
	make -s -C "$hdr" M="$out/standin" RESOLVE_BTFIDS=true "${opts[@]}" modules >"$out/standin.log" 2>&1 || {
		tail -n 5 "$out/standin.log" >&2
		return 1
	}
	echo "$out/standin/gtp5g.ko"
}

# A real gtp5g gets its N3 socket and link from a UPF: the test tool that
# plays that part, built per run next to the module it serves (the guest
# runs it; the host only compiles).
build_link_tool() {
	local out=$1
	make -s -C tests/vm/gtp5g-link O="$out" >"$out/gtp5g-link.log" 2>&1 || {
		cat "$out/gtp5g-link.log" >&2
		return 1
	}
	echo "$out/gtp5g-link"
}

# KVM only when a guest really boots with it: here /dev/kvm exists, yet a
# KVM guest hangs at kernel entry. The answer is kept per host kernel and
# qemu (a probe costs its whole timeout when KVM hangs).
probe_accel() {
	local root=$1 rel=$2 dir stamp
	case "${GTP5G_VM_ACCEL:-auto}" in
		kvm | tcg) echo "$GTP5G_VM_ACCEL"; return ;;
	esac
	[ -w /dev/kvm ] || { echo tcg; return; }
	stamp=$VM_CACHE/accel-$(uname -r)-$(qemu-system-x86_64 --version | sed -n '1s/[^0-9.]*\([0-9.]*\).*/\1/p')
	if [ ! -s "$stamp" ]; then
		dir=$(mktemp -d)
		timeout -k 5 "${GTP5G_VM_KVM_PROBE_S:-30}" vng -r "$(kernel_image "$root" "$rel")" \
			--rodir "$root/lib/modules" --rwdir "$dir" -- "touch $dir/booted" \
			>/dev/null 2>&1 </dev/null || true
		if [ -e "$dir/booted" ]; then echo kvm; else echo tcg; fi >"$stamp"
		rm -rf "$dir"
	fi
	cat "$stamp"
}

# Boots REL with WORK writable; the guest writes WORK/status itself
# (virtme-ng exits 255 under TCG whatever the command did). QEMU's monitor
# listens on WORK/monitor.sock, so that shortly before the limit a guest
# still running has its CPUs sampled (WORK/cpus.txt).
#
# TCG runs both virtual CPUs on one host thread (thread=single): with a
# thread per CPU, guests here livelocked while the kernel patched a hot
# tracepoint's jump (text_poke's int3 protocol), both CPUs sampled at the
# patched site or in exc_int3 for minutes (sys_enter as the tracer's unload
# watch attached, 6.1, 2026-12-02; sched_switch in an earlier trial; about
# one guest in 13). No tracer is needed: two `dd bs=1` loops and a syscall
# event switched on and off through tracefs stopped a 6.1 guest dead after
# 256 switches, where with thread=single it kept going, only slower. Real
# CPUs patch such sites under load all the time; emulating the two CPUs in
# turn costs the guests some speed, not behaviour.
boot_guest() {
	local root=$1 rel=$2 work=$3 accel=$4 sampler opts qemu rc=0
	qemu="-monitor unix:$work/monitor.sock,server,nowait"
	opts=(--cpus 2 --memory 2G)
	[ "$accel" = tcg ] && opts+=(--disable-kvm) && qemu+=" -accel tcg,thread=single"
	opts+=("--qemu-opts=$qemu")
	# One process, its output in a file: killed when the guest ends, it
	# leaves no sleeping child holding this script's output open.
	python3 "$REPO/scripts/vm/cpu-samples.py" "$work/monitor.sock" "$work/kallsyms" \
		$((TIMEOUT_S > 60 ? TIMEOUT_S - 30 : TIMEOUT_S / 2)) >"$work/cpus.txt" 2>&1 &
	sampler=$!
	timeout -k 10 "$TIMEOUT_S" vng -r "$(kernel_image "$root" "$rel")" "${opts[@]}" \
		--rodir "$root/lib/modules" --rwdir "$work" \
		-- "$REPO/scripts/vm/guest.sh $work" >"$work/console.log" 2>&1 </dev/null || rc=$?
	echo "$rc" >"$work/vng.rc"
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
}

# What a guest that did not finish was doing: its steps so far, the
# unfinished one's output, the kernel's log, the console.
stalled_guest() {
	local work=$1 last
	echo "test-vm: the guest did not finish (virtme-ng exit $(cat "$work/vng.rc" 2>/dev/null), 124: the ${TIMEOUT_S} s limit); its steps (NAME RC SECONDS):"
	sed 's/^/    /' "$work/status" 2>/dev/null
	last=$(awk '$2 == "start" { s = $1 } $2 != "start" && $1 == s { s = "" } END { print s }' "$work/status" 2>/dev/null)
	if [ -n "$last" ]; then
		echo "test-vm: step $last did not end; the end of its output:"
		tail -n 60 "$work/$last.log"
	fi
	echo "test-vm: the end of the guest's kernel log:"
	tail -n 40 "$work/dmesg.log" 2>/dev/null
	echo "test-vm: where its CPUs were, 30 s before the limit (kernel functions):"
	cat "$work/cpus.txt" 2>/dev/null
	echo "test-vm: the end of the console:"
	tail -n 30 "$work/console.log"
}

# Fails (printing the guest's output) unless every step passed.
check_guest() {
	local work=$1 name rc failed=0
	if ! grep -qx 'done' "$work/status" 2>/dev/null; then
		stalled_guest "$work" >&2
		return 1
	fi
	while read -r name rc _; do
		[ "$name" = 'done' ] || [ "$rc" = start ] && continue
		if [ "$rc" != 0 ]; then
			echo "test-vm: guest step $name failed (exit $rc); its output:" >&2
			tail -n 80 "$work/$name.log" >&2
			failed=1
		fi
	done <"$work/status"
	return $failed
}

guest_env() {
	local series=$1 ko=$2 standin=$3 link_tool=$4 bins=
	case " $CARGO_TESTS_ON " in *" $series "*) bins=$TEST_BINS ;; esac
	printf 'REPO=%q\nTRACER_BUILD=%q\nOPERATOR=%q\nTEST_BINS=%q\nKO=%q\nKO_IS_STANDIN=%q\nLINK_TOOL=%q\n' \
		"$REPO" "$REPO/tracer-c/build" "$OPERATOR" "$bins" "$ko" "$standin" "$link_tool"
}

# Seconds (to the tenth) since START, a `date +%s.%N`.
seconds_since() {
	awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'
}

# One kernel of the matrix: fetch, module, boot, check. Appends to SUMMARY.
run_series() {
	local series=$1 rel root work ko='' standin=0 link_tool='' start boot_s guest_s verdict=pass attempt
	rel=$(newest_release "$(series_pattern "$series")")
	if [ -z "$rel" ]; then
		skip_or_fail "no $series kernel in the package lists"
		return 0
	fi
	say "$series: Linux $rel"
	root=$(fetch_release "$rel") || { skip_or_fail "downloading the $rel kernel failed"; return 0; }
	link_modules "$root" "$rel"
	work=$RUNS/$rel
	rm -rf "$work"
	mkdir -p "$work"
	cp "$(kernel_config "$root" "$rel")" "$work/config"
	if [ -n "${GTP5G_KO:-}" ]; then
		cp "$GTP5G_KO" "$work/gtp5g.ko"
		ko=$work/gtp5g.ko
		link_tool=$(build_link_tool "$work") || { echo "test-vm: error: the gtp5g-link tool does not build" >&2; exit 1; }
	elif ko=$(build_standin "$root" "$rel" "$work"); then
		standin=1
	else
		ko=
		case " $STANDIN_REQUIRED " in
			*" $series "*) skip_or_fail "the gtp5g stand-in does not build for $rel (see $work/standin.log)" ;;
			*) say "$series: the stand-in does not build for $rel: no fentry tests (see $work/standin.log)" ;;
		esac
	fi
	guest_env "$series" "$ko" "$standin" "$link_tool" >"$work/env.sh"
	ACCEL=${ACCEL:-$(probe_accel "$root" "$rel")}
	say "$series: booting $rel ($ACCEL)"
	# Once in 15 boots here (2026-12-02) virtme-ng returned within seconds
	# having printed nothing at all, not even the kernel's first line:
	# nothing ran, so such a guest is booted again, once, saying so.
	for attempt in 1 2; do
		start=$(date +%s.%N)
		boot_guest "$root" "$rel" "$work" "$ACCEL"
		if [ "$attempt" = 2 ] || [ -s "$work/status" ] || [ -s "$work/console.log" ]; then
			break
		fi
		say "$series: the guest never started (virtme-ng exit $(cat "$work/vng.rc"), no output at all, $(seconds_since "$start") s): booting it again"
	done
	guest_s=$(awk '$1 == "guest-seconds" { print $3 }' "$work/status" 2>/dev/null)
	boot_s=$(awk -v t="$(seconds_since "$start")" -v g="${guest_s:-0}" 'BEGIN { printf "%.0f", t - g }')
	check_guest "$work" || verdict=FAIL
	sed 's/^/    /' "$work/results" 2>/dev/null || true
	SUMMARY+=("$(printf '%-7s %-24s %-4s boot %4ss  tests %5ss  %s' "$series" "$rel" "$ACCEL" \
		"$boot_s" "${guest_s:-?}" "$verdict")")
	[ "$verdict" = pass ]
}

main() {
	local missing series failed=0 matrix=("$@")
	[ $# -gt 0 ] || matrix=(6.1 6.12 newest 5.10)
	mapfile -t missing < <(missing_tools)
	if [ "${#missing[@]}" -gt 0 ]; then
		skip_or_fail "the VM test bed needs ${missing[*]} (.ci/run installs them)"
		return 0
	fi
	if [ -n "${GTP5G_KO:-}" ] && [ ! -r "$GTP5G_KO" ]; then
		echo "test-vm: error: GTP5G_KO=$GTP5G_KO: no such readable file" >&2
		exit 1
	fi
	[ "$(id -u)" = 0 ] || { skip_or_fail "the VM test bed needs root (/lib/modules, kernel cache)"; return 0; }
	mkdir -p "$VM_CACHE"
	update_lists || { skip_or_fail "apt-get update of the kernel package lists failed"; return 0; }
	make -s -C tracer-c
	TEST_BINS=$(test_binaries | tr '\n' ' ')
	[ -n "$TEST_BINS" ] || { echo "test-vm: error: cargo test --no-run built no test binary" >&2; exit 1; }
	# The daemon the guest runs on a gtp5g host: the build the tests used.
	OPERATOR=${CARGO_TARGET_DIR:-$REPO/target}/debug/gtp5g-operator
	[ -x "$OPERATOR" ] || { echo "test-vm: error: no $OPERATOR after cargo test --no-run" >&2; exit 1; }
	SUMMARY=()
	ACCEL=
	for series in "${matrix[@]}"; do
		run_series "$series" || failed=1
	done
	say "summary (boot: host seconds to boot and shut down; tests: guest seconds)"
	printf '    %s\n' "${SUMMARY[@]}"
	return $failed
}

main "$@"
