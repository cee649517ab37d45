#!/usr/bin/env python3
"""Where a guest's virtual CPUs are: SAMPLES readings of every vCPU's
instruction pointer through QEMU's monitor socket, each named from the
guest's own /proc/kallsyms, which it saved (Debian's System.map is a stub,
and kallsyms has the running, randomised addresses and the modules' too).
For a guest that stopped making progress: a kernel spinning shows the same
few functions in every sample, an idle one the idle loop, when nothing
inside the guest can report.

usage: cpu-samples.py MONITOR_SOCKET KALLSYMS DELAY_S [SAMPLES=5]
(DELAY_S: seconds to sleep first, so that the caller's one kill ends it)
"""
import bisect
import re
import socket
import sys
import time


def load_map(path):
    """Text symbols sorted by address; none when the guest saved none yet."""
    addrs, names = [], []
    try:
        f = open(path)
    except OSError as e:
        print(f"{path}: {e.strerror}: addresses unnamed", flush=True)
        return addrs, names
    with f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in "tTwW":
                addrs.append(int(parts[0], 16))
                names.append(parts[2])
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    return [addrs[i] for i in order], [names[i] for i in order]


def symbol(addrs, names, ip):
    if ip < 1 << 63:
        return f"user space {ip:#x}"
    i = bisect.bisect_right(addrs, ip) - 1
    return f"{names[i]}+0x{ip - addrs[i]:x}" if i >= 0 else f"{ip:#x}"


def monitor(path, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        out, deadline = b"", time.time() + 5
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if out.rstrip().endswith(b"(qemu)") and b"RIP=" in out:
                break
        return out.decode(errors="replace")


def main():
    sock, kallsyms, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])
    samples = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    time.sleep(delay)
    addrs, names = load_map(kallsyms)
    for n in range(1, samples + 1):
        text = monitor(sock, "info registers -a")
        rips = [int(r, 16) for r in re.findall(r"RIP=([0-9a-f]{16})", text)]
        where = "; ".join(f"CPU{i} {symbol(addrs, names, ip)}" for i, ip in enumerate(rips))
        print(f"sample {n}: {where or 'no registers: ' + text.strip()[-200:]}", flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
