"""Long conversations between two friends, with questions whose evidence turns are planted: the
shape of LoCoMo (`conversation` with dated `session_N`, `qa` with `evidence` and `category`), so
a measure written for the real data runs on these unchanged.

What makes them harder than the user-assistant chats of `conversations.py`: both people tell
their own news and answer the other's, and a question's answer is rarely one turn that repeats
its words. The time is often said in a turn before the news ("guess what I did yesterday?"), or
the listener names the episode and the teller only confirms it; details come a turn later
without naming the episode; a later session refers back ("went back to the dojo") without
naming it either; questions name an area the turns never say ("martial arts" over "judo"),
ask when, or ask what can be inferred. Most turns are small talk and echoes of the topic.
Deterministic by seed; pure Python, a few milliseconds a conversation.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.generate.episodes import (
    AGAIN,
    AREAS,
    ASK_BACKS,
    ASKS,
    CHEERS,
    CLOSE_ONES,
    CLOSINGS,
    CONFIRMS,
    DAYS,
    FOLLOW_UPS,
    GREETING_REPLIES,
    GREETINGS,
    PASSING,
    REACTIONS,
    REVEALS,
    REVISIT_REPLIES,
    REVISITS,
    TEASER_REPLIES,
    TEASERS,
    TELLS,
    WHEN,
    Area,
    Detail,
)
from pipelines.generate.lexicon import PEOPLE

# LoCoMo's categories: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop.
MULTI_HOP, TEMPORAL, OPEN_DOMAIN, SINGLE_HOP = 1, 2, 3, 4
_FIRST_DAY = datetime(2022, 1, 3, tzinfo=UTC)
_BRIDGES = ("What about you, {name}? Anything new?", "Enough about me. How are you, {name}?")


def chatter(rng: random.Random, name: str, react: bool = True) -> str:
    """A small-talk turn about nothing a question asks: a reaction, one's days, a question back."""
    parts = [rng.choice(REACTIONS).format(name=name)] if react else []
    parts.append(rng.choice(DAYS).format(who=rng.choice(CLOSE_ONES)))
    if rng.random() < 0.3:
        parts.append(rng.choice(ASK_BACKS).format(name=name))
    text = " ".join(part for part in parts if part)
    return text[0].upper() + text[1:]


@dataclass
class _Episode:
    """One piece of news of one person, and where it ended up in the transcript."""

    teller: int
    area: Area
    member: str
    session: int
    back_in: int | None = None  # the later session that refers back to it
    passing: bool = False  # only mentioned in passing: no time, no detail
    revisit_in: int | None = None  # a later session where the listener asks after it
    content: list[str] = field(default_factory=list)  # turns that name it
    dated: list[str] = field(default_factory=list)  # turns that say when
    when: str = ""
    day: datetime | None = None
    detail: tuple[Detail, str, str] | None = None  # what, its value, the turn
    back: tuple[str, str] | None = None  # what happened on return, the turn


class _Transcript:
    """The turns of one conversation, speakers alternating as in a chat."""

    def __init__(self, rng: random.Random, names: tuple[str, str]) -> None:
        self.rng, self.names = rng, names
        self.sessions: list[list[dict[str, str]]] = []
        self.next_speaker = 0

    def open_session(self, first: int) -> None:
        self.sessions.append([])
        self.next_speaker = first

    def say(self, speaker: int, text: str, caption: str | None = None) -> str:
        """Append a turn (a bridging one first if the other person's turn is due); its dia_id."""
        if speaker != self.next_speaker:
            other = self.names[speaker]
            if self.rng.random() < 0.3:
                self.say(self.next_speaker, self.rng.choice(_BRIDGES).format(name=other))
            else:
                self.say(self.next_speaker, chatter(self.rng, other))
        if self.rng.random() < 0.85:  # people say more than a turn's point
            more = chatter(self.rng, self.names[1 - speaker], react=False)
            if more not in text:
                text = f"{more} {text}" if text[-1] == "?" else f"{text} {more}"
        session = self.sessions[-1]
        dia_id = f"D{len(self.sessions)}:{len(session) + 1}"
        turn = {"speaker": self.names[speaker], "dia_id": dia_id, "text": text}
        if caption is not None:
            turn["blip_caption"] = f"a photo of {caption}"
        session.append(turn)
        self.next_speaker = 1 - speaker
        return dia_id


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _plan(rng: random.Random, sessions: int) -> list[_Episode]:
    """Each person's episodes: several areas, a few members of each, spread over the sessions."""
    episodes: list[_Episode] = []
    for teller in (0, 1):
        for area in rng.sample(AREAS, rng.randint(7, 8)):
            for member in rng.sample(area.members, rng.choice((1, 2, 3, 3, 4))):
                session = rng.randrange(sessions)
                episode = _Episode(teller, area, member, session)
                if rng.random() < 0.35:
                    episode.passing = True
                elif session < sessions - 1 and rng.random() < 0.3:
                    episode.back_in = rng.randint(session + 1, sessions - 1)
                if session < sessions - 1 and rng.random() < 0.4:
                    episode.revisit_in = rng.randint(session + 1, sessions - 1)
                episodes.append(episode)
    return episodes


