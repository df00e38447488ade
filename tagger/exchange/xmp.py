"""XMP keywords: write them into sidecars the way photo tools read them, and read them back.

Written (merged into an existing sidecar, never clobbering it), for each keyword an export gives
with its path in the keyword tree (``Animals|Mammals|Dog``; a label in no tree under the
``xmp_root`` setting's root: ``Tagscope|dog``):

- ``dc:subject``: the keyword, its parents and its synonyms, as Lightroom writes them (every tool
  reads these);
- ``lr:hierarchicalSubject``: the full path, ``Animals|Mammals|Dog`` (Lightroom; darktable and
  Immich read it);
- ``digiKam:TagsList``: the same path as ``Animals/Mammals/Dog`` (digiKam's own tag paths);
- ``tagscope:Keywords``, ``tagscope:HierarchicalSubject``, ``tagscope:TagsList``: which entries of
  the three fields Tagscope wrote, so that the next export replaces exactly its own and keeps
  everyone else's (a person's paths under the same root too). An entry someone else wrote first
  stays theirs. A sidecar from a Tagscope that recorded only ``tagscope:Keywords`` owned every
  path under ``Tagscope``, as it then did;
- ``tagscope:Text``: the words OCR read in the photo, a line per entry of an ``rdf:Seq`` in reading
  order (Tagscope's own field: replaced by each export that has a reading of the photo, removed
  when the reading found none, left as it is when the photo was not read).

A ``/`` or ``|`` inside a keyword would split a tag path, so it becomes ``-`` in the two
hierarchical fields (``dc:subject`` keeps it). Read: ``dc:subject`` and the leaves of the paths
other tools wrote, and those paths themselves (:func:`paths_in`: the keyword trees), from a
sidecar or from XMP embedded in the photo, and IPTC keywords (JPEG). Pure standard library,
except PIL for IPTC.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from core.atomic import atomic_write

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "tagscope": "https://github.com/tagscope/ns/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "darktable": "http://darktable.sf.net/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "Iptc4xmpCore": "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

ROOT_TAG = "Tagscope"  # the xmp_root setting's default, and the root Tagscope wrote under before it tracked paths
SEPARATORS = {"lr:hierarchicalSubject": "|", "digiKam:TagsList": "/"}
CONTAINERS = {"dc:subject": "Bag", "lr:hierarchicalSubject": "Bag", "digiKam:TagsList": "Seq"}
MINE = {"dc:subject": "tagscope:Keywords", "lr:hierarchicalSubject": "tagscope:HierarchicalSubject",
        "digiKam:TagsList": "tagscope:TagsList"}  # each field -> the record of the entries Tagscope wrote there
TEXT = "tagscope:Text"  # the words read in the photo, a line each
MAX_SIDECAR_BYTES = 16 << 20
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # characters XML 1.0 cannot hold
_PACKET = re.compile(rb"<x:xmpmeta[\s>].*?</x:xmpmeta>", re.S)


class XmpError(Exception):
    """A sidecar or embedded packet that is not XMP Tagscope can read (the message says why)."""


def q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def sidecar_path(photo: str | os.PathLike, style: str = "digikam") -> Path:
    """``IMG_0001.jpg.xmp`` (digiKam, darktable) or, with ``style="adobe"``, ``IMG_0001.xmp``."""
    photo = Path(photo)
    if style == "adobe":
        return photo.with_suffix(".xmp")
    if style != "digikam":
        raise ValueError(f"sidecar style must be digikam or adobe, got {style!r}")
    return photo.with_name(photo.name + ".xmp")


def _parse(data: bytes, where: str) -> ET.Element:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmpError(f"{where}: XMP with a DOCTYPE or entities is not read (unsafe)")
    match = _PACKET.search(data)
    try:
        return ET.fromstring(match.group(0) if match else data)
    except ET.ParseError as exc:
        raise XmpError(f"{where}: not well-formed XMP ({exc})") from None


def _items(root: ET.Element, prop: str) -> list[str]:
    prefix, name = prop.split(":")
    out: list[str] = []
    for element in root.iter(q(prefix, name)):
        out += [(li.text or "").strip() for li in element.iter(q("rdf", "li")) if (li.text or "").strip()]
    for description in root.iter(q("rdf", "Description")):  # the short form: a simple attribute
        value = description.get(q(prefix, name))
        if value:
            out.append(value.strip())
    return out


def _has(root: ET.Element, prop: str) -> bool:
    prefix, name = prop.split(":")
    return root.find(f".//{q(prefix, name)}") is not None or any(
        d.get(q(prefix, name)) is not None for d in root.iter(q("rdf", "Description")))


def _set_items(root: ET.Element, prop: str, values: list[str], container: str = "Bag", keep_empty: bool = False
               ) -> None:
    """Replace every occurrence of the array property ``prop`` by one holding ``values`` (none
    when ``values`` is empty, unless ``keep_empty``: an empty array)."""
    prefix, name = prop.split(":")
    descriptions = list(root.iter(q("rdf", "Description")))
    for description in descriptions:
        for element in description.findall(q(prefix, name)):
            description.remove(element)
        description.attrib.pop(q(prefix, name), None)
    if not values and not keep_empty:
        return
    element = ET.SubElement(descriptions[0], q(prefix, name))
    array = ET.SubElement(element, q("rdf", container))
    for value in values:
        ET.SubElement(array, q("rdf", "li")).text = value


def _path_safe(keyword: str) -> str:
    return keyword.replace("/", "-").replace("|", "-")


def path_text(path: Sequence[str], separator: str) -> str:
    """A keyword path as a hierarchical field writes it: ``Animals|Mammals|Dog``."""
    return separator.join(_path_safe(part) for part in path)


def _empty() -> ET.Element:
    root = ET.Element(q("x", "xmpmeta"), {q("x", "xmptk"): "Tagscope"})
    rdf = ET.SubElement(root, q("rdf", "RDF"))
    ET.SubElement(rdf, q("rdf", "Description"), {q("rdf", "about"): ""})
    return root


def _document(existing: bytes | None, where: str) -> ET.Element:
    """The sidecar's XMP as an ``x:xmpmeta`` element with at least one ``rdf:Description``."""
    root = _parse(existing, where) if existing else _empty()
    if root.tag != q("x", "xmpmeta"):  # a bare rdf:RDF document: wrap it
        wrapper = ET.Element(q("x", "xmpmeta"))
        wrapper.append(root)
        root = wrapper
    if root.find(f".//{q('rdf', 'Description')}") is None:
        rdf = root.find(q("rdf", "RDF"))
        if rdf is None:
            rdf = ET.SubElement(root, q("rdf", "RDF"))
        ET.SubElement(rdf, q("rdf", "Description"), {q("rdf", "about"): ""})
    return root


