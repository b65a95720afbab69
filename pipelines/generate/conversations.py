"""Multi-session chats of one user with the assistant, with facts planted in the user's turns.

Besides facts, a chat holds what an extractor must not take for a fact about the user: assistant
turns that name places, diets or hobbies (distractors), user turns that are hypothetical, about a
third person or a question (non-facts), chit-chat, and now and then personal data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pipelines.generate.pii as pii
from pipelines.generate.drafts import Drafts, FactDraft, MentionDraft, PiiDraft
from pipelines.generate.events import (
    SESSION_CHAT,
    SPEAKER_ASSISTANT,
    SPEAKER_USER,
    TextRows,
)
from pipelines.generate.facts import FactPlan, Profile, plan_threads
from pipelines.generate.lexicon import CATEGORIES, CITIES, COMPANIES, DIETS, PET_NAMES, PETS
from pipelines.generate.timephrases import Dating, pick_dating

_DAY_MS = 86_400_000
_SESSION_GAP_MS = 2 * _DAY_MS  # between chat sessions of one user, at least
_USER_FILLERS = (
    "hey there",
    "hi!",
    "can you recommend something new?",
    "what's popular right now?",
    "hmm, not sure yet",
    "ok thanks",
    "that's helpful, thank you",
    "show me a few more options",
    "which one has better reviews?",
    "lol fair enough",
    "is there free shipping?",
    "how long does delivery usually take?",
    "can I return it if it doesn't fit?",
    "what would you pick?",
    "cool",
    "sounds good",
    "any deals going on?",
    "what's the price range?",
)
_ASSISTANT_REPLIES = (
    "Sure! Here are a few picks you might like.",
    "Happy to help with that.",
    "Those are all popular choices.",
    "Good question, let me check.",
    "Here are the top rated options.",
    "Returns are free within thirty days of delivery.",
    "Standard shipping is free on larger orders.",
    "I'd start with the first one on this list.",
)
_ACKS = (
    "Got it, thanks for sharing!",
    "Good to know.",
    "Noted, I'll keep that in mind.",
    "That's great!",
    "Oh nice!",
    "Thanks for letting me know.",
)
_GREETINGS = ("Hi! How can I help?", "Hello again! What are you looking for?", "Hey! What's up?")
_CLOSINGS = (("thanks, bye!", "Anytime!"), ("that's all for now", "Have a good one!"))
_PREFIXES = ("oh btw, ", "by the way, ", "so ", "honestly, ", "well, ", "anyway, ", "fyi ")
_SUFFIXES = (", anyway", " :)", "!", ". any ideas?", ", just so you know", " lol")
_SUFFIXES_AFTER_PUNCTUATION = (" :)", " lol")


@dataclass
class _Said:
    """Where a thread stands: the last fact said and when it became true."""

    draft: FactDraft
    stated_ms: int
    valid_from_ms: int
    tolerance_days: int


def _typo(rng: random.Random, text: str) -> str:
    """Two neighbouring letters swapped inside one word of four letters or more."""
    words = text.split(" ")
    letters = [word.rstrip(",.!?:)") for word in words]
    candidates = [i for i, core in enumerate(letters) if len(core) >= 4 and core.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    word, j = words[i], rng.randrange(1, len(letters[i]) - 2)
    words[i] = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    return " ".join(words)


def _decorate(rng: random.Random, core: str, typo_rate: float) -> str:
    """Fillers around a statement; a typo only ever lands in the fillers, never in the fact."""
    prefix = rng.choice(_PREFIXES) if rng.random() < 0.4 else ""
    # After a question or an exclamation only an emoticon or "lol" reads naturally.
    suffixes = _SUFFIXES if core[-1].isalnum() else _SUFFIXES_AFTER_PUNCTUATION
    suffix = rng.choice(suffixes) if rng.random() < 0.4 else ""
    if rng.random() < typo_rate:
        if prefix:
            prefix = _typo(rng, prefix)
        elif suffix:
            suffix = _typo(rng, suffix)
    text = prefix + core + suffix
    return text[0].upper() + text[1:] if rng.random() < 0.6 else text


def _other(rng: random.Random, pool: tuple[str, ...], profile: Profile) -> str:
    return rng.choice([value for value in pool if value not in profile.used] or list(pool))


def _distractor(rng: random.Random, profile: Profile) -> tuple[str, tuple[str, ...]]:
    """An assistant turn naming a fact that is not the user's."""
    city, company = _other(rng, CITIES, profile), _other(rng, COMPANIES, profile)
    like = _other(rng, rng.choice(CATEGORIES).likes, profile)
    roll = rng.randrange(7)
    if roll == 0:
        return f"Many people in {city} love {like}.", (f"Lives in {city}", f"Likes {like}")
    if roll == 1:
        return f"You could move to {city}, it's great for {like}.", (f"Moved to {city}",)
    if roll == 2:
        diet = _other(rng, DIETS, profile)
        return f"I'm {diet}-friendly, here are some {diet} recipes to try.", (f"Is {diet}",)
    if roll == 3:
        return f"Lots of customers who buy this also enjoy {like}.", (f"Likes {like}",)
    if roll == 4:
        return f"{company} is hiring right now, if you're ever curious.", (f"Works at {company}",)
    if roll == 5:
        pet, name = _other(rng, PETS, profile), _other(rng, PET_NAMES, profile)
        return f"A {pet} named {name} would be adorable!", (f"Has a {pet} named {name}",)
    return f"Some people can't stand {like}, but it has its fans.", (f"Dislikes {like}",)


