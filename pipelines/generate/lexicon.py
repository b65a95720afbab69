"""Words the generator builds from: categories with their items, tastes, intents and searches.

Data only. Preference values are unique across categories, so "Likes hiking" names one category.
No phrase here may hold a time expression ("today", month names, "weekend"...): only the
relative-time phrases of `timephrases.py` may date a fact.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Intent:
    """Something a user sets out to buy: the object phrase and the searches it leads to."""

    thing: str  # "a tent": canonical "Wants to buy a tent"
    searches: tuple[str, ...]


@dataclass(frozen=True)
class Category:
    """A catalog category and what users say and search about it."""

    name: str
    domain: str  # how a query names the area of taste: "outdoor activities"
    weight: float  # how common the category is among users' tastes
    genres: tuple[str, ...]
    nouns: tuple[str, ...]  # item kinds, for titles
    likes: tuple[str, ...]  # preference values: "I love {like}"
    intents: tuple[Intent, ...]
    searches: tuple[str, ...]
    tags: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category(
        "outdoor",
        "outdoor activities",
        1.3,
        ("camping", "hiking", "climbing", "water sports", "winter sports"),
        (
            "Tent",
            "Sleeping Bag",
            "Trail Backpack",
            "Headlamp",
            "Camping Stove",
            "Trekking Poles",
            "Rain Shell",
            "Water Filter",
        ),
        ("hiking", "camping", "trail running", "kayaking", "rock climbing"),
        (
            Intent(
                "a tent",
                (
                    "tent",
                    "2 person tent",
                    "waterproof tent",
                    "tent footprint",
                    "backpacking tent ultralight",
                ),
            ),
            Intent(
                "a sleeping bag",
                (
                    "sleeping bag",
                    "down sleeping bag",
                    "sleeping bag 0 degree",
                    "compact sleeping bag",
                ),
            ),
            Intent(
                "a camping stove",
                ("camping stove", "backpacking stove", "stove fuel canister", "gas burner camping"),
            ),
        ),
        ("headlamp", "trail map", "hiking boots", "dry bag", "carabiner"),
        ("trail ready", "for the next trip", "lightweight", "gift idea"),
    ),
    Category(
        "cooking",
        "food and cooking",
        1.2,
        ("baking", "asian cuisine", "italian cuisine", "spices", "cookware"),
        (
            "Chef Knife",
            "Cast Iron Skillet",
            "Spice Set",
            "Dutch Oven",
            "Hot Sauce",
            "Pasta Maker",
            "Bread Starter Kit",
            "Wok",
        ),
        ("spicy food", "baking bread", "Thai curries", "homemade pasta", "barbecue"),
        (
            Intent(
                "a stand mixer",
                ("stand mixer", "kitchen mixer bowl", "mixer dough hook", "stand mixer sale"),
            ),
            Intent(
                "a chef knife",
                ("chef knife", "japanese knife", "knife sharpening stone", "8 inch chef knife"),
            ),
        ),
        ("chili flakes", "sourdough", "ramen kit", "olive oil", "cast iron"),
        ("tasty", "too salty", "weeknight dinner", "pantry staple"),
    ),
    Category(
        "books",
        "books",
        1.2,
        ("mystery", "science fiction", "history", "poetry", "biography"),
        ("Novel", "Memoir", "Anthology", "Field Guide", "Thriller", "Chronicle", "Atlas"),
        ("mystery novels", "science fiction", "historical fiction", "poetry", "graphic novels"),
        (
            Intent(
                "an e-reader",
                ("e-reader", "ebook reader backlight", "e-reader waterproof", "e-reader case"),
            ),
        ),
        ("detective novel", "space opera", "bestseller list", "book club pick", "audiobook"),
        ("page turner", "slow start", "to read", "book club"),
    ),
    Category(
        "electronics",
        "gadgets",
        1.1,
        ("audio", "computing", "smart home", "photography", "wearables"),
        (
            "Headphones",
            "Mechanical Keyboard",
            "Smart Speaker",
            "Action Camera",
            "USB-C Hub",
            "Fitness Tracker",
            "Portable Charger",
        ),
        (
            "mechanical keyboards",
            "noise cancelling headphones",
            "smart home gadgets",
            "film photography",
        ),
        (
            Intent(
                "a laptop",
                ("laptop", "ultrabook 16gb", "laptop for students", "lightweight laptop"),
            ),
            Intent(
                "headphones",
                (
                    "headphones",
                    "wireless headphones",
                    "noise cancelling headphones",
                    "over ear headphones",
                ),
            ),
        ),
        ("usb c cable", "bluetooth speaker", "phone charger", "webcam", "smart plug"),
        ("works great", "battery drains", "gadget", "gift idea"),
    ),
    Category(
        "toys",
        "toys and games for kids",
        0.7,
        ("building", "puzzles", "plush", "educational", "outdoor play"),
        ("Building Set", "Puzzle", "Plush Bear", "Train Set", "Science Kit", "Dollhouse"),
        ("LEGO", "jigsaw puzzles", "model trains"),
        (
            Intent(
                "a birthday gift for a kid",
                (
                    "kids birthday gift",
                    "toy for 6 year old",
                    "educational toys",
                    "building set for kids",
                ),
            ),
        ),
        ("lego", "puzzle 1000 pieces", "plush toy", "wooden train"),
        ("kids loved it", "gift idea", "small parts"),
    ),
    Category(
        "fitness",
        "ways of working out",
        1.1,
        ("yoga", "strength", "cycling", "running", "recovery"),
        ("Yoga Mat", "Kettlebell", "Foam Roller", "Resistance Bands", "Running Shoes", "Jump Rope"),
        ("yoga", "weightlifting", "cycling", "long distance running", "pilates"),
        (
            Intent(
                "running shoes",
                (
                    "running shoes",
                    "trail running shoes",
                    "running shoes wide fit",
                    "marathon shoes",
                ),
            ),
            Intent(
                "a road bike",
                ("road bike", "road bike carbon", "bike size guide", "endurance road bike"),
            ),
        ),
        ("yoga mat", "protein powder", "dumbbells", "bike lights", "gym bag"),
        ("workout", "too heavy", "daily use"),
    ),
    Category(
        "garden",
        "gardening",
        0.8,
        ("vegetables", "flowers", "tools", "indoor plants"),
        ("Seed Kit", "Pruning Shears", "Raised Bed", "Watering Can", "Planter", "Compost Bin"),
        ("growing tomatoes", "houseplants", "composting"),
        (
            Intent(
                "a raised garden bed",
                ("raised garden bed", "cedar raised bed", "garden bed kit", "raised bed soil"),
            ),
        ),
        ("tomato seeds", "potting soil", "succulents", "garden hose"),
        ("green thumb", "pretty", "balcony"),
    ),
    Category(
        "music",
        "music",
        1.2,
        ("jazz", "rock", "classical", "hip hop", "electronic"),
        ("Vinyl", "Album", "Live Recording", "Box Set", "Songbook", "Guitar Strings"),
        ("jazz", "indie rock", "classical music", "hip hop", "synthwave"),
        (
            Intent(
                "a turntable",
                (
                    "turntable",
                    "record player bluetooth",
                    "turntable belt drive",
                    "record player speakers",
                ),
            ),
            Intent(
                "an acoustic guitar",
                ("acoustic guitar", "beginner guitar", "guitar capo", "acoustic guitar case"),
            ),
        ),
        ("vinyl records", "jazz album", "guitar pedal", "concert tickets"),
        ("on repeat", "great sound", "road trip"),
    ),
    Category(
        "movies",
        "films",
        1.2,
        ("horror", "comedy", "documentary", "drama", "animation"),
        ("Film", "Director's Cut", "Collection", "Documentary", "Trilogy"),
        ("horror movies", "romantic comedies", "documentaries", "anime", "westerns"),
        (
            Intent(
                "a projector",
                ("projector", "home cinema projector", "projector screen", "4k projector"),
            ),
        ),
        ("blu-ray", "documentary series", "classic films", "cult movie"),
        ("movie night", "scary", "rewatch"),
    ),
    Category(
        "games",
        "video games",
        1.0,
        ("strategy", "role-playing", "racing", "puzzle", "indie"),
        ("Game", "Controller", "Expansion", "Collector's Edition", "Gaming Headset"),
        ("strategy games", "role-playing games", "racing games", "retro gaming"),
        (
            Intent(
                "a game console",
                ("game console", "console bundle", "handheld console", "console controller"),
            ),
        ),
        ("controller", "rpg", "co-op games", "gaming chair"),
        ("addictive", "co-op", "backlog"),
    ),
    Category(
        "fashion",
        "clothes and style",
        1.0,
        ("casual", "outerwear", "shoes", "accessories", "vintage"),
        ("Jacket", "Sneakers", "Scarf", "Denim", "Wool Sweater", "Leather Belt"),
        ("vintage clothing", "sneakers", "minimalist fashion"),
        (Intent("a winter coat", ("winter coat", "down jacket", "wool coat", "waterproof parka")),),
        ("white sneakers", "denim jacket", "wool socks", "sunglasses"),
        ("fits well", "runs small", "cozy"),
    ),
    Category(
        "beauty",
        "skincare and beauty",
        0.8,
        ("skincare", "fragrance", "hair care", "makeup"),
        ("Serum", "Moisturizer", "Sunscreen", "Perfume", "Hair Oil", "Face Mask"),
        ("skincare routines", "natural cosmetics", "perfume"),
        (
            Intent(
                "a new moisturizer",
                (
                    "moisturizer",
                    "moisturizer sensitive skin",
                    "fragrance free moisturizer",
                    "night cream",
                ),
            ),
        ),
        ("sunscreen spf 50", "vitamin c serum", "shampoo", "lip balm"),
        ("gentle", "smells nice", "sensitive skin"),
    ),
    Category(
        "home",
        "home and decor",
        1.0,
        ("furniture", "lighting", "textiles", "storage", "decor"),
        ("Lamp", "Throw Blanket", "Bookshelf", "Rug", "Candle", "Storage Box"),
        ("interior design", "scented candles", "mid-century furniture"),
        (
            Intent("a sofa", ("sofa", "sectional sofa", "sofa bed", "small sofa")),
            Intent("a desk lamp", ("desk lamp", "led desk lamp", "lamp dimmable", "reading lamp")),
        ),
        ("throw pillow", "floor lamp", "wall shelf", "curtains"),
        ("cozy", "looks cheap", "living room"),
    ),
    Category(
        "sports",
        "sports",
        1.0,
        ("soccer", "basketball", "tennis", "golf", "swimming"),
        ("Ball", "Racket", "Jersey", "Goggles", "Golf Glove", "Shin Guards"),
        ("basketball", "soccer", "tennis", "swimming"),
        (
            Intent(
                "a tennis racket",
                ("tennis racket", "racket for beginners", "tennis strings", "racket grip"),
            ),
        ),
        ("soccer ball", "swim goggles", "basketball shoes", "team jersey"),
        ("durable", "match day", "for practice"),
    ),
    Category(
        "art",
        "arts and crafts",
        0.7,
        ("painting", "drawing", "knitting", "pottery"),
        ("Watercolor Set", "Sketchbook", "Yarn", "Brush Set", "Clay Kit", "Easel"),
        ("watercolor painting", "knitting", "pottery", "sketching"),
        (Intent("an easel", ("easel", "tabletop easel", "easel for painting", "studio easel")),),
        ("acrylic paint", "sketchbook", "knitting needles", "polymer clay"),
        ("creative", "vibrant", "hobby"),
    ),
    Category(
        "pets",
        "things for pets",
        0.9,
        ("dog", "cat", "aquarium", "small pets"),
        ("Dog Bed", "Cat Tree", "Leash", "Chew Toy", "Aquarium Filter", "Pet Fountain"),
        ("dog training", "aquariums", "cat toys"),
        (
            Intent(
                "a dog crate",
                ("dog crate", "crate for large dog", "foldable dog crate", "crate pad"),
            ),
        ),
        ("dog treats", "cat litter", "chew toy", "fish food"),
        ("dog approved", "cat ignores it", "sturdy"),
    ),
    Category(
        "travel",
        "travel",
        1.0,
        ("luggage", "city breaks", "beach", "road trips"),
        ("Carry-On", "Travel Pillow", "Packing Cubes", "Guidebook", "Passport Holder", "Duffel"),
        ("road trips", "beach holidays", "city breaks", "backpacking abroad"),
        (
            Intent(
                "a carry-on suitcase",
                ("carry-on suitcase", "cabin luggage", "hard shell carry on", "carry on spinner"),
            ),
        ),
        ("packing cubes", "travel adapter", "neck pillow", "city guide"),
        ("trip essential", "fits overhead", "wanderlust"),
    ),
    Category(
        "baby",
        "baby gear",
        0.5,
        ("nursery", "feeding", "strollers", "clothing"),
        ("Stroller", "Baby Monitor", "Crib Sheet", "Bottle Set", "Baby Carrier", "Onesie"),
        ("baby-led weaning", "cloth diapers"),
        (
            Intent(
                "a stroller",
                ("stroller", "lightweight stroller", "travel stroller", "stroller rain cover"),
            ),
        ),
        ("baby monitor", "diaper bag", "teething toy", "swaddle"),
        ("newborn", "easy to clean", "nursery"),
    ),
)

CATEGORY_NAMES: tuple[str, ...] = tuple(category.name for category in CATEGORIES)

ADJECTIVES = (
    "Summit",
    "Everyday",
    "Nordic",
    "Classic",
    "Urban",
    "Compact",
    "Essential",
    "Heritage",
    "Pro",
    "Signature",
    "Midnight",
    "Evergreen",
    "Coastal",
    "Studio",
    "Wild",
    "Golden",
    "Quiet",
    "Bright",
    "Little",
    "Grand",
)
BRANDS = (
    "Northpeak",
    "Maple & Co",
    "Lumen",
    "Orbit",
    "Kestrel",
    "Tidewater",
    "Hearth",
    "Ferro",
    "Bluebird",
    "Ashford",
    "Quill",
    "Solstice",
    "Pinewood",
    "Arcadia",
    "Brightside",
    "Mosaic",
)
DESCRIPTIONS = (
    "A {adj} {noun} made for {genre} fans.",
    "{adj} {noun} with a durable build and a clean design, popular with {genre} lovers.",
    "Our best-selling {noun}: {adj}, reliable and easy to use.",
    "The {adj} {noun} from {brand}, a favourite among {genre} fans.",
    "A thoughtful {noun} for anyone into {genre}; {adj} and well made.",
    "{brand} brings a {adj} take on the classic {noun}.",
)

CITIES = (
    "Seattle",
    "Denver",
    "Portland",
    "Austin",
    "Chicago",
    "Boston",
    "Toronto",
    "Berlin",
    "Lisbon",
    "Madrid",
    "Dublin",
    "Melbourne",
    "Vancouver",
    "Minneapolis",
    "Atlanta",
    "Edinburgh",
    "Kyoto",
    "Oslo",
    "Montreal",
    "Barcelona",
)
COMPANIES = (
    "Acme",
    "Globex",
    "Initech",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Vandelay Industries",
    "Blue Harbor Bank",
    "Pinecrest Hospital",
    "Riverside School",
    "Helios Energy",
    "Quantum Freight",
)
PEOPLE = (
    "Anna",
    "Maria",
    "Sam",
    "Noah",
    "Emma",
    "Lucas",
    "Mia",
    "Olivia",
    "Ben",
    "Chloe",
    "Jonas",
    "Priya",
    "Kenji",
    "Sofia",
    "Omar",
    "Ines",
    "Tom",
    "Leo",
    "Nina",
    "Ravi",
)
PET_NAMES = (
    "Max",
    "Bella",
    "Luna",
    "Charlie",
    "Milo",
    "Coco",
    "Rocky",
    "Daisy",
    "Pepper",
    "Biscuit",
    "Ziggy",
    "Nala",
)
PETS = ("dog", "cat", "rabbit", "parrot")
DIETS = ("vegetarian", "vegan", "pescatarian")
ALLERGIES = ("peanuts", "shellfish", "gluten", "cats", "pollen")
SURNAMES = ("smith", "garcia", "nguyen", "muller", "rossi", "tanaka", "okafor", "silva", "kowalski")
EMAIL_DOMAINS = ("example.com", "mail.example.org", "inbox.test", "example.net")
