#!/usr/bin/env python3
"""Fails when the library's top-level modules import each other in a cycle.

The data flows one way (stimulus -> model -> engine -> spectrum -> lines -> snr ->
importance -> report); a module that names `crate::<other>` depends on it. Test code
(`#[cfg(test)]` to the end of a file) and comments are not counted.
Usage: scripts/check-module-cycles.py [SRC_DIR]   (default crates/flickertag/src)
"""
import re,os,collections,sys
deps=collections.defaultdict(set)
src_dir=sys.argv[1] if len(sys.argv)>1 else 'crates/flickertag/src'
for root,_,files in os.walk(src_dir):
    for f in files:
        if not f.endswith('.rs'): continue
        p=os.path.join(root,f)
        mod=os.path.relpath(p,src_dir).split('/')[0].replace('.rs','')
        src=re.sub(r'#\[cfg\(test\)\][\s\S]*','',open(p).read())
        src=re.sub(r'//[^\n]*','',src)
        for m in re.findall(r'crate::([a-z_]+)',src):
            if m!=mod and m not in ('error',): deps[mod].add(m)
        for m in re.findall(r'use crate::\{([^}]*)\}',src):
            for x in re.findall(r'\b([a-z_]+)::',m):
                if x!=mod: deps[mod].add(x)
cyc=set()
def dfs(n,stack):
    for m in deps.get(n,()):
        if m in stack: cyc.add(tuple(stack[stack.index(m):]+[m]))
        else: dfs(m,stack+[m])
for n in list(deps): dfs(n,[n])
if cyc:
    for c in sorted(cyc): print('module cycle:', ' -> '.join(c))
    sys.exit(1)
print('library modules: no import cycle')