def _non_fact(rng: random.Random, profile: Profile) -> tuple[str, tuple[str, ...], str]:
    """A user turn that names a fact without stating it about the user."""
    city, company = _other(rng, CITIES, profile), _other(rng, COMPANIES, profile)
    like = _other(rng, rng.choice(CATEGORIES).likes, profile)
    roll = rng.randrange(6)
    if roll == 0:
        mentions = (f"Moved to {city}", f"Lives in {city}")
        return f"if I ever moved to {city} I'd probably learn to surf", mentions, "hypothetical"
    if roll == 1:
        diet = _other(rng, DIETS, profile)
        return f"I wonder what being {diet} would be like", (f"Is {diet}",), "hypothetical"
    if roll == 2:
        return f"my friend is really into {like}", (f"Likes {like}",), "third_party"
    if roll == 3:
        return f"my coworker just moved to {city}", (f"Moved to {city}",), "third_party"
    if roll == 4:
        pet = _other(rng, PETS, profile)
        return f"do you think I should get a {pet}?", (f"Has a {pet}",), "question"
    return f"would {company} be a good place to work?", (f"Works at {company}",), "question"


def _pii_turn(rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    email, phone, card = pii.email_address(rng), pii.phone_number(rng), pii.card_number(rng)
    roll = rng.randrange(5)
    if roll == 0:
        return f"you can email me at {email}", [("email", email)]
    if roll == 1:
        return f"my number is {phone} in case the courier needs it", [("phone", phone)]
    if roll == 2:
        return f"please charge my card {card}", [("card", card)]
    if roll == 3:
        return f"contact: {email} / {phone}", [("email", email), ("phone", phone)]
    return f"here's my card number {card}, thanks", [("card", card)]


def _session_starts(rng: random.Random, n: int, start_ms: int, end_ms: int) -> list[int]:
    """`n` session starts inside the window, at least two days apart when the window allows."""
    low, high = start_ms + _DAY_MS, end_ms - _DAY_MS
    gap = min(_SESSION_GAP_MS, (high - low) // max(n, 1))
    spread = sorted(rng.randrange(0, high - low - gap * (n - 1)) for _ in range(n))
    return [low + offset + k * gap for k, offset in enumerate(spread)]


class _Chat:
    """Writes the turns of one user's chats into `rows` and what they plant into `drafts`."""

    def __init__(
        self, rows: TextRows, drafts: Drafts, rng: random.Random, user: int, typo_rate: float
    ) -> None:
        self.rows, self.drafts, self.rng, self.user = rows, drafts, rng, user
        self.typo_rate = typo_rate
        self.now = 0
        self.session = 0
        self.device = 0

    def next_time(self) -> int:
        """The time of the next turn: a few seconds to a minute and a half after the last."""
        self.now += self.rng.randint(5_000, 90_000)
        return self.now

    def turn(self, speaker: int, text: str, at: int | None = None) -> int:
        """Write a turn, at `at` when its time was drawn beforehand."""
        if at is None:
            at = self.next_time()
        return self.rows.add(
            self.user,
            at,
            "message",
            text,
            session=self.session,
            session_kind=SESSION_CHAT,
            device=self.device,
            speaker=speaker,
        )

    def _wording(
        self, plan: FactPlan, stated_ms: int, prev: _Said | None
    ) -> tuple[str, Dating | None] | None:
        """How the user says `plan` at `stated_ms`, and its dating; None if nothing fits."""
        if plan.direction is None:
            return self.rng.choice(plan.wordings), None
        after = None
        if prev is not None:
            after = max(prev.stated_ms, prev.valid_from_ms + prev.tolerance_days * _DAY_MS)
        dating = pick_dating(stated_ms, plan.direction, self.rng, after)
        if dating is not None:
            return self.rng.choice(plan.wordings).replace("{when}", dating.phrase), dating
        if plan.plain:
            return self.rng.choice(plan.plain), None
        return None

    def say_fact(self, plan: FactPlan, prev: _Said | None) -> _Said | None:
        """The user states `plan`; None when no wording fits after what the thread said."""
        stated_ms = self.next_time()
        said = self._wording(plan, stated_ms, prev)
        if said is None:
            return None
        wording, dating = said
        rows = self._statement(wording, plan.follow_up, stated_ms)
        draft = FactDraft(self.user, plan.kind, plan.text, plan.query, "message", rows)
        draft.slot, draft.value = plan.slot, plan.value
        if dating is not None:
            draft.time_phrase, draft.direction = dating.phrase, dating.direction
            draft.valid_from_ms, draft.tolerance_days = dating.valid_from_ms, dating.tolerance_days
        elif plan.direction is not None:
            draft.tolerance_days = 7  # "we just moved": within a week before it is said
        if plan.expires_days is not None:
            draft.expires_after_ms = self.rng.randint(*plan.expires_days) * _DAY_MS
        self.drafts.facts.append(draft)
        valid_from_ms = dating.valid_from_ms if dating else stated_ms
        return _Said(draft, stated_ms, valid_from_ms, draft.tolerance_days)

    def say_again(self, plan: FactPlan, draft: FactDraft) -> None:
        """The user restates a fact in other words; the turn joins the fact's evidence."""
        wordings = [wording for wording in plan.wordings if "{when}" not in wording]
        stated_ms = self.next_time()
        draft.rows.extend(self._statement(self.rng.choice(wordings), None, stated_ms))

    def _statement(self, wording: str, follow_up: str | None, stated_ms: int) -> list[int]:
        rows = [self.turn(SPEAKER_USER, _decorate(self.rng, wording, self.typo_rate), stated_ms)]
        if follow_up is not None:
            rows.append(self.turn(SPEAKER_USER, follow_up))
        if self.rng.random() < 0.8:
            self.turn(SPEAKER_ASSISTANT, self.rng.choice(_ACKS))
        return rows

    def chit_chat(self) -> None:
        text = self.rng.choice(_USER_FILLERS)
        if self.rng.random() < self.typo_rate:
            text = _typo(self.rng, text)
        self.turn(SPEAKER_USER, _decorate(self.rng, text, self.typo_rate))
        self.turn(SPEAKER_ASSISTANT, self.rng.choice(_ASSISTANT_REPLIES))

    def distractor(self, profile: Profile) -> None:
        if self.rng.random() < 0.6:
            self.turn(SPEAKER_USER, self.rng.choice(_USER_FILLERS))
        text, mentions = _distractor(self.rng, profile)
        row = self.turn(SPEAKER_ASSISTANT, text)
        self.drafts.distractors.append(MentionDraft(self.user, row, text, mentions, "assistant"))

    def non_fact(self, profile: Profile) -> None:
        text, mentions, reason = _non_fact(self.rng, profile)
        text = _decorate(self.rng, text, 0.0)
        row = self.turn(SPEAKER_USER, text)
        self.drafts.non_facts.append(MentionDraft(self.user, row, text, mentions, reason))
        if self.rng.random() < 0.7:
            self.turn(SPEAKER_ASSISTANT, self.rng.choice(_ASSISTANT_REPLIES))

    def personal_data(self) -> None:
        text, found = _pii_turn(self.rng)
        row = self.turn(SPEAKER_USER, text)
        for kind, value in found:
            self.drafts.pii.append(PiiDraft(self.user, row, kind, value))
        self.turn(SPEAKER_ASSISTANT, "Thanks, noted.")


def add_chats(
    rows: TextRows,
    drafts: Drafts,
    rng: random.Random,
    user: int,
    profile: Profile,
    window: tuple[int, int],
    sessions: tuple[int, int],
    *,
    with_pii: bool,
    typo_rate: float,
) -> None:
    """Write one user's chat sessions, planting facts, distractors, non-facts and PII."""
    n = rng.randint(*sessions)
    threads = plan_threads(rng, profile)
    # (session, thread, position in thread, is a restatement)
    placed: list[tuple[int, int, int, bool]] = []
    for t, thread in enumerate(threads):
        thread = thread[:n]
        restate = len(thread) == 1 and thread[0].restated and n > 1
        slots = sorted(rng.sample(range(n), len(thread) + restate))
        placed.extend(
            (s, t, min(k, len(thread) - 1), k >= len(thread)) for k, s in enumerate(slots)
        )
    pii_session = rng.randrange(n) if with_pii else -1
    chat = _Chat(rows, drafts, rng, user, typo_rate)
    said: dict[int, _Said | None] = {}
    broken: set[int] = set()
    for session, start in enumerate(_session_starts(rng, n, *window)):
        chat.now = start
        chat.session = rows.new_session(SESSION_CHAT)
        chat.device = rng.randrange(3)
        items = [("fact", t, k, again) for s, t, k, again in placed if s == session]
        items += [("chat", 0, 0, False)] * rng.randint(1, 3)
        items += [("distractor", 0, 0, False)] * (rng.random() < 0.5)
        items += [("non_fact", 0, 0, False)] * (rng.random() < 0.35)
        items += [("pii", 0, 0, False)] * (session == pii_session)
        rng.shuffle(items)
        if rng.random() < 0.7:
            chat.turn(SPEAKER_USER, rng.choice(("hi", "hello!", "hey")))
            chat.turn(SPEAKER_ASSISTANT, rng.choice(_GREETINGS))
        for kind, t, k, again in items:
            if kind == "fact" and t not in broken:
                prev = said.get(t)
                if again:
                    if prev is not None:
                        chat.say_again(threads[t][k], prev.draft)
                    continue
                result = chat.say_fact(threads[t][k], prev)
                if result is None:
                    broken.add(t)  # the rest of the thread would contradict what was said
                said[t] = result
            elif kind == "chat":
                chat.chit_chat()
            elif kind == "distractor":
                chat.distractor(profile)
            elif kind == "non_fact":
                chat.non_fact(profile)
            elif kind == "pii":
                chat.personal_data()
        if rng.random() < 0.5:
            user_text, reply = rng.choice(_CLOSINGS)
            chat.turn(SPEAKER_USER, user_text)
            chat.turn(SPEAKER_ASSISTANT, reply)
