#!/usr/bin/env python3
"""The folders of src/ in layers: a file may include only its own folder and the folders
left of its own in ORDER, and never a folder APART from its own. Prints every include that
breaks the order (file:line) and exits 1;
also when a folder of src/ is not in ORDER. Run at every build (CMake target check_layers)
and as the test `layers`.

  check_layers.py SRC_DIR      check a source tree
  check_layers.py --self-test  check that a wrong include is caught (the test `layers.selftest`)
"""
import os
import re
import sys
import tempfile

ORDER = ['util', 'packet', 'capture', 'conn', 'store', 'query', 'flow', 'config', 'record', 'server',
         'ids', 'cluster', 'cmdline', 'daemon', 'cli']
# The two programs are built from their own folders (daemon/: tm-daemon, cli/: tm) and
# neither includes the other: tm must not link what only the daemons need (cpp-httplib).
APART = {('cli', 'daemon')}
INCLUDE = re.compile(r'\s*#\s*include\s+"([^/"]+)/')


def violations(src):
    rank = {d: i for i, d in enumerate(ORDER)}
    folders = sorted(d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d)))
    out = [f'{src}/{d}: folder not in the layer order (scripts/check_layers.py ORDER)'
           for d in folders if d not in rank]
    for d in folders:
        if d not in rank:
            continue
        for root, _, files in os.walk(os.path.join(src, d)):
            for f in sorted(files):
                if not f.endswith(('.h', '.hpp', '.cpp', '.cc')):
                    continue
                path = os.path.join(root, f)
                with open(path, errors='replace') as fh:
                    for n, line in enumerate(fh, 1):
                        m = INCLUDE.match(line)
                        if not m or m.group(1) == d or m.group(1) not in folders:
                            continue
                        to = m.group(1)
                        if (d, to) in APART:
                            out.append(f'{path}:{n}: {d}/ includes {to}/: the two programs are built '
                                       f'apart (scripts/check_layers.py APART)')
                        elif to not in rank or rank[to] > rank[d]:
                            out.append(f'{path}:{n}: {d}/ includes {to}/, which is not below it '
                                       f'(order: {", ".join(ORDER)})')
    return out


def self_test():
    with tempfile.TemporaryDirectory() as t:
        def write(rel, text):
            os.makedirs(os.path.dirname(os.path.join(t, rel)), exist_ok=True)
            with open(os.path.join(t, rel), 'w') as f:
                f.write(text)
        write('util/a.h', '#pragma once\n')
        write('store/b.h', '#include "util/a.h"\n#include "store/c.h"\n')
        write('store/c.h', '#pragma once\n')
        assert violations(t) == [], violations(t)  # downwards and within a folder: fine
        write('store/d.cpp', '#include <vector>\n  #  include "flow/e.h"\n')
        write('flow/e.h', '#include "store/c.h"\n')
        v = violations(t)
        assert len(v) == 1 and 'store/d.cpp:2' in v[0] and 'includes flow/' in v[0], v
        write('daemon/g.h', '#pragma once\n')
        write('cli/h.cpp', '#include "daemon/g.h"\n')
        v = violations(t)
        assert len(v) == 2 and any('cli/h.cpp:1' in x and 'built apart' in x for x in v), v
        os.remove(os.path.join(t, 'cli/h.cpp'))
        write('newdir/f.h', '#pragma once\n')
        v = violations(t)
        assert len(v) == 2 and any('newdir: folder not in the layer order' in x for x in v), v
    print('check_layers self-test: ok')
    return 0


def main(argv):
    if argv[1:] == ['--self-test']:
        return self_test()
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    v = violations(argv[1])
    for x in v:
        print(x, file=sys.stderr)
    return 1 if v else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
