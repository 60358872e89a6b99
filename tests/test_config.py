"""Config validation against the schema, defaults, and the generated key reference."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO

from nucflow.config import load_config, load_schema, render_config_docs, validate_config
from nucflow.errors import InputError

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def demo() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_demo_config_is_valid_and_defaults_are_filled(demo):
    config = validate_config(demo, load_schema(SCHEMA))
    experiment = config["experiments"]["lncrna_cnn"]
    assert experiment["training"]["weight_decay"] == 0.01
    assert experiment["splits"]["valid_fraction"] == 0.1
    assert experiment["data"]["invalid_characters"] == "error"
    assert config["simulate"]["regression"]["min_length"] == 150


def test_minimal_experiment_gets_every_section():
    config = {
        "experiments": {
            "e": {"kind": "sequence", "data": {"classes": {"a": "a.fa", "b": ["b.fa"]}}}
        }
    }
    validate_config(config, load_schema(SCHEMA))
    assert set(config["experiments"]["e"]) >= {
        "encoding",
        "model",
        "training",
        "splits",
        "predict",
        "resources",
    }
    assert config["seed"] == 42


def test_unknown_key_names_experiment_and_key(demo):
    bad = copy.deepcopy(demo)
    bad["experiments"]["lncrna_cnn"]["model"]["chanels"] = 3
    with pytest.raises(InputError) as error:
        validate_config(bad, load_schema(SCHEMA))
    message = str(error.value)
    assert "experiments.lncrna_cnn.model: unknown key 'chanels'" in message
    assert "channels" in message and "\n" not in message


def test_wrong_type_names_key(demo):
    bad = copy.deepcopy(demo)
    bad["experiments"]["lncrna_cnn"]["training"]["batch_size"] = "big"
    with pytest.raises(InputError, match=r"experiments\.lncrna_cnn\.training\.batch_size: 'big'"):
        validate_config(bad, load_schema(SCHEMA))


def test_wrong_enum_and_kind(demo):
    bad = copy.deepcopy(demo)
    bad["experiments"]["lncrna_cnn"]["kind"] = "proteins"
    with pytest.raises(InputError, match=r"experiments\.lncrna_cnn\.kind"):
        validate_config(bad, load_schema(SCHEMA))


def test_load_config_reads_file(tmp_path, demo):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(demo))
    assert load_config(path, SCHEMA)["experiments"]["lncrna_cnn"]["kind"] == "sequence"
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "none.yaml", SCHEMA)


def test_config_readme_is_generated_from_schema():
    expected = render_config_docs(load_schema(SCHEMA))
    assert (REPO / "config" / "README.md").read_text() == expected, "run `make config-docs`"


def test_every_schema_key_has_a_description():
    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{path}{name} has no description"
            walk(sub, f"{path}{name}.")

    schema = load_schema(SCHEMA)
    walk(schema, "")
    for definition in schema["$defs"].values():
        walk(definition, "experiment.")


@pytest.mark.parametrize("path", sorted((REPO / "config" / "examples").glob("*.yaml")), ids=str)
def test_example_configs_are_valid(path):
    assert load_config(path, SCHEMA)["experiments"]


def test_context_length_too_small_is_reported(demo):
    bad = copy.deepcopy(demo)
    bad["experiments"]["lncrna_cnn"]["encoding"]["context_length"] = 1
    with pytest.raises(InputError, match=r"lncrna_cnn\.encoding\.context_length: 1 is less than"):
        validate_config(bad, load_schema(SCHEMA))
