#!/usr/bin/env python3
"""Writes the raw BTF of a compressed kernel image (vmlinuz) to OUT.

Module BTF is split BTF on top of the kernel's: Kbuild runs pahole with
--btf_base vmlinux, and a Debian headers package ships no vmlinux. The
image carries the same BTF as the running kernel's /sys/kernel/btf/vmlinux
in its .BTF section, so no boot is needed to get it.

usage: vmlinux-btf.py VMLINUZ OUT
"""
import lzma
import struct
import subprocess
import sys
import zlib

MAGICS = {b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"\x1f\x8b\x08": "gzip"}


def decompress(kind, data):
    if kind == "xz":
        return lzma.LZMADecompressor().decompress(data)
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    # zstd: not in this Python's standard library; trailing bytes after the
    # frame make zstd fail, so keep what it printed.
    return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True).stdout


def elf_images(image):
    for magic, kind in MAGICS.items():
        at = image.find(magic)
        while at >= 0:
            try:
                out = decompress(kind, image[at:])
            except (lzma.LZMAError, zlib.error, OSError):
                out = b""
            if out.startswith(b"\x7fELF"):
                yield out
            at = image.find(magic, at + 1)


def section(elf, wanted):
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = headers[shstrndx][4]
    for name, _type, _flags, _addr, off, size in headers:
        end = elf.index(b"\0", strtab_off + name)
        if elf[strtab_off + name:end].decode() == wanted:
            return elf[off:off + size]
    return None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    src, out = sys.argv[1:]
    with open(src, "rb") as f:
        image = f.read()
    for elf in elf_images(image):
        btf = section(elf, ".BTF")
        if btf:
            with open(out, "wb") as f:
                f.write(btf)
            return
    sys.exit(f"{src}: no compressed ELF kernel with a .BTF section found")


if __name__ == "__main__":
    main()
