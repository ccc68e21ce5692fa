"""Intent matching: the longest match wins, ignored phrases hide their words, exact answers win."""

from __future__ import annotations

import pytest

from tests.unit.dialog_conversation import shipped
from voicebot.dialog.languages import language_for
from voicebot.dialog.script import IntentSpec
from voicebot.dialog.understanding import IntentMatcher, best_intent


def matcher(language: str, name: str, priority: int = 0, **spec: list[str]) -> IntentMatcher:
    spec_ = IntentSpec(priority=priority, **spec)
    return IntentMatcher.compile(name, spec_, language_for(language))


def best(language: str, text: str, *matchers: IntentMatcher,
         ignore: IntentMatcher | None = None) -> str | None:  # fmt: skip
    pack = language_for(language)
    found = best_intent(pack, pack.normalize(text), matchers, ignore)
    return found.name if found else None


def test_a_longer_phrase_inside_which_a_shorter_one_lies_wins() -> None:
    yes = matcher("zh-CN", "yes", phrases=["是"])
    no = matcher("zh-CN", "no", phrases=["不是"])
    assert best("zh-CN", "不是", yes, no) == "no"
    assert best("zh-CN", "是的，不是他", yes, no) == "no"
    assert best("zh-CN", "是", yes, no) == "yes"


def test_english_phrases_match_whole_words_only() -> None:
    no = matcher("en-US", "no", phrases=["no"])
    assert best("en-US", "I know", no) is None
    assert best("en-US", "no, thanks", no) == "no"


def test_case_punctuation_apostrophes_and_width_do_not_matter() -> None:
    cant = matcher("en-US", "cant", keywords=["can't pay"])
    assert best("en-US", "I CAN'T PAY!", cant) == "cant"
    assert best("en-US", "I cant pay", cant) == "cant"
    full_width = matcher("zh-CN", "amount", keywords=["3500块"])
    assert best("zh-CN", "３５００块。", full_width) == "amount"
    spaced = matcher("ko-KR", "later", phrases=["나중에 전화 주세요"])
    assert best("ko-KR", "나중에 전화주세요", spaced) == "later"


def test_an_ignored_phrase_hides_the_words_inside_it() -> None:
    yes = matcher("zh-CN", "yes", phrases=["好", "对"])
    ignore = matcher("zh-CN", "", phrases=["不好意思", "对不起"])
    assert best("zh-CN", "不好意思", yes) == "yes"
    assert best("zh-CN", "不好意思", yes, ignore=ignore) is None
    assert best("zh-CN", "对不起，好的", yes, ignore=ignore) == "yes"


def test_an_exact_answer_beats_a_longer_keyword_elsewhere() -> None:
    yes = matcher("en-US", "yes", phrases=["yes"])
    who = matcher("en-US", "who", keywords=["who is this"])
    assert best("en-US", "yes", yes, who) == "yes"
    assert best("en-US", "yes who is this", yes, who) == "who"


def test_priority_breaks_ties_and_otherwise_the_earlier_candidate_wins() -> None:
    a = matcher("zh-CN", "a", keywords=["还不"])
    b = matcher("zh-CN", "b", keywords=["不了"])
    assert best("zh-CN", "还不了", a, b) == "a"
    b_first = matcher("zh-CN", "b", priority=1, keywords=["不了"])
    assert best("zh-CN", "还不了", a, b_first) == "b"


def test_patterns_match_the_normalised_text() -> None:
    money = matcher("zh-CN", "money", patterns=["[0-9一二三四五六七八九十百千万]+(块|元)"])
    assert best("zh-CN", "我还 3500 块", money) == "money"
    assert best("zh-CN", "我还三千五", money) is None


@pytest.mark.parametrize(
    ("language", "state", "text", "intent"),
    [
        ("zh-CN", "opening", "是我", "yes"),
        ("zh-CN", "opening", "嗯，我就是", "yes"),
        ("zh-CN", "opening", "不好意思你打错了", "wrong_person"),
        ("zh-CN", "opening", "我是他老婆", "wrong_person"),
        ("zh-CN", "opening", "你们别再打了", "opt_out"),
        ("zh-CN", "opening", "我在开车，晚点再打", "call_later"),
        ("zh-CN", "ask_repayment", "明天还不了", "hardship"),
        ("zh-CN", "ask_repayment", "不能，下周五还吧", "promise"),
        ("zh-CN", "ask_repayment", "我还没想好", "unsure"),
        ("zh-CN", "ask_repayment", "对不起，我失业了", "job_loss"),
        ("zh-CN", "ask_repayment", "我已经还清了", "dispute"),
        ("zh-CN", "ask_repayment", "生意不好", "income_drop"),
        ("en-US", "opening", "yes speaking", "yes"),
        ("en-US", "opening", "I'm busy right now", "call_later"),
        ("en-US", "opening", "I'm not sure", None),
        ("en-US", "opening", "no problem", "yes"),
        ("en-US", "opening", "this is his wife", "wrong_person"),
        ("en-US", "ask_repayment", "yes but I can't pay", "hardship"),
        ("en-US", "ask_repayment", "I will pay next week", "promise"),
        ("en-US", "ask_repayment", "I got laid off", "job_loss"),
        ("en-US", "ask_repayment", "I already paid", "dispute"),
        ("en-US", "ask_repayment", "not sure", "unsure"),
        ("ko-KR", "opening", "네 맞아", "yes"),
        ("ko-KR", "opening", "아닌데", "no"),
        ("ko-KR", "opening", "저 아닌데", "wrong_person"),
        ("ko-KR", "opening", "전화 하지 마세요", "opt_out"),
        ("ko-KR", "opening", "나중에 전화 주세요", "call_later"),
        ("ko-KR", "ask_repayment", "안 돼요", "no"),
        ("ko-KR", "ask_repayment", "나중에 낼게요", "promise"),
        ("ko-KR", "ask_repayment", "돈이 없어요", "hardship"),
        ("ko-KR", "ask_repayment", "실직 했어요", "job_loss"),
        ("ko-KR", "ask_repayment", "벌써 냈어요", "dispute"),
    ],
)
def test_the_shipped_intents(language: str, state: str, text: str, intent: str | None) -> None:
    dialog = shipped(language)
    candidates = [c.matcher for c in dialog.candidates[state]]
    found = best_intent(dialog.language, dialog.language.normalize(text), candidates, dialog.ignore)
    assert (found.name if found else None) == intent
