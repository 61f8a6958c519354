"""The README and docs/ hold together: every relative link and every anchor resolves, every
docs/ file is reachable, and the README stays a first read (at most 200 lines, the two
commands as .ci/run and the Makefile use them)."""

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_LINES = 200
TWO_COMMANDS = (
    "make demo    # install, then monitor 4 synthetic patients live with the shipped model (60 s)\n"
    "make test    # install, then run the test suite (what CI runs)\n"
)

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HTML_TARGET = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def without_code(markdown: str) -> str:
    """The text outside fenced blocks and code spans: a `# comment` in a shell block is no
    heading, and `[x](y)` in code is no link."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading (github-slugger): the rendered text lower-cased,
    everything but letters, digits, marks, '_', '-' and spaces removed, spaces as '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link renders as its text
    text = re.sub(r"<[^>]+>|[`*]", "", text).lower()
    kept = (
        c
        for c in text
        if c in "-_ " or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc"
    )
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a page, numbered as GitHub numbers repeated headings (x, x-1, x-2)."""
    text = path.read_text(encoding="utf-8")
    seen: dict[str, int] = {}
    found = set(HTML_ANCHOR.findall(FENCE.sub("", text)))
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = github_slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def link_targets(path: Path) -> list[str]:
    text = without_code(path.read_text(encoding="utf-8"))
    return [
        *INLINE_LINK.findall(text),
        *REFERENCE_DEF.findall(text),
        *HTML_TARGET.findall(text),
    ]


def broken_links(pages: list[Path], root: Path = ROOT) -> list[str]:
    """One line per relative link or anchor that does not resolve: 'page: target (why)'."""
    problems = []
    for page in pages:
        for target in link_targets(page):
            if not target or EXTERNAL.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(root)}: {target}"
            if not linked.exists():
                problems.append(f"{where} (no file {file_part})")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{where} (no heading with anchor #{anchor} in {linked.name})")
    return problems


def test_every_relative_link_and_anchor_resolves() -> None:
    problems = broken_links(documents())
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_docs_file_is_linked_from_the_readme_or_a_docs_page() -> None:
    linked = {
        (page.parent / target.partition("#")[0]).resolve()
        for page in documents()
        for target in link_targets(page)
        if target.partition("#")[0] and not EXTERNAL.match(target)
    }
    orphans = [p.name for p in sorted((ROOT / "docs").iterdir()) if p.resolve() not in linked]
    assert not orphans, f"in docs/ but linked from nowhere: {orphans}"


def test_the_readme_is_a_first_read_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert f"```sh\n{TWO_COMMANDS}```" in text


def test_the_checker_reports_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "page.md").write_text(
        "# A page\n\n## Same\n\n## Same\n\n```sh\n# not a heading\n```\n", encoding="utf-8"
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Top: the `first` heading\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#same-1) [ok](#top-the-first-heading) "
        "[ok](https://example.org/nowhere) `[code](docs/gone.md)`\n"
        "[gone](docs/gone.md) [bad anchor](docs/page.md#same-2) [bad](#not-a-heading)\n"
        "![image](docs/missing.png)\n\n[ref]: docs/also-gone.md\n",
        encoding="utf-8",
    )
    assert broken_links([readme, docs / "page.md"], tmp_path) == [
        "README.md: docs/gone.md (no file docs/gone.md)",
        "README.md: docs/page.md#same-2 (no heading with anchor #same-2 in page.md)",
        "README.md: #not-a-heading (no heading with anchor #not-a-heading in README.md)",
        "README.md: docs/missing.png (no file docs/missing.png)",
        "README.md: docs/also-gone.md (no file docs/also-gone.md)",
    ]


def test_github_slugs() -> None:
    assert github_slug("Central station (web view)") == "central-station-web-view"
    assert github_slug("`mrm-edge send` and the device framing") == (
        "mrm-edge-send-and-the-device-framing"
    )
    assert github_slug("Measured on this project's machine (2026-12-01): INT8 files") == (
        "measured-on-this-projects-machine-2026-12-01-int8-files"
    )
    assert github_slug("CPU runtimes: OpenVINO, BF16 — and `auto`") == (
        "cpu-runtimes-openvino-bf16--and-auto"
    )
    assert github_slug("The [station](station.md) and tensorrt_rtx") == (
        "the-station-and-tensorrt_rtx"
    )