def _tell(chat: _Transcript, episode: _Episode, day: datetime, greeting: str | None) -> None:
    """The teller gives the news, the listener echoes it, a detail may follow."""
    rng, teller = chat.rng, episode.teller
    listener = 1 - teller
    phrase, days_before = rng.choice(WHEN)
    episode.when, episode.day = phrase, day - timedelta(days=days_before)
    did = rng.choice(episode.area.did).format(x=episode.member)
    caption = rng.choice(episode.area.captions) if rng.random() < 0.3 else None
    form = "tell" if greeting else rng.choices(("tell", "tease", "ask"), (0.65, 0.2, 0.15))[0]
    if form == "tell":
        told = _cap(rng.choice(TELLS).format(when=phrase, did=did))
        turn = chat.say(teller, f"{greeting} {told}" if greeting else told, caption)
        episode.content, episode.dated = [turn], [turn]
    elif form == "tease":
        episode.dated = [chat.say(teller, rng.choice(TEASERS).format(when=phrase))]
        chat.say(listener, rng.choice(TEASER_REPLIES).format(name=chat.names[teller]))
        episode.content = [chat.say(teller, rng.choice(REVEALS).format(did=did), caption)]
    else:
        do = episode.area.do.format(x=episode.member)
        episode.content = [
            chat.say(listener, rng.choice(ASKS).format(do=do, name=chat.names[teller]))
        ]
        episode.dated = [chat.say(teller, rng.choice(CONFIRMS).format(when=phrase), caption)]
        episode.content.append(episode.dated[0])
    echo = _cap(rng.choice(episode.area.echoes).format(x=episode.member))
    cheer = rng.choice([text for text in CHEERS if "{name}" not in text])
    chat.say(listener, f"{echo}, {chat.names[teller]}! {cheer}")
    if rng.random() < 0.65:
        detail = rng.choice(episode.area.details)
        value = rng.choice(detail.values)
        opener = rng.choice(("Thanks! ", "Haha, yes. ", "", "It really was. "))
        wording = detail.named if rng.random() < 0.5 else detail.said
        said = _cap(wording.format(d=value, x=episode.member))
        episode.detail = (detail, value, chat.say(teller, f"{opener}{said}."))
        chat.say(listener, rng.choice(CHEERS).format(name=chat.names[teller]))
    if rng.random() < 0.5:
        asked, answer = rng.choice(FOLLOW_UPS)
        chat.say(listener, asked.format(name=chat.names[teller]))
        chat.say(teller, answer)


def _small_talk(chat: _Transcript, turns: int) -> None:
    for _ in range(turns):
        speaker = chat.next_speaker
        chat.say(speaker, chatter(chat.rng, chat.names[1 - speaker]))


def _in_passing(chat: _Transcript, episode: _Episode, day: datetime) -> None:
    """The teller mentions it at the end of a turn about something else."""
    rng = chat.rng
    episode.day = day
    aside = rng.choice(PASSING[episode.area.key]).format(x=episode.member)
    text = f"{chatter(rng, chat.names[1 - episode.teller])} {aside}"
    episode.content = [chat.say(episode.teller, text)]


def _revisit(chat: _Transcript, episode: _Episode) -> None:
    """The listener asks after it; the teller answers without news."""
    rng, teller = chat.rng, episode.teller
    asked = REVISITS[episode.area.key].format(x=episode.member, name=chat.names[teller])
    chat.say(1 - teller, asked)
    chat.say(teller, rng.choice(REVISIT_REPLIES))


def _refer_back(chat: _Transcript, episode: _Episode) -> None:
    """A later session: the teller goes back to it without naming it."""
    rng = chat.rng
    happened = rng.choice(AGAIN[episode.area.key])
    back = episode.area.again.format(again=happened)
    opener = rng.choice(("Remember what I told you about a while ago? ", "Quick update: ", ""))
    turn = chat.say(episode.teller, f"{opener}{_cap(rng.choice(('last week I ', 'I ')))}{back}.")
    episode.back = (happened, turn)
    chat.say(1 - episode.teller, rng.choice(CHEERS).format(name=chat.names[episode.teller]))


def _session_start(rng: random.Random, start: datetime) -> datetime:
    return start + timedelta(hours=rng.randint(8, 20), minutes=rng.randrange(60))


def _date_text(moment: datetime) -> str:
    """LoCoMo's form: "1:56 pm on 8 May, 2023"."""
    hour = moment.hour % 12 or 12
    noon = "am" if moment.hour < 12 else "pm"
    return f"{hour}:{moment.minute:02d} {noon} on {moment.day} {moment:%B}, {moment.year}"


