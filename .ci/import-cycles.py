#!/usr/bin/env python3
"""Fails when the crate's modules import each other in a cycle, at file or at folder level.

A file depends on another when it names something in it: `use crate::a::b`, a path such as
`crate::a::b::f()` in code, `super::x`, or a crate-level macro (`crate::m!`, exported from the
file that defines it). Comments and string literals do not count. Test modules may import
anything.

- Files: the one cycle allowed is a `mod.rs` with its own children (a module and its parts); any
  other strongly connected set of files is printed.
- Folders (the crate's top-level modules, `src/<name>.rs` or `src/<name>/`): no cycle at all, and
  each imports only modules declared above it in `lib.rs`, which lists them bottom-up.

Any fault is printed and makes the script exit 1.

Usage: python3 .ci/import-cycles.py [SRC_DIR]   (default: src)
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "src"


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel == ["lib"]:
        return ()
    if rel[-1] == "mod":
        rel = rel[:-1]
    return tuple(rel)


def strip(text):
    """Removes comments, string and char literals (keeps line structure irrelevant)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:i + 4])
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = tree.strip()
    depth, start = 0, None
    for i, c in enumerate(tree):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}":
            depth -= 1
    if start is None:
        return [tree]
    prefix, inner = tree[:start], tree[start + 1:tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for c in inner:
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += c == "{"
        depth -= c == "}"
        cur += c
    parts.append(cur)
    return [p for part in parts if part.strip() for p in expand(prefix + part.strip())]


def main():
    files = {}
    for root, _, names in os.walk(SRC):
        for name in names:
            if name.endswith(".rs") and not (root == SRC and name == "main.rs"):
                path = os.path.join(root, name)
                files[module_of(path)] = path
    macros = {}
    texts = {}
    for mod, path in files.items():
        text = strip(open(path, encoding="utf-8").read())
        # Test modules may import anything.
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
        texts[mod] = text
        for m in re.finditer(r"#\[macro_export\]\s*macro_rules!\s*(\w+)", text):
            macros[m.group(1)] = mod

    def resolve(mod, path):
        segs = [s.strip() for s in path.split("::") if s.strip()]
        if not segs:
            return None
        if segs[0] == "crate":
            base, segs = (), segs[1:]
        elif segs[0] == "super":
            base = mod
            while segs and segs[0] == "super":
                base = base[:-1]
                segs = segs[1:]
        elif segs[0] == "self":
            base, segs = mod, segs[1:]
        else:
            return None
        if len(segs) == 1 and segs[0].endswith("!") or (segs and segs[0].rstrip("!") in macros and base == ()):
            return macros.get(segs[0].rstrip("!"))
        best = None
        cur = base
        if cur in files:
            best = cur
        for s in segs:
            s = re.sub(r"\W.*", "", s.split(" as ")[0])
            cur = cur + (s,)
            if cur in files:
                best = cur
            else:
                break
        return best

    edges = {m: set() for m in files}
    for mod, text in texts.items():
        paths = []
        for m in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", text):
            paths += expand(m.group(1))
        for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+!?)", text):
            paths.append(m.group(1))
        # A module brought in by `use` may be named through it: `use crate::routes;` then
        # `routes::clients::create_client`.
        aliases = {}
        for p in paths:
            if "::" not in p or p.endswith("!"):
                continue
            last = p.split("::")[-1].strip()
            alias = last.split(" as ")[-1].strip()
            full = p.rsplit("::", 1)[0] + "::" + last.split(" as ")[0].strip()
            if alias.isidentifier() and alias not in ("self", "super", "crate"):
                aliases[alias] = full
        for alias, full in aliases.items():
            for m in re.finditer(r"(?<![\w:])" + re.escape(alias) + r"((?:::\w+)+)", text):
                paths.append(full + m.group(1))
        for p in paths:
            target = resolve(mod, p)
            if target is not None and target != mod:
                edges[mod].add(target)

    # Tarjan's strongly connected components.
    index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]

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
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            sccs.append(scc)

    sys.setrecursionlimit(10000)
    for v in sorted(files):
        if v not in index:
            visit(v)

    def allowed(scc):
        for parent in scc:
            if files[parent].endswith("mod.rs") and all(
                m == parent or (len(m) == len(parent) + 1 and m[:-1] == parent) for m in scc
            ):
                return True
        return False

    bad = [sorted(s) for s in sccs if len(s) > 1 and not allowed(s)]
    name = lambda m: files[m]
    print(f"import graph: {len(files)} files, {sum(map(len, edges.values()))} dependencies")
    for scc in bad:
        members = set(scc)
        print(f"cycle through {len(scc)} files:")
        for m in scc:
            inner = sorted(name(t) for t in edges[m] if t in members)
            print(f"  {name(m)} -> {', '.join(inner)}")
    faults = folder_faults(edges, files)
    for fault in faults:
        print(fault)
    if bad or faults:
        sys.exit(1)
    print("no import cycle beyond a mod.rs and its own children; folders import downwards only")


def folder_faults(edges, files):
    """The folder-level faults: an import of a module declared later in lib.rs (or not at all)."""
    lib = strip(open(os.path.join(SRC, "lib.rs"), encoding="utf-8").read())
    order = re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", lib, re.M)
    rank = {m: i for i, m in enumerate(order)}
    folder_edges = {}
    for mod, targets in edges.items():
        for t in targets:
            if mod and t and mod[0] != t[0]:
                folder_edges.setdefault(mod[0], {}).setdefault(t[0], []).append((mod, t))
    faults = []
    for a in sorted(folder_edges):
        for b, via in sorted(folder_edges[a].items()):
            if a not in rank or b not in rank:
                faults.append(f"folder {a} -> {b}: a module lib.rs does not declare")
            elif rank[b] > rank[a]:
                example = f"{files[via[0][0]]} -> {files[via[0][1]]}"
                faults.append(
                    f"folder {a} imports {b}, declared below it in lib.rs (e.g. {example}): "
                    "move the shared item down, or the module up"
                )
    return faults


if __name__ == "__main__":
    main()
