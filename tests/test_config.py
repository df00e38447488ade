from pathlib import Path

import pytest

from mkt.errors import TagscopeError
from tagger.config import Settings, load_settings


def test_defaults_use_embedded_sqlite_in_the_data_directory(tmp_path):
    s = load_settings(environ={}, config_file=None)
    assert s.home == Path("tagscope-data")
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith("tagscope-data/tagscope.sqlite")
    assert s.broker_url == ""
    assert s.model == "open_clip:ViT-B-32:laion2b_s34b_b79k"


def test_toml_then_environment_then_overrides(tmp_path):
    cfg = tmp_path / "tagscope.toml"
    cfg.write_text('[tagscope]\nhome = "/data/photos-index"\nmodel = "synthetic"\ntop_n = 5\n')
    s = load_settings(environ={"TAGSCOPE_TOP_N": "7"}, config_file=cfg)
    assert s.home == Path("/data/photos-index") and s.model == "synthetic" and s.top_n == 7
    s = load_settings(environ={"TAGSCOPE_TOP_N": "7"}, config_file=cfg, top_n=9, model=None)
    assert s.top_n == 9 and s.model == "synthetic"


def test_config_file_named_by_environment(tmp_path):
    cfg = tmp_path / "other.toml"
    cfg.write_text('broker_url = "redis://127.0.0.1:6379/0"\n')
    s = load_settings(environ={"TAGSCOPE_CONFIG": str(cfg)})
    assert s.broker_url == "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("environ, fix", [
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
