"""What two friends tell each other across months: areas of life, the episodes in each, and the
words a question about them uses instead of the speaker's.

Data only, written for this generator. An area groups episodes under a word the turns never say
("martial arts" over "judo" and "karate"), so a question that names the area finds its turns only
through what they mean. "{x}" is the episode's member, "{d}" a detail's value, "{name}" a person.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Detail:
    """Something said about an episode in a later turn that no longer names it."""

    said: str  # "the coach told me my {d} was the best in the room"
    named: str  # the same naming the episode: "my {x} coach said my {d} was the best"
    asked: str  # "What did {name}'s {x} coach praise?"
    values: tuple[str, ...]


@dataclass(frozen=True)
class Area:
    """A part of someone's life and how its episodes are said and asked about."""

    key: str
    members: tuple[str, ...]
    did: tuple[str, ...]  # past clauses after "I": "took my first {x} class"
    do: str  # the question's base form: "take a {x} class"
    do_any: str  # the same without the member, when the person has only one: "try a martial art"
    asked_what: str  # single-hop, the member is the answer: "What martial art did {name} try?"
    asked_all: str  # multi-hop over every episode of the area: "What martial arts has {name} ..."
    again: str  # a return told later, the member left out: "went back to that dojo"
    asked_again: str  # "What did {name} do when going back to the {x} class?"
    details: tuple[Detail, ...]
    echoes: tuple[str, ...]  # the listener repeats the topic without adding to it
    guess: tuple[str, str]  # an open-domain question the area's episodes answer, and its answer
    captions: tuple[str, ...] = ()


