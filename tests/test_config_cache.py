"""--fetch-config: config.json of an unknown Hugging Face id fetched over plain HTTP only when asked,
never when the environment is offline, kept for later runs. A local stand-in for the Hub
(http.server in a thread) serves it: the tests never touch the network."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rankwise.advisor import config_cache
from rankwise.tui import cli

TINY = json.loads((Path(__file__).parent.parent / "presets/assets/tiny-llama/config.json").read_text())
MODEL_ID = "someorg/tiny-unknown-llama"  # in no catalog, index or cache


class Hub:
    """A stand-in for huggingface.co's `/<id>/resolve/main/config.json`; records each request."""

    def __init__(self, files: dict[str, bytes | int]):
        self.files, self.requests = files, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 — http.server's name
                hub.requests.append((self.path, self.headers.get("Authorization")))
                body = hub.files.get(self.path, 404)
                if isinstance(body, int):
                    self.send_error(body)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def path_of(model_id: str) -> str:
    return f"/{model_id}/resolve/main/config.json"


@pytest.fixture
def env(tmp_path, monkeypatch):
    for var in config_cache.OFFLINE_VARS + ("RANKWISE_CACHE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # nothing cached there
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    config_cache.configure(False)


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, " ".join(err.split())


def test_fetched_when_asked_then_read_offline_from_the_cache(env, monkeypatch, capsys):
    with Hub({path_of(MODEL_ID): json.dumps(TINY).encode()}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        rc, out, err = run(capsys, "estimate", "--model", MODEL_ID, "--gpu", "RTX4090", "--fetch-config", "--json")
        assert rc == 0, err
        assert hub.requests == [(path_of(MODEL_ID), None)]
        kept = env / "runs" / ".model-configs" / "someorg--tiny-unknown-llama" / "config.json"
        assert json.loads(kept.read_text())["hidden_size"] == TINY["hidden_size"]
        first = json.loads(out)["peak_bytes"]

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a later run: no flag, offline, served from the cache
        rc, out, err = run(capsys, "estimate", "--model", MODEL_ID, "--gpu", "RTX4090", "--json")
        assert rc == 0, err
        assert json.loads(out)["peak_bytes"] == first and len(hub.requests) == 1


def test_nothing_is_fetched_without_the_flag(env, monkeypatch, capsys):
    with Hub({path_of(MODEL_ID): json.dumps(TINY).encode()}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        rc, _, err = run(capsys, "estimate", "--model", MODEL_ID, "--gpu", "RTX4090")
        assert rc == 2 and "unknown model" in err and "--fetch-config" in err
        assert hub.requests == []


@pytest.mark.parametrize("var", config_cache.OFFLINE_VARS)
def test_nothing_is_fetched_offline_even_when_asked(env, monkeypatch, capsys, var):
    with Hub({path_of(MODEL_ID): json.dumps(TINY).encode()}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv(var, "1")
        rc, _, err = run(capsys, "estimate", "--model", MODEL_ID, "--gpu", "RTX4090", "--fetch-config")
        assert rc == 2 and f"{var} is set" in err
        assert hub.requests == []


def test_the_cache_moves_with_rankwise_cache_and_a_token_is_sent(env, monkeypatch, capsys):
    with Hub({path_of(MODEL_ID): json.dumps(TINY).encode()}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("RANKWISE_CACHE", str(env / "elsewhere"))
        monkeypatch.setenv("HF_TOKEN", "hf_test")
        rc, _, err = run(capsys, "advise", "--model", MODEL_ID, "--task", "instruction", "--gpu", "RTX4090",
                         "--fetch-config", "--json")
        assert rc == 0, err
        assert hub.requests == [(path_of(MODEL_ID), "Bearer hf_test")]
        assert (env / "elsewhere" / "model-configs" / "someorg--tiny-unknown-llama" / "config.json").is_file()
        assert not (env / "runs").exists()


@pytest.mark.parametrize("served,says", [(404, "HTTP 404"), (403, "HF_TOKEN"), (b"{not json", "not valid JSON"),
                                         (b'{"hidden_size": 8}', "no model_type")])
def test_a_failed_fetch_is_bad_input_and_leaves_no_file(env, monkeypatch, capsys, served, says):
    with Hub({path_of(MODEL_ID): served}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        rc, _, err = run(capsys, "estimate", "--model", MODEL_ID, "--gpu", "RTX4090", "--fetch-config")
        assert rc == 2 and says in err, err
        assert len(hub.requests) == 1
    assert not (env / "runs" / ".model-configs").exists() or not any((env / "runs" / ".model-configs").rglob("*.json"))


def test_known_ids_and_paths_are_never_fetched(env, monkeypatch, capsys):
    with Hub({}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        rc, _, err = run(capsys, "estimate", "--model", "meta-llama/Llama-3.2-1B", "--gpu", "RTX4090", "--fetch-config")
        assert rc == 0, err
        rc, _, err = run(capsys, "estimate", "--model", "../x/y", "--gpu", "RTX4090", "--fetch-config")
        assert rc == 2
        assert hub.requests == []
    assert not config_cache.is_model_id("a/../b") and not config_cache.is_model_id("/etc/passwd")


def test_check_of_a_foreign_file_fetches_its_base_model(env, monkeypatch, capsys):
    (env / "train.yml").write_text(f"base_model: {MODEL_ID}\nadapter: lora\nlora_r: 8\nlora_alpha: 16\n"
                                   "sequence_len: 512\nmicro_batch_size: 1\n")
    with Hub({path_of(MODEL_ID): json.dumps(TINY).encode()}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        rc, out, err = run(capsys, "check", str(env / "train.yml"), "--gpu", "RTX4090", "--json")
        assert json.loads(out)["fit"] is None and hub.requests == []  # not asked: no fit answer
        rc, out, err = run(capsys, "check", str(env / "train.yml"), "--gpu", "RTX4090", "--fetch-config", "--json")
        assert rc == 0, err
        assert json.loads(out)["fit"] in ("fits", "tight") and len(hub.requests) == 1
