from pathlib import Path

import pytest

from core.errors import TagscopeError
from core.modelspec import parse_spec
from core.settings import Settings, load_settings


def test_defaults_use_embedded_sqlite_in_the_data_directory(tmp_path):
    s = load_settings(environ={}, config_file=None)
    assert s.home == Path("tagscope-data")
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith("tagscope-data/tagscope.sqlite")
    assert s.broker_url == ""
    assert s.model is None  # not set: tag with the default, search with the collection's model
    assert str(s.tagging_model) == "open_clip:ViT-B-32:laion2b_s34b_b79k"


def test_toml_then_environment_then_overrides(tmp_path):
    cfg = tmp_path / "tagscope.toml"
    cfg.write_text('[tagscope]\nhome = "/data/photos-index"\nmodel = "synthetic"\ntop_n = 5\n')
    s = load_settings(environ={"TAGSCOPE_TOP_N": "7"}, config_file=cfg)
    assert s.home == Path("/data/photos-index") and str(s.model) == "synthetic" and s.top_n == 7
    s = load_settings(environ={"TAGSCOPE_TOP_N": "7"}, config_file=cfg, top_n=9, model=None)
    assert s.top_n == 9 and str(s.model) == "synthetic"


def test_config_file_named_by_environment(tmp_path):
    cfg = tmp_path / "other.toml"
    cfg.write_text('broker_url = "redis://127.0.0.1:6379/0"\n')
    s = load_settings(environ={"TAGSCOPE_CONFIG": str(cfg)})
    assert s.broker_url == "redis://127.0.0.1:6379/0"


def test_model_spec_is_parsed_once_into_its_canonical_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = load_settings(environ={"TAGSCOPE_MODEL": "mkt:runs/b.pt"}, config_file=None).model
    absolute = load_settings(environ={}, config_file=None, model=f"mkt:{tmp_path}/runs/../runs/b.pt").model
    assert relative == absolute and str(relative) == f"mkt:{tmp_path}/runs/b.pt"
    weights = load_settings(environ={}, config_file=None, model="open_clip:ViT-B-32:w/model.bin").model
    assert weights.pretrained == f"{tmp_path}/w/model.bin"  # a weights file, not a pretrained tag
    tag = load_settings(environ={}, config_file=None, model="open_clip:ViT-B-32:laion2b_s34b_b79k").model
    assert tag.pretrained == "laion2b_s34b_b79k"
    assert Settings().replace(model="synthetic").model == parse_spec("synthetic")


@pytest.mark.parametrize("environ, fix", [
    ({"TAGSCOPE_MODEL": "clip"}, "TAGSCOPE_MODEL"),
    ({"TAGSCOPE_BATCH_SIZE": "lots"}, "TAGSCOPE_BATCH_SIZE"),
    ({"TAGSCOPE_TOP_N": "0"}, "TAGSCOPE_TOP_N"),
    ({"TAGSCOPE_CONFIG": "/nonexistent/tagscope.toml"}, "TAGSCOPE_CONFIG"),
])
def test_bad_settings_name_the_setting_to_fix(environ, fix):
    with pytest.raises(TagscopeError, match=fix):
        load_settings(environ=environ)


def test_unknown_key_in_toml_is_rejected(tmp_path):
    cfg = tmp_path / "tagscope.toml"
    cfg.write_text('modle = "synthetic"\n')
    with pytest.raises(TagscopeError, match="unknown setting 'modle'"):
        load_settings(environ={}, config_file=cfg)


def test_settings_is_the_one_object_every_part_reads():
    s = Settings(home=Path("/x"))
    assert s.index_dir == Path("/x/index") and s.embedded_broker_url.startswith("sqla+sqlite:///")
