import json

import pytest

from advrep.config import Config, ConfigError, parse_overrides, read_config_file
from advrep.methods import make_config


def test_unknown_key_names_it_suggests_and_lists_valid():
    with pytest.raises(ConfigError) as err:
        Config().updated({"learning_rate": 1e-3}, source="--set")
    msg = str(err.value)
    assert "'learning_rate'" in msg and "--set" in msg
    assert "Valid settings:" in msg and "lr" in msg


def test_close_typo_gets_a_suggestion():
    with pytest.raises(ConfigError, match="Did you mean batch_size"):
        Config().updated({"batchsize": 64})


@pytest.mark.parametrize("key,value", [("epochs", "ten"), ("lr", "fast"), ("progress", "maybe"),
                                       ("epochs", 2.5), ("method", 3)])
def test_wrong_types_fail_with_the_value(key, value):
    with pytest.raises(ConfigError, match=key):
        Config().updated({key: value})


def test_strings_from_the_command_line_are_typed():
    cfg = Config().updated(parse_overrides(["lr=1e-3", "epochs=5", "progress=false", "image_shape=1,8,8"]))
    assert cfg.lr == 1e-3 and cfg.epochs == 5 and cfg.progress is False and cfg.image_shape == [1, 8, 8]


@pytest.mark.parametrize("key,value", [("prior", "cauchy"), ("objective", "wasserstein"), ("lr", "-1"),
                                       ("bn_eps", "0")])
def test_choices_and_ranges_are_checked(key, value):
    with pytest.raises(ConfigError, match=key):
        Config().updated({key: value})


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])


def test_layers_method_defaults_then_file_then_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('epochs = 7\nlr = 1e-3\n')
    cfg = make_config("ali", file=str(f), overrides={"lr": "5e-4"})
    assert cfg.prior == "gaussian" and cfg.stochastic_encoder  # ALI's own defaults
    assert cfg.epochs == 7 and cfg.lr == 5e-4


def test_config_files_toml_and_json(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"hidden": 64}))
    assert read_config_file(tmp_path / "a.json") == {"hidden": 64}
    (tmp_path / "b.toml").write_text("hidden = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config_file(tmp_path / "b.toml")
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "missing.toml")
    (tmp_path / "c.toml").write_text("hiden = 3")
    with pytest.raises(ConfigError, match="hiden"):
        make_config("bigan", file=str(tmp_path / "c.toml"))


def test_json_round_trip():
    cfg = Config(hidden=12, image_shape=[1, 2, 3])
    assert Config.from_dict(json.loads(cfg.to_json())) == cfg


def test_shipped_config_files_are_valid():
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "configs").glob("*.toml")):
        values = read_config_file(path)
        make_config(values["method"], file=str(path))
