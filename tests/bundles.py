"""Model bundles made for tests from the bundled ones, without training."""

from __future__ import annotations

from pathlib import Path


def two_stream_bundle(path: Path) -> Path:
    """The bundled CLIP with MKT's two-stream head switched on (top-2 patches): a bundle with a
    local stream, without training one."""
    from mkt.bundle import load_bundle, save_bundle
    from mkt.factory import SYNTHETIC_BUNDLE

    bundle = load_bundle(SYNTHETIC_BUNDLE)
    bundle.kind, bundle.head = "mkt", {"local_top_k": 2, "local_weight": 1.0}
    bundle.meta.pop("relevance", None)  # constants fitted for the plain CLIP's scores do not hold for this head
    save_bundle(bundle, path)
    return path


def two_stream_home(root: Path, synthetic_photos: Path, n: int) -> Path:
    """``root/home``: ``n`` photos of the synthetic collection (in ``root/photos``) tagged with
    :func:`two_stream_bundle`, a collection whose tags have patch evidence."""
    from .commands import run_cli
    from .photos import photos_subset

    spec = f"mkt:{two_stream_bundle(root / 'two-stream.pt')}"
    run_cli("tag", str(photos_subset(synthetic_photos, root / "photos", n)), "--model", spec, home=root / "home")
    return root / "home"
