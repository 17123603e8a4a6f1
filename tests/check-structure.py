#!/usr/bin/python3
"""check-structure.py - the shape rules of docs/HACKING.md, checked.

  1. No include cycle between modules. Module X is daemon/X.c plus
     include/untild/X.h (include/untild/daemon.h belongs to module
     "untild": daemon/untild.c implements it). X -> Y when X's .c or .h
     includes "untild/Y.h"; include/untild/X_int.h, shared by the files
     of a module split where threads meet (daemon/X_worker.c), belongs to
     X. Every edge that lies on a cycle is a violation (removing edges can only shrink that set, so the allowlist only
     shrinks), and one cycle through it is shown.
     A call between modules needs the callee's header, directly or through
     another header, so a call cycle is an include cycle too (a callback
     passed in as a function pointer is how a module calls back without an
     edge).
  2. The core never sees an edge: a module in CORE includes only CORE
     modules (no daemon.h, no protocol, thread or socket module).
  3. No function in daemon/*.c longer than MAX_FUNC lines (from the line
     with its name to its closing brace).
  4. No file in daemon/ longer than MAX_FILE lines.
  5. The docs name real code: in docs/*.md, "`X.c` `fn`" and "`X.c`: `fn`"
     name something in daemon/X.c, and "→ `fn`" something in daemon/ or
     include/ (a rename must update docs/HACKING.md's map).

Known violations are listed in tests/structure-allow.txt, one a line, in
the form this script prints them. The check fails on a violation that is
not listed, and on a listed one that no longer exists (delete its line:
the list only shrinks).

Usage: tests/check-structure.py [--root DIR] [--allow FILE] [--list]
  --list  print every current violation in allowlist form and exit 0
A self-test first plants one violation of each kind in a scratch tree and
fails unless exactly those are found.
Output: "PASS structure: ..." / "FAIL structure: ..." lines (counted by
tests/run-all.sh), then the details; exit 1 on any FAIL.
"""
import argparse
import os
import re
import sys

MAX_FUNC = 120
MAX_FILE = 1500
HEADER_OWNER = {"daemon": "untild"}   # header name -> module that implements it
# The core: pure rules and durable state, tested with plain calls.
CORE = {"address", "when", "windows", "rrule", "window_parse", "fnv", "policy", "lifecycle",
        "message", "spool", "spool_format", "strbuf", "log"}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"untild/([A-Za-z0-9_]+)\.h"', re.M)


def module_of_header(name):
    if name.endswith("_int"):   # X_int.h: internal to module X (its .c halves)
        return name[:-4]
    return HEADER_OWNER.get(name, name)


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


# ---------- 1. include graph ----------

def include_graph(root):
    graph = {}
    ddir = os.path.join(root, "daemon")
    hdir = os.path.join(root, "include", "untild")
    files = []
    for name in sorted(os.listdir(ddir)):
        if name.endswith(".c"):
            files.append((name[:-2], os.path.join(ddir, name)))
    for name in sorted(os.listdir(hdir)):
        if name.endswith(".h"):
            files.append((module_of_header(name[:-2]), os.path.join(hdir, name)))
    for mod, path in files:
        edges = graph.setdefault(mod, set())
        for inc in INCLUDE_RE.findall(read(path)):
            dst = module_of_header(inc)
            if dst != mod:
                edges.add(dst)
                graph.setdefault(dst, set())
    return graph


def sccs(graph):
    """Tarjan, iterative. Returns a list of sets."""
    index, low, onstack, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        onstack.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    onstack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in onstack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    onstack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                out.append(comp)
    return out


def shortest_path(graph, src, dst, within):
    """Breadth-first path src -> dst inside the node set `within`."""
    prev = {src: None}
    queue = [src]
    for v in queue:
        if v == dst:
            break
        for w in sorted(graph[v]):
            if w in within and w not in prev:
                prev[w] = v
                queue.append(w)
    if dst not in prev:
        return None
    path, v = [], dst
    while v is not None:
        path.append(v)
        v = prev[v]
    return path[::-1]


def cycle_violations(root):
    graph = include_graph(root)
    found = {}
    for comp in sccs(graph):
        if len(comp) < 2:
            continue
        for a in sorted(comp):
            for b in sorted(graph[a]):
                if b in comp:
                    back = shortest_path(graph, b, a, comp)
                    found["include-cycle %s -> %s" % (a, b)] = \
                        "cycle: " + " -> ".join([a] + back)
    return found


