from pathlib import Path

import pytest

from qa.cli import main
from qa.config import Settings, env_name, load_settings
from qa.errors import ConfigError

from .conftest import REPO


def test_config_toml_holds_exactly_the_builtin_defaults() -> None:
    from_file = load_settings(REPO / "config.toml", environ={})
    defaults = Settings()
    # Paths in the file are relative to the file; everything else is equal.
    assert from_file.index.path == REPO / defaults.index.path
    assert from_file.source.path == REPO / defaults.source.path
    rebased = from_file.replace({"index.path": defaults.index.path, "source.path": defaults.source.path})
    assert rebased == defaults


def test_environment_overrides_file_and_flags_override_both(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[server]\nport = 9000\ncors_origins = ["http://a.example"]\n[retrieval]\ndefault_k = 3\n'
    )
    environ = {"QA_SERVER_PORT": "9100", "QA_SERVER_CORS_ORIGINS": "http://b.example, http://c.example"}
    settings = load_settings(config, environ=environ, overrides={"server.port": 9200, "server.host": None})
    assert settings.server.port == 9200
    assert settings.server.host == "127.0.0.1"
    assert settings.server.cors_origins == ("http://b.example", "http://c.example")
    assert settings.retrieval.default_k == 3
    assert load_settings(config, environ=environ).server.port == 9100


def test_qa_config_variable_names_the_file_and_relative_paths_follow_it(tmp_path: Path) -> None:
    config = tmp_path / "custom.toml"
    config.write_text('[index]\npath = "idx/main"\n')
    settings = load_settings(environ={"QA_CONFIG": str(config)})
    assert settings.index.path == tmp_path / "idx" / "main"


def test_st_model_is_a_folder_beside_the_config_or_a_model_name(tmp_path: Path) -> None:
    (tmp_path / "models" / "e5").mkdir(parents=True)
    config = tmp_path / "config.toml"
    for value, expected in [
        ("models/e5", str(tmp_path / "models" / "e5")),  # exists beside the file
        ("./models/later", str(tmp_path / "models" / "later")),  # written as a path
        ("BAAI/bge-m3", "BAAI/bge-m3"),  # a model name
        ("", ""),
    ]:
        config.write_text(f'[embedding]\nst_model = "{value}"\n')
        assert load_settings(config, environ={}).embedding.st_model == expected
    # From the environment, relative folders stay relative to the working directory.
    assert load_settings(config, environ={"QA_EMBEDDING_ST_MODEL": "m/x"}).embedding.st_model == "m/x"


@pytest.mark.parametrize(
    ("content", "environ", "message"),
    [
        ("[server]\nport = 'x'\n", {}, "server.port"),
        ("[server]\nportt = 1\n", {}, "unknown setting 'server.portt'"),
        ("[nope]\na = 1\n", {}, "unknown config section [nope]"),
        ("[chunking]\nmax_tokens = 600\n", {}, "chunking.max_tokens"),
        ("", {"QA_RETRIEVAL_DEFAULT_K": "many"}, "retrieval.default_k"),
        ("[retrieval]\ndefault_k = 60\n", {}, "retrieval.default_k"),
        ("not toml [", {}, "invalid TOML"),
        ("[embedding]\nindex_backend = 'torch'\n", {}, "embedding.index_backend"),
        ("[embedding]\nbackend = ''\n", {}, "embedding.backend"),
        ("", {"QA_EMBEDDING_DEVICE": "gpu"}, "embedding.device"),
        ("[index]\nkind = 'hnsw'\n", {}, "index.kind is 'hnsw'"),
        ("", {"QA_INDEX_NPROBE": "0"}, "index.nprobe"),
        ("[index]\nmerge_factor = 1\n", {}, "index.merge_factor"),
        ("", {"QA_SERVER_WORKERS": "0"}, "server.workers"),
        ("[reindex]\nengine = 'spark'\n", {}, "reindex.engine is 'spark'"),
        ("", {"QA_REINDEX_RAY_CPUS_PER_ACTOR": "0"}, "reindex.ray_cpus_per_actor above 0"),
        ("", {"QA_REINDEX_RAY_TIMEOUT_SECONDS": "0"}, "reindex.ray_timeout_seconds"),
        (
            "[reindex]\nengine = 'ray'\n"
            "[embedding]\nindex_backend = 'sentence-transformers'\ndevice = 'cuda'\n",
            {},
            "reindex.ray_gpus_per_actor is 0",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(
    tmp_path: Path, content: str, environ: dict[str, str], message: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_settings(config, environ=environ)


def test_cli_prints_config_errors_and_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[server]\nport = 0\n")
    assert main(["ask", "--config", str(config), "hello"]) == 1
    assert "server.port" in capsys.readouterr().err


def test_the_llm_api_key_is_only_read_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[llm]\napi_key = "sk-in-a-file"\n')
    with pytest.raises(ConfigError, match=r"only be set in the environment \(QA_LLM_API_KEY\)") as error:
        load_settings(config, environ={})
    assert "sk-in-a-file" not in str(error.value)
    settings = load_settings(environ={"QA_LLM_API_KEY": "sk-env", "QA_LLM_BASE_URL": "http://127.0.0.1:9/v1"})
    assert settings.llm.api_key == "sk-env" and "sk-env" not in repr(settings)
    with pytest.raises(ConfigError, match="must not hold credentials"):
        load_settings(environ={"QA_LLM_BASE_URL": "https://user:pw@llm.example/v1"})
    with pytest.raises(ConfigError, match=r"below limits\.request_timeout_seconds"):
        load_settings(environ={"QA_LLM_BASE_URL": "http://127.0.0.1:9/v1", "QA_LLM_TIMEOUT_SECONDS": "45"})


def test_every_setting_has_its_variable() -> None:
    assert env_name("server", "port") == "QA_SERVER_PORT"
    assert env_name("reindex", "ray_address") == "QA_REINDEX_RAY_ADDRESS"
    assert load_settings(environ={env_name("index", "merge_factor"): "3"}).index.merge_factor == 3


def test_ray_address_falls_back_to_rays_own_variable_when_nothing_sets_it() -> None:
    ray = {"RAY_ADDRESS": "10.0.0.1:6379"}
    assert load_settings(environ=ray).reindex.ray_address == "10.0.0.1:6379"
    assert load_settings(environ={}).reindex.ray_address == ""
    ours = {**ray, "QA_REINDEX_RAY_ADDRESS": "10.0.0.2:6379"}
    assert load_settings(environ=ours).reindex.ray_address == "10.0.0.2:6379"
    flag = {"reindex.ray_address": "10.0.0.3:6379"}
    assert load_settings(environ=ray, overrides=flag).reindex.ray_address == "10.0.0.3:6379"
