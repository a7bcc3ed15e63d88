"""The longest functions in src/ (tests aside): each `fn` item's body measured in lines, from
its signature to its closing brace. Fails when one is longer than the limit (60 lines by default,
FUNCTION_LINES to change it), listing the longest either way.

    python3 .ci/function-lengths.py [--top N]
"""

import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIMIT = int(os.environ.get("FUNCTION_LINES", "60"))
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def functions(path):
    lines = path.read_text().splitlines()
    in_tests = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\s*#\[cfg\(test\)\]", line):
            in_tests = True
        m = FN.match(line)
        if m and not in_tests:
            depth, started, j = 0, False, i
            while j < len(lines):
                code = re.sub(r'"(\\.|[^"\\])*"|b?\'(\\.|[^\'\\])\'|//.*$', "", lines[j])
                depth += code.count("{") - code.count("}")
                started = started or "{" in code
                if started and depth <= 0:
                    break
                if not started and code.rstrip().endswith(";"):
                    break  # a declaration without a body
                j += 1
            if started:
                yield m.group(6), i + 1, j - i + 1
            i = j
        i += 1


def main():
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 10
    found = []
    for path in sorted((ROOT / "src").rglob("*.rs")):
        if path.name == "tests.rs":
            continue
        for name, line, length in functions(path):
            found.append((length, f"{path.relative_to(ROOT)}:{line}", name))
    found.sort(reverse=True)
    for length, at, name in found[:top]:
        print(f"{length:5} lines  {name}  {at}")
    over = [f for f in found if f[0] > LIMIT]
    if over:
        print(f"{len(over)} function(s) over {LIMIT} lines", file=sys.stderr)
        sys.exit(1)
    print(f"no function in src/ over {LIMIT} lines ({len(found)} functions)")


if __name__ == "__main__":
    main()
