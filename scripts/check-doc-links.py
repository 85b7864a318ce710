#!/usr/bin/env python3
"""Usage: python3 scripts/check-doc-links.py. Checks every relative Markdown link and #anchor in README.md and docs/*.md (GitHub heading slugs)."""
import re, sys, os, glob
os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
def slugs(path):
    out, seen = set(), {}
    in_code = False
    for line in open(path):
        if line.startswith('```'): in_code = not in_code; continue
        m = None if in_code else re.match(r'^(#{1,6})\s+(.*?)\s*#*\s*$', line)
        if not m: continue
        s = m.group(2).strip().lower()
        s = re.sub(r'[^\w\- ]', '', s).replace(' ', '-')
        n = seen.get(s, 0); seen[s] = n + 1
        out.add(s if n == 0 else f'{s}-{n}')
    return out
files = ['README.md'] + sorted(glob.glob('docs/*.md'))
bad = 0; count = 0
for f in files:
    text = open(f).read()
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    for m in re.finditer(r'\]\(([^)\s]+)\)', text):
        link = m.group(1)
        if re.match(r'^[a-z]+:', link): continue
        count += 1
        path, _, anchor = link.partition('#')
        target = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
        if not os.path.exists(target):
            print(f'{f}: {link}: no file {target}'); bad += 1; continue
        if anchor and (not target.endswith('.md') or anchor not in slugs(target)):
            print(f'{f}: {link}: no anchor #{anchor} in {target}'); bad += 1
print(f'{count} relative links checked, {bad} broken'); sys.exit(1 if bad else 0)
