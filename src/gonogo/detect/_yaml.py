"""A small YAML subset reader with line numbers (enough for heroku.yml; stdlib only).

Block mappings and sequences by indentation, `- key: value` items, flow sequences and
mappings on one line (`[a, "b c"]`, `{a: 1}`), plain / single / double quoted scalars, block
scalars (`|`, `>`), comments. Anchors, tags and multi-document streams are not supported:
such a file raises YamlError (the caller reports it as a problem, never as safe).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


class YamlError(ValueError):
    pass


@dataclass
class Scalar:
    value: str | None
    line: int


@dataclass
class Seq:
    items: list[Node]
    line: int


@dataclass
class Map:
    items: dict[str, Node] = field(default_factory=dict)
    line: int = 0


Node = Scalar | Seq | Map


@dataclass
class _Line:
    indent: int
    text: str
    num: int


def _strip_comment(text: str) -> str:
    out: list[str] = []
    quote: str | None = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"" and (i == 0 or text[i - 1] in " \t:[{,-"):
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t"):
            break
        out.append(c)
    return "".join(out).rstrip()


def parse(text: str) -> Node:
    raw_lines = text.split("\n")
    lines: list[_Line] = []
    for num, raw in enumerate(raw_lines, start=1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlError(f"line {num}: tab in indentation")
        stripped = _strip_comment(raw)
        if not stripped.strip() or stripped.strip() in ("---", "..."):
            continue
        if stripped.lstrip().startswith(("&", "*", "!", "%")):
            raise YamlError(f"line {num}: anchors, aliases, tags and directives are not read")
        lines.append(_Line(len(stripped) - len(stripped.lstrip()), stripped.strip(), num))
    if not lines:
        return Map({}, 1)
    reader = _Reader(lines, raw_lines)
    node = reader.block(lines[0].indent)
    if reader.i < len(lines):
        raise YamlError(f"line {lines[reader.i].num}: unexpected indentation")
    return node


_KEY = re.compile(r"""^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s'"#][^:#]*?)\s*:(?:\s+(.*))?$""")


class _Reader:
    def __init__(self, lines: list[_Line], raw: list[str]) -> None:
        self.lines = lines
        self.raw = raw
        self.i = 0

    def block(self, indent: int) -> Node:
        line = self.lines[self.i]
        if line.text.startswith("- ") or line.text == "-":
            return self.sequence(indent)
        return self.mapping(indent)

    def sequence(self, indent: int) -> Seq:
        seq = Seq([], self.lines[self.i].num)
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.indent != indent or not (line.text.startswith("- ") or line.text == "-"):
                break
            rest = line.text[1:].lstrip()
            if not rest:
                self.i += 1
                if self.i < len(self.lines) and self.lines[self.i].indent > indent:
                    seq.items.append(self.block(self.lines[self.i].indent))
                else:
                    seq.items.append(Scalar(None, line.num))
                continue
            if _KEY.match(rest) and not rest.startswith(("[", "{", '"', "'")):
                # "- key: value" starts a mapping whose keys are indented past the dash
                offset = line.indent + (len(line.text) - len(rest))
                self.lines[self.i] = _Line(offset, rest, line.num)
                seq.items.append(self.mapping(offset))
                continue
            self.i += 1
            seq.items.append(self.scalar(rest, line.num, indent))
        return seq

    def mapping(self, indent: int) -> Map:
        node = Map({}, self.lines[self.i].num)
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.indent < indent:
                break
            if line.indent > indent:
                raise YamlError(f"line {line.num}: unexpected indentation")
            m = _KEY.match(line.text)
            if not m:
                if line.text.startswith("- "):
                    break
                raise YamlError(f"line {line.num}: expected `key: value`")
            key = _unquote(m.group(1).strip())
            rest = (m.group(2) or "").strip()
            self.i += 1
            if not rest:
                if self.i < len(self.lines) and (
                    self.lines[self.i].indent > indent
                    or (
                        self.lines[self.i].indent == indent
                        and self.lines[self.i].text.startswith("- ")
                    )
                ):
                    node.items[key] = self.block(self.lines[self.i].indent)
                else:
                    node.items[key] = Scalar(None, line.num)
                continue
            node.items[key] = self.scalar(rest, line.num, indent)
        return node

    def scalar(self, text: str, num: int, indent: int) -> Node:
        if text[:1] in ("&", "*", "!"):
            raise YamlError(f"line {num}: anchors, aliases and tags are not read")
        if text[:1] in ("|", ">"):
            return self.block_scalar(text, num, indent)
        if text.startswith("["):
            text = self.continue_flow(text, "[", "]")
            return Seq([Scalar(_unquote(p), num) for p in _split_flow(text[1:-1])], num)
        if text.startswith("{"):
            text = self.continue_flow(text, "{", "}")
            node = Map({}, num)
            for part in _split_flow(text[1:-1]):
                key, _, value = part.partition(":")
                node.items[_unquote(key.strip())] = Scalar(_unquote(value.strip()), num)
            return node
        # plain multi-line scalars: following lines indented more than the key
        parts = [text]
        while (
            self.i < len(self.lines)
            and self.lines[self.i].indent > indent
            and not text.startswith(("'", '"'))
        ):
            parts.append(self.lines[self.i].text)
            self.i += 1
        return Scalar(_unquote(" ".join(parts)), num)

    def continue_flow(self, text: str, open_: str, close: str) -> str:
        while text.count(open_) > text.count(close) and self.i < len(self.lines):
            text += " " + self.lines[self.i].text
            self.i += 1
        if not text.endswith(close):
            raise YamlError(f"unterminated flow collection {text[:40]!r}")
        return text

    def block_scalar(self, header: str, num: int, indent: int) -> Scalar:
        folded = header.startswith(">")
        body: list[str] = []
        # read raw lines (comments inside block scalars are content)
        start = num  # 1-based line of the header; body begins on the next raw line
        j = start
        block_indent: int | None = None
        while j < len(self.raw):
            raw = self.raw[j]
            if raw.strip() == "":
                body.append("")
                j += 1
                continue
            ind = len(raw) - len(raw.lstrip())
            if ind <= indent:
                break
            if block_indent is None:
                block_indent = ind
            if ind < block_indent:
                break
            body.append(raw[block_indent:])
            j += 1
        while body and body[-1] == "":
            body.pop()
        # skip the structured lines consumed by the block
        while self.i < len(self.lines) and self.lines[self.i].num <= j:
            self.i += 1
        text = " ".join(b for b in body if b) if folded else "\n".join(body)
        return Scalar(text, num + 1)


def _split_flow(text: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    quote: str | None = None
    depth = 0
    for c in text:
        if quote:
            buf.append(c)
            if c == quote:
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(buf).strip())
            buf = []
            continue
        buf.append(c)
    if "".join(buf).strip():
        parts.append("".join(buf).strip())
    return parts


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            return text[1:-1]
        return value if isinstance(value, str) else text[1:-1]
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text
