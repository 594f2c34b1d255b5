"""The disk's bare commit rate L: one-row autocommit INSERTs into a WAL database with synchronous=FULL."""
import json
import os
import sqlite3
import sys
import tempfile
import time

directory = tempfile.mkdtemp(dir=sys.argv[1] if len(sys.argv) > 1 else None)
connection = sqlite3.connect(os.path.join(directory, "floor.sqlite"), isolation_level=None)
connection.execute("PRAGMA journal_mode=WAL")
connection.execute("PRAGMA synchronous=FULL")
connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
count = 3000
start = time.perf_counter()
for _ in range(count):
    connection.execute("INSERT INTO t (v) VALUES (?)", ("x" * 100,))
print(json.dumps({"workload": "sqlite-floor", "commits_per_s": round(count / (time.perf_counter() - start))}))
