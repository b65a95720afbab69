"""Rule-based extraction: what a user's words state about them, and what they never state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory.extract import INTENT_GRACE, INTENT_TTL, RuleExtractor, TextSignal
from memory.records import FACT_KINDS, Memory, memory_id_for

# Wednesday 13 May 2026, 15:00 UTC.
NOW = datetime(2026, 5, 13, 15, 0, tzinfo=UTC)
extractor = RuleExtractor()


def said(
    text: str, speaker: str | None = "user", kind: str = "message", event_id: str = "e1"
) -> TextSignal:
    return TextSignal(event_id, "u1", NOW, kind, text, speaker, "s1", None)


def facts_of(text: str, **kwargs: str) -> list[Memory]:
    return [m for m in extractor.extract([said(text, **kwargs)]) if m.kind != "episode"]


Summary = tuple[str, str, str | None, str | None]


def attr(text: str, slot: str | None = None, value: str | None = None) -> Summary:
    return ("attribute", text, slot, value)


def rel(text: str, slot: str | None = None, value: str | None = None) -> Summary:
    return ("relationship", text, slot, value)


def event(text: str, slot: str | None = None, value: str | None = None) -> Summary:
    return ("life_event", text, slot, value)


def intent(text: str) -> Summary:
    return ("intent", text, None, None)


def likes(thing: str) -> Summary:
    return ("preference", f"Likes {thing}", None, None)


def dislikes(thing: str) -> Summary:
    return ("dislike", f"Dislikes {thing}", None, None)


def summary(text: str) -> set[Summary]:
    return {(m.kind, m.text, m.slot, m.value) for m in facts_of(text)}


def test_a_user_message_is_kept_whole_as_an_episode() -> None:
    [episode] = extractor.extract([said("  just got back   from the store  ")])
    assert episode.kind == "episode"
    assert episode.text == "just got back from the store"
    assert episode.confidence == 1.0
    assert episode.valid_from == NOW and episode.created_at == NOW
    assert episode.source_event_ids == ("e1",)
    assert episode.memory_id == memory_id_for("u1", "episode", episode.text, "e1")


@pytest.mark.parametrize("speaker", [None, "user"])
def test_no_speaker_or_the_user_speaker_means_the_user_said_it(speaker: str | None) -> None:
    kinds = [m.kind for m in extractor.extract([said("I'm vegan.", speaker=speaker)])]
    assert kinds == ["episode", "attribute"]


@pytest.mark.parametrize("speaker", ["assistant", "system", "other", "Assistant"])
def test_nobody_else_speaks_for_the_user(speaker: str) -> None:
    text = "I'm vegetarian, I love hiking and we moved to Portland last week."
    assert extractor.extract([said(text, speaker=speaker)]) == []


@pytest.mark.parametrize("kind", ["search", "tag"])
def test_searches_and_tags_make_no_memory_here(kind: str) -> None:
    assert extractor.extract([said("I love camping tents", kind=kind)]) == []


def test_a_review_states_tastes_but_not_opinions_about_the_item() -> None:
    memories = extractor.extract([said("I love spicy food. I love the color too.", kind="review")])
    assert [(m.kind, m.text) for m in memories] == [
        ("episode", "I love spicy food. I love the color too."),
        ("preference", "Likes spicy food"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("honestly I'm a vegetarian these days", {attr("Is vegetarian", "diet", "vegetarian")}),
        ("I went vegan after watching a documentary", {attr("Is vegan", "diet", "vegan")}),
        ("I don't eat meat at all", {attr("Is vegetarian", "diet", "vegetarian")}),
        ("I'm on a strict keto diet", {attr("Follows a keto diet", "diet", "keto")}),
        ("We really enjoy board games", {likes("board games")}),
        ("I adore Italian food", {likes("Italian food")}),
        ("I've always loved to swim", {likes("swimming")}),
        ("I'm a huge fan of jazz", {likes("jazz")}),
        ("My favorite band is Radiohead", {likes("Radiohead")}),
        (
            "I love kayaking, climbing, and baking bread.",
            {
                likes("kayaking"),
                likes("climbing"),
                likes("baking bread"),
            },
        ),
        ("I love mac and cheese", {likes("mac and cheese")}),
        ("I can't stand reality TV", {dislikes("reality TV")}),
        ("I really don't like crowded beaches", {dislikes("crowded beaches")}),
        ("I'm not a big fan of country music", {dislikes("country music")}),
        ("I'm allergic to cats", {attr("Is allergic to cats")}),
        ("I live in San Diego", {attr("Lives in San Diego", "location", "San Diego")}),
        ("I'm originally from Ohio", {attr("Is from Ohio", "hometown", "Ohio")}),
        ("I work for Initech", {attr("Works at Initech", "employer", "Initech")}),
        ("I work as a pharmacist", {attr("Is a pharmacist", "occupation", "pharmacist")}),
        ("I'm an architect", {attr("Is an architect", "occupation", "architect")}),
        ("I'm divorced", {attr("Is divorced", "relationship_status", "divorced")}),
        ("I'm 34 years old", {attr("Is 34 years old", "age", "34")}),
        ("I speak fluent Portuguese", {attr("Speaks Portuguese")}),
        ("My brother Luis lives nearby", {rel("Brother is Luis", None, "Luis")}),
        ("my wife's name is Priya", {rel("Wife is Priya", "partner", "Priya")}),
        ("Omar is my best friend", {rel("Best friend is Omar", None, "Omar")}),
        ("I have three kids", {rel("Has three kids")}),
        ("We have a cat called Miso", {rel("Has a cat named Miso")}),
        ("our puppy Biscuit chewed my shoe", {rel("Has a dog named Biscuit")}),
        ("We relocated to Austin", {event("Moved to Austin", "location", "Austin")}),
        (
            "I landed a job at Globex",
            {event("Started a new job at Globex", "employer", "Globex")},
        ),
        ("I quit my job", {event("Left job", "employer", "none")}),
        ("we finally got engaged!", {event("Got engaged", "relationship_status", "engaged")}),
        ("We welcomed a baby girl", {event("Had a baby")}),
        ("I bought a condo downtown", {event("Bought a condo")}),
        ("I want to learn the guitar", {intent("Wants to learn the guitar")}),
        ("I'm saving up for a road bike", {intent("Wants to buy a road bike")}),
        ("We're planning a trip to Lisbon", {intent("Is planning a trip to Lisbon")}),
        ("I'd love to visit Kyoto", {intent("Wants to visit Kyoto")}),
        ("I want to sell my car", {intent("Wants to sell their car")}),
        ("I'd like to learn to paint", {intent("Wants to learn to paint")}),
        ("I'm not a coffee person", {dislikes("coffee")}),
        ("I've gotten really into bouldering", {likes("bouldering")}),
        ("We adopted two kittens", {event("Got two cats")}),
        ("I have two cats", {rel("Has two cats")}),
        ("I could eat pizza every day", {likes("pizza")}),
    ],
)
def test_first_person_statements_become_canonical_facts(text: str, expected: set[Summary]) -> None:
    assert summary(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sushi is hands down my favorite food", {likes("sushi")}),
        ("Gardening makes me really happy", {likes("gardening")}),
        ("Opera is just not my thing", {dislikes("opera")}),
        ("Nothing compares to a good espresso", {likes("good espresso")}),
        ("I could listen to Miles Davis for hours", {likes("Miles Davis")}),
        ("As a lifelong fan of baseball, I loved it", {likes("baseball")}),
        ("Please stop recommending romance novels, I hate them", {dislikes("romance novels")}),
        ("Sushi? Can't stand it.", {dislikes("sushi")}),
        ("no peanuts please, I'm allergic", {attr("Is allergic to peanuts")}),
        ("Porto is home now", {attr("Lives in Porto", "location", "Porto")}),
        (
            "Busy week at Initrode, where I work",
            {attr("Works at Initrode", "employer", "Initrode")},
        ),
        ("Just moved to Lisbon!", {event("Moved to Lisbon", "location", "Lisbon")}),
        ("Been vegan for a year now", {attr("Is vegan", "diet", "vegan")}),
        ("Thinking of adopting a rescue greyhound", {intent("Wants to adopt a rescue greyhound")}),
        ("Hunting for a used piano, any tips?", {intent("Is looking for a used piano")}),
        ("Can you help me pick out a rain jacket?", {intent("Is looking for a rain jacket")}),
        ("I love hiking, camping, fishing, anyway", {likes("hiking")}),
        ("Love climbing but hate running", {likes("climbing"), dislikes("running")}),
    ],
)
def test_chat_shorthand_and_topic_first_statements(text: str, expected: set[Summary]) -> None:
    assert summary(text) == expected


@pytest.mark.parametrize(
    ("text", "expected_text", "valid_from"),
    [
        (
            "Tomorrow is my first day at Vandelay",
            "Starting a new job at Vandelay",
            datetime(2026, 5, 14, tzinfo=UTC),
        ),
        ("Our daughter was born last Friday", "Had a baby", datetime(2026, 5, 8, tzinfo=UTC)),
        ("We're expecting a baby in March", "Expecting a baby", datetime(2027, 3, 1, tzinfo=UTC)),
        ("Our wedding is next Saturday", "Getting married", datetime(2026, 5, 16, tzinfo=UTC)),
        ("Completed my master's degree last month", "Graduated", datetime(2026, 4, 1, tzinfo=UTC)),
        (
            "Last Friday was my last day before retirement",
            "Retired",
            datetime(2026, 5, 8, tzinfo=UTC),
        ),
        (
            "Settled into Oslo at last, we moved a week ago",
            "Moved to Oslo",
            datetime(2026, 5, 6, tzinfo=UTC),
        ),
    ],
)
def test_events_are_dated_by_the_time_they_name(
    text: str, expected_text: str, valid_from: datetime
) -> None:
    [event] = facts_of(text)
    assert (event.kind, event.text, event.valid_from) == ("life_event", expected_text, valid_from)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm not vegetarian anymore", attr("Is no longer vegetarian", "diet", "omnivore")),
        ("I stopped being vegan", attr("Is no longer vegan", "diet", "omnivore")),
        ("I eat meat again", attr("Eats meat", "diet", "omnivore")),
        ("I no longer work at Initech", attr("No longer works at Initech", "employer", "none")),
        ("I don't work for Globex anymore", attr("No longer works at Globex", "employer", "none")),
        ("I got laid off", event("Left job", "employer", "none")),
        ("I'm not really into sports", dislikes("sports")),
    ],
)
def test_negations_state_the_change(text: str, expected: Summary) -> None:
    assert summary(text) == {expected}


@pytest.mark.parametrize(
    "text",
    [
        "If I ever moved to Paris, I'd learn French.",
        "should I move to Denver?",
        "Do you think I'd like sushi",
        "My friend is vegetarian.",
        "My sister loves hiking.",
        'She said "I love opera" and laughed.',
        "I don't think I like jazz.",
        "I wish I lived in Rome.",
        "Maybe someday I'll move to Tokyo.",
        "I used to love horror movies.",
        "I could move to Denver, I guess.",
        "I love it!",
        "I love that idea, thanks.",
        "I need a break.",
        "I'm engaged in a long project.",
        "You could move to Austin.",
        "we went to the movies",
        "My brother is obsessed with golf.",
        "Would you recommend a tent?",
        "Shopping for my son today.",
        "My mom thinks sushi makes everyone happy.",
        "If sushi is your favorite, try this place.",
        "Jazz is your favorite, right?",
    ],
)
def test_questions_hypotheticals_and_other_people_state_no_fact(text: str) -> None:
    assert facts_of(text) == []


def test_reported_speech_about_others_gives_at_most_who_they_are() -> None:
    assert summary("My sister Anna said she moved to Denver and loves skiing.") == {
        rel("Sister is Anna", None, "Anna")
    }


def test_a_past_time_mention_dates_the_event() -> None:
    [moved] = facts_of("We moved to Seattle last week, still unpacking")
    assert moved.valid_from == datetime(2026, 5, 4, tzinfo=UTC)  # Monday of last week
    [baby] = facts_of("We had a baby two days ago!")
    assert baby.valid_from == datetime(2026, 5, 11, tzinfo=UTC)
    [job] = facts_of("I started a new job at Hooli in March.")
    assert job.valid_from == datetime(2026, 3, 1, tzinfo=UTC)


def test_a_future_time_mention_dates_a_planned_event() -> None:
    [move] = facts_of("We're moving to Denver next spring")
    assert (move.text, move.slot, move.value) == ("Moving to Denver", "location", "Denver")
    assert move.valid_from == datetime(2027, 3, 1, tzinfo=UTC)
    [job] = facts_of("I start at Hooli tomorrow")
    assert job.valid_from == datetime(2026, 5, 14, tzinfo=UTC)


def test_a_state_takes_only_a_since_mention() -> None:
    [diet] = facts_of("I've been vegan since March")
    assert diet.valid_from == datetime(2026, 3, 1, tzinfo=UTC)
    [likes] = facts_of("I loved hiking last week but I love climbing")
    assert likes.text == "Likes climbing" and likes.valid_from == NOW


def test_intents_expire_after_the_ttl_or_after_their_target() -> None:
    [plain] = facts_of("I want to buy a tent")
    assert plain.valid_from == NOW and plain.expires_at == NOW + INTENT_TTL
    [later] = facts_of("I want to buy a kayak next month")
    assert later.valid_from == NOW
    assert later.expires_at == datetime(2026, 6, 1, tzinfo=UTC) + INTENT_GRACE


def test_hedges_lower_confidence() -> None:
    [sure] = facts_of("I love hiking")
    [hedged] = facts_of("I think I love hiking")
    assert 0 < hedged.confidence < sure.confidence <= 1


def test_the_same_fact_twice_in_one_message_is_one_memory() -> None:
    assert len(facts_of("I love hiking. Honestly I really love hiking!")) == 1


def test_the_last_value_of_a_slot_in_a_message_wins() -> None:
    assert summary("I'm not vegan anymore, I'm vegetarian now.") == {
        attr("Is vegetarian", "diet", "vegetarian")
    }


def test_a_named_job_replaces_the_bare_one() -> None:
    assert summary("I started a new job at Initech") == {
        event("Started a new job at Initech", "employer", "Initech")
    }


def test_ids_are_deterministic_and_follow_memory_id_for() -> None:
    first = facts_of("I moved to Boston", event_id="ev-9")
    again = facts_of("I moved to Boston", event_id="ev-9")
    assert first == again
    assert first[0].memory_id == memory_id_for("u1", "life_event", "Moved to Boston", "ev-9")
    assert first[0].source_event_ids == ("ev-9",)


def test_signals_keep_their_order_and_users() -> None:
    signals = [
        TextSignal("a", "u1", NOW, "message", "I love tea", "user", None, None),
        TextSignal(
            "b", "u2", NOW + timedelta(minutes=1), "message", "I hate tea", None, None, None
        ),
    ]
    memories = extractor.extract(signals)
    assert [(m.user_id, m.kind) for m in memories] == [
        ("u1", "episode"),
        ("u1", "preference"),
        ("u2", "episode"),
        ("u2", "dislike"),
    ]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["assistant", "system", "other"]))
def test_other_speakers_never_yield_memories(text: str, speaker: str) -> None:
    assert extractor.extract([said(text, speaker=speaker)]) == []


_WORDS = st.sampled_from(
    [
        "I",
        "I'm",
        "we",
        "my",
        "love",
        "hate",
        "moved",
        "to",
        "Seattle",
        "vegan",
        "not",
        "if",
        "want",
        "buy",
        "a",
        "tent",
        "sister",
        "Anna",
        "is",
        "named",
        "dog",
        "Max",
        "last",
        "week",
        "next",
        ".",
        ",",
        "?",
        "and",
        "but",
        "don't",
        "think",
        "maybe",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=25).map(" ".join))
def test_any_text_gives_well_formed_memories(text: str) -> None:
    for memory in extractor.extract([said(text)]):
        assert memory.kind == "episode" or memory.kind in FACT_KINDS
        assert 0 < memory.confidence <= 1
        assert memory.text and memory.text == memory.text.strip()
        assert (memory.expires_at is not None) == (memory.kind == "intent")
