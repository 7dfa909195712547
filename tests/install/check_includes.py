#!/usr/bin/env python3
"""Checks the include rules of ARCHITECTURE.md against the source tree.

Every source file belongs to a component (by its folder); every project header
belongs to a component too (by the include root it lives under, or, for the
shared server and engine include roots, by the folder holding its .cc file).
A file may include its own component's headers and those of the components the
RULES table lets it depend on; anything else is reported with the file, the
line and the rule, and the check fails.

Usage: check_includes.py SOURCE_DIR
"""
import os
import re
import sys

# component -> components it may include (besides itself). Keep in step with
# ARCHITECTURE.md ("Which part may include which").
RULES = {
    "schema": set(),
    "base": {"schema"},
    "rdma": {"base"},
    "transport": {"base", "rdma"},
    # Client::Connect hands etcd:// addresses to the cluster part: libkvstore's one
    # inward edge, through that factory only.
    "client": {"base", "transport", "rdma", "schema", "cluster-client"},
    "cluster-client": {"client", "base"},
    "cli": {"client", "cluster-client", "base"},
    "python": {"client", "cluster-client", "base"},
    "tiers": {"base"},
    "device": {"base", "rdma"},
    "server-api": {"base"},
    "store": {"server-api", "tiers", "device", "base"},
    "service": {"server-api", "store", "tiers", "device", "transport", "rdma", "base", "schema"},
    "membership": {"server-api", "service", "cluster-client", "base"},
    "kvstored": {"server-api", "service", "store", "membership", "cluster-client", "tiers",
                 "device", "base"},
    "kernels": {"base"},
    "model": {"kernels", "base"},
    "api": {"model", "base"},
    "serving": {"api", "model", "kernels", "client", "cluster-client", "base"},
    "http": {"api", "serving", "model", "client", "base"},
    "loadgen": {"http", "api", "serving", "model", "client", "base"},
    "engine-main": {"http", "api", "serving", "model", "kernels", "client", "base"},
}

# Source folders -> component (longest prefix wins).
SOURCE_DIRS = {
    "schema": "schema",
    "client/base": "base",
    "client/rdma": "rdma",
    "client/transport": "transport",
    "client/src": "client",
    "client/include": "client",
    "client/cluster": "cluster-client",
    "client/cli": "cli",
    "client/python": "python",
    "server/tiers": "tiers",
    "server/device": "device",
    "server/src/store": "store",
    "server/src/service": "service",
    "server/src/cluster": "membership",
    "server/src/kvstored_main.cc": "kvstored",
    "kernels": "kernels",
    "engine/src/model": "model",
    "engine/src/api": "api",
    "engine/src/serving": "serving",
    "engine/src/http": "http",
    "engine/src/loadgen": "loadgen",
    "engine/src/engine_main.cc": "engine-main",
}

# Include roots whose headers all belong to one component.
INCLUDE_ROOTS = {
    "client/base/include": "base",
    "client/rdma/include": "rdma",
    "client/transport/include": "transport",
    "client/include": "client",
    "client/cluster/include": "cluster-client",
    "server/tiers/include": "tiers",
    "server/device/include": "device",
    "kernels/include": "kernels",
}
# Include roots shared by several folders: a header belongs to the folder of the
# .cc file with its name, else to the fallback component.
SHARED_ROOTS = {
    "server/include": ("server/src", "server-api"),
    "engine/include": ("engine/src", "model"),
}
GENERATED = {"kvstore.capnp.h": "schema"}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def component_of_path(rel):
    best = None
    for prefix, comp in SOURCE_DIRS.items():
        if rel == prefix or rel.startswith(prefix + "/"):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, comp)
    return best[1] if best else None


def header_map(root):
    headers = {}
    for inc, comp in INCLUDE_ROOTS.items():
        base = os.path.join(root, inc)
        for dirpath, _, files in os.walk(base):
            for f in files:
                if f.endswith(".h"):
                    headers[os.path.relpath(os.path.join(dirpath, f), base)] = comp
    for inc, (src, fallback) in SHARED_ROOTS.items():
        cc_home = {}
        for dirpath, _, files in os.walk(os.path.join(root, src)):
            for f in files:
                if f.endswith(".cc"):
                    rel = os.path.relpath(os.path.join(dirpath, f), root)
                    cc_home.setdefault(f[:-3], component_of_path(rel))
        base = os.path.join(root, inc)
        for dirpath, _, files in os.walk(base):
            for f in files:
                if f.endswith(".h"):
                    headers[os.path.relpath(os.path.join(dirpath, f), base)] = (
                        cc_home.get(f[:-2]) or fallback)
    headers.update(GENERATED)
    return headers


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    headers = header_map(root)
    problems = []
    checked = 0
    for top in ("schema", "client", "server", "kernels", "engine"):
        for dirpath, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = [d for d in dirs if not d.startswith("build")]
            for f in files:
                if not f.endswith((".h", ".cc", ".cu", ".cuh")):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, root)
                comp = component_of_path(rel)
                if comp is None:
                    # A header under a shared include root takes its header-map component.
                    for inc in list(INCLUDE_ROOTS) + list(SHARED_ROOTS):
                        if rel.startswith(inc + "/"):
                            comp = headers.get(os.path.relpath(path, os.path.join(root, inc)))
                if comp is None:
                    problems.append(f"{rel}: not in any component; add its folder to SOURCE_DIRS")
                    continue
                checked += 1
                allowed = RULES[comp] | {comp}
                with open(path, encoding="utf-8", errors="replace") as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE_RE.match(line)
                        if not m:
                            continue
                        name = m.group(1)
                        if os.path.exists(os.path.join(dirpath, name)):
                            continue  # a header next to the file: same component
                        target = headers.get(name)
                        if target is None or target in allowed:
                            continue  # system or third-party header, or allowed
                        problems.append(
                            f"{rel}:{n}: {comp} includes {name} ({target}); "
                            f"{comp} may include only {sorted(RULES[comp]) or 'nothing else'}")
    for p in problems:
        print(p)
    print(f"check_includes: {checked} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
