#!/usr/bin/env python3
"""Times AUTH against a veltrixd whose [auth] users_file names USER with
PASSWORD: the right password, a wrong one and an unknown user, 20 logins
each, one connection, and prints each median and max in milliseconds
(docs/security.md quotes it).

    scripts/auth-latency.py PORT USER PASSWORD
"""
import socket
import sys
import time

port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = socket.create_connection(("127.0.0.1", port))


def call(*words):
    frame = "*%d\r\n" % len(words) + "".join(
        "$%d\r\n%s\r\n" % (len(w), w) for w in words
    )
    conn.sendall(frame.encode())
    return conn.recv(4096)


for label, name, secret in [
    ("right password", user, password),
    ("wrong password", user, password + "x"),
    ("unknown user", user + "-nobody", password),
]:
    times = []
    for _ in range(20):
        start = time.perf_counter()
        reply = call("AUTH", name, secret)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print("%-15s %-12r median %.1f ms, max %.1f ms" % (label, reply[:12], times[10], times[-1]))
