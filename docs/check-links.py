#!/usr/bin/env python3
"""Fails on a broken link in the built book or in the repository's markdown.

- Every relative href/src in docs/book/**/*.html must name a file that the
  build produced, and a #fragment must name an id (or name) in that file.
- Every relative link in the markdown outside the book (README.md,
  docs/SECURITY-AUDIT.md, each crate's README.md) must name a file or
  directory of the repository.

External links (http, https, mailto) are not fetched: CI has no network.

Usage: python3 docs/check-links.py   (after `mdbook build docs`)
"""

import html.parser
import pathlib
import re
import sys
import urllib.parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
BOOK = ROOT / "docs" / "book"
EXTERNAL = ("http:", "https:", "mailto:", "javascript:", "data:")


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name"):
                self.ids.add(value)
            elif name in ("href", "src"):
                self.links.append(value)


def parse(path, cache={}):
    if path not in cache:
        page = Page()
        page.feed(path.read_text(encoding="utf-8"))
        cache[path] = page
    return cache[path]


def check_book():
    errors = []
    pages = sorted(BOOK.rglob("*.html"))
    if not pages:
        return [f"{BOOK} has no HTML: run `mdbook build docs` first"]
    for page in pages:
        for link in parse(page).links:
            if link.startswith(EXTERNAL) or link.startswith("//"):
                continue
            url = urllib.parse.urlsplit(link)
            target = page
            if url.path:
                base = BOOK if url.path.startswith("/") else page.parent
                target = (base / urllib.parse.unquote(url.path).lstrip("/")).resolve()
                if target.is_dir():
                    target = target / "index.html"
                if not target.exists():
                    errors.append(f"{page.relative_to(ROOT)}: broken link {link}")
                    continue
            fragment = urllib.parse.unquote(url.fragment)
            if fragment and target.suffix == ".html" and fragment not in parse(target).ids:
                errors.append(f"{page.relative_to(ROOT)}: no #{fragment} in {link or page.name}")
    return errors


MD_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def check_markdown():
    errors = []
    files = [ROOT / "README.md", ROOT / "docs" / "SECURITY-AUDIT.md"]
    files += sorted(ROOT.glob("*/README.md"))
    for md in files:
        if not md.exists():
            continue
        text = md.read_text(encoding="utf-8")
        # Links inside code blocks and code spans are examples, not links.
        text = re.sub(r"```.*?```", "", text, flags=re.S)
        text = re.sub(r"`[^`\n]*`", "", text)
        for link in MD_LINK.findall(text):
            if link.startswith(EXTERNAL) or link.startswith("#"):
                continue
            path = urllib.parse.unquote(urllib.parse.urlsplit(link).path)
            if not (md.parent / path).exists():
                errors.append(f"{md.relative_to(ROOT)}: broken link {link}")
    return errors


def main():
    errors = check_book() + check_markdown()
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} broken link(s)")
        return 1
    print("links: all good")
    return 0


if __name__ == "__main__":
    sys.exit(main())
