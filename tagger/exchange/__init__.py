"""Tags in and out of Tagscope: XMP sidecars (``xmp``), tag exports and imports (``tags``: XMP,
CSV, JSONL) and people's verdicts as training annotations (``training``)."""
