"""Photo-library files beyond Pillow's stills: HEIC/HEIF, camera RAW and video, and what a file
says about when, where and with what it was taken.

- :mod:`core.media.kinds`: which files are photos, RAW or video (by extension, as photo
  managers do), and the library each needs;
- :mod:`core.media.raw`: RAW files through LibRaw (rawpy): the embedded JPEG preview when it is
  large enough, else a half-size demosaic;
- :mod:`core.media.video`: frames sampled across a clip (PyAV);
- :mod:`core.media.metadata`: capture time, camera, lens and GPS from EXIF or the container;
- :mod:`core.media.places`: country, region and city from GPS, offline (GeoNames data);
- :mod:`core.media.read`: one call that decodes any of them and reads its metadata in the same pass.
"""
