"""People's verdicts rule every query that looks for their text (issue 30, point 4): a photo
rejected for "red circle" stays out of queries with operators and weights too, and one confirmed
for it comes first there; with a filter, across pages, through the API and the command line;
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os

import pytest

from core.settings import load_settings
from indexer.search.filters import Filters

from .commands import run_cli
from .photos import read_labels_jsonl

N = 120
QUERIES = ["red circle -striped background", "red circle + red thing", "2:red circle + cyan thing", "2:red circle"]


@pytest.fixture
def library(home_env, synthetic_photos, tmp_path):
    """(home, env, searcher, folder a) of N photos split between folders a and b, tagged."""
    from indexer.search.searcher import Searcher

    home, env, _ = home_env
    photos = tmp_path / "photos"
    for n, name in enumerate(sorted(read_labels_jsonl(synthetic_photos))[:N]):
        folder = photos / "ab"[n % 2]
        folder.mkdir(parents=True, exist_ok=True)
        os.link(synthetic_photos / name, folder / name)
    run_cli("tag", str(photos), home=home, **env)
    return home, env, Searcher(load_settings(environ=env, home=str(home))), str(photos / "a")


def paged(searcher, text: str, filters: Filters | None = None, k: int = 7) -> list:
    """Every hit of ``text``, page after page of ``k``."""
    hits, offset = [], 0
    while True:
        page = searcher.find(text, k=k, offset=offset, filters=filters)
        hits += page.hits
        if not page.more:
            return hits
        offset += k


def api_ids(home, env, text: str, **params) -> list[int]:
    from web import create_app

    client = create_app(load_settings(environ=env, home=str(home)), {"TESTING": True}).test_client()
    answer = client.get("/api/search", query_string={"q": text, "k": N, **params})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [h["image_id"] for h in answer.get_json()["results"]]


def cli_hits(home, env, text: str, *options: str) -> list[dict]:
    return json.loads(run_cli("search", text, "-k", str(N), "--json", *options, home=home, **env).stdout)["results"]


def test_a_rejected_photo_stays_out_and_a_confirmed_one_comes_first_in_every_query(library):
    home, env, searcher, folder_a = library
    in_a = Filters(folder=folder_a)
    # the best "red circle" in folder a that no negative part below removes, and the one the model thinks least of
    ranked = [h.image_id for h in searcher.find(QUERIES[0], k=N, filters=in_a).hits]
    victim, favourite = ranked[0], ranked[-1]
    assert len(ranked) >= 10, ranked
    run_cli("feedback", "reject", str(victim), "Red  Circle", home=home, **env)  # case and spacing do not matter
    run_cli("feedback", "confirm", str(favourite), "red circle", home=home, **env)

    for text in ["red circle", *QUERIES]:
        for filters in (None, in_a):
            hits = paged(searcher, text, filters)
            ids = [h.image_id for h in hits]
            assert victim not in ids, (text, filters)
            assert ids[0] == favourite and hits[0].confirmed, (text, filters, ids[:5])
            assert len(ids) == len(set(ids)) and not any(h.confirmed for h in hits[1:]), (text, filters)
            if text in ("red circle", "2:red circle", QUERIES[0]):  # its only text to look for: it matches
                assert hits[0].match, text
        api = api_ids(home, env, text)
        assert api[0] == favourite and victim not in api, (text, api[:5])
        filtered = api_ids(home, env, text, folder=folder_a)
        assert filtered[0] == favourite and victim not in filtered, (text, filtered[:5])
        cli = cli_hits(home, env, text)
        assert cli[0]["image_id"] == favourite and cli[0]["confirmed"], (text, cli[:3])
        assert victim not in [h["image_id"] for h in cli], text


def test_a_photo_rejected_for_one_text_leaves_the_query_confirmed_for_another(library):
    """Rejected for one positive text wins over confirmed for another; a verdict on a text the
    query does not look for changes nothing."""
    home, env, searcher, _ = library
    both = [h.image_id for h in searcher.find("red circle + red thing", k=N).hits]
    photo, other = both[-1], both[-2]
    run_cli("feedback", "confirm", str(photo), "red thing", home=home, **env)
    run_cli("feedback", "reject", str(photo), "red circle", home=home, **env)
    run_cli("feedback", "confirm", str(other), "blue thing", home=home, **env)
    after = [h.image_id for h in searcher.find("red circle + red thing", k=N).hits]
    assert photo not in after and after.index(other) > 0
    assert photo in [h.image_id for h in searcher.find("red thing + cyan thing", k=N).hits[:1]]
