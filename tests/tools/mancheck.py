#!/usr/bin/python3
"""mancheck.py: does a manual page say what the program does?

  mancheck.py exit PAGE FLAG STATUS
      The EXIT STATUS section of PAGE (rendered with mandoc) mentions FLAG
      (say "-h") under exactly one status, and that status is STATUS.
  mancheck.py options PAGE
      Every long option on standard input (a program's --help output) is
      described in PAGE, as a tag of its option list or in its text.

Prints what is wrong and exits 1, or exits 0 silently.
"""
import re
import subprocess
import sys


def render(page):
    out = subprocess.run(["mandoc", "-Tascii", page], check=True,
                         capture_output=True).stdout
    # Drop overstrike (bold, underline): "x\bx" and "_\bx".
    return re.sub(r".\x08", "", out.decode("ascii", "replace"))


def section(text, name):
    m = re.search(r"^" + re.escape(name) + r"\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)",
                  text, re.S | re.M)
    return m.group(1) if m else ""


def exit_items(text):
    """{status: text} from a -tag list of numbers."""
    items, cur = {}, None
    for line in section(text, "EXIT STATUS").split("\n"):
        m = re.match(r"^ {5}(\d+)\s+(.*)$", line)
        if m:
            cur = m.group(1)
            items[cur] = m.group(2)
        elif cur is not None:
            items[cur] += " " + line.strip()
    return items


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, page = sys.argv[1], sys.argv[2]
    text = render(page)
    if cmd == "exit":
        flag, want = sys.argv[3], sys.argv[4]
        pat = re.compile(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])")
        hits = [s for s, t in exit_items(text).items() if pat.search(t)]
        if hits != [want]:
            print(f"{page}: EXIT STATUS names {flag} under "
                  f"{hits or 'no status'}; the program exits {want}")
            return 1
        return 0
    if cmd == "options":
        opts = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z-]*",
                                     sys.stdin.read())))
        missing = [o for o in opts
                   if not re.search(r"(?<![\w-])" + re.escape(o) +
                                    r"(?![\w-])", text)]
        for o in missing:
            print(f"{page}: {o} is not described")
        return 1 if missing or not opts else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
