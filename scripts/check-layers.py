#!/usr/bin/env python3
"""Checks that muster's module graph goes one way.

Why: the README's Architecture section promises layers (compose at the bottom, the CLI
at the top) and a newcomer relies on that promise to know which files a change may
touch. Nothing in Rust enforces it inside one crate, so this script does, from the
source text alone (python3 standard library, no cargo build):

  (a) no import cycle between the top-level modules of src/ (and of each crate);
  (b) no cycle between files, except a child module using its parent's (or another
      ancestor's) items: those upward edges are left out before looking for cycles,
      so a cycle through a parent (x.rs -> mod.rs -> y.rs -> x.rs) still counts;
  (c) no source file over MAX_LINES lines, not counting its `#[cfg(test)]` items
      (inline unit tests sit next to the code they pin; moving them out only to
      pass a line count would make both harder to read);
  (d) every import between top-level modules is allowed by LAYERS below.

Imports are read from `use` declarations (including nested `{...}` groups, `self`,
`as` and globs), from inline paths (`crate::a::b`, `super::x`, `self::x`, a child
module's name, path strings such as `#[serde(with = "crate::duration::serde_dur")]`)
and, in the binary (src/main.rs and src/cli/), from `muster::` paths. Items under
`#[cfg(test)]` are left out of the graph. Comments are ignored.

    python3 scripts/check-layers.py            # report; exit 1 on any failure
    python3 scripts/check-layers.py --edges    # also list every top-level edge

Exit status: 0 when all four checks pass, 1 otherwise (the failing edges are named
with the file and line of one import that makes each of them).
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 800

# The layers of the `muster` library and binary, bottom to top: (layer, its top-level
# modules, what they may import besides the leaves). A module may import the leaves,
# the modules named on its row, and nothing else of the crate; modules of one row do
# not import each other unless the row names them. Keep this table and the README's
# Architecture section the same.
LEAVES = {"duration", "error_text", "url", "clock", "tls", "link"}
LAYERS = [
    ("leaves", sorted(LEAVES), set()),
    ("compose model, graph, x-muster schema", ["compose"], set()),
    # webhooks need only the leaves (their rustls settings are the leaf tls.rs)
    ("webhooks", ["notify"], set()),
    ("engine, durable store, ready signals", ["engine", "history", "signal"], {"compose"}),
    ("probes", ["probe"], {"compose", "engine", "signal"}),
    ("grace periods", ["grace"], {"compose", "engine", "history"}),
    # up --swarm: the compose model as Swarm services, probes per task (agent
    # probes read the ready signals through signal::AgentWatcher)
    ("swarm deploy", ["swarm"], {"compose", "engine", "signal", "probe"}),
    # supervisor/swarm.rs supervises a swarm deploy (`up --swarm --serve`)
    ("supervisor", ["supervisor"],
     {"compose", "engine", "history", "notify", "signal", "probe", "grace", "swarm"}),
    ("rollout", ["rollout"],
     {"compose", "engine", "history", "notify", "signal", "probe", "grace", "supervisor"}),
    ("health endpoint (read-only over the snapshot)", ["health"],
     {"compose", "probe", "supervisor"}),
    ("composition root", ["config"],
     {"compose", "engine", "history", "notify", "signal", "probe", "grace", "swarm",
      "supervisor", "rollout", "health"}),
    ("binary", ["cli", "main"], {"*"}),
]


def allowed_table():
    """{module: modules it may import}, and {module: its row number}."""
    allowed, rank = {}, {}
    for i, (_, modules, may) in enumerate(LAYERS):
        for m in modules:
            allowed[m] = set(may) | (LEAVES if m not in LEAVES else set())
            rank[m] = i
    return allowed, rank


LINE_RE = re.compile(r"\n")
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
PATH_STRING_RE = re.compile(r"^(?:crate|super|self)(?:::" + IDENT + r")+$")


# ---------------------------------------------------------------- lexing

def strip(text):
    """Returns the text with comments blanked and string/char literals emptied,
    keeping every newline (so offsets map to the same lines). A string whose whole
    content is a `crate::`/`super::`/`self::` path is kept: serde attributes name
    functions that way."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 100]) and not _ident_before(text, i):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == "b" and text.startswith('b"', i) and not _ident_before(text, i):
            out.append(" ")
            i += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            body = text[i + 1:j]
            if PATH_STRING_RE.match(body):
                out.append(" " + body + " ")
            else:
                out.append(re.sub(r"[^\n]", " ", text[i:j + 1]))
            i = j + 1
        elif c == "'":
            # char literal ('x', '\n', '\u{1F600}') or a lifetime ('a)
            m = re.match(r"'(\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:i + 12])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _ident_before(text, i):
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")


def matching(code, i, open_ch, close_ch):
    """Index just past the bracket that closes the one at code[i]."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] == open_ch:
            depth += 1
        elif code[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


TEST_ATTR_RE = re.compile(r"#\s*\[\s*cfg\s*\(\s*(?:test|all\s*\(\s*test\b[^\]]*)\s*\)\s*\]")


def test_regions(code):
    """(start, end) offsets of items under `#[cfg(test)]` (an attribute, any further
    attributes, then the item up to its closing brace or semicolon)."""
    regions = []
    pos = 0
    while True:
        m = TEST_ATTR_RE.search(code, pos)
        if not m:
            return regions
        j = m.end()
        while True:  # further attributes on the same item
            k = len(code[j:]) - len(code[j:].lstrip())
            if code.startswith("#", j + k):
                b = code.find("[", j + k)
                j = matching(code, b, "[", "]")
            else:
                break
        end = j
        while end < len(code) and code[end] not in "{;":
            if code[end] == "(":
                end = matching(code, end, "(", ")")
                continue
            end += 1
        if end < len(code) and code[end] == "{":
            end = matching(code, end, "{", "}")
        else:
            end += 1
        regions.append((m.start(), end))
        pos = end


def blank(code, regions):
    parts, last = [], 0
    for s, e in regions:
        parts.append(code[last:s])
        parts.append(re.sub(r"[^\n]", " ", code[s:e]))
        last = e
    parts.append(code[last:])
    return "".join(parts)


def line_of(code, offset):
    return code.count("\n", 0, offset) + 1


# ---------------------------------------------------------------- use trees

def split_top(s, sep=","):
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def expand_use(tree, prefix=()):
    """All paths (tuples of segments) a use tree names: `a::{b, c::{d, self}}`."""
    tree = re.sub(r"\s+", "", tree)
    if "{" in tree:
        head, _, rest = tree.partition("{")
        body = rest[: rest.rfind("}")]
        head_segs = tuple(s for s in head.split("::") if s)
        paths = []
        for part in split_top(body):
            paths.extend(expand_use(part, prefix + head_segs))
        return paths
    segs = tuple(s for s in tree.split("::") if s)
    if segs and segs[-1] == "self":
        segs = segs[:-1]
    if segs and segs[-1] == "*":
        segs = segs[:-1]
    return [prefix + segs]


USE_RE = re.compile(r"(?<![A-Za-z0-9_])use\s+([^;]*);")
INLINE_RE = re.compile(r"(?<![A-Za-z0-9_:])((?:" + IDENT + r")(?:\s*::\s*" + IDENT + r")+)")
MOD_RE = re.compile(r"(?<![A-Za-z0-9_])(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*([;{])")


def clean_use(body):
    # `use a::b as c` -> drop the rename; in groups handled per part.
    body = re.sub(r"\s+as\s+" + IDENT, "", body)
    return body


# ---------------------------------------------------------------- the module tree

class File:
    def __init__(self, crate, modpath, path):
        self.crate = crate          # "muster", "muster-bin", "muster_signal", ...
        self.modpath = modpath      # tuple of segments from the crate root
        self.path = path            # repository-relative file path
        self.children = {}          # child module name -> modpath (file or inline)
        self.inline = {}            # inline module modpath -> this file
        self.code = ""
        self.lines = 0
        self.code_lines = 0


def module_dir(fs_path, modpath):
    base = os.path.basename(fs_path)
    d = os.path.dirname(fs_path)
    if base in ("mod.rs", "lib.rs", "main.rs"):
        return d
    return os.path.join(d, os.path.splitext(base)[0])


def load_crate(crate, root_file, modpath=()):
    """Walks `mod x;` declarations from a crate root; returns {modpath: File} and
    {inline modpath: file modpath}."""
    files, owner = {}, {}

    def visit(fs_path, mp):
        rel = os.path.relpath(fs_path, ROOT)
        f = File(crate, mp, rel)
        with open(fs_path, encoding="utf-8") as h:
            raw = h.read()
        f.lines = raw.count("\n") + (0 if raw.endswith("\n") or not raw else 1)
        code = strip(raw)
        regions = test_regions(code)
        test_lines = 0
        for s, e in regions:
            test_lines += line_of(code, e) - line_of(code, s) + 1
        f.code_lines = f.lines - test_lines
        f.code = blank(code, regions)
        files[mp] = f
        owner[mp] = mp
        d = module_dir(fs_path, mp)
        for m in MOD_RE.finditer(f.code):
            name, kind = m.group(1), m.group(2)
            child = mp + (name,)
            f.children[name] = child
            if kind == "{":
                owner[child] = mp
                continue
            for cand in (os.path.join(d, name + ".rs"), os.path.join(d, name, "mod.rs")):
                if os.path.exists(cand):
                    visit(cand, child)
                    break

    visit(root_file, modpath)
    return files, owner


def resolve(segs, here, owner):
    """The file modpath a path (already absolute in its crate) lands in: the longest
    prefix that is a module."""
    for k in range(len(segs), -1, -1):
        if tuple(segs[:k]) in owner:
            return owner[tuple(segs[:k])]
    return None


def absolute(segs, f, inline_mod=None):
    """Turns `crate::`/`super::`/`self::`/child-relative segments into an absolute
    module path; None for paths into other crates or std."""
    base = list(f.modpath)
    segs = list(segs)
    if not segs:
        return None
    if segs[0] == "crate":
        return segs[1:]
    if segs[0] in ("super", "self"):
        cur = base
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                cur = cur[:-1]
            segs = segs[1:]
        return cur + segs
    if segs[0] in f.children:
        return base + segs
    return None


def collect_edges(files, owner, crate_alias=None, alias_files=None, alias_owner=None):
    """Edges (from file, to file) with one (path, line, text) witness each."""
    edges = {}
    for mp, f in files.items():
        code = f.code
        found = []
        use_spans = []
        for m in USE_RE.finditer(code):
            use_spans.append((m.start(), m.end()))
            for p in expand_use(clean_use(m.group(1))):
                found.append((p, m.start(), "use " + re.sub(r"\s+", " ", m.group(1)).strip()))
        masked = blank(code, use_spans)
        for m in INLINE_RE.finditer(masked):
            p = tuple(s.strip() for s in m.group(1).split("::"))
            found.append((p, m.start(), re.sub(r"\s+", "", m.group(1))))
        for p, off, text in found:
            target = None
            if crate_alias and p and p[0] == crate_alias:
                target = ("ext", resolve(list(p[1:]), None, alias_owner))
                if target[1] is None:
                    continue
            else:
                a = absolute(p, f)
                if a is None:
                    continue
                t = resolve(a, mp, owner)
                if t is None or t == mp:
                    continue
                target = ("int", t)
            key = (mp, target)
            if key not in edges:
                edges[key] = (f.path, line_of(code, off), text)
    return edges


# ---------------------------------------------------------------- graphs

def sccs(nodes, adj):
    """Tarjan's strongly connected components (iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(adj.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def shortest_cycle(comp, adj):
    """One shortest cycle inside a component, as a node list, for a readable report."""
    comp_set = set(comp)
    best = None
    for s in comp:
        prev, queue, seen = {s: None}, [s], {s}
        found = None
        while queue and not found:
            nxt = []
            for v in queue:
                for w in sorted(adj.get(v, ())):
                    if w not in comp_set:
                        continue
                    if w == s:
                        found = v
                        break
                    if w not in seen:
                        seen.add(w)
                        prev[w] = v
                        nxt.append(w)
                if found:
                    break
            queue = nxt
        if found is not None:
            path = [found]
            while prev[path[-1]] is not None:
                path.append(prev[path[-1]])
            path.reverse()
            if best is None or len(path) < len(best):
                best = path
    return best


def is_ancestor(a, b):
    """True when module path a is a proper prefix of b (a is b's parent or above)."""
    return len(a) < len(b) and tuple(b[: len(a)]) == tuple(a)


def top_of(f):
    if f.crate == "muster-bin":
        return "main" if not f.modpath else f.modpath[0]
    return f.modpath[0] if f.modpath else None


def name_of(f):
    prefix = {"muster": "", "muster-bin": "bin:"}.get(f.crate, f.crate + ":")
    return prefix + ("::".join(f.modpath) if f.modpath else "(root)")


# ---------------------------------------------------------------- main

def main(argv):
    show_edges = "--edges" in argv
    failures = 0

    crates = []
    lib, lib_owner = load_crate("muster", os.path.join(ROOT, "src", "lib.rs"))
    crates.append(("muster", lib, lib_owner, collect_edges(lib, lib_owner)))
    if os.path.exists(os.path.join(ROOT, "src", "main.rs")):
        bin_files, bin_owner = load_crate("muster-bin", os.path.join(ROOT, "src", "main.rs"))
        crates.append(("muster-bin", bin_files, bin_owner,
                       collect_edges(bin_files, bin_owner, "muster", lib, lib_owner)))
    crates_dir = os.path.join(ROOT, "crates")
    for name in sorted(os.listdir(crates_dir)) if os.path.isdir(crates_dir) else []:
        root = os.path.join(crates_dir, name, "src", "lib.rs")
        if os.path.exists(root):
            cname = name.replace("-", "_")
            fs, ow = load_crate(cname, root)
            crates.append((cname, fs, ow, collect_edges(fs, ow)))

    all_files = [f for _, fs, _, _ in crates for f in fs.values()]
    print(f"check-layers: {len(all_files)} files in {len(crates)} crate roots")

    # ---- (a) and (d): top-level modules
    allowed, rank = allowed_table()
    top_edges = defaultdict(dict)  # crate -> {(a, b): witness}
    for cname, fs, ow, edges in crates:
        for (src, (kind, dst)), wit in edges.items():
            a = top_of(fs[src])
            if kind == "ext":
                b = lib[dst].modpath[0] if lib[dst].modpath else None
                group = "muster"  # the binary's imports of the library
            else:
                b = top_of(fs[dst])
                group = "muster" if cname in ("muster", "muster-bin") else cname
            if a is None or b is None or a == b:
                continue
            top_edges[group].setdefault((a, b), wit)

    print("\n(a) cycles between top-level modules")
    bad = 0
    for group, te in sorted(top_edges.items()):
        adj = defaultdict(set)
        for a, b in te:
            adj[a].add(b)
        nodes = set(adj) | {b for s in adj.values() for b in s}
        for comp in sccs(nodes, adj):
            bad += 1
            cyc = shortest_cycle(comp, adj)
            print(f"  FAIL {group}: {len(comp)} modules in one loop: {', '.join(comp)}")
            print(f"       e.g. {' -> '.join(cyc + [cyc[0]])}")
            for a, b in sorted(te):
                if a in comp and b in comp:
                    p, ln, text = te[(a, b)]
                    print(f"       {a} -> {b}: {p}:{ln}: {text}")
    print("  ok" if not bad else f"  {bad} loop(s)")
    failures += bad

    print("\n(d) layer table (a module may import only the modules listed for it)")
    bad = 0
    for a, b in sorted(top_edges.get("muster", {})):
        p, ln, text = top_edges["muster"][(a, b)]
        if a not in allowed:
            print(f"  FAIL {a} is not in the layer table (add it): {p}:{ln}")
            bad += 1
        elif "*" not in allowed[a] and b not in allowed[a]:
            print(f"  FAIL {a} -> {b} is not allowed: {p}:{ln}: {text}")
            bad += 1
    # the table itself must go one way: a row may only name rows below it
    for m, may in allowed.items():
        for b in may - {"*"}:
            if b not in rank:
                print(f"  FAIL the table lets {m} import {b}, which is in no row")
                bad += 1
            elif rank[b] >= rank[m]:
                print(f"  FAIL the table lets {m} import {b}, which is not below it")
                bad += 1
    print("  ok" if not bad else f"  {bad} edge(s) against the table")
    failures += bad

    # ---- (b): files
    print("\n(b) cycles between files (a child using its ancestors' items is allowed)")
    bad = 0
    for cname, fs, ow, edges in crates:
        adj = defaultdict(set)
        wit = {}
        for (src, (kind, dst)), w in edges.items():
            if kind != "int" or is_ancestor(dst, src):
                continue
            adj[src].add(dst)
            wit[(src, dst)] = w
        nodes = set(adj) | {b for s in adj.values() for b in s}
        for comp in sccs(nodes, adj):
            bad += 1
            cyc = shortest_cycle(comp, adj)
            print(f"  FAIL {' -> '.join(name_of(fs[m]) for m in cyc + [cyc[0]])}")
            for a, b in zip(cyc, cyc[1:] + [cyc[0]]):
                p, ln, text = wit[(a, b)]
                print(f"       {name_of(fs[a])} -> {name_of(fs[b])}: {p}:{ln}: {text}")
            if len(comp) > len(cyc):
                print(f"       (the loop holds {len(comp)} files: "
                      f"{', '.join(name_of(fs[m]) for m in comp)})")
    print("  ok" if not bad else f"  {bad} loop(s)")
    failures += bad

    # ---- (c): size
    print(f"\n(c) files over {MAX_LINES} lines (not counting #[cfg(test)] items)")
    bad = 0
    for f in sorted(all_files, key=lambda f: -f.code_lines):
        if f.code_lines > MAX_LINES:
            print(f"  FAIL {f.path}: {f.code_lines} lines ({f.lines} with tests)")
            bad += 1
    print("  ok" if not bad else f"  {bad} file(s)")
    failures += bad

    if show_edges:
        print("\ntop-level edges")
        for group, te in sorted(top_edges.items()):
            for (a, b), (p, ln, text) in sorted(te.items()):
                print(f"  {group}: {a} -> {b}  ({p}:{ln})")

    print("\ncheck-layers: " + ("ok" if not failures else f"{failures} failure(s)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
