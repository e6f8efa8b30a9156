"""The one schema: loading, locations in errors, overrides, safety."""
import json

import pytest

from rankwise.advisor.config import RunConfig, field_help, get_key, json_schema, set_key, with_values
from rankwise.advisor.errors import ConfigError, RankwiseError
from rankwise.advisor.loader import anchor_paths, apply_overrides, load_config, validate


def write(tmp_path, text, name="p.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_and_alpha():
    cfg = RunConfig()
    assert cfg.lora.r == 16 and cfg.lora.alpha_value == 32.0
    assert cfg.resolved_optimizer("qlora") == "paged_adamw_8bit"
    assert cfg.resolved_optimizer("lora") == "adamw_torch"


def test_unknown_key_names_line_and_closest(tmp_path):
    p = write(tmp_path, "model:\n  name: llama-3.1-8b\nlora:\n  rnak: 8\ntrian:\n  lr: 1e-4\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    text = str(e.value)
    assert f"{p}:4: unknown key 'lora.rnak'" in text and "'r'" in text
    assert f"{p}:5: unknown key 'trian'" in text and "'train'" in text
    assert len(e.value.problems) == 2


ACCELERATE = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
fsdp_config:
  fsdp_offload_params: true
  fsdp_sharding_strategy: SHARD_GRAD_OP
mixed_precision: bf16
num_processes: 4
"""


def test_an_accelerate_config_is_told_apart_with_its_settings_as_flags(tmp_path):
    """`accelerate config`'s file given where a training config goes: one problem saying what it is, and its launch
    settings written as rankwise's flags (not 7 unknown keys)."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, ACCELERATE))
    (p,) = e.value.problems
    assert "an accelerate launcher config" in p.message
    assert ("--gpus 4 --set distributed.strategy=fsdp --set distributed.offload=params_and_optimizer "
            "--set distributed.fsdp_sharding=shard_grad_op --set train.precision=bf16;") in p.hint
    assert "--accelerate-config" in p.hint  # check and estimate take it beside a training config
    with pytest.raises(ConfigError) as e:  # FSDP2 says SHARD_GRAD_OP as reshard_after_forward: false
        load_config(write(tmp_path, "compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nfsdp_config:\n"
                                    "  fsdp_version: 2\n  fsdp_reshard_after_forward: false\n"))
    assert "--set distributed.strategy=fsdp --set distributed.fsdp_sharding=shard_grad_op;" in e.value.problems[0].hint


def test_a_file_with_no_training_keys_is_one_problem_but_typos_still_get_did_you_mean(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "<|a|>: 1\n<|b|>: 2\n<|c|>: 3\n<|d|>: 4\n"))
    (p,) = e.value.problems
    assert "none of its 4 keys (<|a|>, <|b|>, <|c|>, <|d|>)" in p.message and "rankwise presets" in p.hint
    with pytest.raises(ConfigError) as e:  # two misspelt groups: each named with its closest key
        load_config(write(tmp_path, "lroa:\n  r: 8\ntrian:\n  lr: 1e-4\n"))
    assert len(e.value.problems) == 2 and "'train'" in str(e.value)


def test_bad_values_are_all_collected_with_lines(tmp_path):
    p = write(tmp_path, "method: qlor\nlora:\n  r: 0\n  dropout: 2\ntrain:\n  lr: -1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    where = sorted(pr.where for pr in e.value.problems)
    assert where == [f"{p}:1", f"{p}:3", f"{p}:4", f"{p}:6"]
    assert "greater than or equal to 1" in str(e.value)


def test_malformed_yaml_gives_line(tmp_path):
    p = write(tmp_path, "lora:\n  r: 8\n   alpha: 16\n")
    with pytest.raises(RankwiseError) as e:
        load_config(p)
    assert f"{p}:3" in e.value.message and "malformed YAML" in e.value.message


def test_python_tags_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    p = write(tmp_path, f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(RankwiseError) as e:
        load_config(p)
    assert "not allowed" in e.value.message
    assert not marker.exists()


def test_overrides_parse_yaml_values_and_reject_unknown(tmp_path):
    p = write(tmp_path, "lora: {r: 8}\n")
    cfg = load_config(p, ["lora.r=32", "train.lr=1e-4", "lora.target_modules=[q_proj, v_proj]"])
    assert (cfg.lora.r, cfg.train.lr, cfg.lora.target_modules) == (32, 1e-4, ["q_proj", "v_proj"])
    with pytest.raises(ConfigError) as e:
        apply_overrides({}, ["lora.rank=3", "nokey"])
    assert "did you mean 'r'" in str(e.value) and "expected key=value" in str(e.value)


def test_relative_data_path_is_anchored_to_preset(tmp_path):
    (tmp_path / "d.jsonl").write_text("{}\n")
    cfg = load_config(write(tmp_path, "data: {path: d.jsonl}\n"))
    assert cfg.data.path == str(tmp_path / "d.jsonl")


def test_a_path_under_home_is_the_users_home_not_a_folder_beside_the_preset(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    preset = write(tmp_path, "data: {path: ~/data/d.jsonl, val_path: ~/data/v.jsonl}\n"
                             "model: {chat_template: ~/data/t.jinja}\n")
    cfg = load_config(preset)
    assert (cfg.data.path, cfg.data.val_path) == (str(home / "data" / "d.jsonl"), str(home / "data" / "v.jsonl"))
    assert cfg.model.chat_template == str(home / "data" / "t.jinja")
    assert load_config(preset, ["data.path=~/x.jsonl"]).data.path == str(home / "x.jsonl")  # typed with --set too


def test_json_schema_forbids_unknown_keys():
    schema = json_schema()
    json.dumps(schema)
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["LoraSection"]["properties"]["r"]["minimum"] == 1


def test_shipped_json_schema_is_current():
    from rankwise.advisor.presets import presets_dir

    shipped = json.loads((presets_dir() / "rankwise-preset.schema.json").read_text())
    assert shipped == json.loads(json.dumps(json_schema())), "run: rankwise schema --out presets/rankwise-preset.schema.json"


def test_set_paths_are_relative_to_the_current_directory(tmp_path, monkeypatch):
    preset_dir, work = tmp_path / "presets", tmp_path / "work"
    preset_dir.mkdir()
    work.mkdir()
    (preset_dir / "p.yaml").write_text("data: {path: in-preset.jsonl}\n")
    monkeypatch.chdir(work)
    cfg = load_config(preset_dir / "p.yaml", ["data.val_path=mine/val.jsonl"])
    assert cfg.data.path == str(preset_dir / "in-preset.jsonl")  # written in the file: the file's folder
    assert cfg.data.val_path == str(work / "mine" / "val.jsonl")  # typed by the user: where they typed it
    cfg = load_config(preset_dir / "p.yaml", ["data.path=train.jsonl"])
    assert cfg.data.path == str(work / "train.jsonl")


def test_dotted_keys_get_and_set_on_models_and_dicts():
    cfg = RunConfig()
    assert get_key(cfg, "lora.r") == get_key(cfg.model_dump(), "lora.r") == 16
    data = set_key({"lora": 5}, "lora.r", 8)  # a group holding a scalar becomes a mapping
    assert data == {"lora": {"r": 8}}
    assert with_values(cfg, {"lora.r": 32, "train.lr": 1e-4}).lora.r == 32 and cfg.lora.r == 16
    assert field_help("lora.r").startswith("Rank.") and field_help(("lora", "target_modules", 0)) is None
    assert field_help("lora.nope") is None and field_help("lora.r.x") is None


def test_override_key_problems_name_the_part_that_is_wrong():
    with pytest.raises(ConfigError) as e:
        apply_overrides({}, ["train.lr.x=1", "lora.rr=2", "train=3"])
    text = str(e.value)
    assert "'train.lr' is not a group" in text and "unknown key 'lora.rr'" in text and "did you mean 'r'" in text
    assert len(e.value.problems) == 2  # a whole group set to a value is validation's to report
    with pytest.raises(ConfigError) as e:
        validate(apply_overrides({}, ["train=3"]))
    assert "train" in str(e.value)


def test_model_folder_beside_the_preset_is_anchored_but_a_catalog_name_is_not(tmp_path, monkeypatch):
    (tmp_path / "tiny").mkdir()
    monkeypatch.chdir(tmp_path.parent)
    cfg = load_config(write(tmp_path, "model: {name: tiny}\n"))
    assert cfg.model.name == str(tmp_path / "tiny")
    assert load_config(write(tmp_path, "model: {name: llama-3.1-8b}\n", "q.yaml")).model.name == "llama-3.1-8b"
    assert anchor_paths({"data": {"path": "/abs.jsonl"}}, tmp_path) == {"data": {"path": "/abs.jsonl"}}
    assert anchor_paths([1], tmp_path) == [1]  # not a mapping: left for validate to report
