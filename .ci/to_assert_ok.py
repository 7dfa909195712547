#!/usr/bin/env python3
# Re-run after merging test files that still carry bare ASSERT_TRUE(x.ok()):
#   python3 .ci/to_assert_ok.py tests/<dir>/*.cc   (then add #include "status_matchers.h"
#   and link kvstore::test_helpers where the file has neither).
"""ASSERT_TRUE(x.ok()) / EXPECT_TRUE(x.ok()) -> ASSERT_OK(x) / EXPECT_OK(x), one line at a time.
A trailing `<< x.status().ToString()` (or .message()) is dropped: ASSERT_OK prints it."""
import re, sys

def balanced_arg(line, start):
    depth = 0
    for i in range(start, len(line)):
        c = line[i]
        if c == '(':
            depth += 1
        elif c == ')':
            if depth == 0:
                return i
            depth -= 1
    return -1

changed_total = 0
for path in sys.argv[1:]:
    src = open(path).read().split('\n')
    out = []
    changed = 0
    for line in src:
        m = re.search(r'\b(ASSERT|EXPECT)_TRUE\(', line)
        if m:
            start = m.end()
            end = balanced_arg(line, start)
            if end > 0:
                arg = line[start:end]
                if arg.endswith('.ok()') and '&&' not in arg and '||' not in arg and balanced_arg(arg[:-5] + ')', 0) == len(arg) - 5:
                    expr = arg[:-5]
                    rest = line[end + 1:]
                    e = re.escape(expr)
                    rest = re.sub(r'^\s*<<\s*' + e + r'\.status\(\)\.(ToString|message)\(\)', '', rest)
                    rest = re.sub(r'^\s*<<\s*' + e + r'\.(ToString|message)\(\)', '', rest)
                    line = line[:m.start()] + m.group(1) + '_OK(' + expr + ')' + rest
                    changed += 1
        out.append(line)
    if changed:
        open(path, 'w').write('\n'.join(out))
        print(f"{path}: {changed}")
        changed_total += changed
print("total", changed_total)
