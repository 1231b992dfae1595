#!/usr/bin/env python3
"""Import cycles between modules of src/ (from `crate::X` references): top-level modules, then
files. Usage: scripts/module-cycles.py src [--no-tests]"""
import os, re, sys, itertools
root = sys.argv[1]
NO_TESTS = '--no-tests' in sys.argv
def modpath(path, depth):
    rel = os.path.relpath(path, root)[:-3].split('/')
    if rel[-1] == 'mod': rel = rel[:-1]
    return '::'.join(rel[:depth]) if rel and rel[0] not in ('lib', 'main') else None
def graph(depth):
    g = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            if not f.endswith('.rs'): continue
            p = os.path.join(d, f)
            src = modpath(p, depth)
            if not src: continue
            text = open(p).read()
            if NO_TESTS:  # unit tests sit at the end of their file
                text = text.split('#[cfg(test)]\nmod tests')[0]
            # drop comments (doc links name modules without depending on them)
            text = re.sub(r'//[^\n]*', '', text)
            refs = set()
            for m in re.finditer(r'crate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)', text):
                parts = m.group(1).split('::')
                refs.add('::'.join(parts[:depth]))
            for m in re.finditer(r'crate::\{([^}]*)\}', text):
                for name in re.findall(r'\b([a-z_][a-z0-9_]*)\b', m.group(1)):
                    refs.add(name)
            if depth > 1:  # `super::x` inside a folder is a sibling
                top = src.split('::')[0]
                for m in re.finditer(r'\bsuper::([a-z_][a-z0-9_]*)', text):
                    if '::' in src and os.path.basename(p) != 'mod.rs':
                        refs.add(top + '::' + m.group(1))
            for r in refs:
                if r != src and not src.startswith(r + '::') and not r.startswith(src + '::'):
                    g.setdefault(src, set()).add(r)
    return g
def sccs(g):
    idx, low, st, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
        for w in g.get(v, ()):
            if w not in idx: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            c = []
            while True:
                w = st.pop(); on.discard(w); c.append(w)
                if w == v: break
            if len(c) > 1: out.append(sorted(c))
    sys.setrecursionlimit(10000)
    for v in list(g): 
        if v not in idx: visit(v)
    return out
for depth in (1, 2):
    g = graph(depth)
    print(f'== depth {depth} ({"top-level modules" if depth == 1 else "files/submodules"})')
    cs = sccs(g)
    if not cs: print('no cycles')
    for c in cs:
        print('cycle among:', ', '.join(c))
        for a, b in itertools.permutations(c, 2):
            if b in g.get(a, ()): print(f'   {a} -> {b}')
    if depth == 1:
        print('http imports:', sorted(g.get('http', set())) or 'nothing from the crate')
