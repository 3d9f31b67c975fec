#!/usr/bin/env python3
"""Module import picture of the crate: which module names which.

For each file module under src/: the crate modules it names through
`crate::…`, `super::…`, `self::…` paths and through the names of its own
child modules (`mod x;` then `x::…`). References to a module's own
ancestors (a handler naming `super::AppState`, a store naming
`crate::repository::RunFilter`) are listed apart as [up: …]: a Rust
module's parent declares it, so they are structure, not arrows of their
own, and the cycle check leaves them out. Test code (`#[cfg(test)]` items,
tests.rs files) is listed apart as [tests: …]. main.rs names the library
as `pipeline_service::…`.

Usage: .ci/module-picture.py [SRC_DIR] [--check]; with --check it exits 1
when modules import each other in a circle or a lower layer names a
higher one."""
import os, re, sys
from collections import defaultdict

args = [a for a in sys.argv[1:] if a != "--check"]
check = "--check" in sys.argv[1:]
root = args[0] if args else "src"

def module_of(path):
    rel = os.path.relpath(path, root)[:-3]
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)

def strip_comments(text):
    """The code without comments, string and char literals (kept as "")."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i); i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2); i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i-1].isalnum() or text[i-1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            j = text.find('"' + hashes, i + 2 + len(hashes)); i = n if j < 0 else j + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1; out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^'\\])'", text[i:]):
            i += len(re.match(r"'(\\.|[^'\\])'", text[i:]).group(0)); out.append("''")
        else:
            out.append(c); i += 1
    return "".join(out)

def split_test(text):
    main, test, i = [], [], 0
    while True:
        j = text.find("#[cfg(test)]", i)
        if j < 0:
            main.append(text[i:]); break
        main.append(text[i:j])
        k = text.find("{", j); semi = text.find(";", j)
        if semi >= 0 and (k < 0 or semi < k):
            test.append(text[j:semi + 1]); i = semi + 1; continue
        depth, m = 0, k
        while m < len(text):
            if text[m] == "{": depth += 1
            elif text[m] == "}":
                depth -= 1
                if depth == 0: break
            m += 1
        test.append(text[j:m + 1]); i = m + 1
    return "".join(main), "".join(test)

files = []
known = set()
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith(".rs") and f != "main.rs":
            p = os.path.join(d, f); files.append(p); known.add(module_of(p))

def resolve(segs):
    for n in range(len(segs), 0, -1):
        if tuple(segs[:n]) in known:
            return tuple(segs[:n])
    return None

def refs(me, text):
    out = set()
    children = set(re.findall(r"\bmod\s+([a-z_][a-z0-9_]*)\s*;", text))
    path_re = r"\b(crate|super|self|%s)((?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))*)" % "|".join(
        sorted(children) or ["__none__"])
    for m in re.finditer(path_re, text):
        head, tail = m.group(1), [s for s in m.group(2).split("::") if s]
        if head == "crate": base = []
        elif head == "super": base = list(me[:-1])
        elif head == "self": base = list(me)
        else: base = list(me); tail = [head] + tail
        while tail and tail[0] == "super":
            base = base[:-1]; tail = tail[1:]
        t = resolve(base + tail)
        if t is not None: out.add(t)
    # grouped imports: use crate::{a::X, b}; use super::{x, y};
    for m in re.finditer(r"\b(crate|super|self)((?:::super)*)::\{(.*?)\};", text, flags=re.S):
        head = m.group(1); ups = m.group(2).count("super")
        base = [] if head == "crate" else list(me) if head == "self" else list(me[:-1 - ups])
        for item in re.findall(r"([A-Za-z_][A-Za-z0-9_:]*)", m.group(3)):
            segs = [s for s in item.split("::") if s and s != "self"]
            t = resolve(base + segs)
            if t is not None: out.add(t)
    out.discard(me)
    up = {t for t in out if len(t) < len(me) and me[:len(t)] == t}
    return out - up, up

def name(t): return "::".join(t) if t else "crate"

edges, ups, test_edges = defaultdict(set), defaultdict(set), defaultdict(set)
for p in sorted(files):
    me = module_of(p)
    text = strip_comments(open(p).read())
    main, test = split_test(text)
    if p.endswith("/tests.rs"):
        main, test = "", text
    e, u = refs(me, main)
    edges[me] |= e; ups[me] |= u
    te, _ = refs(me, test)
    test_edges[me] |= te - e

main_rs = os.path.join(root, "main.rs")
main_uses = set()
if os.path.exists(main_rs):
    for m in re.finditer(r"pipeline_service::(?:\{([^}]*)\}|([a-z_]+))", strip_comments(open(main_rs).read())):
        for n in re.findall(r"\b([a-z_]+)(?:::|\b)", m.group(1) or m.group(2)):
            if (n,) in known: main_uses.add(n)

for me in sorted(known):
    if me == (): continue
    line = f"{name(me)} -> {', '.join(sorted(name(t) for t in edges[me])) or '(nothing)'}"
    if ups[me]: line += f"   [up: {', '.join(sorted(name(t) for t in ups[me]))}]"
    if test_edges[me]: line += f"   [tests: {', '.join(sorted(name(t) for t in test_edges[me]))}]"
    print(line)
print(f"main (binary) -> {', '.join(sorted(main_uses))}")

def sccs(graph):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(comp)
    for v in list(graph):
        if v not in index: visit(v)
    return out

top = defaultdict(set)
for src, ts in edges.items():
    for t in ts:
        if src and t and src[0] != t[0]: top[src[0]].add(t[0])
for src, ts in ups.items():
    for t in ts:
        if src and t and src[0] != t[0]: top[src[0]].add(t[0])
print("\n# top-level modules (non-test code; main is the binary)")
print(f"main -> {', '.join(sorted(main_uses))}")
for a in sorted(top): print(f"{a} -> {', '.join(sorted(top[a]))}")
print("\n# import cycles between file modules (non-test code, [up] left out)")
c = sccs({k: set(v) for k, v in edges.items()})
for comp in c: print("  cycle:", ", ".join(sorted(name(x) for x in comp)))
if not c: print("  none")
print("# import cycles between top-level modules")
c2 = sccs({k: set(v) for k, v in top.items()})
for comp in c2: print("  cycle:", ", ".join(sorted(comp)))
if not c2: print("  none")
print("\n# lower layer naming a higher one (api: config, startup, server, commands;"
      " repository: those and api; domain: anything above it)")
commands = {"import", "compact", "generate", "probe"}
rules = {"api": {"config", "startup", "server", "telemetry"} | commands,
         "repository": {"config", "api", "startup", "server", "telemetry", "stats"} | commands,
         "domain": {"config", "api", "startup", "server", "telemetry", "repository", "metrics", "stats"} | commands}
bad = 0
for src in sorted(edges):
    for t in sorted(edges[src] | ups[src]):
        if src and t and src[0] in rules and t[0] in rules[src[0]]:
            print(f"  {name(src)} -> {name(t)}"); bad += 1
if not bad: print("  none")
if check and (c or c2 or bad):
    sys.exit(1)