def _ours(root: ET.Element, prop: str) -> set[str]:
    """The entries of ``prop`` (lower case) that Tagscope wrote, as the sidecar records them."""
    if prop in SEPARATORS and not _has(root, MINE[prop]) and _has(root, MINE["dc:subject"]):
        prefix = (ROOT_TAG + SEPARATORS[prop]).lower()  # an older Tagscope's sidecar: every path under its root
        return {k.lower() for k in _items(root, prop) if k.lower().startswith(prefix)}
    return {k.lower() for k in _items(root, MINE[prop])}


def _distinct(values: Sequence[str]) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.lower(), value)
    return list(seen.values())


def merge_keywords(existing: bytes | None, subjects: Sequence[str], paths: Sequence[Sequence[str]],
                   where: str = "sidecar", text: Sequence[str] | None = None) -> bytes:
    """The sidecar bytes with Tagscope's entries replaced: ``subjects`` in ``dc:subject``, ``paths``
    (root first) in ``lr:hierarchicalSubject`` and ``digiKam:TagsList``, the ``text`` lines in
    ``TEXT`` (None: left as it is); everything else (other tools' and people's entries, other
    properties) kept."""
    root = _document(existing, where)
    wanted = {"dc:subject": _distinct(subjects),
              **{prop: _distinct([path_text(p, sep) for p in paths if p]) for prop, sep in SEPARATORS.items()}}
    ours = {prop: _ours(root, prop) for prop in wanted}  # all read before any is rewritten
    for prop, values in wanted.items():
        keep = [k for k in _items(root, prop) if k.lower() not in ours[prop]]
        kept = {k.lower() for k in keep}
        written = [v for v in values if v.lower() not in kept]  # someone else's entry stays theirs
        _set_items(root, prop, keep + written, CONTAINERS[prop])
        _set_items(root, MINE[prop], written, keep_empty=True)  # present even empty: paths are tracked
    if text is not None:
        lines = [" ".join(_NOT_XML.sub(" ", line).split()) for line in text]
        _set_items(root, TEXT, [line for line in lines if line], "Seq")
    body = ET.tostring(root, encoding="unicode")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body + '\n<?xpacket end="w"?>\n').encode()


