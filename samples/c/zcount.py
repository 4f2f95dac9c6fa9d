#!/usr/bin/env python3
"""zcount in Python, over libzcflow through ctypes: attaches to a queue, counts packets and bytes until -n packets
have come, SIGINT or SIGTERM, or the owner goes; prints the totals. It waits for packets as an event loop does: with
select on the queue's descriptor (zcflow_fd), which is readable while packets wait.

    ZCFLOW_LIB=/path/to/libzcflow.so python3 zcount.py zc:99@0 [-n <packets>]
"""
import ctypes
import os
import select
import signal
import sys
import time


class Packet(ctypes.Structure):
    _fields_ = [("data", ctypes.POINTER(ctypes.c_uint8)), ("length", ctypes.c_uint32), ("wire_length", ctypes.c_uint32),
                ("timestamp_ns", ctypes.c_int64), ("hash", ctypes.c_uint32), ("device_index", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("buffer", ctypes.c_uint32)]


class QueueStats(ctypes.Structure):
    _fields_ = [("sent", ctypes.c_uint64), ("received", ctypes.c_uint64), ("dropped", ctypes.c_uint64), ("errors", ctypes.c_uint64)]


ZCFLOW_EGONE = -5


def load(path):
    lib = ctypes.CDLL(path)
    lib.zcflow_attach.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
    lib.zcflow_recv_burst.argtypes = [ctypes.c_void_p, ctypes.POINTER(Packet), ctypes.c_int, ctypes.c_int]
    lib.zcflow_release_burst.argtypes = [ctypes.c_void_p, ctypes.POINTER(Packet), ctypes.c_int]
    lib.zcflow_fd.argtypes = [ctypes.c_void_p]
    lib.zcflow_stats.argtypes = [ctypes.c_void_p, ctypes.POINTER(QueueStats)]
    lib.zcflow_detach.argtypes = [ctypes.c_void_p]
    lib.zcflow_detach.restype = None
    lib.zcflow_error.restype = ctypes.c_char_p
    return lib


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: zcount.py zc:<cluster>@<queue> [-n <packets>]")
    name, limit = sys.argv[1], 0
    if len(sys.argv) == 4 and sys.argv[2] == "-n":
        limit = int(sys.argv[3])
    lib = load(os.environ.get("ZCFLOW_LIB", "libzcflow.so"))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))

    queue = ctypes.c_void_p()
    rc = lib.zcflow_attach(name.encode(), 2000, ctypes.byref(queue))
    if rc != 0:
        print(f"error {rc}: {lib.zcflow_error().decode()}", flush=True)
        return 1
    print(f"attached to {name}", flush=True)
    burst = (Packet * 32)()
    packets = total = 0
    first = None
    fd = lib.zcflow_fd(queue)
    shown, shown_packets = time.monotonic(), 0
    while not stopping and (limit == 0 or packets < limit):
        now = time.monotonic()
        if now - shown >= 1:   # as it goes: the rate over the last second, and the count so far
            print(f"{(packets - shown_packets) / (now - shown):,.0f} pkts/s, {packets:,} pkts {total:,} bytes so far", flush=True)
            shown, shown_packets = now, packets
        n = lib.zcflow_recv_burst(queue, burst, 32, 0)
        if n == 0:
            select.select([fd], [], [], 0.1)   # readable once a packet waits; a tenth of a second to see a signal
            continue
        if n < 0:
            print(f"owner gone: {lib.zcflow_error().decode()}", flush=True)
            break
        for p in burst[:n]:
            total += p.length
            if first is None:
                first = bytes(p.data[:p.length]).hex()
        packets += n
        lib.zcflow_release_burst(queue, burst, n)
    stats = QueueStats()
    lib.zcflow_stats(queue, ctypes.byref(stats))
    lib.zcflow_detach(queue)
    print(f"total {packets} pkts {total} bytes, first {first}, queue sent {stats.sent} dropped {stats.dropped} errors {stats.errors}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