def _questions(
    rng: random.Random, episodes: list[_Episode], names: tuple[str, str]
) -> list[dict[str, Any]]:
    """The planted questions, each with its answer, evidence turns and category."""
    qa: list[dict[str, Any]] = []

    def ask(question: str, answer: str, evidence: list[str], category: int) -> None:
        unique = list(dict.fromkeys(evidence))
        qa.append(
            {"question": question, "answer": answer, "evidence": unique, "category": category}
        )

    by_area: dict[tuple[int, str], list[_Episode]] = defaultdict(list)
    for episode in episodes:
        by_area[episode.teller, episode.area.key].append(episode)
    for episode in episodes:
        name, area, x = names[episode.teller], episode.area, episode.member
        assert episode.day is not None
        if episode.passing:
            continue  # no time, no detail: it only counts among the area's episodes
        siblings = by_area[episode.teller, area.key]
        if rng.random() < 0.75:
            question = area.asked_what.format(name=name)
            month = f"{episode.day:%B} {episode.day.year}"
            same_month = [e for e in siblings if e.day and f"{e.day:%B} {e.day.year}" == month]
            if len(siblings) > 1 and len(same_month) == 1:
                question = f"{question[:-1]} in {month}?"
            if len(siblings) == 1 or len(same_month) == 1:
                ask(question, x, episode.content, SINGLE_HOP)
        if rng.random() < 0.6:
            said_on = episode.day + _days(episode.when)
            when = f"{episode.when} before {said_on.day} {said_on:%B %Y}"
            # With one episode of the area, the question may name the area instead.
            do = area.do_any if len(siblings) == 1 and rng.random() < 0.5 else area.do
            ask(
                f"When did {name} {do.format(x=x)}?",
                when,
                episode.dated + episode.content,
                TEMPORAL,
            )
        if episode.detail is not None and rng.random() < 0.8:
            detail, value, turn = episode.detail
            ask(detail.asked.format(name=name, x=x), value, [turn], SINGLE_HOP)
        if episode.back is not None:
            happened, turn = episode.back
            ask(
                area.asked_again.format(name=name, x=x),
                happened,
                [*episode.content, turn],
                MULTI_HOP,
            )
    for (teller, _), mine in by_area.items():
        area, name = mine[0].area, names[teller]
        evidence = [turn for episode in mine for turn in episode.content]
        supported = [turn for e in rng.sample(mine, min(2, len(mine))) for turn in e.content]
        members = ", ".join(episode.member for episode in mine)
        if len(mine) > 1:
            ask(area.asked_all.format(name=name), members, evidence, MULTI_HOP)
        if rng.random() < 0.4:
            question, answer = area.guess
            ask(question.format(name=name), answer, supported, OPEN_DOMAIN)
    return qa


def _days(phrase: str) -> timedelta:
    """From the day a time phrase names back to the session it was said in."""
    return timedelta(days=dict(WHEN)[phrase])


def dialogue(seed: int, index: int) -> dict[str, Any]:
    """One conversation with its questions, as a LoCoMo record (`sample_id` "gen-<seed>-<i>")."""
    rng = random.Random(f"dialogue:{seed}:{index}")
    a, b = rng.sample(PEOPLE, 2)
    names = (a, b)
    sessions = rng.randint(18, 26)
    episodes = _plan(rng, sessions)
    chat = _Transcript(rng, (a, b))
    conversation: dict[str, Any] = {"speaker_a": a, "speaker_b": b}
    day = _FIRST_DAY + timedelta(days=rng.randrange(500))
    for number in range(sessions):
        day += timedelta(days=rng.randint(3, 21))
        start = _session_start(rng, day)
        conversation[f"session_{number + 1}_date_time"] = _date_text(start)
        items = [(e, "tell") for e in episodes if e.session == number]
        items += [(e, "back") for e in episodes if e.back_in == number]
        items += [(e, "revisit") for e in episodes if e.revisit_in == number]
        rng.shuffle(items)
        told_first = items and items[0][1] == "tell" and not items[0][0].passing
        first = items[0][0].teller if told_first else rng.randrange(2)
        chat.open_session(first)
        greeting = rng.choice(GREETINGS).format(name=names[1 - first])
        if told_first and rng.random() < 0.4:
            _tell(chat, items.pop(0)[0], day, greeting)
        else:
            chat.say(first, greeting)
            chat.say(1 - first, rng.choice(GREETING_REPLIES).format(name=names[first]))
        if not items:
            _small_talk(chat, rng.randint(6, 12))
        for episode, how in items:
            _small_talk(chat, rng.choice((0, 1, 2, 2, 3)))
            if how == "back":
                _refer_back(chat, episode)
            elif how == "revisit":
                _revisit(chat, episode)
            elif episode.passing:
                _in_passing(chat, episode, day)
            else:
                _tell(chat, episode, day, None)
        _small_talk(chat, rng.randint(1, 4))
        bye, reply = rng.choice(CLOSINGS)
        speaker = chat.next_speaker
        chat.say(speaker, bye.format(name=names[1 - speaker]))
        chat.say(1 - speaker, reply.format(name=names[speaker]))
        conversation[f"session_{number + 1}"] = chat.sessions[-1]
    return {
        "sample_id": f"gen-{seed}-{index}",
        "conversation": conversation,
        "qa": _questions(rng, episodes, names),
    }


def dialogues(seed: int, count: int = 5) -> list[dict[str, Any]]:
    """`count` conversations, as LoCoMo's JSON list."""
    return [dialogue(seed, index) for index in range(count)]