def write_sidecar(photo: str | os.PathLike, subjects: Sequence[str], paths: Sequence[Sequence[str]],
                  style: str = "digikam", text: Sequence[str] | None = None) -> Path:
    """Merge Tagscope's keywords (and the photo's ``text`` lines, when read) into the photo's
    sidecar (created if missing), atomically."""
    path = sidecar_path(photo, style)
    existing = path.read_bytes() if path.exists() else None
    data = merge_keywords(existing, subjects, paths, str(path), text)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def keywords_in(data: bytes, where: str) -> list[str]:
    """Keywords of an XMP document or packet: ``dc:subject`` and the leaves of tag paths others wrote
    (Tagscope's own paths are skipped: ``dc:subject`` has their exact text)."""
    root = _parse(data, where)
    found = _items(root, "dc:subject")
    for prop, separator in SEPARATORS.items():
        ours = _ours(root, prop)
        found += [k.split(separator)[-1] for k in _items(root, prop) if k.lower() not in ours]
    return _unique(found)


def paths_in(data: bytes, where: str, root_name: str = ROOT_TAG) -> list[list[str]]:
    """The keyword paths of an XMP document or packet (``A|B|C``, ``A/B/C``) of two keywords or
    more, but those under ``root_name`` (Tagscope's root for labels in no tree)."""
    root = _parse(data, where)
    found = []
    for prop, separator in SEPARATORS.items():
        for entry in _items(root, prop):
            parts = [" ".join(part.split()) for part in entry.split(separator)]
            if len(parts) > 1 and all(parts) and parts[0].lower() != root_name.lower():
                found.append(parts)
    return _unique_paths(found)


def _unique(words: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for word in words:
        word = " ".join(word.split())
        if word and word.lower() not in seen:
            seen[word.lower()] = word
    return list(seen.values())


def _unique_paths(paths: list[list[str]]) -> list[list[str]]:
    seen: dict[tuple[str, ...], list[str]] = {}
    for path in paths:
        seen.setdefault(tuple(part.lower() for part in path), path)
    return list(seen.values())


def _packets(photo: Path) -> list[tuple[bytes, str]]:
    """(XMP, where) of a photo's sidecars (``.jpg.xmp``, ``.xmp``) and of XMP embedded in the file."""
    out = []
    for style in ("digikam", "adobe"):
        path = sidecar_path(photo, style)
        if path.is_file() and path.stat().st_size <= MAX_SIDECAR_BYTES:
            out.append((path.read_bytes(), str(path)))
    with open(photo, "rb") as fh:
        head = fh.read(MAX_SIDECAR_BYTES)
    if _PACKET.search(head):
        out.append((head, str(photo)))
    return out


def read_photo(photo: str | os.PathLike, root_name: str = ROOT_TAG) -> tuple[list[str], list[list[str]]]:
    """(keywords, keyword paths) a photo carries: its sidecars, XMP embedded in the file and IPTC
    keywords (keywords only); paths as :func:`paths_in` gives them."""
    photo = Path(photo)
    packets = _packets(photo)
    words = [w for data, where in packets for w in keywords_in(data, where)]
    paths = [p for data, where in packets for p in paths_in(data, where, root_name)]
    return _unique(words + _iptc_keywords(photo)), _unique_paths(paths)


def read_keywords(photo: str | os.PathLike) -> list[str]:
    """Every keyword a photo carries: its sidecars (``.jpg.xmp``, ``.xmp``), XMP embedded in the
    file, and IPTC keywords."""
    return read_photo(photo)[0]


def _iptc_keywords(photo: Path) -> list[str]:
    from PIL import Image, IptcImagePlugin

    try:
        with Image.open(photo) as image:
            info = IptcImagePlugin.getiptcinfo(image) or {}
    except Exception:  # not an image PIL reads, or no IPTC block: no keywords
        return []
    values = info.get((2, 25), [])
    values = values if isinstance(values, list) else [values]
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]
