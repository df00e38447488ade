"""One image in the OpenAPI document (:mod:`web.openapi`): its record, tags and text, curation verdicts,
evidence maps, its page, the photo at full size and its thumbnail (:mod:`web.images`,
:mod:`web.feedback`, :mod:`web.evidence`)."""

from __future__ import annotations

from typing import Any

from web.openapi.shapes import NULLABLE_INT, NULLABLE_STR, errors, html_page, json_response, obj, path_id, query

TEXT_READ = obj({"state": {"type": "string", "enum": ["read", "failed"]},
                 "error": {**NULLABLE_STR, "description": "why the text could not be read (one line)"},
                 "lines": {"type": "integer", "minimum": 0}, "engine": {"type": "string"},
                 "read_at": NULLABLE_STR,
                 "current": {"type": "boolean", "description": "false when the file changed since: it is "
                             "read again on the next tagging run"}})

SCHEMAS: dict[str, Any] = {
    "Tag": obj({"label": {"type": "string"}, "score": {"type": "number", "nullable": True},
                "model_version": NULLABLE_STR,
                "confirmed": {"type": "boolean", "description": "confirmed (or added) by a person: listed first"},
                "match": {"type": "boolean", "description": "the label is in the photo: its score reaches the "
                          "label's cutoff under the version (or a person confirmed it); matches come first"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                               "description": "how sure the decision is (1 for a confirmed tag)"},
                "implied": {"type": "boolean", "description": "a keyword implied by a matching keyword under it "
                            "in the tree (no score of its own)"}}),
    "Evidence": obj({"label": {"type": "string"}, "available": {"type": "boolean"}, "reason": NULLABLE_STR,
                     "grid": {"type": "array", "items": {"type": "integer"}, "description": "rows, columns"},
                     "scores": {"type": "array", "items": {"type": "number"}, "description": "row-major"},
                     "top": {"type": "array", "items": {"type": "integer"},
                             "description": "the cells the local stream averages"}}),
    "Verdict": obj({"label": {"type": "string", "maxLength": 200},
                    "verdict": {"type": "string", "enum": ["confirm", "reject", "clear"]}}),
    "TextLine": obj({"text": {"type": "string", "description": "the line as read"},
                     "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                                    "description": "the recogniser's confidence in the line"},
                     "language": {**NULLABLE_STR, "description": "the line's language when known"},
                     "box": {"type": "array", "minItems": 4, "maxItems": 4,
                             "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}},
                             "description": "the line's four corners [x, y] in the upright photo's pixels "
                             "(width x height of the image; a video's: in its frame at frame_ms)"},
                     "frame_ms": {**NULLABLE_INT, "description": "a video's frame the line is in, milliseconds "
                                  "from its start"}}),
    "Image": obj({"image_id": {"type": "integer"}, "path": {"type": "string"}, "status": {"type": "string"},
                  "error": NULLABLE_STR, "width": NULLABLE_INT, "height": NULLABLE_INT,
                  "format": NULLABLE_STR, "duplicate_of": NULLABLE_INT,
                  "mtime": {"type": "number", "nullable": True}, "model_version": NULLABLE_STR,
                  "media": {"type": "string", "nullable": True, "enum": ["photo", "raw", "video", None]},
                  "taken_at": {**NULLABLE_STR, "description": "ISO 8601, with the UTC offset when the file has one"},
                  "taken_at_source": {"type": "string", "nullable": True, "enum": ["exif", "video", "file", None]},
                  "camera": {**obj({"make": NULLABLE_STR, "model": NULLABLE_STR, "lens": NULLABLE_STR}),
                             "nullable": True},
                  "gps": {**obj({"lat": {"type": "number"}, "lon": {"type": "number"}}), "nullable": True},
                  "place": {**obj({"country": NULLABLE_STR, "region": NULLABLE_STR, "city": NULLABLE_STR,
                                   "neighbourhood": NULLABLE_STR}),
                            "nullable": True, "description": "from GPS, offline (GeoNames): the city people "
                            "name, and the neighbourhood (a section of it) when the position is near one"},
                  "duration_s": {"type": "number", "nullable": True},
                  "stack": {"type": "array", "items": {"type": "string"},
                            "description": "the other files of this shot"},
                  "stack_face": {**NULLABLE_INT, "description": "the id of the file shown for the stack"},
                  "rejected": {"type": "array", "items": {"type": "string"},
                               "description": "labels a person rejected: never shown as tags"},
                  "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"},
                           "description": "the matches (and the keywords they imply) first, then the tags also "
                           "scored"},
                  "text": {"type": "array", "items": {"$ref": "#/components/schemas/TextLine"},
                           "description": "the words OCR read in the photo, a line each, in reading order"},
                  "text_read": {**TEXT_READ, "nullable": True,
                                "description": "what OCR last did with the photo; null when it never read it"}}),
}

PATHS: dict[str, Any] = {
    "/api/images/{image_id}": {"get": {"summary": "One image, its stored tags and its text",
                                       "parameters": [path_id("image_id")],
                                       "responses": {"200": json_response("Image", "the image"), **errors(404)}}},
    "/api/images/{image_id}/feedback": {"post": {
        "summary": "Confirm, reject or add (confirm a new label) a tag of a photo, or clear a verdict",
        "parameters": [path_id("image_id")],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Verdict"}}}},
        "responses": {"200": json_response("Image", "the photo with its tags as people now see them"),
                      **errors(400, 401, 403, 404)}}},
    "/image/{image_id}/feedback": {"post": {
        "summary": "The image page's verdict form (label, verdict); answers 303 back to the page",
        "parameters": [path_id("image_id")],
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {}}},
        "responses": {"303": {"description": "back to the image page"}, **errors(400, 403, 404)}}},
    "/api/images/{image_id}/evidence": {"get": {
        "summary": "Why a tag: the label's share of each patch (models with a local stream; else available=false)",
        "parameters": [path_id("image_id"), query("label", {"type": "string", "maxLength": 200}, "the tag's text")],
        "responses": {"200": json_response("Evidence", "the patch scores"), **errors(400, 404)}}},
    "/image/{image_id}/evidence.png": {"get": {
        "summary": "The same as a heatmap over the photo",
        "parameters": [path_id("image_id"), query("label", {"type": "string", "maxLength": 200}, "the tag's text")],
        "responses": {"200": {"description": "PNG", "content": {"image/png": {}}}, **errors(400, 404)}}},
    "/image/{image_id}": html_page("One image's page (with q or like, filters and r = its rank: previous/next)",
                                   [path_id("image_id")]),
    "/image/{image_id}/full": {"get": {
        "summary": "The photo at full size: the original file, or a JPEG of formats browsers do not show",
        "parameters": [path_id("image_id")],
        "responses": {"200": {"description": "the photo", "content": {"image/*": {}}}, **errors(404)}}},
    "/thumb/{image_id}": {"get": {"summary": "A registered image's thumbnail (256 px)",
                                  "parameters": [path_id("image_id")],
                                  "responses": {"200": {"description": "JPEG", "content": {"image/jpeg": {}}},
                                                "304": {"description": "not modified (ETag)"}, **errors(404)}}},
}
