"""Reading the files of a photo library, the one way in: stills through Pillow, HEIC/HEIF, camera
RAW and video, and what a file says about when, where and with what it was taken.

- :mod:`core.media.stills`: still photos decoded robustly into upright RGB through Pillow;
- :mod:`core.media.errors`: the one-line reason a file cannot be tagged (:class:`ImageDecodeError`);
- :mod:`core.media.limits`: decompression bombs refused from the header (``max_pixels``);
- :mod:`core.media.formats`: which still formats Pillow may open, and this install can;
- :mod:`core.media.orientation`: EXIF orientation, applied, and the size as shown;
- :mod:`core.media.rgb`: any Pillow mode to 8-bit RGB (transparency on white, 16-bit scaled);
- :mod:`core.media.kinds`: which files are photos, RAW or video (by extension, as photo
  managers do), and the library each needs;
- :mod:`core.media.raw`: RAW files through LibRaw (rawpy): the embedded JPEG preview when it is
  large enough, else a half-size demosaic;
- :mod:`core.media.video`: frames sampled across a clip (PyAV);
- :mod:`core.media.metadata`: capture time, camera, lens and GPS from EXIF or the container;
- :mod:`core.media.places`: country, region and city from GPS, offline (GeoNames data);
- :mod:`core.media.read`: one call that decodes any of them and reads its metadata in the same pass.
"""
