"""XMP keywords: write them into sidecars the way photo tools read them, and read them back.

Written (merged into an existing sidecar, never clobbering it):

- ``dc:subject``: the keywords themselves (every tool reads these);
- ``lr:hierarchicalSubject``: ``Tagscope|keyword`` (Lightroom; darktable and Immich read it);
- ``digiKam:TagsList``: ``Tagscope/keyword`` (digiKam's own tag paths);
- ``tagscope:Keywords``: which ``dc:subject`` entries Tagscope wrote, so that the next export
  replaces its own keywords and keeps everyone else's.

A ``/`` or ``|`` inside a keyword would split a tag path, so it becomes ``-`` in the two
hierarchical fields (``dc:subject`` keeps it). Read: ``dc:subject``, the leaves of both
hierarchical fields, from a sidecar or from XMP embedded in the photo, and IPTC keywords
(JPEG). Pure standard library, except PIL for IPTC.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
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

ROOT_TAG = "Tagscope"
MAX_SIDECAR_BYTES = 16 << 20
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


def _set_items(root: ET.Element, prop: str, values: list[str], container: str = "Bag") -> None:
    """Replace every occurrence of the array property ``prop`` by one holding ``values``."""
    prefix, name = prop.split(":")
    descriptions = list(root.iter(q("rdf", "Description")))
    for description in descriptions:
        for element in description.findall(q(prefix, name)):
            description.remove(element)
        description.attrib.pop(q(prefix, name), None)
    if not values:
        return
    element = ET.SubElement(descriptions[0], q(prefix, name))
    array = ET.SubElement(element, q("rdf", container))
    for value in values:
        ET.SubElement(array, q("rdf", "li")).text = value


def _path_safe(keyword: str) -> str:
    return keyword.replace("/", "-").replace("|", "-")


def _empty() -> ET.Element:
    root = ET.Element(q("x", "xmpmeta"), {q("x", "xmptk"): "Tagscope"})
    rdf = ET.SubElement(root, q("rdf", "RDF"))
    ET.SubElement(rdf, q("rdf", "Description"), {q("rdf", "about"): ""})
    return root


def merge_keywords(existing: bytes | None, keywords: list[str], where: str = "sidecar") -> bytes:
    """The sidecar bytes with Tagscope's keywords replaced by ``keywords`` and everything else
    (other tools' keywords, other properties) kept."""
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
    ours = {k.lower() for k in _items(root, "tagscope:Keywords")}
    keep_subject = [k for k in _items(root, "dc:subject") if k.lower() not in ours]
    prefix_lr, prefix_dk = f"{ROOT_TAG}|", f"{ROOT_TAG}/"
    keep_lr = [k for k in _items(root, "lr:hierarchicalSubject") if not k.startswith(prefix_lr)]
    keep_dk = [k for k in _items(root, "digiKam:TagsList") if not k.startswith(prefix_dk)]
    kept_lower = {k.lower() for k in keep_subject}
    written = [k for k in dict.fromkeys(keywords) if k.lower() not in kept_lower]
    _set_items(root, "dc:subject", keep_subject + written)
    _set_items(root, "lr:hierarchicalSubject", keep_lr + [prefix_lr + _path_safe(k) for k in keywords])
    _set_items(root, "digiKam:TagsList", keep_dk + [prefix_dk + _path_safe(k) for k in keywords], "Seq")
    _set_items(root, "tagscope:Keywords", written)
    body = ET.tostring(root, encoding="unicode")
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n' + body + '\n<?xpacket end="w"?>\n').encode()


def write_sidecar(photo: str | os.PathLike, keywords: list[str], style: str = "digikam") -> Path:
    """Merge ``keywords`` into the photo's sidecar (created if missing), atomically."""
    path = sidecar_path(photo, style)
    existing = path.read_bytes() if path.exists() else None
    data = merge_keywords(existing, keywords, str(path))
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def keywords_in(data: bytes, where: str) -> list[str]:
    """Keywords of an XMP document or packet: ``dc:subject`` and the leaves of tag paths."""
    root = _parse(data, where)
    found = _items(root, "dc:subject")  # Tagscope's own paths are skipped: dc:subject has their exact text
    found += [k.split("|")[-1] for k in _items(root, "lr:hierarchicalSubject") if not k.startswith(ROOT_TAG + "|")]
    found += [k.split("/")[-1] for k in _items(root, "digiKam:TagsList") if not k.startswith(ROOT_TAG + "/")]
    return _unique(found)


def _unique(words: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for word in words:
        word = " ".join(word.split())
        if word and word.lower() not in seen:
            seen[word.lower()] = word
    return list(seen.values())


def read_keywords(photo: str | os.PathLike) -> list[str]:
    """Every keyword a photo carries: its sidecars (``.jpg.xmp``, ``.xmp``), XMP embedded in the
    file, and IPTC keywords."""
    photo = Path(photo)
    found: list[str] = []
    for style in ("digikam", "adobe"):
        path = sidecar_path(photo, style)
        if path.is_file() and path.stat().st_size <= MAX_SIDECAR_BYTES:
            found += keywords_in(path.read_bytes(), str(path))
    with open(photo, "rb") as fh:
        head = fh.read(MAX_SIDECAR_BYTES)
    if _PACKET.search(head):
        found += keywords_in(head, str(photo))
    return _unique(found + _iptc_keywords(photo))


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
