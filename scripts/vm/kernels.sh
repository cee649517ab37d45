# shellcheck shell=bash
# Debian kernels for the VM test bed: the package lists of our own apt
# configuration, the newest version of each series, downloaded and
# extracted (never installed) into $VM_CACHE. Sourced by scripts/test-vm.sh.
#
# The host's apt state stays untouched: our own source list, lists and
# package cache directories, every apt call through apt_own.

VM_APT=$VM_CACHE/apt
# Lists older than this are refreshed: kernels move with point releases.
VM_LISTS_MAX_AGE_MIN=${GTP5G_VM_LISTS_MAX_AGE_MIN:-1440}

apt_own() {
	local tool=$1
	shift
	"$tool" -o Dir::Etc::sourcelist="$VM_APT/sources.list" -o Dir::Etc::sourceparts=- \
		-o Dir::State::Lists="$VM_APT/lists" -o Dir::Cache="$VM_APT/cache" \
		-o Acquire::Languages=none -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
		-o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
		-o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root -o Debug::NoLocking=1 "$@"
}

# bookworm (6.1, and 6.12 as +deb12), bullseye (5.10) and sid (newest).
write_sources() {
	local key=/usr/share/keyrings/debian-archive-keyring.gpg mirror=${GTP5G_VM_MIRROR:-http://deb.debian.org}
	local suite
	{
		for suite in bookworm bookworm-updates bullseye sid; do
			echo "deb [signed-by=$key] $mirror/debian $suite main"
		done
		for suite in bookworm-security bullseye-security; do
			echo "deb [signed-by=$key] $mirror/debian-security $suite main"
		done
	} >"$VM_APT/sources.list.new"
	mv "$VM_APT/sources.list.new" "$VM_APT/sources.list"
}

# Refreshes the lists when missing or stale; a failed refresh with usable
# lists keeps them (offline reruns), without any fails.
update_lists() {
	mkdir -p "$VM_APT/lists/partial" "$VM_APT/cache/archives/partial"
	write_sources
	local stamp=$VM_APT/lists/.updated
	if [ -e "$stamp" ] && [ -z "$(find "$stamp" -mmin +"$VM_LISTS_MAX_AGE_MIN")" ]; then
		return 0
	fi
	say "apt-get update (own lists in $VM_APT/lists)"
	if apt_own apt-get update -qq >"$VM_APT/update.log" 2>&1; then
		touch "$stamp"
	elif [ -e "$stamp" ]; then
		say "apt-get update failed; keeping the lists of $(date -r "$stamp") ($(tail -n1 "$VM_APT/update.log"))"
	else
		cat "$VM_APT/update.log" >&2
		return 1
	fi
}

# The newest kernel release (e.g. 6.1.0-57-amd64) whose image or modules
# package name matches the extended regex $1, with REL standing for the
# release part.
newest_release() {
	local pattern=$1
	apt_own apt-cache pkgnames linux- |
		sed -nE "s/^linux-(image|modules)-($pattern)(-unsigned)?\$/\\2/p" |
		sort -uV | tail -n1
}

# Release pattern of each series of the matrix.
series_pattern() {
	case "$1" in
		6.1) echo '6\.1\.0-[0-9]+-amd64' ;;
		6.12) echo '6\.12\.[0-9]+\+deb12-amd64' ;;
		5.10) echo '5\.10\.0-[0-9]+-amd64' ;;
		# The newest amd64 flavour anywhere in the lists (sid).
		newest) echo '[0-9]+\.[0-9.]+(-[0-9]+|\+deb[0-9]+)-amd64' ;;
		*) return 1 ;;
	esac
}

pkg_field() {
	apt_own apt-cache show --no-all-versions "$1" 2>/dev/null | sed -n "s/^$2: //p" | head -n1
}

pkg_exists() {
	[ -n "$(pkg_field "$1" Version)" ]
}

# "name=version" of every package a release needs: the image (one
# linux-image-*-unsigned, or linux-binary-unsigned-* + linux-modules-* from
# 6.17 on), the headers, their -common part and the linux-kbuild at the
# headers' own version (not a newer one from a security update).
release_packages() {
	local rel=$1 image headers hver dep name
	if pkg_exists "linux-image-$rel-unsigned"; then
		image="linux-image-$rel-unsigned"
	elif pkg_exists "linux-binary-unsigned-$rel"; then
		image="linux-binary-unsigned-$rel linux-modules-$rel"
	else
		echo "no image package for $rel" >&2
		return 1
	fi
	for name in $image; do
		echo "$name=$(pkg_field "$name" Version)"
	done
	headers="linux-headers-$rel"
	hver=$(pkg_field "$headers" Version)
	[ -n "$hver" ] || return 0
	echo "$headers=$hver"
	for dep in $(pkg_field "$headers" Depends | tr ',' '\n' | sed -nE 's/^ *(linux-(headers-[^ ]*-common|kbuild-[^ ]*)).*/\1/p'); do
		echo "$dep=$hver"
	done
}

# Downloads (into the package cache) and extracts the release's packages
# into $VM_CACHE/kernels/REL/root, once; prints that directory.
fetch_release() {
	local rel=$1 dir=$VM_CACHE/kernels/$1 pkgs pkg deb
	if [ -e "$dir/.complete" ]; then
		echo "$dir/root"
		return 0
	fi
	mapfile -t pkgs < <(release_packages "$rel") || return 1
	mkdir -p "$VM_CACHE/debs"
	rm -rf "$dir"
	mkdir -p "$dir/root"
	for pkg in "${pkgs[@]}"; do
		deb=$(debfile "$pkg")
		if [ -z "$deb" ]; then
			say "apt-get download $pkg" >&2
			(cd "$VM_CACHE/debs" && apt_own apt-get download -qq "$pkg" >&2) || return 1
			deb=$(debfile "$pkg")
		fi
		dpkg-deb -x "$deb" "$dir/root" || return 1
	done
	merge_usr_modules "$dir/root" "$rel"
	depmod -b "$dir/root" "$rel" || return 1
	printf '%s\n' "${pkgs[@]}" >"$dir/packages"
	touch "$dir/.complete"
	echo "$dir/root"
}

# apt-get download names files NAME_VERSION_ARCH.deb with ':' as %3a.
debfile() {
	local name=${1%%=*} ver=${1#*=} f
	for f in "$VM_CACHE/debs/${name}_${ver//:/%3a}_"*.deb; do
		[ -e "$f" ] && echo "$f"
	done
	return 0
}

# Newer packages ship /usr/lib/modules; depmod -b and the guest look in /lib.
merge_usr_modules() {
	local root=$1 rel=$2
	if [ -d "$root/usr/lib/modules/$rel" ] && [ ! -e "$root/lib/modules/$rel" ]; then
		mkdir -p "$root/lib/modules"
		mv "$root/usr/lib/modules/$rel" "$root/lib/modules/$rel"
	fi
}

# From 6.17 on the image is lib/modules/REL/vmlinuz* and /boot is empty.
kernel_image() {
	local f
	for f in "$1/boot/vmlinuz-$2" "$1/lib/modules/$2"/vmlinuz*; do
		[ -e "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}

kernel_config() {
	local f
	for f in "$1/boot/config-$2" "$1/usr/src/linux-headers-$2/.config"; do
		[ -e "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}
