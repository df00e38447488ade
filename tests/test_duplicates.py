"""Near-duplicates: the grouping and search's folding on vectors; `tagscope duplicates` on a
collection of generated variants tagged by the real CLI (SQLite and PostgreSQL); the API; the
pages in a real browser."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from core.errors import TagscopeError
from indexer.search.near_groups import complete_groups, group_rows, similar_pairs
from indexer.search.similar import CALIBRATED, DEFAULT_THRESHOLD, check_threshold, fold_similar, threshold_for

from . import ROOT
from .commands import run_cli, tagscope_env
from .test_browser import browser  # noqa: F401 - the fixture: a headless Chromium


def unit(*rows) -> np.ndarray:
    v = np.asarray(rows, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def chain(n: int = 3, step_deg: float = 10.0) -> np.ndarray:
    """Unit vectors in a plane, each ``step_deg`` from the previous: neighbours close, ends far."""
    angles = np.radians(np.arange(n) * step_deg)
    return unit(*[(np.cos(a), np.sin(a), 0.0) for a in angles])


# -- pure functions -----------------------------------------------------------------------------
def test_fold_similar_folds_each_near_duplicate_into_the_best_ranked_kept_hit():
    v = unit((1, 0, 0), (0, 1, 0), (1, 0.01, 0), (0, 1, 0.02), (0, 0, 1))
    ranked = [(10, 0.9), (20, 0.8), (30, 0.7), (40, 0.6), (50, 0.5)]
    kept, folded = fold_similar(ranked, v, 0.99)
    assert kept == [(10, 0.9), (20, 0.8), (50, 0.5)]
    assert folded == {10: [30], 20: [40]}


def test_fold_similar_does_not_chain():
    v = chain(3, 10.0)  # cos(0, 1) = cos(1, 2) = 0.985, cos(0, 2) = 0.94
    kept, folded = fold_similar([(1, 3.0), (2, 2.0), (3, 1.0)], v, 0.98)
    assert [i for i, _ in kept] == [1, 3] and folded == {1: [2]}  # 3 is not within 0.98 of 1


def test_fold_similar_edge_cases():
    assert fold_similar([], np.zeros((0, 4)), 0.9) == ([], {})
    v = unit((1, 0), (1, 0))
    assert fold_similar([(1, 1.0), (2, 0.5)], v, 1.0) == ([(1, 1.0)], {1: [2]})  # identical folds at 1.0
    with pytest.raises(ValueError):
        fold_similar([(1, 1.0), (2, 0.5)], unit((1, 0)), 0.9)


def test_thresholds_per_model_and_overrides():
    assert threshold_for("synthetic-mkt") == CALIBRATED["synthetic-mkt"]
    assert threshold_for("open_clip:ViT-B-32:laion2b_s34b_b79k") == DEFAULT_THRESHOLD == 0.99
    assert threshold_for("synthetic", "0.9") == 0.9
    assert check_threshold("") is None and check_threshold(None) is None
    for bad in ("0", "-0.5", "1.5", "abc", "nan"):
        with pytest.raises(TagscopeError, match="duplicate_threshold"):
            check_threshold(bad)


def test_groups_use_complete_linkage_so_a_chain_is_not_one_group():
    v = chain(5, 8.0)  # neighbours 0.990 apart; two steps 0.961; three 0.914
    groups = group_rows(v, 0.95)
    for g in groups:  # every two members of a group are within the threshold
        assert all(float(v[a] @ v[b]) >= 0.95 for a in g for b in g)
    assert [sorted(g) for g in groups] == [[1, 2, 3]]  # the centre's; 0 and 4 are 3 steps apart: no group
    i, j, _ = similar_pairs(v, 0.95)
    assert len(i) == 7  # 4 neighbours + 3 at two steps: one component of 5
    assert complete_groups(3, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)) == []


def test_the_approximate_path_finds_the_same_groups_as_the_exact_one():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 64)).astype(np.float32)
    copies = base[:100] + 0.05 * rng.normal(size=(100, 64)).astype(np.float32)
    v = np.concatenate([base, copies])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    exact = sorted(map(sorted, group_rows(v, 0.95)))
    approx = sorted(map(sorted, group_rows(v, 0.95, exact_max=10)))  # HNSW + exact check
    assert exact == approx == [[k, 300 + k] for k in range(100)]


def test_files_of_one_shot_are_never_grouped():
    v = unit((1, 0, 0), (1, 0.001, 0), (0, 1, 0))
    assert group_rows(v, 0.99) == [[0, 1]]
    assert group_rows(v, 0.99, same_shot=np.array([5, 5, -1])) == []


# -- a collection of variants, tagged by the CLI -------------------------------------------------
FAMILIES, DISTINCT = 6, 12


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> tuple[Path, dict]:
    from bench.variants import write_variants

    folder = tmp_path_factory.mktemp("variants") / "photos"
    # What the bundled models can tell (docs/benchmarks.md, "Near-duplicates"): resized and re-encoded copies
    return folder, write_variants(folder, FAMILIES, DISTINCT, seed=5, kinds=("resized", "jpeg"))


def check_groups(body: dict, manifest: dict) -> None:
    by_family = defaultdict(set)
    for name, row in manifest.items():
        if row["family"] is not None:
            by_family[row["family"]].add(name)
    found = [{Path(m["path"]).name for m in g["members"]} for g in body["groups"]]
    assert sorted(map(sorted, found)) == sorted(map(sorted, by_family.values()))  # every family, nothing else
    for g in body["groups"]:
        first = g["members"][0]
        assert first["original"] and manifest[Path(first["path"]).name]["kind"] == "base"  # most pixels first
        assert first["width"] == 384 and all(m["similarity"] >= body["threshold"] for m in g["members"])
        assert g["similarity"] >= body["threshold"] and g["size"] == 3


def test_the_cli_finds_the_variant_groups_and_groups_no_other_photo(home_env, variants):
    home, env, _ = home_env
    folder, manifest = variants
    run_cli("tag", str(folder), home=home, **env)
    body = json.loads(run_cli("duplicates", "--json", home=home, **env).stdout)
    assert body["model"]["spec"] == "synthetic" and body["threshold"] == CALIBRATED["synthetic"]
    assert body["threshold_source"] == "calibrated" and body["photos"] == len(manifest)
    assert body["total_groups"] == FAMILIES and body["total_duplicates"] == 2 * FAMILIES
    check_groups(body, manifest)
    plain = run_cli("duplicates", home=home, **env)
    assert plain.stdout.count("group ") == FAMILIES and "original?" in plain.stdout
    summary = f"{FAMILIES} groups, {2 * FAMILIES} near-duplicates among {len(manifest)} photos"
    assert summary in plain.stdout
    # a threshold so low that most photos are alike: groups stay complete-linkage, more of them
    loose = json.loads(run_cli("duplicates", "--json", "--threshold", "0.5", home=home, **env).stdout)
    assert loose["threshold_source"] == "given" and loose["total_duplicates"] > body["total_duplicates"]
    assert all(g["similarity"] >= 0.5 for g in loose["groups"])
    # the setting, and a folder holding none of them
    setting = json.loads(run_cli("duplicates", "--json", home=home, TAGSCOPE_DUPLICATE_THRESHOLD="0.999999",
                                 **env).stdout)
    assert setting["threshold_source"] == "setting" and setting["total_groups"] < FAMILIES
    elsewhere = json.loads(run_cli("duplicates", "--json", "--folder", str(folder.parent / "other"), home=home,
                                   **env).stdout)
    assert elsewhere["photos"] == 0 and elsewhere["groups"] == []


def test_bad_thresholds_are_one_line_errors_naming_the_fix(tagged_home):
    for args, env in ((["--threshold", "1.5"], {}), (["--threshold", "x"], {}),
                      ([], {"TAGSCOPE_DUPLICATE_THRESHOLD": "2"})):
        proc = run_cli("duplicates", *args, home=tagged_home, check=False, **env)
        assert proc.returncode == 2, proc.stderr
        line = proc.stderr.strip()
        assert "\n" not in line and "duplicate_threshold" in line and "at most 1" in line, line


def test_nothing_tagged_is_a_clear_error(tmp_path):
    proc = run_cli("duplicates", home=tmp_path / "empty", check=False)
    assert proc.returncode == 2 and "tagscope tag" in proc.stderr


def test_the_command_does_not_import_torch(tagged_home):
    probe = ("import json, sys\nfrom tagscope.cli import cli\n"
             "cli.main(['duplicates', '--json'], prog_name='tagscope', standalone_mode=False)\n"
             "print(json.dumps(sorted(m for m in ('torch', 'open_clip') if m in sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=tagscope_env(tagged_home, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []
    assert json.loads(proc.stdout)["photos"] > 0


# -- the API and the pages -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def variant_home(tmp_path_factory, variants) -> Path:
    home = tmp_path_factory.mktemp("variant-home")
    run_cli("tag", str(variants[0]), "--model", "synthetic", home=home)
    return home


@pytest.fixture(scope="module")
def client(variant_home):
    from core.settings import load_settings
    from web import create_app

    return create_app(load_settings(environ={}, home=str(variant_home)), {"TESTING": True}).test_client()


def test_the_api_pages_through_the_groups_and_matches_its_document(client, variants):
    from openapi_schema_validator import OAS30Validator, validate

    body = client.get("/api/duplicates").get_json()
    check_groups(body, variants[1])
    doc = client.get("/api/openapi.json").get_json()
    validate(body, {"$ref": "#/components/schemas/Duplicates", "components": doc["components"]}, cls=OAS30Validator)
    first = client.get("/api/duplicates?limit=2").get_json()
    second = client.get("/api/duplicates?limit=2&offset=2").get_json()
    assert first["more"] and len(first["groups"]) == len(second["groups"]) == 2
    assert {g["image_id"] for g in first["groups"]}.isdisjoint(g["image_id"] for g in second["groups"])
    assert client.get("/api/duplicates?threshold=0.5").get_json()["threshold_source"] == "given"
    for bad in ("threshold=2", "limit=0", "offset=-1", "threshold=abc"):
        resp = client.get(f"/api/duplicates?{bad}")
        assert resp.status_code == 400 and resp.get_json()["status"] == 400, bad
        validate(resp.get_json(), {"$ref": "#/components/schemas/Error", "components": doc["components"]},
                 cls=OAS30Validator)


def test_the_pages_list_groups_and_review_one(client, variants):
    body = client.get("/api/duplicates").get_json()
    listing = client.get("/duplicates").get_data(as_text=True)
    assert listing.count('class="dup-group"') == FAMILIES and "Duplicates</a>" in listing
    group = body["groups"][0]
    other = group["members"][-1]["image_id"]  # any member opens its group
    review = client.get(f"/duplicates/{other}").get_data(as_text=True)
    assert "likely the original" in review and review.count('class="dup-member') == 3
    assert f"{group['members'][0]['width']}&times;{group['members'][0]['height']}" in review
    assert client.get("/duplicates/99999999").status_code == 404
    assert client.get("/duplicates?threshold=7").status_code == 400


def test_repeated_loads_come_from_the_cache_until_the_collection_changes(client, variant_home):
    import web.duplicates as module

    client.get("/api/duplicates")
    cached = dict(module._reports)
    client.get("/api/duplicates?limit=3")
    assert dict(module._reports) == cached  # the same report object, not computed again
    from sqlalchemy import select, update

    from core.schema import Image
    from core.settings import load_settings
    from migrations import get_database

    db = get_database(load_settings(environ={}, home=str(variant_home)).db_url)
    with db.session() as s:  # a tagged photo's row changes: the next request computes again
        first = s.scalars(select(Image.id).limit(1)).first()
        s.execute(update(Image).where(Image.id == first).values(mtime=Image.mtime + 1))
    client.get("/api/duplicates")
    assert len(module._reports) == len(cached) + 1


@pytest.fixture(scope="module")
def variant_server(variant_home):
    from .servers import serving

    yield from serving(variant_home)


@pytest.mark.browser
@pytest.mark.slow
def test_the_duplicates_page_and_a_group_review_in_a_browser(variant_server, variants, browser):  # noqa: F811
    from .test_browser import loaded

    shots = Path(ROOT / "test-artifacts" / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page.goto(variant_server)
    page.locator("#nav-duplicates").click()
    loaded(page, "#dup-groups img")
    assert page.locator(".dup-group").count() == FAMILIES
    assert f"{FAMILIES} groups" in page.locator("#dup-summary").inner_text()
    page.screenshot(path=str(shots / "duplicates.png"), full_page=True)
    page.locator(".dup-review").first.click()
    loaded(page, "#dup-compare img")
    assert page.locator(".dup-member").count() == 3 and page.locator("#original").is_visible()
    names = [Path(p).name for p in page.eval_on_selector_all(".dup-member img", "imgs => imgs.map(i => i.alt)")]
    assert variants[1][names[0]]["kind"] == "base"  # the likely original first
    assert len({variants[1][n]["family"] for n in names}) == 1
    page.screenshot(path=str(shots / "duplicates-review.png"), full_page=True)
    page.locator(".dup-path a").nth(1).click()  # on to that photo's own page
    page.wait_for_selector("h1.path")
    page.go_back()
    page.locator("#back").click()
    page.wait_for_selector("#dup-groups")
    page.close()