AREAS: tuple[Area, ...] = (
    Area(
        "fighting",
        ("kickboxing", "judo", "karate", "taekwondo", "capoeira", "aikido"),
        ("took my first {x} class", "signed up for {x} lessons", "went to a {x} session"),
        "start {x}",
        "first go to a martial arts class",
        "Which martial art class did {name} sign up for?",
        "What martial arts has {name} practised?",
        "went back to the dojo and {again}",
        "What happened when {name} went back to {x} practice?",
        (
            Detail(
                "the coach said my {d} was the best in the room",
                "my {x} coach said my {d} was the best in the room",
                "What did {name}'s {x} coach praise?",
                ("footwork", "balance", "timing", "stance"),
            ),
            Detail(
                "I was sore for days, mostly my {d}",
                "after {x} I was sore for days, mostly my {d}",
                "What hurt after {name}'s {x} class?",
                ("shoulders", "calves", "wrists", "lower back"),
            ),
        ),
        ("{x}? that sounds intense", "wow, {x} takes real discipline", "I bet {x} is a workout"),
        ("Would {name} sign up for a self-defence workshop?", "Likely yes"),
        ("a group of people in white uniforms on a mat", "a pair of sparring gloves"),
    ),
    Area(
        "music",
        ("guitar", "cello", "piano", "drums", "ukulele", "saxophone"),
        ("started learning the {x}", "bought a second-hand {x} and began lessons"),
        "start playing the {x}",
        "take up an instrument",
        "Which instrument did {name} start learning?",
        "What instruments does {name} play?",
        "picked it up again after a break and {again}",
        "What did {name} manage on the {x} after the break?",
        (
            Detail(
                "my teacher has me practising {d} every evening",
                "on the {x} I practise {d} every evening",
                "What does {name} practise every evening on the {x}?",
                ("scales", "chord changes", "a lullaby", "an old folk tune"),
            ),
        ),
        ("the {x}, how fun", "I always wanted to play the {x}", "you on the {x}, love it"),
        ("Would {name} enjoy going to a live concert?", "Yes"),
        ("a wooden instrument leaning on a sofa", "sheet music on a stand"),
    ),
    Area(
        "baking",
        ("banana bread", "a lemon tart", "apple crumble", "cinnamon rolls", "a cheesecake"),
        ("baked {x} for the first time", "made {x} from my grandmother's recipe"),
        "bake {x}",
        "bake a dessert",
        "What did {name} bake?",
        "What desserts has {name} made?",
        "tried the recipe a second time and {again}",
        "How did {name}'s second try at the recipe for {x} go?",
        (
            Detail(
                "the secret is a pinch of {d}",
                "the secret to my {x} is a pinch of {d}",
                "What is the secret ingredient in {name}'s {x}?",
                ("cardamom", "sea salt", "orange zest", "nutmeg"),
            ),
            Detail(
                "I took it to {d} and it was gone in minutes",
                "I took the {x} to {d} and it was gone in minutes",
                "Where did {name} take the {x}?",
                ("the office", "a neighbour's party", "book club", "my aunt's place"),
            ),
        ),
        ("{x} sounds delicious", "save me a slice of that {x}", "homemade {x}, yum"),
        ("Does {name} enjoy spending time in the kitchen?", "Yes"),
        ("a golden dessert on a cooling rack", "a plate with a slice of cake"),
    ),
    Area(
        "crafts",
        ("pottery", "knitting", "woodworking", "watercolour painting", "calligraphy"),
        ("joined a {x} workshop", "tried {x} at the community centre"),
        "try {x}",
        "go to a craft workshop",
        "Which craft workshop did {name} join?",
        "What crafts has {name} tried?",
        "went back to the workshop and {again}",
        "What did {name} make on going back to the {x} workshop?",
        (
            Detail(
                "I made {d}, a bit wonky but mine",
                "my first {x} piece was {d}, a bit wonky but mine",
                "What did {name} make at the {x} workshop?",
                ("a small bowl", "a scarf", "a birdhouse", "a card for my mum", "a mug"),
            ),
        ),
        ("{x} is so relaxing", "ooh, {x}! show me what you made", "{x} takes patience"),
        ("Would {name} like a handmade gift more than a store-bought one?", "Probably yes"),
        ("a handmade object on a workbench", "a table covered with art supplies"),
    ),
    Area(
        "outdoors",
        ("a lake hike", "a kayak trip", "a camping weekend", "a climbing day", "a cycling tour"),
        ("went on {x} with friends", "did {x} up north"),
        "go on {x}",
        "go on an outdoor trip",
        "What outdoor trip did {name} go on with friends?",
        "What outdoor activities has {name} done?",
        "went back to the same spot and {again}",
        "What did {name} see on the second visit after {x}?",
        (
            Detail(
                "we saw {d} on the way back",
                "on {x} we saw {d} on the way back",
                "What did {name} see during {x}?",
                ("a family of deer", "an eagle", "a double rainbow", "wild horses"),
            ),
        ),
        ("{x} sounds amazing", "I miss being outside like that", "nature is the best reset"),
        ("Does {name} live closer to mountains or to a big city?", "Likely near the outdoors"),
        ("a trail winding through a forest", "a lake with mountains behind it"),
    ),
    Area(
        "giving",
        ("the animal shelter", "the food bank", "a soup kitchen", "the library reading club"),
        ("started volunteering at {x}", "signed up to help out at {x}"),
        "start volunteering at {x}",
        "start volunteering",
        "Where does {name} volunteer?",
        "Where has {name} volunteered?",
        "was back there on my shift and {again}",
        "What happened on {name}'s latest shift at {x}?",
        (
            Detail(
                "a lady named {d} thanked me with a note",
                "at {x} a lady named {d} thanked me with a note",
                "Who thanked {name} at {x}?",
                ("Rosa", "Greta", "Hannah", "Lucia"),
            ),
        ),
        ("helping at {x}, that's so kind", "{x} is lucky to have you", "giving back matters"),
        ("Would {name} be described as caring about their community?", "Yes"),
        ("a group of people packing boxes", "volunteers in matching t-shirts"),
    ),
    Area(
        "travel",
        ("Lisbon", "Kyoto", "Edinburgh", "Oslo", "Barcelona", "Vancouver", "Dublin"),
        ("flew to {x} for a few days", "took a short trip to {x}"),
        "travel to {x}",
        "go away for a few days",
        "Which city did {name} take a short trip to?",
        "What cities has {name} travelled to?",
        "went back there for work and {again}",
        "What did {name} do on returning to {x}?",
        (
            Detail(
                "the best part was {d}",
                "the best part of {x} was {d}",
                "What was the best part of {name}'s trip to {x}?",
                ("the old harbour", "a night market", "the castle tour", "a tiny jazz bar"),
            ),
        ),
        ("{x}! I've heard great things", "{x} is on my list", "so jealous of that trip"),
        ("Would {name} enjoy a job that involves travelling?", "Likely yes"),
        ("a street of old buildings at dusk", "a view over rooftops"),
    ),
    Area(
        "shows",
        ("a jazz concert", "a film festival", "a stand-up show", "an open-air opera"),
        ("went to {x} downtown", "got tickets to {x} and went"),
        "go to {x}",
        "go to a live event",
        "What event did {name} go to downtown?",
        "What live events has {name} been to?",
        "went to another one and {again}",
        "What happened when {name} went to another event like {x}?",
        (
            Detail(
                "I went with {d} and we stayed until the end",
                "I went to {x} with {d} and we stayed until the end",
                "Who did {name} go to {x} with?",
                ("my cousin", "two friends from work", "my neighbour", "my sister"),
            ),
        ),
        ("{x}, how fun", "I haven't been to {x} in ages", "that must have been a great night"),
        ("Does {name} prefer going out to staying in?", "Likely going out"),
        ("a stage lit up in blue", "a crowd in front of a stage"),
    ),
    Area(
        "animals",
        ("a puppy", "a kitten", "two turtles", "a rescue greyhound", "a parrot"),
        ("adopted {x}", "brought home {x} from a rescue"),
        "adopt {x}",
        "get a pet",
        "What pet did {name} adopt?",
        "What pets does {name} have?",
        "took the little one to the vet and {again}",
        "What did the vet say about {name}'s {x}?",
        (
            Detail(
                "we named it {d}",
                "we called the little one {d}",
                "What is the name of {name}'s {x}?",
                ("Pickles", "Juniper", "Waffles", "Pixel", "Olive"),
            ),
        ),
        ("{x}, how adorable", "I need to meet {x}", "pets make everything better"),
        ("Would {name} be likely to move to a flat that bans pets?", "Unlikely"),
        ("a small animal asleep on a blanket", "a pet in a basket"),
    ),
)

