"""A validated script made ready to run: intents compiled, templates parsed, grammars built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from voicebot.dialog.actions import Listen
from voicebot.dialog.languages import Language, language_for
from voicebot.dialog.script import RECORDING_NOTICE, DialogScript, Handler, IntentSpec, State
from voicebot.dialog.templates import Template, parse_template
from voicebot.dialog.understanding import IntentMatcher
from voicebot.dialog.validation import template_sites


@dataclass(frozen=True, slots=True)
class Candidate:
    """An intent a state listens for, with the handler that runs when it is heard."""

    matcher: IntentMatcher
    handler: Handler
    is_global: bool


@dataclass(frozen=True)
class Dialog:
    """A loaded dialog. Build it with ``voicebot.dialog.load_dialog`` (which validates first)."""

    script: DialogScript
    language: Language
    source: str
    matchers: Mapping[str, IntentMatcher]
    ignore: IntentMatcher | None
    templates: Mapping[str, Template]
    spoken: tuple[str, ...]  # template sources that are said aloud (not transfer numbers)
    candidates: Mapping[str, tuple[Candidate, ...]]
    dtmf: Mapping[str, Mapping[str, Candidate]]
    listens: Mapping[str, Listen]

    @property
    def id(self) -> str:
        return self.script.id

    @property
    def version(self) -> int:
        return self.script.version

    def template(self, source: str) -> Template:
        return self.templates[source]

    def static_prompts(self) -> tuple[str, ...]:
        """Every prompt that sounds the same on every call (it names only constants and the
        recording notice): a synthesiser can render these once, when the dialog loads."""
        prompts = [
            self.render_static(self.templates[source])
            for source in self.spoken
            if set(self.templates[source].names) <= {*self.script.constants, RECORDING_NOTICE}
        ]
        return tuple(dict.fromkeys(prompts))

    def render_static(self, template: Template) -> str:
        def value_of(name: str) -> str:
            if name == RECORDING_NOTICE:
                return self.render_static(self.templates[self.script.recording_notice])
            return self.script.constants[name]

        return template.render(value_of)


def compile_dialog(script: DialogScript, source: str) -> Dialog:
    """Assumes ``script`` passed validation (every name it uses exists)."""
    language = language_for(script.language)
    matchers = {
        name: IntentMatcher.compile(name, spec, language) for name, spec in script.intents.items()
    }
    ignore = None
    if script.ignore:
        ignore = IntentMatcher.compile("", IntentSpec(phrases=script.ignore), language)
    templates = {site.text: parse_template(site.text) for site in template_sites(script)}
    candidates: dict[str, tuple[Candidate, ...]] = {}
    dtmf: dict[str, dict[str, Candidate]] = {}
    listens: dict[str, Listen] = {}
    for name, state in script.states.items():
        if not state.listens:
            continue
        own = [Candidate(matchers[i], h, False) for i, h in (state.listen or {}).items()]
        shared = [
            Candidate(matchers[i], h, True)
            for i, h in script.globals.items()
            if state.globals and i not in state.exclude_globals and i not in (state.listen or {})
        ]
        candidates[name] = (*own, *shared)
        dtmf[name] = {
            digit: candidate
            for candidate in reversed(candidates[name])
            if (digit := candidate.handler.dtmf or script.intents[candidate.matcher.name].dtmf)
        }
        listens[name] = _listen(script, language, name, state, candidates[name], dtmf[name])
    return Dialog(
        script=script,
        language=language,
        source=source,
        matchers=MappingProxyType(matchers),
        ignore=ignore,
        templates=MappingProxyType(templates),
        spoken=tuple(
            dict.fromkeys(site.text for site in template_sites(script) if site.scope != "transfer")
        ),
        candidates=MappingProxyType(candidates),
        dtmf=MappingProxyType({k: MappingProxyType(v) for k, v in dtmf.items()}),
        listens=MappingProxyType(listens),
    )


def _listen(
    script: DialogScript,
    language: Language,
    name: str,
    state: State,
    candidates: tuple[Candidate, ...],
    dtmf: Mapping[str, Candidate],
) -> Listen:
    phrases: dict[str, None] = {}
    for candidate in candidates:
        spec = script.intents[candidate.matcher.name]
        for phrase in (*spec.phrases, *spec.keywords):
            phrases[" ".join(phrase.lower().split())] = None
    asked = [*state.fill.slots, *state.fill.capture] if state.fill else []
    asked += [slot for c in candidates if not c.is_global for slot in c.handler.capture]
    kinds = {script.slots[slot].type for slot in asked}
    slot_phrases: dict[str, None] = {}
    for kind in sorted(kinds):
        slot_phrases.update(dict.fromkeys(language.slot_phrases(kind)))
    for slot in asked:
        for words in script.slots[slot].choices.values():
            slot_phrases.update(dict.fromkeys(w.lower() for w in words))
    filled = state.fill.slots if state.fill else []
    free_form = any(script.slots[slot].type == "text" for slot in filled)
    return Listen(
        state=name,
        phrases=tuple(phrases),
        slot_phrases=tuple(p for p in slot_phrases if p not in phrases),
        free_form=free_form,
        dtmf=tuple(sorted(dtmf)),
        no_input_seconds=state.no_input_seconds or script.defaults.no_input_seconds,
    )
