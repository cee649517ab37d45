#!/bin/sh
# Lays out the runtime image's whole tree: the given binaries in
# ROOT/usr/local/bin and every shared library they load (as ldd resolves them
# here, dynamic loader included) under the same path, so the runtime stage
# can start FROM scratch and carry nothing else.
#
#   collect-rootfs.sh ROOT BINARY...
set -eu

root=$1
shift
mkdir -p "$root/usr/local/bin"
for bin in "$@"; do
	cp "$bin" "$root/usr/local/bin/"
	deps=$(ldd "$bin") || { echo "collect-rootfs: ldd $bin failed" >&2; exit 1; }
	if printf '%s\n' "$deps" | grep -q 'not found'; then
		echo "collect-rootfs: $bin needs libraries this image lacks:" >&2
		printf '%s\n' "$deps" | grep 'not found' >&2
		exit 1
	fi
	# "libx.so.1 => /path (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)":
	# every absolute path is a file to carry; the vdso has none.
	for lib in $(printf '%s\n' "$deps" | tr -s '[:blank:]' '\n' | grep '^/'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
		echo "collect-rootfs: $(basename "$bin") loads $lib"
	done
done