# How a return ends ("...and {again}"), by area, and what the answer is.
AGAIN: dict[str, tuple[str, ...]] = {
    "fighting": ("finally got my first belt", "sparred with the coach", "did not fall once"),
    "music": ("played a whole song without stopping", "played for my family"),
    "baking": ("it came out even better", "burnt the top a little", "made a double batch"),
    "crafts": ("finished a second piece", "gave my first piece away as a gift"),
    "outdoors": ("we got caught in a storm", "the lake had frozen over", "we found a cave"),
    "giving": ("we broke a record for meals served", "I trained two new volunteers"),
    "travel": ("found a café I loved", "got lost in the old town", "met an old classmate"),
    "shows": ("we met the performers", "it rained the whole time", "we got front row seats"),
    "animals": ("heard all is well", "got a new diet plan", "learned it needs a small surgery"),
}

# An episode said only in passing, at the end of a turn about something else.
PASSING: dict[str, tuple[str, ...]] = {
    "fighting": ("Anyway, I'm off to {x} now, wish me luck!", "My {x} coach would laugh at me."),
    "music": ("I've been glued to my {x} all evening, sorry for the slow replies.",),
    "baking": ("The whole flat still smells of the {x} I made.",),
    "crafts": ("My hands are still a mess from {x} last night.",),
    "outdoors": ("My legs still ache from {x}, honestly.",),
    "giving": ("I've got a shift at {x} later, so I can't stay long.",),
    "travel": ("I still have sand in my shoes from {x}, haha.",),
    "shows": ("I still have the ticket from {x} on my fridge.",),
    "animals": ("Sorry, {x} keeps climbing on my keyboard.",),
}
# The listener comes back to an episode in a later session; nothing new is said about it.
REVISITS: dict[str, str] = {
    "fighting": "Are you still doing {x}, {name}?",
    "music": "Still practising the {x}, {name}?",
    "baking": "Have you made {x} again since, {name}?",
    "crafts": "Do you still do {x}, {name}?",
    "outdoors": "Any plans for another trip like {x}, {name}?",
    "giving": "Are you still helping at {x}, {name}?",
    "travel": "Do you miss {x}, {name}?",
    "shows": "Been to anything like {x} since, {name}?",
    "animals": "How's life with {x}, {name}?",
}
REVISIT_REPLIES = (
    "Yes, whenever I can find the time.",
    "Now and then! Life gets in the way.",
    "A bit less lately, but I haven't given up.",
    "Oh yes, it's part of my routine now.",
)
# Said in answer to an episode, by the listener; "{name}" is the teller.
CHEERS = (
    "That's awesome, {name}! You always find ways to keep life interesting.",
    "Love that for you, {name}. It's great when you make time for what matters.",
    "So happy for you! It sounds like it really meant a lot.",
    "Wow, {name}, that's wonderful. Keep me posted on how it goes.",
    "That's so cool! I'm proud of you for going for it.",
    "Amazing, {name}! Moments like that make all the hard weeks worth it.",
    "Good for you! It's important to try new things and grow.",
)
# Small talk with no episode in it, put together from three parts so that it rarely repeats:
# a reaction, something about one's days, and now and then a question back. "{name}" is the other
# person, "{who}" someone close.
REACTIONS = (
    "Thanks, {name}!",
    "Haha, true.",
    "Oh, I hear you.",
    "Totally.",
    "Aw, that's sweet of you.",
    "Right?",
    "Honestly, same.",
    "Ha, you know me too well, {name}.",
    "I appreciate that, {name}.",
    "Fair point.",
    "So true.",
    "",
)
DAYS = (
    "Work has been hectic, so I'm keeping my evenings free for myself.",
    "{who} came over for dinner and we talked for hours.",
    "I've been trying to get to bed earlier, with mixed results.",
    "I keep telling myself to slow down and enjoy things more.",
    "{who} has been going through a rough patch, so I've been checking in a lot.",
    "I finally sorted out the spare room, which felt like a small victory.",
    "The weather has been so gloomy that I've mostly stayed in.",
    "I've been cooking more at home to save a bit of money.",
    "{who} keeps sending me funny videos, it's the highlight of my day.",
    "My to-do list is endless, but I'm chipping away at it.",
    "I've been journaling a little every night and it helps me think.",
    "{who} and I had a long talk about the future, which was good for both of us.",
    "I'm trying to say yes to more things this year.",
    "Some days are harder than others, but talking to you always helps.",
    "I've been reading before bed instead of scrolling, and I sleep better.",
    "Our street has been noisy with roadworks, so I work from a café sometimes.",
    "I've been walking more, even just around the block.",
    "{who} asked about you the other day, by the way.",
    "Money has been tight, so I'm picking my treats carefully.",
    "I'm learning that it's fine not to have everything figured out.",
    "I've been meaning to call {who} for ages and finally did.",
    "Gratitude really does change how I see my week.",
)
CLOSE_ONES = ("my mum", "my dad", "my sister", "my brother", "my neighbour", "an old friend")
ASK_BACKS = (
    "How's your week going, {name}?",
    "How are things with you?",
    "How's the family?",
    "Anything new on your side?",
    "What have you been up to?",
    "How's work treating you?",
)
# The listener asks more; the teller answers in general terms.
FOLLOW_UPS = (
    ("What made you want to do that, {name}?", "I needed something just for me, away from work."),
    ("How did it feel afterwards?", "Tired but really happy. I felt like myself again."),
    ("Would you do it again?", "Definitely. I'm already looking forward to next time."),
    ("Was it what you expected?", "Not at all, in a good way! It surprised me."),
    ("Who got you into it, {name}?", "A friend kept talking about it, so I gave it a go."),
)
GREETINGS = (
    "Hey {name}! Long time no talk. How have you been?",
    "Hi {name}! It's been a while since we chatted. What's new?",
    "Hey {name}, good to hear from you! How's everything going?",
    "Hi {name}! Hope your week has been good so far.",
)
GREETING_REPLIES = (
    "Hey {name}! I'm doing well, thanks. Lots going on, actually.",
    "Hi {name}! Good to talk again. Things have been pretty busy.",
    "Hey! All good here, {name}. How about you?",
)
CLOSINGS = (
    ("I should head off now. Talk soon, {name}!", "Bye {name}! Take care of yourself."),
    ("Gotta run, {name}. This was nice!", "Same here! Catch you later."),
    ("Thanks for the chat, {name}.", "Anytime, {name}. Talk soon!"),
)
# The teller shares the news in one turn: "{when}" a time phrase, "{did}" the clause.
TELLS = (
    "{when} I {did}, and it was so much fun!",
    "Guess what, {when} I {did}. Still buzzing about it.",
    "So {when} I {did}. It felt good to do something new.",
    "I {did} {when}! Honestly, it made my week.",
)
# The same news in two turns: the teaser holds the time, the reveal the episode.
TEASERS = (
    "Guess what I did {when}?",
    "Something fun happened {when}, you won't believe it.",
    "You'll never guess what I got up to {when}.",
)
TEASER_REPLIES = ("Tell me everything!", "Ooh, what happened, {name}?", "No idea, spill!")
REVEALS = ("I {did}! It was even better than I hoped.", "I {did}. Totally new for me!")
# The listener names the episode and the teller only confirms when.
ASKS = (
    "Weren't you going to {do} at some point, {name}?",
    "Did you ever {do} like you said you might?",
    "Last time you said you'd {do}. Did you?",
)
CONFIRMS = ("Yes! Did it {when}, and I loved it.", "I did, {when}. It was great.")
# Days before the session, and how the speaker says it.
WHEN = (
    ("yesterday", 1),
    ("last week", 7),
    ("last weekend", 5),
    ("a few days ago", 3),
    ("two weeks ago", 14),
    ("last Friday", 4),
    ("this morning", 0),
)
