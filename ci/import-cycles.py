#!/usr/bin/env python3
"""Usage: ci/import-cycles.py engine/* harness

Lists import circles between the source files of each crate: file A uses
an item of file B (`crate::b::...`, `super::b`, `self::b`) and B, directly or
through others, uses A. Prints each strongly connected group of files."""
import os, re, sys

def module_files(src):
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if not n.endswith('.rs'):
                continue
            p = os.path.join(root, n)
            rel = os.path.relpath(p, src)[:-3].split(os.sep)
            if rel[-1] in ('mod', 'lib', 'main'):
                rel = rel[:-1]
            files[tuple(rel)] = p
    return files

USE = re.compile(r'\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)')

def resolve(files, here, head, path):
    if head == 'crate':
        base = []
    elif head == 'super':
        base = list(here[:-1])
    else:
        base = list(here)
    parts = path.strip(':').split('::')
    # the longest prefix that names a file
    for i in range(len(parts), -1, -1):
        cand = tuple(base + parts[:i])
        if cand in files:
            return cand
    return None

def cycles(src):
    files = module_files(src)
    graph = {m: set() for m in files}
    for m, p in files.items():
        text = open(p, encoding='utf-8').read()
        text = re.sub(r'//[^\n]*', '', text)
        for head, path in USE.findall(text):
            t = resolve(files, m, head, path)
            if t is not None and t != m and t != () and not (len(t) < len(m) and m[:len(t)] == t):
                graph[m].add(t)
    # Tarjan
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def strong(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted('/'.join(c) or 'lib' for c in comp))
    for v in graph:
        if v not in index:
            strong(v)
    return out

total = 0
for crate in sys.argv[1:]:
    for group in cycles(os.path.join(crate, 'src')):
        total += 1
        print(f"{crate}: {' <-> '.join(group)}")
print(f"{total} import circle(s)")