def core_violations(root):
    graph = include_graph(root)
    found = {}
    for mod in sorted(CORE & set(graph)):
        for dst in sorted(graph[mod] - CORE):
            found["core-edge %s -> %s" % (mod, dst)] = \
                "core module %s includes the header of module %s" % (mod, dst)
    return found


# ---------- 3. function length ----------

def strip_c(text):
    """Blank out comments, string and char literals and preprocessor
    lines, keeping every newline so line numbers stay right."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            # a preprocessor line, with its continuations
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("\n")
                    i += 2
                    continue
                i += 1
            continue
        if c == "\n":
            out.append(c)
            at_line_start = True
            i += 1
            continue
        if c in " \t":
            out.append(c)
            i += 1
            continue
        at_line_start = False
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(ch if ch == "\n" else " " for ch in text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + "".join(ch if ch == "\n" else " " for ch in text[i + 1:j - 1]) + c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


IDENT_BEFORE_PAREN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")


def functions(text):
    """Yield (name, first_line, last_line) for each top-level function
    body: a '{' at depth 0 whose previous token is ')'."""
    s = strip_c(text)
    depth = 0
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "{":
            if depth == 0:
                k = i - 1
                while k >= 0 and s[k].isspace():
                    k -= 1
                if k >= 0 and s[k] == ")":
                    # find the '(' that opens the parameter list
                    pd, j = 0, k
                    while j >= 0:
                        if s[j] == ")":
                            pd += 1
                        elif s[j] == "(":
                            pd -= 1
                            if pd == 0:
                                break
                        j -= 1
                    m = IDENT_BEFORE_PAREN.search(s[:max(j, 0)])
                    if m:
                        end = matching_brace(s, i)
                        first = s.count("\n", 0, m.start(1)) + 1
                        last = s.count("\n", 0, end) + 1
                        yield m.group(1), first, last
                        i = end + 1
                        continue
            depth += 1
        elif c == "}":
            depth = max(depth - 1, 0)
        i += 1


def matching_brace(s, i):
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(s) - 1


def function_violations(root):
    found = {}
    ddir = os.path.join(root, "daemon")
    for name in sorted(os.listdir(ddir)):
        if not name.endswith(".c"):
            continue
        for fn, first, last in functions(read(os.path.join(ddir, name))):
            length = last - first + 1
            if length > MAX_FUNC:
                found["long-function daemon/%s:%s" % (name, fn)] = \
                    "%d lines (lines %d-%d; limit %d)" % (length, first, last, MAX_FUNC)
    return found


# ---------- 4. file length ----------

def file_violations(root):
    found = {}
    ddir = os.path.join(root, "daemon")
    for name in sorted(os.listdir(ddir)):
        if not (name.endswith(".c") or name.endswith(".h")):
            continue
        lines = read(os.path.join(ddir, name)).count("\n")
        if lines > MAX_FILE:
            found["long-file daemon/%s" % name] = "%d lines (limit %d)" % (lines, MAX_FILE)
    return found


# ---------- 5. the docs name real code ----------

DOC_PAIR_RE = re.compile(r"`(\w+)\.c`:? `(\w+)`")
DOC_ARROW_RE = re.compile(r"→ `(\w+)`")


def doc_violations(root):
    found = {}
    ddir = os.path.join(root, "daemon")
    docs = os.path.join(root, "docs")
    if not os.path.isdir(docs):
        return found
    src = {}
    for d in (ddir, os.path.join(root, "include", "untild")):
        for name in sorted(os.listdir(d)):
            if os.path.isfile(os.path.join(d, name)):   # not daemon/console/
                src[os.path.join(d, name)] = read(os.path.join(d, name))
    everything = "\n".join(src.values())
    for name in sorted(os.listdir(docs)):
        if not name.endswith(".md"):
            continue
        text = read(os.path.join(docs, name))
        for mod, ident in DOC_PAIR_RE.findall(text):
            body = src.get(os.path.join(ddir, mod + ".c"))
            if body is None or not re.search(r"\b%s\b" % re.escape(ident), body):
                found["doc-ref docs/%s: %s.c %s" % (name, mod, ident)] = \
                    "no %s in daemon/%s.c" % (ident, mod)
        for ident in DOC_ARROW_RE.findall(text):
            if not re.search(r"\b%s\b" % re.escape(ident), everything):
                found["doc-ref docs/%s: %s" % (name, ident)] = \
                    "no %s in daemon/ or include/" % ident
    return found


# ---------- allowlist ----------

def load_allow(path):
    allow = {}
    if not os.path.exists(path):
        return allow
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if line:
                allow[" ".join(line.split())] = lineno
    return allow


CHECKS = [
    ("include-cycle", "no include cycle between modules", cycle_violations),
    ("core-edge", "the core (%s) includes only the core" % ", ".join(sorted(CORE)),
     core_violations),
    ("long-function", "no function over %d lines in daemon/" % MAX_FUNC, function_violations),
    ("long-file", "no file over %d lines in daemon/" % MAX_FILE, file_violations),
    ("doc-ref", "the functions docs/*.md name exist", doc_violations),
]


def self_test():
    """Plant one violation of each kind in a scratch tree: the checker must
    find exactly those (a checker that finds nothing passes everything)."""
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "daemon"))
        os.makedirs(os.path.join(root, "include", "untild"))

        def put(rel, text):
            with open(os.path.join(root, rel), "w") as f:
                f.write(text)
        body = "".join("    x += %d;\n" % i for i in range(MAX_FUNC))
        put("daemon/a.c", '#include "untild/a.h"\n#include "untild/b.h"\n'
            "/* { not a body */\nstatic const char *s = \"{\";\n"
            "struct t { int x; };\nint ok(void)\n{\n    return 0;\n}\n"
            "static int big(int x)\n{\n" + body + "    return x;\n}\n")
        put("daemon/b.c", '#include "untild/b.h"\n#include "untild/a.h"\n')
        put("daemon/policy.c", '#include "untild/daemon.h"\n')
        put("daemon/untild.c", "\n" * (MAX_FILE + 1))
        for h in ("a", "b", "daemon"):
            put("include/untild/%s.h" % h, "")
        os.makedirs(os.path.join(root, "docs"))
        put("docs/X.md", "`a.c`: `big` and `a.c` `gone`; ok → `ok`, not → `nowhere`\n")
        got = set()
        for _, _, fn in CHECKS:
            got |= set(fn(root))
    want = {"include-cycle a -> b", "include-cycle b -> a", "core-edge policy -> untild",
            "long-function daemon/a.c:big", "long-file daemon/untild.c",
            "doc-ref docs/X.md: a.c gone", "doc-ref docs/X.md: nowhere"}
    return got == want, sorted(got ^ want)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(here))
    ap.add_argument("--allow", default=os.path.join(here, "structure-allow.txt"))
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()

    results = [(kind, title, fn(args.root)) for kind, title, fn in CHECKS]
    if args.list:
        for kind, title, found in results:
            for key in sorted(found):
                print("%-50s # %s" % (key, found[key]))
        return 0

    ok, diff = self_test()
    if not ok:
        print("FAIL structure: the checker's self-test (planted violations): %s" % ", ".join(diff))
        return 1

    allow = load_allow(args.allow)
    allow_rel = os.path.relpath(args.allow, args.root)
    failed = 0
    details = []
    for kind, title, found in results:
        new = sorted(k for k in found if k not in allow)
        gone = sorted(k for k in allow if k.startswith(kind + " ") and k not in found)
        known = len(found) - len(new)
        if new or gone:
            failed += 1
            print("FAIL structure: %s" % title)
            for k in new:
                details.append("  new violation: %s  (%s)" % (k, found[k]))
            for k in gone:
                details.append("  %s:%d: %s no longer happens: delete the line"
                               % (allow_rel, allow[k], k))
        else:
            print("PASS structure: %s%s" % (title, " (%d known, listed in %s)" % (known, allow_rel)
                                            if known else ""))
    stray = sorted(k for k in allow if not any(k.startswith(c[0] + " ") for c in CHECKS))
    for k in stray:
        failed += 1
        print("FAIL structure: %s:%d: not a violation this script can report: %s"
              % (allow_rel, allow[k], k))
    for d in details:
        print(d)
    if failed:
        print("structure: fix the code (docs/HACKING.md \"House style\"), or the doc that names "
              "code no longer there; a new violation is never added to the allowlist")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
