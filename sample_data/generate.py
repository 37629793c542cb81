#!/usr/bin/env python3
"""Generate the synthetic sample dataset used by the demo and the tests.

Writes ``sample_data/sample.jsonl``: about 2,200 instruction/response pairs over ten clearly
distinct topics, plus four planted defect groups that a curator should be able to find with
the studio (exact duplicates, truncated responses, confidently wrong arithmetic, gibberish).
Every text comes from the templates and word lists below; nothing is copied from elsewhere.

Each topic is a table of question|answer templates (``~`` separates alternative phrasings of
a question, a middle column fills the ``input`` field, ``{x!c}`` capitalises a slot) filled
from word lists and from values computed here, so numeric answers are correct by construction.

It also writes ``sample_data/eval/arithmetic_word_problems.jsonl``: short multi-step word problems with
worked answers ending in ``#### N`` and the number in an ``answer`` field, the evaluation set the demo's
runs use (``make run`` copies it into the workspace's ``eval/`` folder, where the Runs page finds it).

The output depends only on the seed: ``python sample_data/generate.py`` rewrites both files
byte-identically. Options: ``--out PATH``, ``--eval-out PATH`` and ``--seed N``. Standard library only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

DEFAULT_SEED = 20240521
DEFAULT_OUT = Path(__file__).resolve().parent / "sample.jsonl"
DEFAULT_EVAL_OUT = Path(__file__).resolve().parent / "eval" / "arithmetic_word_problems.jsonl"
EVAL_ROWS = 40
ROWS_PER_TOPIC = 200
FIELDS = ("id", "instruction", "input", "output", "topic")

Row = tuple[str, str, str]  # (instruction, input, output)
Record = dict[str, object]
Maker = Callable[[random.Random], list[Row]]


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class _Formatter(string.Formatter):
    """``str.format`` plus one conversion: ``{slot!c}`` capitalises the first letter."""

    def convert_field(self, value: object, conversion: str | None) -> object:
        return cap(str(value)) if conversion == "c" else super().convert_field(value, conversion)


FORMAT = _Formatter().format


def table(text: str) -> list[list[str]]:
    """Parse a '|'-separated table, one record per line."""
    return [[f.strip() for f in line.split("|")] for line in text.strip().splitlines()]


def qa(text: str) -> dict[str, list[list[str]]]:
    """Group 'tag|question|answer' (or 'tag|question|input|answer') templates by tag."""
    groups: dict[str, list[list[str]]] = {}
    for tag, *template in table(text):
        groups.setdefault(tag, []).append(template)
    return groups


def recs(rows: Iterable[Sequence[object]], names: str) -> list[Record]:
    return [dict(zip(names.split(), row, strict=True)) for row in rows]


def fill(rng: random.Random, templates: list[list[str]], records: Iterable[Record]) -> list[Row]:
    """Expand every template for every record into (instruction, input, output) rows."""
    rows: list[Row] = []
    for fields in records:
        for template in templates:
            question = rng.choice(template[0].split("~"))
            given = template[1] if len(template) == 3 else ""
            answer = FORMAT(template[-1], **fields).strip()
            rows.append((FORMAT(question, **fields), FORMAT(given, **fields), answer))
    return rows


def split_list(text: str, sep: str = ",") -> list[str]:
    """Split a compact word list, dropping surrounding whitespace and empty items."""
    return [item.strip() for item in text.split(sep) if item.strip()]


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def num(x: float) -> str:
    return f"{round(x, 2):g}"


def money(x: float) -> str:
    return f"${x:,.2f}"


def unescape(text: str) -> str:
    return text.replace("\\n", "\n")


# ----------------------------------------------------------------------------- cooking

COOKING_QA = qa("""
dish|What ingredients do I need to make {name}?|For {name} you need {ing}.
dish|How do I make {name}?~How do you cook {name} at home?|{method}. Allow {time} from start to finish.
dish|How long does it take to make {name}?|Plan on {time} for {name}, including preparation.
dish|What should I serve with {name} for dinner?~What side dish goes well with {name}?|{name!c} goes well with \
{serve}.
dish|Give me a short recipe for {name}.|Ingredients: {ing}. Method: {method}. It takes {time}.
dish|Write a grocery shopping list for cooking {name}.|Shopping list: {shopping}.
tech|How do I {t} {v}?~What's the best way to {t} {v}?~Explain how to {t} {v} for a side dish.|{answer}
sub|What can I use instead of {item}?~I ran out of {item}. What is a good substitute?|Replace {item} with {sub}.
cups|How many grams is {amount} of {ingredient}?|One US cup of {ingredient} weighs about {grams} g, so {amount} is \
roughly {total} g.
oven|My recipe says to bake at {f}°F. What is that in Celsius?|{f}°F is about {c}°C, since °C = (°F - 32) × 5/9.
scale|Scale the following recipe to serve {n} people.|{recipe}|Multiply every quantity by {factor} ({n} ÷ \
{base}):{scaled}
""")
DISHES = table("""
spaghetti carbonara|spaghetti, eggs, pecorino or parmesan, guanciale or pancetta, and black pepper|Cook the pasta, \
crisp the pork, then toss the hot drained pasta off the heat with beaten eggs and cheese so the sauce turns creamy \
instead of scrambling|about 20 minutes|a crisp green salad
banana bread|very ripe bananas, flour, sugar, butter, eggs, baking soda, and a pinch of salt|Mash the bananas, \
stir in melted butter, sugar and egg, fold in the dry ingredients, and bake in a loaf tin at 175°C (350°F) until a \
skewer comes out clean|about 1 hour 15 minutes|salted butter and a cup of coffee
chicken stir-fry|sliced chicken, mixed vegetables, garlic, ginger, soy sauce, and a neutral oil|Sear the chicken \
in a very hot wok and set it aside, stir-fry the vegetables, then return the chicken with the sauce and toss for a \
minute|about 25 minutes|steamed jasmine rice
a French omelette|eggs, butter, salt, and chopped chives|Whisk the eggs, pour them into foaming butter over medium \
heat, stir constantly until barely set, then roll the omelette onto a plate|about 5 minutes|buttered toast
tomato soup|ripe tomatoes, onion, garlic, vegetable stock, olive oil, and basil|Soften the onion and garlic in \
oil, add the tomatoes and stock, simmer for 20 minutes, then blend until smooth|about 40 minutes|a grilled cheese \
sandwich
guacamole|ripe avocados, lime juice, red onion, cilantro, fresh chili, and salt|Mash the avocados coarsely and \
fold in the lime juice, finely chopped onion, cilantro, chili and salt|about 10 minutes|tortilla chips
beef chili|ground beef, onion, garlic, canned tomatoes, kidney beans, chili powder, and cumin|Brown the beef with \
the onion and garlic, stir in the spices, add the tomatoes and beans, and simmer gently for at least 45 \
minutes|about 1 hour 15 minutes|rice or cornbread
pancakes|flour, milk, eggs, sugar, baking powder, melted butter, and salt|Whisk the wet and dry ingredients \
separately, combine until just mixed, and cook ladlefuls on a hot greased pan until bubbles form, then flip|about \
20 minutes|maple syrup and fresh berries
mushroom risotto|arborio rice, mushrooms, onion, butter, white wine, hot stock, and parmesan|Fry the mushrooms, \
toast the rice with softened onion, add the wine, then add hot stock a ladle at a time, stirring until creamy, and \
finish with butter and parmesan|about 35 minutes|a simple rocket salad
roast chicken|a whole chicken, butter, lemon, garlic, thyme, salt, and pepper|Season the bird inside and out, rub \
it with butter, and roast at 200°C (400°F) until the thickest part of the thigh reaches 74°C (165°F), then rest it \
for 15 minutes|about 1 hour 45 minutes|roast potatoes and gravy
hummus|chickpeas, tahini, lemon juice, garlic, olive oil, and salt|Blend the chickpeas with tahini, lemon and \
garlic, adding a little ice-cold water until very smooth, then season and drizzle with oil|about 10 minutes|warm \
pita bread
chocolate chip cookies|butter, brown sugar, white sugar, eggs, vanilla, flour, baking soda, salt, and chocolate \
chips|Cream the butter and sugars, beat in the egg and vanilla, mix in the dry ingredients and chips, and bake \
spoonfuls at 180°C (350°F) for 10-12 minutes|about 35 minutes|a glass of cold milk
vegetable curry|onion, garlic, ginger, curry paste or ground spices, coconut milk, and mixed vegetables|Fry the \
onion, garlic and ginger, toast the spices, add the vegetables and coconut milk, and simmer until tender|about 40 \
minutes|basmati rice or naan
a Greek salad|tomatoes, cucumber, red onion, green pepper, kalamata olives, feta, olive oil, and oregano|Cut the \
vegetables into chunks, add the olives, top with a slab of feta, and dress with olive oil and oregano|about 10 \
minutes|crusty bread
shakshuka|eggs, canned tomatoes, onion, red pepper, garlic, cumin, and paprika|Simmer a spiced tomato and pepper \
sauce, make small wells, crack in the eggs, and cover until the whites set|about 30 minutes|bread for dipping
lentil soup|red lentils, onion, carrot, celery, garlic, cumin, and stock|Soften the vegetables, stir in the cumin, \
add the lentils and stock, and simmer until the lentils collapse|about 40 minutes|a squeeze of lemon and flatbread
egg fried rice|cold cooked rice, eggs, spring onions, peas, soy sauce, and oil|Scramble the eggs in a hot wok, add \
the cold rice and peas, and stir-fry with soy sauce until the rice is hot and slightly toasted|about 15 \
minutes|stir-fried greens
apple crumble|apples, sugar, cinnamon, flour, butter, and rolled oats|Toss sliced apples with sugar and cinnamon, \
rub flour, butter and oats into a crumbly topping, scatter it over, and bake at 180°C (350°F) until golden|about 1 \
hour|custard or vanilla ice cream
pesto pasta|pasta, fresh basil, pine nuts, garlic, parmesan, and olive oil|Blend the basil, pine nuts, garlic and \
parmesan with olive oil, then toss with hot pasta and a splash of the cooking water|about 15 minutes|roasted \
cherry tomatoes
fish tacos|white fish fillets, corn tortillas, shredded cabbage, lime, sour cream, and chili|Season and pan-fry \
the fish, flake it into warm tortillas, and top with cabbage, lime crema and chili|about 25 minutes|black beans or \
Mexican rice
mashed potatoes|floury potatoes, butter, milk, salt, and pepper|Boil peeled potatoes until tender, drain them \
well, and mash with warm milk and butter, then season|about 30 minutes|roast meat or sausages
quiche Lorraine|shortcrust pastry, eggs, cream, bacon, and gruyère|Blind-bake the pastry case, fill it with cooked \
bacon and cheese, pour over the egg and cream custard, and bake at 170°C (340°F) until just set|about 1 hour 15 \
minutes|a crisp green salad
""")
TECHNIQUES = table("""
roast|Cut the {v} into even pieces, toss with olive oil and salt, spread in a single layer on a tray, and roast at \
200°C (400°F) until tender and browned at the edges, usually 20-35 minutes.
steam|Cut the {v} into even pieces, set them in a steamer basket over simmering water, cover, and steam until just \
tender when pierced with a knife, then season.
sauté|Heat a little oil or butter in a wide pan over medium-high heat, add the {v} in a single layer, and cook, \
stirring now and then, until tender and lightly golden.
grill|Cut the {v} into large pieces or thick slices so nothing falls through the grates, brush with oil, season, \
and grill over medium-high heat, turning once, until charred in places.
""")
VEGETABLES = split_list(
    "broccoli, carrots, asparagus, green beans, zucchini, cauliflower, Brussels sprouts, bell peppers, mushrooms, "
    "sweet potatoes"
)
SUBSTITUTES = table("""
buttermilk|milk with 1 tablespoon of lemon juice or vinegar per cup (240 ml), left to stand for 5 minutes
eggs in baking|1 tablespoon of ground flaxseed mixed with 3 tablespoons of water per egg, rested until gel-like
butter in baking|the same weight of margarine, or about three quarters as much neutral oil
brown sugar|white sugar with 1 tablespoon of molasses per cup
self-raising flour|plain flour with 1.5 teaspoons of baking powder and a pinch of salt per cup
fresh herbs|dried herbs, using roughly one third of the amount
sour cream|the same amount of plain Greek yogurt
cornstarch for thickening|about twice as much plain flour, cooked a little longer
white wine in a sauce|stock with a small splash of white wine vinegar
heavy cream in a sauce|whole milk thickened with a little butter and flour
""")
GRAMS_PER_CUP = table("""
all-purpose flour|125
granulated sugar|200
packed brown sugar|220
butter|227
rolled oats|90
uncooked white rice|185
cocoa powder|85
honey|340
""")
RECIPES = table("""
Pancakes|4|200 g flour;2 eggs;300 ml milk;1 tbsp sugar;2 tsp baking powder
Tomato sauce|4|800 g canned tomatoes;2 cloves garlic;3 tbsp olive oil;1 tsp salt
Porridge|2|80 g rolled oats;500 ml milk;2 tsp honey
Vinaigrette|6|6 tbsp olive oil;2 tbsp vinegar;1 tsp mustard
""")


def scaling_records(rng: random.Random) -> list[Record]:
    records: list[Record] = []
    for name, base_text, items_text in RECIPES:
        base = int(base_text)
        items = [item.split(" ", 1) for item in items_text.split(";")]
        recipe = f"{name} (serves {base}):" + "".join(f"\n- {q} {unit}" for q, unit in items)
        for n in sorted(rng.sample([n for n in (1, 2, 3, 4, 6, 8, 10, 12) if n != base], 4)):
            scaled = "".join(f"\n- {num(float(q) * n / base)} {unit}" for q, unit in items)
            records.append({"recipe": recipe, "n": n, "base": base, "factor": num(n / base), "scaled": scaled})
    return records


def make_cooking(rng: random.Random) -> list[Row]:
    dishes = recs(DISHES, "name ing method time serve")
    for dish in dishes:
        dish["shopping"] = str(dish["ing"]).replace(", and ", ", ").replace(", ", "; ")
    techs = [
        {"t": tech, "v": veg, "answer": text.format(v=veg)}
        for (tech, text), veg in itertools.product(TECHNIQUES, VEGETABLES)
        if (tech, veg) != ("steam", "mushrooms")
    ]
    cups = [
        {
            "ingredient": name,
            "grams": grams,
            "amount": f"{num(c)} cup{'' if c == 1 else 's'}",
            "total": num(c * int(grams)),
        }
        for (name, grams), c in itertools.product(GRAMS_PER_CUP, (0.5, 1, 1.5, 2, 3))
    ]
    oven = [{"f": f, "c": round((f - 32) * 5 / 9)} for f in range(300, 451, 25)]
    return (
        fill(rng, COOKING_QA["dish"], dishes)
        + fill(rng, COOKING_QA["tech"], techs)
        + fill(rng, COOKING_QA["sub"], recs(SUBSTITUTES, "item sub"))
        + fill(rng, COOKING_QA["cups"], cups)
        + fill(rng, COOKING_QA["oven"], oven)
        + fill(rng, COOKING_QA["scale"], scaling_records(rng))
    )


# ----------------------------------------------------------------------------- python

PYTHON_QA = qa("""
expr|What does `{e}` evaluate to in Python?~What is the result of `{e}` in Python?|`{e}` evaluates to `{r}`. {note}
list|If `x = {xs}`, what is the value of `{e}`?|With `x = {xs}`, `{e}` gives `{r}`. {note}
type|What type is `{lit}` in Python?~What does `type({lit})` return in Python?|`type({lit})` is `{name}`. {note}
builtin|What does the built-in `{fn}()` function do in Python?|`{fn}()` {desc}.
builtin|Give me a quick example of `{fn}()` in Python.|`{example}` returns `{result}`, because `{fn}()` {desc}.
task|Write a Python function that {task}.~Show me a short Python function that {task}.|Here is one way:{block}
bug|Fix the bug in the following Python code.~Why does this Python code fail?|{bad}|{why}{block}
diff|What is the difference between {a} and {b} in Python?~How do {a} and {b} differ in Python?|{answer}
""")
STRINGS = ["hello world", "  Data Science  ", "a,b,c", "Python3", "mississippi", "banana split", "2024-01-15"]
STRINGS += ["Hello, World", "level up"]
STR_OPS: list[tuple[str, Callable[[str], object], str]] = [
    ("{s}.upper()", str.upper, "upper() returns a copy with every letter in uppercase."),
    ("{s}.title()", str.title, "title() capitalises the first letter of each word."),
    ("{s}.strip()", str.strip, "strip() removes leading and trailing whitespace."),
    ("{s}.split()", str.split, "split() with no argument splits on runs of whitespace."),
    ("{s}.replace('a', 'o')", lambda s: s.replace("a", "o"), "replace() swaps every 'a' for an 'o'."),
    ("{s}.count('s')", lambda s: s.count("s"), "count() returns how many non-overlapping times 's' occurs."),
    ("{s}.find('o')", lambda s: s.find("o"), "find() returns the index of the first match, or -1 if there is none."),
    ("len({s})", len, "len() counts every character, including spaces and punctuation."),
    ("{s}[::-1]", lambda s: s[::-1], "A slice with a step of -1 walks the string backwards."),
    ("{s}.isalpha()", str.isalpha, "isalpha() is True only if the string is non-empty and all letters."),
]
LISTS = [[3, 1, 4, 1, 5], [10, 20, 30], [7, 2, 9, 4], [5, 5, 2, 8, 1], [12, 3, 6], [2, 4, 6, 8, 10], [9, 0, 3, 7]]
LIST_OPS: list[tuple[str, Callable[[list[int]], object], str]] = [
    ("sorted(x)", sorted, "sorted() returns a new ascending list and leaves x unchanged."),
    ("x[::-1]", lambda x: x[::-1], "The slice with step -1 gives a reversed copy."),
    ("x[1:3]", lambda x: x[1:3], "The slice includes index 1 and stops before index 3."),
    ("sum(x) / len(x)", lambda x: sum(x) / len(x), "This is the mean; the / operator always returns a float."),
    ("[v * 2 for v in x]", lambda x: [v * 2 for v in x], "The comprehension doubles each item."),
    ("max(x) - min(x)", lambda x: max(x) - min(x), "This is the largest value minus the smallest."),
    ("x.index(max(x))", lambda x: x.index(max(x)), "index() gives the position of the first maximum."),
    ("len(set(x))", lambda x: len(set(x)), "A set drops duplicates, so this counts distinct values."),
]
TYPES = table("""
42|int|
3.14|float|
'42'|str|Quotes make it a string even though it looks like a number.
[1, 2]|list|
(1,)|tuple|The trailing comma is what makes a one-element tuple.
(1)|int|Parentheses alone do not make a tuple; only the comma does.
{1, 2}|set|
{}|dict|Empty braces create an empty dict, not a set; use set() for an empty set.
{'a': 1}|dict|
True|bool|
None|NoneType|
2 + 3j|complex|
b'hi'|bytes|
range(5)|range|
""")
BUILTINS = table("""
len|returns the number of items in a container such as a string, list, tuple or dict|len([4, 8, 15])|3
sorted|returns a new sorted list from any iterable, leaving the original unchanged|sorted([3, 1, 2], \
reverse=True)|[3, 2, 1]
enumerate|pairs each item of an iterable with a running index, starting at 0 by default|list(enumerate(['a', \
'b']))|[(0, 'a'), (1, 'b')]
zip|combines several iterables element by element into tuples, stopping at the shortest|list(zip([1, 2, 3], ['x', \
'y']))|[(1, 'x'), (2, 'y')]
range|produces an immutable sequence of integers, usually used in for loops|list(range(2, 10, 3))|[2, 5, 8]
isinstance|checks whether an object is an instance of a class or of any class in a tuple|isinstance(3.0, (int, \
float))|True
sum|adds up an iterable of numbers, with an optional start value|sum([1, 2, 3], 10)|16
any|returns True if at least one element of an iterable is truthy|any([0, '', 5])|True
all|returns True if every element of an iterable is truthy, or if it is empty|all([1, 'a', []])|False
map|applies a function to every item of an iterable and returns a lazy iterator|list(map(str.upper, ['a', \
'b']))|['A', 'B']
filter|keeps the items for which a function returns a truthy value, as a lazy iterator|list(filter(None, [0, 1, \
2]))|[1, 2]
reversed|returns an iterator that walks a sequence backwards|list(reversed('abc'))|['c', 'b', 'a']
round|rounds a number to a given number of decimals, sending exact halves to the even neighbour|round(2.5)|2
abs|returns the absolute value of a number|abs(-7.5)|7.5
divmod|returns the quotient and remainder of integer division as a tuple|divmod(17, 5)|(3, 2)
min|returns the smallest item, optionally compared by a key function|min(['pear', 'fig', 'apple'], key=len)|'fig'
""")
TASKS = table("""
reverses a string|def reverse_string(s: str) -> str:\\n    return s[::-1]
checks whether a number is prime|def is_prime(n: int) -> bool:\\n    if n < 2:\\n        return False\\n    return \
all(n % d for d in range(2, int(n ** 0.5) + 1))
counts the vowels in a string|def count_vowels(s: str) -> int:\\n    return sum(ch in 'aeiou' for ch in s.lower())
returns the factorial of n|def factorial(n: int) -> int:\\n    result = 1\\n    for i in range(2, n + 1):\\n       \
 result *= i\\n    return result
returns the nth Fibonacci number|def fib(n: int) -> int:\\n    a, b = 0, 1\\n    for _ in range(n):\\n        a, b \
= b, a + b\\n    return a
removes duplicates from a list while keeping the original order|def dedupe(items: list) -> list:\\n    return \
list(dict.fromkeys(items))
checks whether a string is a palindrome, ignoring case and spaces|def is_palindrome(s: str) -> bool:\\n    t = \
s.replace(' ', '').lower()\\n    return t == t[::-1]
flattens a list of lists into a single list|def flatten(rows: list[list]) -> list:\\n    return [x for row in rows \
for x in row]
converts a temperature from Celsius to Fahrenheit|def c_to_f(c: float) -> float:\\n    return c * 9 / 5 + 32
counts how often each word appears in a sentence|from collections import Counter\\n\\ndef word_counts(text: str) \
-> Counter:\\n    return Counter(text.lower().split())
merges two dictionaries, with the second one winning on conflicts|def merge(a: dict, b: dict) -> dict:\\n    \
return {**a, **b}
returns the second largest distinct number in a list|def second_largest(nums: list[int]) -> int:\\n    return \
sorted(set(nums))[-2]
returns the average of a list, or 0 for an empty list|def average(nums: list[float]) -> float:\\n    return \
sum(nums) / len(nums) if nums else 0
checks whether two strings are anagrams|def is_anagram(a: str, b: str) -> bool:\\n    return sorted(a.lower()) == \
sorted(b.lower())
reads a text file and returns its lines without trailing newlines|def read_lines(path: str) -> list[str]:\\n    \
with open(path, encoding='utf-8') as f:\\n        return f.read().splitlines()
""")
BUGS = table("""
for i in range(10)\\n    print(i)|for i in range(10):\\n    print(i)|A for statement must end with a colon.
def greet(name):\\nprint('Hello, ' + name)|def greet(name):\\n    print('Hello, ' + name)|The function body must \
be indented.
total = 0\\nfor n in [1, 2, 3]:\\n    total =+ n|total = 0\\nfor n in [1, 2, 3]:\\n    total += n|`=+ n` assigns \
+n; the augmented assignment operator is `+=`.
if x = 5:\\n    print('five')|if x == 5:\\n    print('five')|Comparison uses `==`; a single `=` is assignment and \
is a syntax error here.
age = input('Age: ')\\nprint(age + 1)|age = int(input('Age: '))\\nprint(age + 1)|input() returns a string, so \
convert it with int() before adding a number.
items = [1, 2, 3]\\nprint(items[3])|items = [1, 2, 3]\\nprint(items[-1])|Indexes start at 0, so items[3] raises \
IndexError; the last item is items[-1].
def add(a, b):\\n    a + b|def add(a, b):\\n    return a + b|Without return, the function computes the sum and \
then returns None.
name = 'Ada'\\nprint('Hello, {name}')|name = 'Ada'\\nprint(f'Hello, {name}')|The string needs the f prefix for \
{name} to be replaced.
def add_item(x, items=[]):\\n    items.append(x)\\n    return items|def add_item(x, items=None):\\n    items = [] \
if items is None else items\\n    items.append(x)\\n    return items|A mutable default list is shared between \
calls; use None and create the list inside.
nums = [3, 1, 2]\\nnums = nums.sort()|nums = [3, 1, 2]\\nnums.sort()|list.sort() sorts in place and returns None, \
so assigning its result loses the list.
d = {'a': 1}\\nprint(d['b'])|d = {'a': 1}\\nprint(d.get('b'))|Indexing a missing key raises KeyError; dict.get() \
returns None instead.
while count < 5:\\n    print(count)|count = 0\\nwhile count < 5:\\n    print(count)\\n    count += 1|count must be \
defined before the loop and increased inside it, or the loop never ends.
""")
DIFFERENCES = table("""
a list|a tuple|A list is mutable and can grow or shrink, while a tuple is immutable once created, which also makes \
a tuple of hashable items usable as a dict key.
`==`|`is`|`==` compares values, while `is` checks whether two names refer to the very same object.
`append()`|`extend()`|`append()` adds its argument as a single element, while `extend()` adds each element of an \
iterable.
`list.sort()`|`sorted()`|`list.sort()` sorts the list in place and returns None, while `sorted()` returns a new \
sorted list from any iterable.
`/`|`//`|`/` is true division and always returns a float, while `//` is floor division and rounds down to a whole \
number.
`break`|`continue`|`break` exits the loop entirely, while `continue` skips to the next iteration.
`copy.copy()`|`copy.deepcopy()`|A shallow copy duplicates the outer object but shares nested objects, while a deep \
copy recursively duplicates everything.
`*args`|`**kwargs`|`*args` collects extra positional arguments into a tuple, while `**kwargs` collects extra \
keyword arguments into a dict.
`return`|`yield`|`return` ends a function and hands back one value, while `yield` turns the function into a \
generator that produces values lazily, one at a time.
a set|a list|A set is unordered and holds each value once with fast membership tests, while a list keeps order and \
allows duplicates.
`str()`|`repr()`|`str()` gives a readable representation for users, while `repr()` aims for an unambiguous one for \
developers, often valid Python.
`@staticmethod`|`@classmethod`|A static method receives no implicit first argument, while a class method receives \
the class itself as `cls`.
""")


def make_python(rng: random.Random) -> list[Row]:
    exprs = [
        {"e": fmt.format(s=repr(s)), "r": repr(func(s)), "note": note}
        for s, (fmt, func, note) in itertools.product(STRINGS, STR_OPS)
    ]
    lists = [
        {"xs": xs, "e": expr, "r": repr(func(xs)), "note": note}
        for xs, (expr, func, note) in itertools.product(LISTS, LIST_OPS)
    ]
    tasks = [{"task": task, "block": f"\n\n```python\n{unescape(code)}\n```"} for task, code in TASKS]
    bugs = [
        {"bad": unescape(bad), "why": why, "block": f"\n\n```python\n{unescape(good)}\n```"} for bad, good, why in BUGS
    ]
    return (
        fill(rng, PYTHON_QA["expr"], exprs)
        + fill(rng, PYTHON_QA["list"], lists)
        + fill(rng, PYTHON_QA["type"], recs(TYPES, "lit name note"))
        + fill(rng, PYTHON_QA["builtin"], recs(BUILTINS, "fn desc example result"))
        + fill(rng, PYTHON_QA["task"], tasks)
        + fill(rng, PYTHON_QA["bug"], bugs)
        + fill(rng, PYTHON_QA["diff"], recs(DIFFERENCES, "a b answer"))
    )


# ----------------------------------------------------------------------------- geography

GEOGRAPHY_QA = qa("""
country|What is the capital of {c}?~Which city is the capital of {c}?|The capital of {c} is {city}.
country|{city} is the capital of which country?~Which country has {city} as its capital?|{city} is the capital of \
{c}.
country|Which continent is {c} in?~On which continent is {c} located?|{c!c} is in {cont}.
country|What currency is used in {c}?|{c!c} uses the {cur}.
country|Name one of the main languages spoken in {c}.|{lang} is one of the main languages spoken in {c}.
country|Give me a short geography profile of {c}.|{c!c} is a country in {cont}. Its capital is {city}, its \
currency is the {cur}, and {lang} is widely spoken there.
pair|Are {a} and {b} on the same continent?|{answer}
""")
COUNTRIES = table("""
France|Paris|Europe|euro|French
Germany|Berlin|Europe|euro|German
Italy|Rome|Europe|euro|Italian
Spain|Madrid|Europe|euro|Spanish
Portugal|Lisbon|Europe|euro|Portuguese
the Netherlands|Amsterdam|Europe|euro|Dutch
Greece|Athens|Europe|euro|Greek
Ireland|Dublin|Europe|euro|English
Austria|Vienna|Europe|euro|German
Finland|Helsinki|Europe|euro|Finnish
Poland|Warsaw|Europe|Polish złoty|Polish
Sweden|Stockholm|Europe|Swedish krona|Swedish
Norway|Oslo|Europe|Norwegian krone|Norwegian
Denmark|Copenhagen|Europe|Danish krone|Danish
Hungary|Budapest|Europe|Hungarian forint|Hungarian
the Czech Republic|Prague|Europe|Czech koruna|Czech
Switzerland|Bern|Europe|Swiss franc|German
Iceland|Reykjavík|Europe|Icelandic króna|Icelandic
the United Kingdom|London|Europe|pound sterling|English
Japan|Tokyo|Asia|Japanese yen|Japanese
China|Beijing|Asia|renminbi (yuan)|Mandarin Chinese
India|New Delhi|Asia|Indian rupee|Hindi
South Korea|Seoul|Asia|South Korean won|Korean
Thailand|Bangkok|Asia|Thai baht|Thai
Vietnam|Hanoi|Asia|Vietnamese dong|Vietnamese
the Philippines|Manila|Asia|Philippine peso|Filipino
Pakistan|Islamabad|Asia|Pakistani rupee|Urdu
Saudi Arabia|Riyadh|Asia|Saudi riyal|Arabic
Egypt|Cairo|Africa|Egyptian pound|Arabic
Kenya|Nairobi|Africa|Kenyan shilling|Swahili
Nigeria|Abuja|Africa|Nigerian naira|English
Morocco|Rabat|Africa|Moroccan dirham|Arabic
Ghana|Accra|Africa|Ghanaian cedi|English
Ethiopia|Addis Ababa|Africa|Ethiopian birr|Amharic
Canada|Ottawa|North America|Canadian dollar|English
Mexico|Mexico City|North America|Mexican peso|Spanish
Cuba|Havana|North America|Cuban peso|Spanish
Brazil|Brasília|South America|Brazilian real|Portuguese
Argentina|Buenos Aires|South America|Argentine peso|Spanish
Chile|Santiago|South America|Chilean peso|Spanish
Peru|Lima|South America|Peruvian sol|Spanish
Colombia|Bogotá|South America|Colombian peso|Spanish
Australia|Canberra|Oceania|Australian dollar|English
New Zealand|Wellington|Oceania|New Zealand dollar|English
""")


def make_geography(rng: random.Random) -> list[Row]:
    pairs: list[Record] = []
    for a, b in rng.sample(list(itertools.combinations(COUNTRIES, 2)), 30):
        if a[2] == b[2]:
            answer = f"Yes. Both {a[0]} and {b[0]} are in {a[2]}."
        else:
            answer = f"No. {cap(a[0])} is in {a[2]}, while {b[0]} is in {b[2]}."
        pairs.append({"a": a[0], "b": b[0], "answer": answer})
    countries = recs(COUNTRIES, "c city cont cur lang")
    return fill(rng, GEOGRAPHY_QA["country"], countries) + fill(rng, GEOGRAPHY_QA["pair"], pairs)


# ----------------------------------------------------------------------------- astronomy

ASTRONOMY_QA = qa("""
planet|Which planet is {nth} from the Sun?|{p} is the {nth} planet from the Sun.
planet|Is {p} a rocky planet or a giant planet?|{p} is {kind}.
planet|How far is {p} from the Sun?|{p} orbits at an average of about {au} AU, roughly {km} million km, from the \
Sun.
planet|How long is a year on {p}?|A year on {p}, one full orbit of the Sun, lasts {year}.
planet|How long does sunlight take to reach {p}?|At about {au} AU, sunlight takes {light} to reach {p}.
planet|What is special about {p}?|One notable thing about {p} is that {fact}.
planet|Describe the planet {p} in two sentences.|{p} is {kind} and the {nth} planet from the Sun. {fact!c}.
pair|Which is farther from the Sun, {a} or {b}?~Is {a} or {b} more distant from the Sun?|{b} is farther: about \
{au_b} AU from the Sun, compared with {au_a} AU for {a}.
pair|Which has a longer year, {a} or {b}?|{b} does: its year lasts {year_b}, while a year on {a} lasts {year_a}, \
because planets farther from the Sun take longer to orbit.
moon|Which planet does {moon} orbit?|{moon!c} orbits {planet}.
moon|Tell me something about {moon} in our Solar System.|{fact}
term|What is {term} in astronomy?|{term!c} is {definition}.
term|Tell me an interesting fact about {term}.|{extra}
term|Explain {term} to a beginner in astronomy.|{term!c} is {definition}. {extra}
""")
PLANETS = table("""
Mercury|a rocky, terrestrial planet|0.39|88 Earth days|it is the smallest planet and has almost no atmosphere to \
hold in heat
Venus|a rocky, terrestrial planet|0.72|225 Earth days|its thick carbon dioxide atmosphere traps so much heat that \
it is the hottest planet
Earth|a rocky, terrestrial planet|1.0|365.25 days|it is the only planet known to support life
Mars|a rocky, terrestrial planet|1.52|687 Earth days|its iron-oxide dust gives it a red colour, and it hosts \
Olympus Mons, the tallest volcano known
Jupiter|a gas giant|5.2|about 11.9 Earth years|it is the largest planet, and its Great Red Spot is a storm bigger \
than Earth
Saturn|a gas giant|9.58|about 29.5 Earth years|it has the most spectacular ring system, made mostly of water ice
Uranus|an ice giant|19.2|about 84 Earth years|it spins on its side, with an axial tilt of about 98 degrees
Neptune|an ice giant|30.1|about 165 Earth years|it has the fastest winds measured in the Solar System
""")
MOONS = table("""
the Moon|Earth|It is the fifth-largest moon in the Solar System, and its gravity drives most of Earth's ocean tides.
Phobos|Mars|It is the larger of Mars's two small moons and is slowly spiralling in toward the planet.
Deimos|Mars|It is the smaller and more distant of Mars's two moons, only about 12 km across.
Io|Jupiter|It is the most volcanically active body in the Solar System, heated by tidal flexing.
Europa|Jupiter|Its icy crust probably hides a global ocean of liquid water, making it a target in the search for \
life.
Ganymede|Jupiter|It is the largest moon in the Solar System, bigger than the planet Mercury.
Callisto|Jupiter|Its ancient surface is among the most heavily cratered in the Solar System.
Titan|Saturn|It has a thick nitrogen atmosphere and lakes of liquid methane and ethane.
Enceladus|Saturn|It sprays plumes of water ice from its south pole, fed by an ocean under its crust.
Triton|Neptune|It orbits backwards (retrograde), which suggests it was captured from the Kuiper Belt.
Miranda|Uranus|Its surface is a strange patchwork of huge cliffs and grooved terrain.
Titania|Uranus|It is the largest of Uranus's moons, about 1,580 km across.
""")
SPACE_TERMS = table("""
a black hole|a region of space where gravity is so strong that nothing, not even light, can escape once it crosses \
the event horizon|Most form when very massive stars collapse, and supermassive ones sit at the centres of most \
large galaxies.
a light-year|the distance light travels in one year, about 9.46 trillion kilometres|It measures distance, not \
time; Proxima Centauri, the nearest star beyond the Sun, is about 4.2 light-years away.
a supernova|the explosive death of a star, which can briefly outshine an entire galaxy|Supernovae scatter heavy \
elements into space, so much of the matter in our bodies was forged in stars.
a nebula|a vast cloud of gas and dust in space|Some nebulae, like the Orion Nebula, are nurseries where new stars \
form, while others are the shed outer layers of dying stars.
a red giant|a late stage in the life of a Sun-like star, when it swells enormously and its surface cools|The Sun \
is expected to become a red giant in roughly five billion years.
a white dwarf|the hot, dense core left behind after a Sun-like star sheds its outer layers|A white dwarf packs \
roughly the mass of the Sun into a ball about the size of Earth.
a neutron star|the collapsed core of a massive star, made almost entirely of neutrons|A teaspoon of neutron-star \
material would weigh billions of tonnes on Earth.
an exoplanet|a planet that orbits a star other than the Sun|Thousands are known, many found by spotting the tiny \
dip in starlight when a planet passes in front of its star.
a solar eclipse|an event in which the Moon passes between the Sun and Earth and blocks some or all of the Sun's \
light|A total solar eclipse is seen only along a narrow path and lasts at most a few minutes at any one place.
a lunar eclipse|an event in which Earth passes between the Sun and the Moon and casts its shadow on the \
Moon|During a total lunar eclipse the Moon often turns coppery red, because Earth's atmosphere bends red light \
onto it.
a galaxy|an enormous system of stars, gas, dust and dark matter held together by gravity|Our galaxy, the Milky \
Way, is a barred spiral with hundreds of billions of stars.
a comet|a small icy body that releases gas and dust as it nears the Sun, forming a glowing coma and tails|A \
comet's tails point away from the Sun because sunlight and the solar wind push them.
the asteroid belt|the region between the orbits of Mars and Jupiter where most of the Solar System's asteroids \
circle the Sun|The asteroids are so spread out that spacecraft cross the belt without difficulty.
a meteor|the streak of light made when a small piece of space rock burns up in Earth's atmosphere|If part of the \
rock survives to reach the ground, it is called a meteorite.
the Big Bang|the scientific model of how the universe expanded from an extremely hot, dense state about 13.8 \
billion years ago|Key evidence includes the cosmic microwave background and the way distant galaxies recede from us.
dark matter|invisible matter that emits no light but reveals itself through its gravity|Galaxies spin so fast that \
they would fly apart without the extra gravity dark matter provides.
redshift|the stretching of light to longer, redder wavelengths when its source moves away or space itself \
expands|Edwin Hubble used galaxy redshifts to show that the universe is expanding.
a constellation|a recognised pattern of stars in the night sky; astronomers officially define 88 of them|The stars \
in a constellation usually lie at very different distances and only look close together from Earth.
a pulsar|a rapidly spinning neutron star that sweeps beams of radio waves across space like a lighthouse|Some \
pulsars spin hundreds of times per second with clock-like regularity.
the Kuiper Belt|a region of icy bodies beyond the orbit of Neptune|Pluto is one of its largest members, and many \
short-period comets come from there.
the solar wind|a stream of charged particles flowing outward from the Sun's corona|When it meets Earth's magnetic \
field it can trigger auroras near the poles.
an astronomical unit|the average distance between Earth and the Sun, about 150 million kilometres|Astronomers use \
it for distances in the Solar System; Jupiter orbits about 5.2 AU from the Sun.
""")


def light_time(au: float) -> str:
    seconds = au * 499  # light crosses 1 AU in about 499 seconds
    return f"about {seconds / 60:.1f} minutes" if seconds < 3600 else f"about {seconds / 3600:.1f} hours"


def make_astronomy(rng: random.Random) -> list[Row]:
    planets = recs(PLANETS, "p kind au year fact")
    for i, planet in enumerate(planets, 1):
        au = float(str(planet["au"]))
        planet.update(nth=ordinal(i), km=round(au * 149.6), light=light_time(au))
    pairs = [
        {"a": a["p"], "b": b["p"], "au_a": a["au"], "au_b": b["au"], "year_a": a["year"], "year_b": b["year"]}
        for a, b in itertools.combinations(planets, 2)
    ]
    return (
        fill(rng, ASTRONOMY_QA["planet"], planets)
        + fill(rng, ASTRONOMY_QA["pair"], pairs)
        + fill(rng, ASTRONOMY_QA["moon"], recs(MOONS, "moon planet fact"))
        + fill(rng, ASTRONOMY_QA["term"], recs(SPACE_TERMS, "term definition extra"))
    )


# ----------------------------------------------------------------------------- finance

FINANCE_QA = qa("""
compound|If I invest ${p} at {r}% interest compounded annually, how much will I have after {n} years?~How much \
will ${p} grow to in {n} years at {r}% a year, compounded yearly?|Using A = P × (1 + r)^n: ${p} × {growth}^{n} ≈ \
{amount}, which includes {interest} of interest.
simple|How much simple interest does ${p} earn at {r}% per year over {n} years?|Simple interest = principal × rate \
× time = ${p} × {rate} × {n} = {interest}, for a total of {total}.
budget|Using the 50/30/20 rule, how should I split a monthly take-home pay of ${pay}?|Put 50% ({needs}) toward \
needs, 30% ({wants}) toward wants, and 20% ({saving}) toward savings and extra debt payments.
goal|I want to save ${goal} in {months} months. How much should I put aside each month?|Divide the goal by the \
number of months: ${goal} ÷ {months} = {monthly} per month, before any interest.
bills|Add up the following monthly expenses and tell me the total.~Here are my monthly bills. What do they come to \
in total?|{bills}|Your expenses total ${total} per month. The largest item is {top} at ${top_amount}, about {pct}% \
of the total.
term|What is {term} in personal finance?|{term!c} is {definition}.
term|Why does {term} matter for my personal finances?|{why!c}.
term|Explain the personal finance idea of {term} in plain English.|{term!c} is {definition}. It matters because \
{why}.
""")
FINANCE_TERMS = table("""
an emergency fund|a pot of easily accessible savings kept for unexpected costs such as job loss, car repairs or \
medical bills|common advice is to hold three to six months of essential expenses so a surprise bill does not push \
you into debt
compound interest|interest calculated on both the original amount and the interest already earned|over long \
periods it makes savings grow exponentially, which is why starting early matters
an index fund|a fund that tracks a market index, such as the S&P 500, by holding the same securities|it gives \
broad diversification at low cost, and low fees leave more of the return with you
a credit score|a number that summarises how reliably you have borrowed and repaid money|lenders use it to decide \
whether to lend to you and at what interest rate
APR (annual percentage rate)|the yearly cost of borrowing, including interest and certain fees, as a \
percentage|comparing APRs shows which loan or credit card is actually cheaper
inflation|the general rise in prices over time, which reduces what each unit of money can buy|cash earning less \
than inflation quietly loses purchasing power every year
diversification|spreading money across different investments so no single one can sink your portfolio|it lowers \
risk without necessarily lowering expected returns
a budget|a plan that assigns your income to spending, saving and debt repayment|it shows where your money really \
goes and lets you spend on purpose instead of by accident
net worth|the value of everything you own minus everything you owe|tracking it over time is one of the clearest \
measures of financial progress
a bond|a loan you make to a government or company in return for interest and repayment of the principal at \
maturity|bonds usually swing less than stocks, so they can steady a portfolio
a stock|a share of ownership in a company|stocks have historically beaten cash and bonds over long periods, at the \
price of bigger short-term swings
an expense ratio|the yearly fee a fund charges, as a percentage of the money invested|even a 1% difference a year \
compounds into a large sum over decades
dollar-cost averaging|investing a fixed amount at regular intervals whatever the price|it removes the temptation \
to time the market and buys more shares when prices are low
a sinking fund|money set aside bit by bit for a known future expense such as a holiday or annual insurance|it \
turns big, predictable bills into small monthly amounts so they never feel like emergencies
the debt avalanche method|paying the minimum on every debt and putting all extra money toward the one with the \
highest interest rate|it minimises the total interest you pay
the debt snowball method|paying the minimum on every debt and putting extra money toward the smallest balance \
first|quick wins keep many people motivated, even if it costs a little more interest than the avalanche method
a Roth IRA|a US retirement account funded with after-tax money, whose qualified withdrawals in retirement are \
tax-free|it can pay off if you expect a higher tax rate later in life
an employer 401(k) match|money an employer adds to your retirement account when you contribute, up to a limit|it \
is effectively an instant return, so contributing enough to get the full match is usually wise
liquidity|how quickly an asset can be turned into cash without losing value|you need liquid savings for \
emergencies, because selling investments in a hurry can mean selling at a loss
a capital gain|the profit made when you sell an asset for more than you paid for it|capital gains are often taxed, \
so the timing of a sale can change how much you keep
""")
EXPENSES = table("""
Rent|700|2200
Groceries|200|700
Electricity|40|180
Internet|30|90
Phone|15|80
Car insurance|60|200
Fuel|50|250
Streaming services|10|45
Gym membership|20|80
Dining out|40|400
Childcare|300|1200
Student loan|100|450
""")


def interest_records(rng: random.Random) -> tuple[list[Record], list[Record]]:
    combos = list(itertools.product((500, 1000, 2500, 5000, 7500, 10000, 25000), range(2, 9), (3, 5, 10, 15, 20, 30)))
    compound = [
        {
            "p": f"{p:,}",
            "r": r,
            "n": n,
            "growth": f"{1 + r / 100:.2f}",
            "amount": money(p * (1 + r / 100) ** n),
            "interest": money(p * (1 + r / 100) ** n - p),
        }
        for p, r, n in rng.sample(combos, 60)
    ]
    simple = [
        {
            "p": f"{p:,}",
            "r": r,
            "n": n,
            "rate": f"{r / 100:.2f}",
            "interest": money(p * r * n / 100),
            "total": money(p + p * r * n / 100),
        }
        for p, r, n in rng.sample(combos, 30)
    ]
    return compound, simple


def planning_records(rng: random.Random) -> tuple[list[Record], list[Record], list[Record]]:
    budget = [
        {"pay": f"{pay:,}", "needs": money(pay * 0.5), "wants": money(pay * 0.3), "saving": money(pay * 0.2)}
        for pay in rng.sample(range(1800, 9001, 50), 20)
    ]
    goals = list(
        itertools.product((1200, 2400, 3000, 5000, 6000, 8000, 10000, 15000, 20000), (6, 9, 10, 12, 18, 24, 36))
    )
    saving = [{"goal": f"{g:,}", "months": m, "monthly": money(g / m)} for g, m in rng.sample(goals, 25)]
    bills: list[Record] = []
    for _ in range(15):
        items = [(name, rng.randint(int(lo), int(hi))) for name, lo, hi in rng.sample(EXPENSES, rng.randint(4, 6))]
        total = sum(amount for _, amount in items)
        top, top_amount = max(items, key=lambda item: item[1])
        bills.append(
            {
                "bills": "\n".join(f"{k}: ${v:,}" for k, v in items),
                "total": f"{total:,}",
                "top": top.lower(),
                "top_amount": f"{top_amount:,}",
                "pct": round(100 * top_amount / total),
            }
        )
    return budget, saving, bills


def make_finance(rng: random.Random) -> list[Row]:
    compound, simple = interest_records(rng)
    budget, saving, bills = planning_records(rng)
    return (
        fill(rng, FINANCE_QA["compound"], compound)
        + fill(rng, FINANCE_QA["simple"], simple)
        + fill(rng, FINANCE_QA["budget"], budget)
        + fill(rng, FINANCE_QA["goal"], saving)
        + fill(rng, FINANCE_QA["bills"], bills)
        + fill(rng, FINANCE_QA["term"], recs(FINANCE_TERMS, "term definition why"))
    )


# ----------------------------------------------------------------------------- fitness

FITNESS_QA = qa("""
exercise|What muscles does the {ex} exercise work?|The {ex} mainly works the {muscles}.
exercise|How do I perform the {ex} exercise with good form?~Teach me how to do the {ex} exercise properly.|{cue}. \
Move with control and breathe steadily.
exercise|What is a common form mistake people make with the {ex} exercise?|A very common mistake is {mistake}. \
Slow down or make it easier until your form is solid.
bmi|I weigh {w} kg and I am {h} m tall. What is my BMI?~Calculate my BMI: I am {h} m tall and weigh {w} kg.|BMI = \
weight ÷ height² = {w} ÷ {h}² ≈ {bmi}. For adults that is in the {category} range (18.5-24.9 counts as healthy), \
but BMI does not tell muscle from fat, so treat it as a rough guide.
met|Roughly how many calories does a {w} kg person burn {act} for {minutes} minutes?|Calories ≈ MET × body weight \
(kg) × hours. {act!c} is about {met} METs, so {met} × {w} × {minutes}/60 ≈ {kcal} kcal. Real numbers vary with \
intensity and fitness.
heart|I'm {age} years old. What is my estimated maximum heart rate?~What is the maximum heart rate for a \
{age}-year-old, and what is a moderate training zone?|A common estimate is 220 minus your age: 220 - {age} = {top} \
beats per minute. Moderate exercise is roughly 64-76% of that, about {lo}-{hi} bpm.
pace|I ran {km} km in {time}. What was my average pace per kilometre?~My run was {km} km in {time}. What pace per \
km is that?|Average pace = time ÷ distance = {time} ÷ {km} km ≈ {pace} per kilometre.
""")
EXERCISES = table("""
squat|quadriceps, glutes, hamstrings and core|Stand with feet shoulder-width apart, push your hips back and bend \
your knees until your thighs are about parallel to the floor, keeping your chest up and heels down, then drive \
back up|letting the knees cave inward or the heels lift
push-up|chest, shoulders, triceps and core|Start in a high plank with hands slightly wider than your shoulders, \
lower your chest to just above the floor with elbows at about 45 degrees, then press back up|letting the hips sag \
or flaring the elbows straight out to the sides
deadlift|hamstrings, glutes, lower back and grip|With the bar over your midfoot, hinge at the hips, grip the bar, \
brace your core with a flat back, and stand up by driving through your legs|rounding the lower back or letting the \
bar drift away from the body
lunge|quadriceps, glutes and hamstrings, with the core working for balance|Step forward and lower until both knees \
bend to about 90 degrees, back knee just above the floor, then push through the front heel to return|letting the \
front knee collapse inward or taking too short a step
plank|deep core muscles and the abdominals, plus the shoulders|Rest on your forearms and toes with elbows under \
your shoulders, and hold a straight line from head to heels while bracing your abs|letting the hips sag or piking \
them too high
pull-up|lats, biceps and upper back|Hang from the bar with an overhand grip slightly wider than your shoulders, \
pull your chest toward the bar by driving your elbows down, then lower under control|swinging or kicking to get \
up, or only doing half repetitions
bench press|chest, front shoulders and triceps|Lie with your eyes under the bar, plant your feet, squeeze your \
shoulder blades together, lower the bar to mid-chest, and press it back up|bouncing the bar off the chest or \
lifting the hips off the bench
overhead press|shoulders and triceps, with the core keeping you stable|Start with the bar at shoulder height, \
brace your core and glutes, press the bar straight overhead, and move your head back slightly to let it \
pass|leaning back and over-arching the lower back to force the weight up
glute bridge|glutes and hamstrings|Lie on your back with knees bent and feet flat, then drive through your heels \
to lift your hips until your body forms a straight line from shoulders to knees|pushing through the toes or \
over-arching the lower back at the top
bent-over row|upper back, lats, rear shoulders and biceps|Hinge forward with a flat back, let the weight hang, \
then pull it toward your lower ribs while squeezing your shoulder blades together|jerking the weight up with \
momentum or rounding the back
burpee|legs, chest, shoulders and core, while driving your heart rate up|From standing, squat and place your hands \
down, jump your feet back to a plank, jump them back in, and leap up with arms overhead|landing heavily or letting \
the hips sag in the plank position
kettlebell swing|glutes, hamstrings, core and grip|Hinge at the hips to hike the bell back between your legs, then \
snap your hips forward so it floats to chest height, keeping your arms relaxed|squatting the movement or lifting \
the bell with the arms instead of the hips
calf raise|calves (gastrocnemius and soleus)|Stand on the edge of a step, lower your heels below it, then rise as \
high as possible onto the balls of your feet and pause|bouncing through short, fast reps instead of using a full, \
controlled range
bicep curl|biceps and forearm flexors|Stand tall with elbows pinned to your sides, curl the weights up by bending \
at the elbows, then lower them slowly|swinging the torso or letting the elbows drift forward
tricep dip|triceps, chest and front shoulders|Support yourself on parallel bars or a bench edge, lower your body \
by bending the elbows to about 90 degrees, then press back up|dropping too low, which strains the front of the \
shoulders
mountain climber|core, shoulders and hip flexors, with a cardio effect|From a high plank, drive one knee toward \
your chest, then quickly switch legs, keeping your hips level|bouncing the hips up and down instead of keeping \
them level
side plank|obliques and deep core muscles, plus shoulder stabilisers|Lie on one side, prop yourself on your \
forearm with the elbow under the shoulder, and lift your hips so your body forms a straight line|letting the hips \
drop toward the floor
Romanian deadlift|hamstrings and glutes, with the lower back working to stabilise|Hold the weight in front of your \
thighs, soften your knees, and push your hips back to lower it along your legs until you feel a hamstring stretch, \
then stand tall|rounding the back or bending the knees so much that it turns into a squat
""")
HEALTH_QA = table("""
How much sleep do adults need?|Most adults need 7-9 hours of sleep a night. Regular sleep and wake times matter \
too, because consistency helps your body clock.
How much water should I drink each day?|Needs vary with body size, activity and climate; around 2-3 litres of \
total fluid a day, including water from food, is a common guideline. Pale yellow urine is a good sign you are well \
hydrated.
Should I stretch before or after exercise?|Do a dynamic warm-up such as leg swings and light jogging before \
exercise, and save longer static stretches for afterwards, when muscles are warm.
How many rest days should I take each week?|Most people do well with one or two rest days a week. Rest is when \
muscles repair and adapt, so skipping it raises the risk of injury.
How much protein do I need to build muscle?|A common evidence-based target is about 1.6 g of protein per kilogram \
of body weight per day, spread over several meals.
How much exercise is recommended per week?|Guidelines recommend at least 150 minutes of moderate aerobic activity \
or 75 minutes of vigorous activity a week, plus muscle-strengthening work on two or more days.
What is DOMS?|DOMS, delayed onset muscle soreness, is the stiffness that peaks 24-72 hours after unfamiliar or \
hard exercise. It fades on its own, and gentle movement helps.
What is the difference between aerobic and anaerobic exercise?|Aerobic exercise, like jogging, is sustained and \
uses oxygen to fuel the muscles. Anaerobic exercise, like sprinting or heavy lifting, is short and intense and \
relies on energy stored in the muscles.
What is progressive overload?|Progressive overload means gradually increasing the demand on your body, by adding \
weight, reps or sets over time, so your muscles keep adapting and getting stronger.
What is HIIT?|HIIT, high-intensity interval training, alternates short bursts of very hard effort with recovery \
periods. It builds fitness in less time but needs more recovery than easy cardio.
How can I improve my flexibility?|Stretch or do mobility work most days, holding static stretches for 20-30 \
seconds when warm. Yoga and full-range strength training also help.
Why is a cool-down important after exercise?|A few minutes of easy movement lets your heart rate and breathing \
return to normal gradually and can reduce dizziness after hard efforts.
What are the benefits of walking every day?|Daily walking improves heart health, helps manage weight, strengthens \
bones and lifts mood, and it is easy on the joints.
How many steps should I aim for each day?|The popular 10,000-step target is a useful goal, but studies suggest \
many health benefits start at around 7,000-8,000 steps a day for adults.
Should I do cardio or weights first?|Do first whatever matters most for your goal: weights first if you want \
strength, cardio first if you are training for endurance.
How do I warm up before a run?|Start with 5 minutes of brisk walking or easy jogging, then do dynamic drills such \
as leg swings, high knees and butt kicks before picking up the pace.
""")
METS = table("""
brisk walking|4.3
running at 10 km/h|9.8
cycling at a moderate pace|8.0
swimming laps at a moderate effort|5.8
doing yoga|2.5
using a rowing machine|7.0
jumping rope|11.0
hiking|6.0
doing general weight training|3.5
playing singles tennis|8.0
playing basketball|6.5
dancing|5.0
""")


def bmi_category(bmi: float) -> str:
    if bmi < 18.5:
        return "underweight"
    return "healthy weight" if bmi < 25 else "overweight" if bmi < 30 else "obesity"


def clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def fitness_records(rng: random.Random) -> dict[str, list[Record]]:
    bmi: list[Record] = []
    for w, h in rng.sample(list(itertools.product(range(48, 121, 3), range(155, 196, 2))), 35):
        value = round(w / (h / 100) ** 2, 1)
        bmi.append({"w": w, "h": f"{h / 100:.2f}", "bmi": value, "category": bmi_category(value)})
    met = [
        {"act": act, "met": m, "w": w, "minutes": minutes, "kcal": f"{float(m) * w * minutes / 60:.0f}"}
        for (act, m), minutes, w in rng.sample(
            list(itertools.product(METS, (20, 30, 45, 60, 90), (55, 60, 65, 70, 75, 80, 90, 100))), 45
        )
    ]
    heart = [
        {"age": age, "top": 220 - age, "lo": round((220 - age) * 0.64), "hi": round((220 - age) * 0.76)}
        for age in rng.sample(range(16, 76), 30)
    ]
    pace: list[Record] = []
    for _ in range(30):
        km = rng.choice((3, 5, 8, 10, 12, 15, 21.1, 42.2))
        total = round(km * rng.randint(240, 480))
        pace.append({"km": km, "time": clock(total), "pace": clock(round(total / km))})
    return {"bmi": bmi, "met": met, "heart": heart, "pace": pace}


def make_fitness(rng: random.Random) -> list[Row]:
    rows = fill(rng, FITNESS_QA["exercise"], recs(EXERCISES, "ex muscles cue mistake"))
    for kind, records in fitness_records(rng).items():
        rows += fill(rng, FITNESS_QA[kind], records)
    return rows + [(question, "", answer) for question, answer in HEALTH_QA]


# ----------------------------------------------------------------------------- gardening

GARDENING_QA = qa("""
crop|How much sun should {p} get?~What are the light needs of {p}?|For {p}, aim for {sun}.
crop|How often should I water {p}?|Water {p} {water}.
crop|When is the best time to plant {p}?|Plant {p} {when}.
crop|How far apart should I space {p}?|Space {p} {space}.
crop|When should I harvest {p}?|Harvest {p} {harvest}.
crop|How deep should I plant {p}?|For {p}, plant {depth}.
crop|Give me a quick growing guide for {p}.|Site: {sun}. Planting: {when}. Spacing: {space}. Watering: {water}. \
Harvest: {harvest}.
house|How much light does my {p} need?|Your {p} does best in {light}.
house|How often should I water my {p}?|Water your {p} {water}.
house|Any tips for keeping my {p} healthy?|{tip}
pest|How do I get rid of {pest} on my {crop}?~There are {pest} on my {crop}. What should I do?|{answer}
mildew|How do I treat powdery mildew on my {crop}?~There is powdery mildew on my {crop}. What should I do?|{answer}
""")
CROPS = table("""
tomatoes|full sun, at least 6-8 hours a day|deeply two or three times a week, keeping the soil evenly \
moist|outdoors after the last spring frost, once nights stay above about 10°C (50°F)|45-60 cm (18-24 in) \
apart|60-85 days after transplanting, when the fruits are fully coloured|seeds about 6 mm (1/4 in) deep indoors, \
and set transplants deeper, up to the first leaves
lettuce|full sun in spring, with light afternoon shade in hot weather|little and often so the shallow roots never \
dry out|in early spring or late summer, because it bolts in hot weather|20-30 cm (8-12 in) apart|45-60 days after \
sowing, or earlier as baby leaves|seeds very shallowly, about 3-6 mm deep, because they need light to germinate
carrots|full sun|evenly and regularly, as irregular watering makes the roots split|directly outdoors from early \
spring, in loose, stone-free soil|5-8 cm (2-3 in) apart after thinning|about 70-80 days after sowing|seeds about 6 \
mm (1/4 in) deep
basil|full sun and warmth|when the top of the soil is dry, at the base rather than over the leaves|outdoors only \
after all danger of frost has passed|20-30 cm (8-12 in) apart|once the plant has six to eight leaves, pinching \
stems just above a leaf pair|seeds about 6 mm (1/4 in) deep
potatoes|full sun|regularly once the plants flower, when the tubers are forming|in early to mid spring, about two \
weeks before the last frost|30 cm (12 in) apart in rows 60-75 cm apart|about 10 weeks after planting for new \
potatoes, or once the foliage dies back for maincrop|seed potatoes about 10 cm (4 in) deep
garlic|full sun|moderately in spring, stopping a few weeks before harvest|in autumn, a few weeks before the ground \
freezes|10-15 cm (4-6 in) apart|the following summer, when the lower leaves have turned brown|single cloves, \
pointed end up, about 5 cm (2 in) deep
strawberries|full sun|regularly at soil level, especially while the fruit is forming|in early spring, or in late \
summer for a crop the next year|30-45 cm (12-18 in) apart|in early summer, when the berries are red all over|with \
the crown level with the soil surface, neither buried nor exposed
zucchini|full sun|deeply at the base once or twice a week|after the last frost, once the soil has warmed|about 90 \
cm (3 ft) apart|45-55 days after sowing, while the fruits are 15-20 cm long|seeds about 2.5 cm (1 in) deep
peas|full sun to light shade|regularly, especially once they start flowering|in early spring, as soon as the soil \
can be worked|5 cm (2 in) apart, with netting or a trellis for support|60-70 days after sowing, when the pods are \
plump but still bright green|seeds about 2.5-4 cm deep
spinach|full sun to partial shade|regularly, to keep the soil moist and delay bolting|in early spring or autumn, \
since it prefers cool weather|8-15 cm (3-6 in) apart|about 40-50 days after sowing, picking the outer leaves \
first|seeds about 1 cm (1/2 in) deep
cucumbers|full sun|deeply and consistently, because dry spells make the fruit bitter|after the last frost, in warm \
soil|30-45 cm (12-18 in) apart when grown up a trellis|50-70 days after sowing, before the fruits start to \
yellow|seeds about 2.5 cm (1 in) deep
radishes|full sun|lightly and often for quick, crisp roots|from early spring to autumn, every two weeks for a \
steady supply|2.5-5 cm (1-2 in) apart|just 3-4 weeks after sowing|seeds about 1 cm (1/2 in) deep
onions|full sun|regularly until the bulbs swell, then less as they ripen|in early spring, from sets or \
transplants|10-15 cm (4-6 in) apart|when the tops flop over and turn yellow, usually in late summer|sets so that \
just the tip shows above the soil
bell peppers|full sun and warmth|evenly, about once or twice a week, and more in hot spells|outdoors two to three \
weeks after the last frost|about 45 cm (18 in) apart|60-90 days after transplanting, either green or left longer \
to ripen to red|seeds about 6 mm (1/4 in) deep indoors
green beans|full sun|regularly at the base, especially while flowering|after the last frost, in warm soil|10-15 cm \
(4-6 in) apart for bush types|50-60 days after sowing, while the pods snap cleanly|seeds about 2.5-4 cm (1-1.5 in) \
deep
mint|partial shade to full sun|regularly, as it likes moist soil|in spring, ideally in a pot because it spreads \
aggressively|about 45 cm (18 in) apart, or one plant per pot|as soon as the plant is established, cutting stems \
often|nursery plants or rooted cuttings at the same depth as in their pot
""")
HOUSEPLANTS = table("""
pothos|bright, indirect light, though it tolerates low light|when the top 2-3 cm of soil is dry, roughly every one \
to two weeks|Trim leggy stems and root the cuttings in water to make new plants.
snake plant|anything from low light to bright, indirect light|sparingly, every two to four weeks, letting the soil \
dry out completely|Overwatering is the usual way to kill it, so err on the dry side.
peace lily|medium to bright indirect light, out of direct sun|when the top of the soil is dry; it droops visibly \
when thirsty and recovers quickly|Wipe the broad leaves now and then so dust does not block the light.
spider plant|bright, indirect light|about once a week, keeping the soil lightly moist|Pot up the little plantlets \
on its runners to grow new plants.
monstera|bright, indirect light|when the top 5 cm (2 in) of soil is dry, usually every one to two weeks|Give it a \
moss pole to climb and it will grow larger, more split leaves.
fiddle-leaf fig|plenty of bright, indirect light near a window|when the top few centimetres of soil are dry, in a \
pot with good drainage|It dislikes being moved and cold drafts, which can make it drop leaves.
ZZ plant|low to bright indirect light|every two to three weeks, letting the soil dry out fully|Its thick rhizomes \
store water, so it copes well with neglect.
aloe vera|bright light, including some direct sun|deeply but rarely, about every three weeks, letting the soil dry \
completely|Grow it in gritty cactus mix in a pot with drainage holes.
rubber plant|bright, indirect light|when the top few centimetres of soil are dry|Dust the glossy leaves and rotate \
the pot so it grows evenly.
Boston fern|bright, indirect light and high humidity|often enough to keep the soil evenly moist but never \
soggy|Stand it on a tray of wet pebbles or mist it to raise the humidity.
""")
PESTS = table("""
aphids|Knock the aphids off the {c} with a strong jet of water, then use insecticidal soap if they return. \
Ladybirds and lacewings are natural predators worth encouraging.
slugs|Slugs feed at night, so check your {c} after dark and pick them off, set beer traps, or ring the plants with \
copper tape or wool pellets.
spider mites|Spider mites love hot, dry air; hose the undersides of the leaves on your {c}, raise the humidity, \
and use insecticidal soap or neem oil on bad infestations.
whiteflies|Hang yellow sticky traps near the {c}, spray the undersides of the leaves with insecticidal soap, and \
remove heavily infested leaves.
powdery mildew|Improve air flow around the {c}, water at the base rather than over the leaves, remove affected \
leaves, and try a spray of diluted milk or potassium bicarbonate.
caterpillars|Pick the caterpillars off the {c} by hand, cover the plants with fine netting so butterflies cannot \
lay eggs, or use a Bt (Bacillus thuringiensis) spray.
flea beetles|Protect young {c} with fine mesh row covers, keep seedlings well watered so they outgrow the damage, \
and use yellow sticky traps.
cutworms|Put a collar of cardboard or a cut plastic bottle around the stem of each young {c} plant, and check the \
soil surface at night to remove the grubs.
""")
SOIL_QA = table("""
How do I start a compost heap?|Mix green materials such as vegetable scraps and grass clippings with brown \
materials such as dry leaves and cardboard, keep the heap as damp as a wrung-out sponge, and turn it every few \
weeks.
What does mulch do in a garden?|Mulch holds moisture in the soil, suppresses weeds, and evens out soil \
temperature; organic mulches also feed the soil as they break down.
How can I tell if my soil is acidic?|Use a simple soil test kit or meter; a pH below 7 is acidic, and most \
vegetables prefer a slightly acidic 6.0-7.0.
What is crop rotation and why does it matter?|Crop rotation means growing each vegetable family in a different bed \
each year, which reduces soil-borne pests and diseases and balances nutrients.
How do I improve heavy clay soil?|Dig in plenty of organic matter such as compost or well-rotted manure every \
year, and avoid walking on or digging the soil when it is wet.
When is the best time to water the garden?|Early morning is best: less water evaporates, and leaves dry quickly \
during the day, which reduces fungal disease.
What does 'harden off' mean for seedlings?|Hardening off means getting indoor-raised seedlings used to outdoor \
conditions gradually, putting them outside for a little longer each day over one to two weeks.
What do the numbers N-P-K on fertiliser mean?|They give the percentage of nitrogen for leafy growth, phosphorus \
for roots and flowers, and potassium for overall health and fruiting.
How do I know when to repot a houseplant?|Repot when roots circle the pot or grow out of the drainage holes, or \
when water runs straight through; move up only one pot size at a time.
What is companion planting?|Companion planting means growing plants together for mutual benefit, such as marigolds \
near tomatoes to deter pests or beans to add nitrogen to the soil.
How do I stop weeds without chemicals?|Mulch bare soil, hoe little and often while weeds are small, and pull \
larger weeds by hand after rain when the roots come out easily.
Why are the lower leaves on my plants turning yellow?|Yellowing lower leaves usually mean overwatering or a lack \
of nitrogen; check that the soil drains well before feeding.
""")


def make_gardening(rng: random.Random) -> list[Row]:
    pests = [
        {"pest": pest, "crop": crop[0], "answer": text.format(c=crop[0])}
        for (pest, text), crop in rng.sample(list(itertools.product(PESTS, CROPS)), 50)
    ]
    return (
        fill(rng, GARDENING_QA["crop"], recs(CROPS, "p sun water when space harvest depth"))
        + fill(rng, GARDENING_QA["house"], recs(HOUSEPLANTS, "p light water tip"))
        + fill(rng, GARDENING_QA["pest"], [p for p in pests if p["pest"] != "powdery mildew"])
        + fill(rng, GARDENING_QA["mildew"], [p for p in pests if p["pest"] == "powdery mildew"])
        + [(question, "", answer) for question, answer in SOIL_QA]
    )


# ----------------------------------------------------------------------------- music

MUSIC_QA = qa("""
major|What notes are in the {k} major scale?|The {k} major scale is {notes}, following the pattern whole, whole, \
half, whole, whole, whole, half.
major|Which notes make up {art} {k} major chord?|{art!c} {k} major triad is {s0}, {s2} and {s4}: root, major third \
and perfect fifth.
major|Spell the {k}7 (dominant seventh) chord.|{k}7 is {s0}, {s2}, {s4} and {b7}: a major triad plus a minor \
seventh.
major|How many sharps or flats are in the key of {k} major?|{signature}
major|What is the relative minor of {k} major?|The relative minor of {k} major is {s5} minor, which shares the \
same key signature.
major|What is the dominant note in the key of {k} major?|The dominant, the fifth degree of {k} major, is {s4}.
major|What is the subdominant of {k} major?|The subdominant, the fourth degree of {k} major, is {s3}.
major|What is the leading tone in {k} major?|The leading tone of {k} major is {s6}, a semitone below the tonic {k}.
minor|What notes are in the {k} natural minor scale?|The {k} natural minor scale is {notes}.
minor|Which notes make up {art} {k} minor chord?|{art!c} {k} minor triad is {s0}, {s2} and {s4}: root, minor third \
and perfect fifth.
interval|How many semitones are in {label}?|{label!c} spans {semis} semitones (half steps).
interval|Which interval spans {semis} semitones?|{semis} semitones make {label}{alias}.
above|What note is a {name} above {root}?|A {name} above {root} is {note} ({semis} semitones up).
term|What is {term} in music?~In music theory, what does {term} mean?|{term!c} is {definition}.
time|What does the time signature {ts} mean?|{ts} means {meaning}.
""")
LETTERS = "CDEFGAB"
NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
MAJOR_KEYS = ["C", "G", "D", "A", "E", "B", "F#", "F", "Bb", "Eb", "Ab", "Db"]
MINOR_KEYS = ["A", "E", "B", "F#", "C#", "G#", "D", "G", "C", "F", "Bb", "Eb"]
INTERVAL_ROOTS = ["C", "D", "E", "F", "G", "A", "Bb", "Eb"]
INTERVALS = table("""
minor second|1|1
major second|2|1
minor third|3|2
major third|4|2
perfect fourth|5|3
tritone|6|
perfect fifth|7|4
minor sixth|8|5
major sixth|9|5
minor seventh|10|6
major seventh|11|6
octave|12|7
""")
MUSIC_TERMS = table("""
a cadence|a chord progression that ends a phrase, such as the perfect cadence V-I, which sounds final
an arpeggio|the notes of a chord played one after another instead of together
syncopation|accenting beats or off-beats that are normally weak, which gives rhythm a pushed feel
a time signature|the pair of numbers at the start of a piece showing how many beats are in each bar and which note \
value gets one beat
tempo|the speed of the beat, given in beats per minute or with Italian terms such as allegro
dynamics|the loudness markings in music, from pianissimo (very soft) to fortissimo (very loud)
the circle of fifths|a diagram of the twelve keys arranged a perfect fifth apart, showing how many sharps or flats \
each key has
modulation|changing from one key to another within a piece
an ostinato|a short musical pattern repeated persistently throughout a passage
legato|playing notes smoothly and connected, with no gaps between them
staccato|playing notes short and detached, usually marked with a dot above or below the note
a triplet|three notes played in the time normally taken by two of the same value
a fermata|a symbol telling the performer to hold a note or rest longer than its written value
a chord progression|a series of chords played in order, such as I-V-vi-IV in many pop songs
a key signature|the sharps or flats written at the start of each staff to show the key
counterpoint|the art of combining independent melodic lines that sound good together
a leading tone|the seventh degree of a major scale, a semitone below the tonic, which pulls strongly toward it
a suspended chord|a chord in which the third is replaced by the second or fourth, as in Csus4: C, F and G
""")
TIME_SIGNATURES = table("""
4/4|four quarter-note beats per bar; it is so common that it is also called common time
3/4|three quarter-note beats per bar, the metre of the waltz
2/4|two quarter-note beats per bar, typical of marches and polkas
6/8|six eighth notes per bar, felt as two beats of three, which gives a lilting feel
2/2|two half-note beats per bar, also called cut time or alla breve
5/4|five quarter-note beats per bar, often grouped 3+2, as in 'Take Five' by the Dave Brubeck Quartet
7/8|seven eighth notes per bar, usually grouped as 2+2+3 or similar, for an uneven, driving pulse
12/8|twelve eighth notes per bar, felt as four beats of three; it is common in blues and slow ballads
9/8|nine eighth notes per bar, felt as three beats of three, as in a slip jig
""")


def pitch(note: str) -> int:
    return (NATURAL[note[0]] + note.count("#") - note.count("b")) % 12


def spell(letter_index: int, target: int) -> str:
    """Name the pitch class ``target`` using the given letter plus sharps or flats."""
    letter = LETTERS[letter_index % 7]
    acc = (target - NATURAL[letter]) % 12
    acc = acc - 12 if acc > 6 else acc
    return letter + ("#" * acc if acc > 0 else "b" * -acc)


def scale(root: str, steps: Sequence[int]) -> list[str]:
    start = LETTERS.index(root[0])
    return [spell(start + i, pitch(root) + s) for i, s in enumerate(steps)]


def key_signature(key: str) -> str:
    notes = scale(key, MAJOR)
    sharps = sorted((n for n in notes if "#" in n), key=lambda n: "FCGDAEB".index(n[0]))
    flats = sorted((n for n in notes if "b" in n[1:]), key=lambda n: "BEADGCF".index(n[0]))
    if not sharps and not flats:
        return f"{key} major has no sharps or flats."
    marks, kind = (sharps, "sharp") if sharps else (flats, "flat")
    return f"{key} major has {len(marks)} {kind}{'' if len(marks) == 1 else 's'}: {', '.join(marks)}."


def key_record(key: str, steps: Sequence[int]) -> Record:
    notes = scale(key, steps)
    record: Record = {f"s{i}": note for i, note in enumerate(notes)}
    b7 = spell(LETTERS.index(notes[6][0]), pitch(notes[6]) - 1)
    record.update(k=key, art="an" if key[0] in "AEF" else "a", notes=" ".join(notes), b7=b7)
    return record


def interval_records() -> tuple[list[Record], list[Record]]:
    intervals: list[Record] = []
    above: list[Record] = []
    for name, semis, steps in INTERVALS:
        label = f"{'an' if name == 'octave' else 'a'} {name}"
        alias = "" if steps else " (an augmented fourth or diminished fifth)"
        intervals.append({"label": label, "semis": semis, "alias": alias})
        roots = INTERVAL_ROOTS if steps and name != "octave" else []
        for root in roots:
            note = spell(LETTERS.index(root[0]) + int(steps), pitch(root) + int(semis))
            if "##" not in note and "bb" not in note:
                above.append({"name": name, "root": root, "note": note, "semis": semis})
    return intervals, above


def make_music(rng: random.Random) -> list[Row]:
    majors = [dict(key_record(k, MAJOR), signature=key_signature(k)) for k in MAJOR_KEYS]
    intervals, above = interval_records()
    return (
        fill(rng, MUSIC_QA["major"], majors)
        + fill(rng, MUSIC_QA["minor"], [key_record(k, MINOR) for k in MINOR_KEYS])
        + fill(rng, MUSIC_QA["interval"], intervals)
        + fill(rng, MUSIC_QA["above"], above)
        + fill(rng, MUSIC_QA["term"], recs(MUSIC_TERMS, "term definition"))
        + fill(rng, MUSIC_QA["time"], recs(TIME_SIGNATURES, "ts meaning"))
    )


# ----------------------------------------------------------------------------- history

HISTORY_QA = qa("""
event|In what year did {event} take place?~When did {event} happen?|{event!c} took place in {year}.
event|Briefly describe {event}.~Summarise {event} in one sentence.|{summary}
event|In which century did {event} happen?|{event!c} happened in {year}, which is in the {century} century.
first|Which came first: {a} or {b}?~Did {a} or {b} happen earlier?|{first!c} came first, in {y1}; {second} \
followed in {y2}.
gap|How many years passed between {a} and {b}?~How long after {a} did {b} happen?|{gap} years: {a} was in {ya} and \
{b} in {yb}.
order|Put the following historical events in chronological order.|{events}|{ordered}
person|Who was {name}?~Tell me briefly who {name} was.|{name} was {desc}
""")
EVENTS = table("""
476|the fall of the Western Roman Empire|Odoacer deposed Romulus Augustulus, the last Western Roman emperor, a \
date traditionally used to mark the end of antiquity in Western Europe.
1066|the Battle of Hastings|William, Duke of Normandy, defeated King Harold II, beginning the Norman conquest of \
England.
1215|the sealing of Magna Carta|King John of England agreed to a charter limiting royal power, which later became \
a symbol of the rule of law.
1347|the arrival of the Black Death in Europe|A plague pandemic reached Europe through Mediterranean ports and \
killed perhaps a third or more of the population within a few years.
1453|the fall of Constantinople|Ottoman forces under Mehmed II captured the city, ending the Byzantine Empire.
1492|Columbus's first voyage to the Americas|Christopher Columbus, sailing for Spain, reached the Caribbean, \
opening lasting contact between Europe and the Americas.
1517|the posting of Martin Luther's Ninety-five Theses|Luther's attack on the sale of indulgences sparked the \
Protestant Reformation.
1588|the defeat of the Spanish Armada|An English fleet, helped by storms, defeated Philip II's invasion fleet.
1666|the Great Fire of London|A fire that began in a bakery on Pudding Lane destroyed much of the City of London, \
including old St Paul's Cathedral.
1776|the adoption of the US Declaration of Independence|The Continental Congress declared the thirteen American \
colonies independent of Great Britain.
1789|the storming of the Bastille|Parisian crowds seized the royal fortress and prison, a defining early event of \
the French Revolution.
1804|Napoleon's coronation as Emperor of the French|Napoleon Bonaparte crowned himself emperor at Notre-Dame de \
Paris.
1807|the abolition of the slave trade in the British Empire|Parliament banned the trade in enslaved people, \
although slavery itself continued in British colonies until the 1830s.
1815|the Battle of Waterloo|British-led allied and Prussian armies defeated Napoleon, ending his rule for good.
1861|the start of the American Civil War|Confederate forces fired on Fort Sumter, beginning a four-year war \
between the Union and the Confederacy.
1868|the Meiji Restoration|Imperial rule was restored in Japan, launching rapid modernisation and industrialisation.
1871|the unification of Germany|The German Empire was proclaimed at Versailles, with Wilhelm I of Prussia as \
emperor.
1903|the Wright brothers' first powered flight|Orville and Wilbur Wright made the first controlled, sustained \
powered aeroplane flight near Kitty Hawk, North Carolina.
1912|the sinking of the Titanic|The liner struck an iceberg on its maiden voyage and sank, killing more than 1,500 \
people.
1914|the start of the First World War|The assassination of Archduke Franz Ferdinand set off a war among Europe's \
great powers.
1917|the Russian Revolution|Revolutions that year overthrew the Tsar and then brought Lenin's Bolsheviks to power.
1918|the end of the First World War|An armistice signed on 11 November ended the fighting on the Western Front.
1919|the signing of the Treaty of Versailles|The treaty formally ended the war between Germany and the Allies and \
imposed heavy terms on Germany.
1929|the Wall Street Crash|A collapse in US stock prices helped trigger the Great Depression.
1939|the start of the Second World War|Germany's invasion of Poland led Britain and France to declare war.
1945|the founding of the United Nations|The UN Charter came into force, creating an organisation to keep \
international peace and security.
1947|the independence of India|British rule ended and India and Pakistan became independent, amid a violent \
partition.
1957|the launch of Sputnik 1|The Soviet Union put the first artificial satellite into orbit, starting the Space \
Race.
1969|the Apollo 11 Moon landing|Neil Armstrong and Buzz Aldrin became the first people to walk on the Moon.
1986|the Chernobyl nuclear disaster|A reactor explosion in Soviet Ukraine caused one of the worst nuclear \
accidents in history.
1989|the fall of the Berlin Wall|East Germany opened its border crossings, and crowds began tearing down the wall \
that had divided Berlin.
1994|Nelson Mandela's election as President of South Africa|South Africa's first fully democratic election made \
Mandela the country's first Black president.
""")
PEOPLE = table("""
Julius Caesar|a Roman general and statesman who conquered Gaul, won a civil war and became dictator before he was \
assassinated in 44 BC.
Cleopatra VII|the last active ruler of Ptolemaic Egypt, known for her alliances with Julius Caesar and Mark \
Antony; she died in 30 BC.
Charlemagne|king of the Franks, who united much of Western Europe and was crowned emperor by Pope Leo III in 800.
Genghis Khan|the founder of the Mongol Empire, which after his death in 1227 grew into the largest contiguous land \
empire in history.
Joan of Arc|a French peasant girl who helped lift the siege of Orléans in 1429 and was burned at the stake in 1431.
Leonardo da Vinci|an Italian Renaissance artist and inventor who painted the Mona Lisa and The Last Supper and \
filled notebooks with scientific studies.
Galileo Galilei|an Italian astronomer who used the telescope to discover Jupiter's four largest moons and argued \
that Earth orbits the Sun.
Isaac Newton|an English mathematician and physicist who set out the laws of motion and universal gravitation in \
his Principia of 1687.
Queen Victoria|the monarch of the United Kingdom from 1837 to 1901, whose reign saw rapid industrial growth and \
the expansion of the British Empire.
Abraham Lincoln|the 16th President of the United States, who led the Union through the Civil War and issued the \
Emancipation Proclamation in 1863.
Marie Curie|a Polish-born physicist and chemist who pioneered research on radioactivity and was the first person \
to win Nobel Prizes in two sciences.
Mahatma Gandhi|a leader of India's independence movement who championed nonviolent civil disobedience.
Winston Churchill|the British prime minister who led the country through most of the Second World War, from 1940 \
to 1945, and again from 1951 to 1955.
Ada Lovelace|an English mathematician who wrote what is often called the first published computer program, for \
Charles Babbage's proposed Analytical Engine.
Nelson Mandela|a South African anti-apartheid leader who spent 27 years in prison and became the country's first \
democratically elected president in 1994.
""")


def history_records(rng: random.Random) -> dict[str, list[Record]]:
    events = [(int(year), event) for year, event, _ in EVENTS]
    pairs = [(a, b) for a, b in itertools.combinations(events, 2) if a[0] != b[0]]
    first: list[Record] = []
    for pair in rng.sample(pairs, 60):
        (_, a), (_, b) = rng.sample(pair, 2)
        (y1, e1), (y2, e2) = pair
        first.append({"a": a, "b": b, "first": e1, "second": e2, "y1": y1, "y2": y2})
    gap = [{"a": a, "b": b, "ya": ya, "yb": yb, "gap": yb - ya} for (ya, a), (yb, b) in rng.sample(pairs, 50)]
    order: list[Record] = []
    for _ in range(20):
        chosen = rng.sample(events, 4)
        ordered = "\n".join(f"{i}. {cap(e)} ({y})" for i, (y, e) in enumerate(sorted(chosen), 1))
        order.append({"events": "\n".join(cap(e) for _, e in chosen), "ordered": ordered})
    return {"first": first, "gap": gap, "order": order}


def make_history(rng: random.Random) -> list[Row]:
    events = recs(EVENTS, "year event summary")
    for event in events:
        event["century"] = ordinal((int(str(event["year"])) - 1) // 100 + 1)
    rows = fill(rng, HISTORY_QA["event"], events) + fill(rng, HISTORY_QA["person"], recs(PEOPLE, "name desc"))
    for kind, records in history_records(rng).items():
        rows += fill(rng, HISTORY_QA[kind], records)
    return rows


# ----------------------------------------------------------------------------- grammar

GRAMMAR_QA = qa("""
verb|What is the past tense of the English verb '{base}'?|The simple past of '{base}' is '{past}' (past \
participle: '{pp}').
verb|What is the past participle of the English verb '{base}'?|The past participle of '{base}' is '{pp}', used in \
perfect tenses such as 'I have {pp}'.
plural|What is the plural of the English noun '{noun}'?|The plural of '{noun}' is '{plural}' ({note}).
adj|What are the comparative and superlative forms of the adjective '{adj}'?|The comparative is '{comp}' and the \
superlative is '{sup}'.
contraction|In English grammar, what is the contraction of '{full}'?|'{full}' contracts to '{short}'.
confused|What is the difference between '{a}' and '{b}'?|{answer}
fix|Correct the grammar in the following sentence.~Fix any grammatical errors in this sentence.~Proofread this \
sentence for grammar mistakes.|{bad}|{good} {why}
term|What is {term} in English grammar?|{term!c} is {definition}.
""")
VERBS = [
    verb.split()
    for verb in split_list(
        "go went gone, see saw seen, eat ate eaten, take took taken, write wrote written, begin began begun, "
        "break broke broken, bring brought brought, buy bought bought, catch caught caught, choose chose chosen, "
        "come came come, drink drank drunk, drive drove driven, fall fell fallen, feel felt felt, fly flew flown, "
        "forget forgot forgotten, give gave given, grow grew grown, know knew known, leave left left, "
        "lose lost lost, ride rode ridden, ring rang rung, run ran run, sing sang sung, sink sank sunk, "
        "speak spoke spoken, steal stole stolen, swim swam swum, hold held held, sell sold sold, "
        "teach taught taught, think thought thought, throw threw thrown, wear wore worn, freeze froze frozen, "
        "hide hid hidden, shake shook shaken, bite bit bitten, draw drew drawn"
    )
]
ADJECTIVES = [
    adjective.split("/")
    for adjective in split_list(
        "good/better/best, bad/worse/worst, far/farther or further/farthest or furthest, little/less/least, "
        "big/bigger/biggest, happy/happier/happiest, tall/taller/tallest, hot/hotter/hottest, "
        "easy/easier/easiest, large/larger/largest, thin/thinner/thinnest, busy/busier/busiest, "
        "narrow/narrower/narrowest, early/earlier/earliest, beautiful/more beautiful/most beautiful, "
        "interesting/more interesting/most interesting, careful/more careful/most careful, "
        "famous/more famous/most famous, important/more important/most important, "
        "comfortable/more comfortable/most comfortable"
    )
]
PLURALS = table("""
child|children|an old irregular plural
mouse|mice|a vowel-change plural
goose|geese|a vowel-change plural
tooth|teeth|a vowel-change plural
foot|feet|a vowel-change plural
person|people|'persons' is used mainly in legal or formal contexts
ox|oxen|one of the few surviving -en plurals
cactus|cacti|from Latin; 'cactuses' is also accepted
fungus|fungi|from Latin -us to -i
nucleus|nuclei|from Latin -us to -i
crisis|crises|Greek -is becomes -es
analysis|analyses|Greek -is becomes -es
phenomenon|phenomena|Greek -on becomes -a
criterion|criteria|Greek -on becomes -a
leaf|leaves|the -f changes to -ves
knife|knives|the -fe changes to -ves
wolf|wolves|the -f changes to -ves
half|halves|the -f changes to -ves
sheep|sheep|the plural is the same as the singular
deer|deer|the plural is the same as the singular
series|series|the plural is the same as the singular
box|boxes|add -es after x, s, sh, ch or z
church|churches|add -es after ch
city|cities|a consonant plus y becomes -ies
potato|potatoes|some nouns ending in -o take -es
hero|heroes|some nouns ending in -o take -es
piano|pianos|this -o noun just takes -s
roof|roofs|this -f noun just takes -s
appendix|appendices|'appendixes' is also accepted
""")
CONTRACTIONS = table("""
do not|don't
I am|I'm
they are|they're
will not|won't
it is|it's
cannot|can't
should have|should've
let us|let's
you are|you're
she will|she'll
is not|isn't
they have|they've
would not|wouldn't
we would|we'd
""")
CONFUSED = table("""
affect|effect|'Affect' is usually a verb meaning to influence, while 'effect' is usually a noun meaning a result: \
the weather affects my mood; the effect was obvious.
their|there|'Their' shows possession (their car), while 'there' refers to a place or introduces a sentence (there \
is a problem).
its|it's|'Its' is possessive (the dog wagged its tail), while 'it's' is short for 'it is' or 'it has'.
fewer|less|Use 'fewer' with things you can count (fewer apples) and 'less' with uncountable amounts (less water).
who|whom|'Who' is a subject (who called?), while 'whom' is an object (to whom did you write?).
lie|lay|'Lie' means to recline and takes no object, while 'lay' means to put something down and needs an object: I \
lie down; I lay the book down.
than|then|'Than' is for comparisons (taller than me), while 'then' refers to time or sequence.
principal|principle|A 'principal' is a head of a school or the main thing, while a 'principle' is a rule or belief.
complement|compliment|A 'complement' completes or goes well with something, while a 'compliment' is praise.
lose|loose|'Lose' is a verb meaning to misplace or fail to win, while 'loose' is an adjective meaning not tight.
your|you're|'Your' shows possession (your book), while 'you're' is short for 'you are'.
i.e.|e.g.|'I.e.' means 'that is' and restates something, while 'e.g.' means 'for example' and introduces examples.
""")
CORRECTIONS = table("""
She don't like coffee.|She doesn't like coffee.|A third-person singular subject takes 'doesn't'.
Me and him went to the store.|He and I went to the store.|The subject needs the pronouns 'he' and 'I', and it is \
polite to put yourself last.
Their going to the park later.|They're going to the park later.|'They're' is the contraction of 'they are'.
I could of helped you.|I could have helped you.|'Could of' is a mishearing of 'could've'.
There is five apples on the table.|There are five apples on the table.|The verb must agree with the plural 'apples'.
Each of the students have a book.|Each of the students has a book.|'Each' is singular, so it takes 'has'.
He runs faster then me.|He runs faster than me.|Comparisons use 'than'.
Less people came than we expected.|Fewer people came than we expected.|Countable nouns take 'fewer'.
I seen that movie yesterday.|I saw that movie yesterday.|The simple past of 'see' is 'saw'.
Between you and I, the plan won't work.|Between you and me, the plan won't work.|A preposition takes the object \
pronoun 'me'.
Your welcome to join us.|You're welcome to join us.|'You're' means 'you are'.
She gave the book to my brother and I.|She gave the book to my brother and me.|'Me' is the object of 'to'.
I have went there before.|I have gone there before.|The past participle of 'go' is 'gone'.
We was late for the meeting.|We were late for the meeting.|'We' takes 'were'.
He don't know nothing about it.|He doesn't know anything about it.|Use 'doesn't' with 'he' and avoid the double \
negative.
The book was laying on the table.|The book was lying on the table.|'Lie' (to rest) takes no object; 'lay' needs one.
She is more taller than her sister.|She is taller than her sister.|'Taller' is already comparative, so 'more' is \
redundant.
I am going to the store, I need milk.|I am going to the store because I need milk.|Two independent clauses joined \
by a comma make a comma splice; add a conjunction.
The childrens toys were everywhere.|The children's toys were everywhere.|'Children' is already plural, so the \
possessive is 'children's'.
Its raining outside.|It's raining outside.|'It's' is the contraction of 'it is'.
Me and my friend plays football.|My friend and I play football.|Use the subject pronoun 'I' and the plural verb \
'play'.
She sings beautiful.|She sings beautifully.|An adverb is needed to describe how she sings.
The informations are on the website.|The information is on the website.|'Information' is uncountable, so it has no \
plural and takes 'is'.
He should have went home.|He should have gone home.|After 'have', use the past participle 'gone'.
Whom is calling?|Who is calling?|The subject of the verb takes 'who'.
I didn't see nobody.|I didn't see anybody.|Avoid the double negative.
Can you borrow me your pen?|Can you lend me your pen?|You lend something to someone and borrow it from them.
I look forward to hear from you.|I look forward to hearing from you.|'Look forward to' is followed by the -ing form.
She has lived here since five years.|She has lived here for five years.|Use 'for' with a length of time and \
'since' with a starting point.
""")
GRAMMAR_TERMS = table("""
a noun|a word that names a person, place, thing or idea, such as 'river' or 'freedom'
a verb|a word that expresses an action or state, such as 'run' or 'seem'
an adjective|a word that describes a noun, such as 'blue' in 'the blue door'
an adverb|a word that modifies a verb, adjective or other adverb, such as 'quickly'
a pronoun|a word that stands in for a noun, such as 'she', 'it' or 'they'
a preposition|a word that shows a relationship of place, time or direction, such as 'under' or 'after'
a conjunction|a word that joins words or clauses, such as 'and', 'but' or 'because'
the passive voice|a construction in which the subject receives the action, as in 'The cake was eaten'
a dangling modifier|a descriptive phrase that does not clearly attach to the word it is meant to modify, as in \
'Walking home, the rain started'
a run-on sentence|two or more independent clauses joined without the punctuation or conjunction they need
a subordinate clause|a clause that cannot stand alone as a sentence, such as 'because it rained'
a gerund|the -ing form of a verb used as a noun, as in 'Swimming is fun'
the Oxford comma|the comma before 'and' or 'or' at the end of a list, as in 'red, white, and blue'
a split infinitive|an infinitive with a word placed between 'to' and the verb, as in 'to boldly go'
an interjection|a word that expresses sudden feeling, such as 'wow' or 'ouch'
""")


def make_grammar(rng: random.Random) -> list[Row]:
    return (
        fill(rng, GRAMMAR_QA["verb"], recs(VERBS, "base past pp"))
        + fill(rng, GRAMMAR_QA["plural"], recs(PLURALS, "noun plural note"))
        + fill(rng, GRAMMAR_QA["adj"], recs(ADJECTIVES, "adj comp sup"))
        + fill(rng, GRAMMAR_QA["contraction"], recs(CONTRACTIONS, "full short"))
        + fill(rng, GRAMMAR_QA["confused"], recs(CONFUSED, "a b answer"))
        + fill(rng, GRAMMAR_QA["fix"], recs(CORRECTIONS, "bad good why"))
        + fill(rng, GRAMMAR_QA["term"], recs(GRAMMAR_TERMS, "term definition"))
    )


# ----------------------------------------------------------------------------- planted defects

ZEPHYR_QA = table("""
How do I clean the Zephyr 3000 blender?|Fill the Zephyr 3000 jar halfway with warm water and a drop of dish soap, \
run it on Pulse for 30 seconds, then rinse. The jar and lid are also top-rack dishwasher safe.
What is the warranty on the Zephyr 3000 blender?|The Zephyr 3000 comes with a 5-year limited warranty on the motor \
base and a 2-year warranty on the jar and blades.
Why does my Zephyr 3000 blender flash a red light?|A flashing red light means the Zephyr 3000's overload \
protection has tripped. Unplug it, let the motor cool for 15 minutes, and blend a smaller load.
Can the Zephyr 3000 blender crush ice?|Yes. Use the Zephyr 3000's Ice Crush preset with at least a quarter cup of \
liquid so the blades can pull the ice down.
How many speed settings does the Zephyr 3000 blender have?|The Zephyr 3000 has 10 variable speeds, a Pulse button, \
and three presets: Smoothie, Ice Crush and Soup.
Can I blend hot soup in the Zephyr 3000 blender?|Yes, but never fill the Zephyr 3000 jar above the 1.5-litre \
hot-fill line, and always keep the vented lid in place.
What is the capacity of the Zephyr 3000 blender jar?|The Zephyr 3000 jar holds 2 litres (64 ounces), with a \
maximum of 1.5 litres for hot liquids.
How do I reset the Zephyr 3000 blender?|Unplug the Zephyr 3000 for 60 seconds, plug it back in, and hold the Pulse \
button for 3 seconds until the display blinks.
""")
CAR_PARTS = table("""
crankshaft|The crankshaft turns the up-and-down motion of the pistons into rotation. Each connecting rod pushes on \
an offset journal, and the spinning shaft drives the flywheel and, through the transmission, the wheels.
pistons|The pistons slide up and down inside the cylinders. When the compressed air-fuel mixture burns above a \
piston, the expanding gas forces it down and the connecting rod passes that force to the crankshaft.
spark plugs|Each spark plug fires a high-voltage spark across a small gap at the top of the cylinder. The spark \
ignites the compressed air-fuel mixture at precisely the right moment.
fuel injectors|Fuel injectors spray a fine, precisely metered mist of fuel into the intake or straight into the \
cylinder. The engine computer decides how long each injector stays open.
camshaft|The camshaft carries egg-shaped lobes that push the valves open in time with the pistons. It is driven by \
the crankshaft at half engine speed through a belt or chain.
timing belt|The timing belt links the crankshaft to the camshaft so the valves open and close in step with the \
pistons. If it snaps, the valves can strike the pistons in many engines.
radiator|The radiator cools the engine coolant. Hot coolant flows through thin tubes while air passing over the \
fins carries the heat away before the coolant returns to the engine.
alternator|The alternator is driven by a belt from the engine and generates electricity. It recharges the battery \
and powers the electrical system while the engine is running.
starter motor|The starter motor is a small electric motor that cranks the engine. Its gear engages the flywheel, \
spins it until the engine fires, and then pulls back out.
turbocharger|A turbocharger uses exhaust gas to spin a turbine, which drives a compressor on the same shaft. The \
compressor forces extra air into the cylinders so more fuel can be burned.
catalytic converter|The catalytic converter sits in the exhaust and uses precious-metal catalysts to clean the \
gases. It converts carbon monoxide, unburned fuel and nitrogen oxides into carbon dioxide, water and nitrogen.
oil pump|The oil pump pushes engine oil under pressure to the bearings, camshaft and other moving parts. The oil \
film stops metal surfaces grinding together and carries heat away.
thermostat|The thermostat is a valve that keeps coolant inside the engine until it reaches operating temperature. \
Once the engine is warm, it opens and lets coolant flow to the radiator.
clutch|The clutch connects and disconnects the engine and the gearbox in a manual car. Pressing the pedal \
separates the friction plate from the flywheel so you can change gear smoothly.
differential|The differential lets the driven wheels turn at different speeds when the car goes round a corner. \
Without it, the inner and outer wheels would fight each other.
water pump|The water pump circulates coolant through the engine block, cylinder head and radiator. It is usually \
belt-driven and keeps the engine from overheating.
exhaust manifold|The exhaust manifold collects the hot exhaust gases from every cylinder and funnels them into a \
single pipe, which leads on to the catalytic converter and silencer.
throttle body|The throttle body holds a butterfly valve that controls how much air enters the engine. Pressing the \
accelerator opens the valve, letting in more air and so more fuel.
intake valves|The intake valves open to let the air-fuel mixture into the cylinders on the intake stroke. They \
then seal tightly so the mixture can be compressed and burned.
brake calipers|Brake calipers squeeze the pads against the spinning discs when you press the pedal. Hydraulic \
pressure from the master cylinder pushes pistons in the caliper to clamp down.
""")
CAR_QUESTIONS = [
    "Explain the role of the {p} in a car.",
    "In car mechanics, what is the purpose of the {p}?",
    "Give me a simple explanation of the {p} in a car.",
    "As a mechanic, explain the {p} of a car to a beginner.",
]
ONSETS = split_list("b bl br k kr qu x z zv th gl pl sn v w fr dr j gr sk", " ")
CODAS = ["", "rf", "x", "nk", "zz", "lp", "m", "rt", "sk", "g", "th", "q", "b"]


def planted_duplicates(copies: int = 5) -> list[Row]:
    return [(question, "", answer) for question, answer in ZEPHYR_QA for _ in range(copies)]


def cut_off(text: str, rng: random.Random) -> str:
    """Cut ``text`` mid-sentence, and about half the time mid-word."""
    words = text.split()
    size = rng.randint(3, len(words) // 2)
    while words[size - 1][-1] in ".,;" and size < len(words) - 2:
        size += 1
    head, nxt = " ".join(words[:size]), words[size]
    if rng.random() < 0.5 and len(nxt) > 2:
        return f"{head} {nxt[: rng.randint(1, len(nxt) - 2)]}"
    return head


def planted_truncated(rng: random.Random, n: int = 60) -> list[Row]:
    """Car-mechanics questions whose answers are empty (first third) or cut off."""
    combos = rng.sample(list(itertools.product(CAR_PARTS, CAR_QUESTIONS)), n)
    return [
        (question.format(p=part), "", "" if i < n // 3 else cut_off(text, rng))
        for i, ((part, text), question) in enumerate(combos)
    ]


def arithmetic_problem(rng: random.Random) -> tuple[int, str, int, int]:
    op = rng.choice(("plus", "minus", "multiplied by", "divided by"))
    if op == "plus":
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        return a, op, b, a + b
    if op == "minus":
        a = rng.randint(300, 999)
        b = rng.randint(11, a - 50)
        return a, op, b, a - b
    if op == "multiplied by":
        a, b = rng.randint(11, 99), rng.randint(3, 40)
        return a, op, b, a * b
    b, quotient = rng.randint(3, 25), rng.randint(4, 60)
    return b * quotient, op, b, quotient


def planted_wrong_math(rng: random.Random, n: int = 80) -> list[Row]:
    """Confident answers that are off by a random nonzero amount."""
    rows: dict[str, Row] = {}
    while len(rows) < n:
        a, op, b, true = arithmetic_problem(rng)
        offset = rng.randint(1, 30)
        wrong = true + offset if rng.random() < 0.5 or true - offset <= 0 else true - offset
        question = f"Compute {a} {op} {b} and state the result."
        rows.setdefault(question, (question, "", f"{a} {op} {b} is {wrong}."))
    return list(rows.values())


def pseudo_word(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 6)))
    syllables = rng.randint(1, 2)
    return "".join(rng.choice(ONSETS) + rng.choice("aeiouy") + rng.choice(CODAS) for _ in range(syllables))


def planted_gibberish(rng: random.Random, n: int = 60) -> list[Row]:
    rows: dict[str, Row] = {}
    while len(rows) < n:
        question = " ".join(pseudo_word(rng) for _ in range(rng.randint(4, 9))) + rng.choice(("", "?", "."))
        answer = " ".join(pseudo_word(rng) for _ in range(rng.randint(6, 20))) + "."
        rows.setdefault(question, (question, "", answer))
    return list(rows.values())


# ----------------------------------------------------------------------------- assembly

TOPICS: list[tuple[str, Maker]] = [
    ("cooking", make_cooking),
    ("python", make_python),
    ("geography", make_geography),
    ("astronomy", make_astronomy),
    ("finance", make_finance),
    ("fitness", make_fitness),
    ("gardening", make_gardening),
    ("music", make_music),
    ("history", make_history),
    ("grammar", make_grammar),
]


def unique(rows: list[Row]) -> list[Row]:
    """Drop rows whose (instruction, input) pair was already seen, keeping first occurrences."""
    seen: dict[tuple[str, str], Row] = {}
    for row in rows:
        seen.setdefault((row[0], row[1]), row)
    return list(seen.values())


def build_rows(seed: int = DEFAULT_SEED) -> list[dict[str, str]]:
    """All rows, shuffled, with ids assigned after shuffling."""
    rng = random.Random(seed)
    groups: list[tuple[str, list[Row]]] = []
    for topic, make in TOPICS:
        pool = unique(make(rng))
        if len(pool) < ROWS_PER_TOPIC:
            raise ValueError(f"topic {topic!r} has only {len(pool)} distinct rows")
        groups.append((topic, rng.sample(pool, ROWS_PER_TOPIC)))
    groups += [
        ("planted/duplicate", planted_duplicates()),
        ("planted/truncated", planted_truncated(rng)),
        ("planted/wrong_math", planted_wrong_math(rng)),
        ("planted/gibberish", planted_gibberish(rng)),
    ]
    records = [(topic, row) for topic, rows in groups for row in rows]
    keys = Counter((row[0], row[1]) for topic, row in records if topic != "planted/duplicate")
    if max(keys.values()) > 1:
        raise ValueError("unplanted exact duplicates in the generated rows")
    rng.shuffle(records)
    return [
        dict(zip(FIELDS, (f"sample-{i:05d}", *row, topic), strict=True)) for i, (topic, row) in enumerate(records, 1)
    ]


# ----------------------------------------------------------------------------- evaluation set

EVAL_NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca", "Maya"]
# (item, container, containers) for the word problems; every number is drawn below and every answer computed.
EVAL_ITEMS = [
    ("apples", "basket", "baskets"),
    ("pencils", "box", "boxes"),
    ("stickers", "sheet", "sheets"),
    ("cookies", "tray", "trays"),
    ("marbles", "bag", "bags"),
    ("stamps", "album page", "album pages"),
    ("seedlings", "planter", "planters"),
    ("postcards", "pack", "packs"),
]
Things = tuple[str, str, str]


def _problem_buy_give(rng: random.Random, name: str, things: Things) -> tuple[str, str, int]:
    item, _, containers = things
    have, boxes, per, given = rng.randint(3, 30), rng.randint(2, 6), rng.randint(3, 12), rng.randint(2, 15)
    bought = boxes * per
    total = have + bought
    left = total - given
    question = (
        f"{name} has {have} {item}. {name} buys {boxes} {containers} with {per} {item} in each, then gives "
        f"{given} {item} to a friend. How many {item} does {name} have now?"
    )
    answer = (
        f"The {containers} hold {boxes} * {per} = {bought} {item}.\n"
        f"With the ones {name} had, that makes {have} + {bought} = {total}.\n"
        f"After giving {given} away, {name} has {total} - {given} = {left} {item}.\n#### {left}"
    )
    return question, answer, left


def _problem_price(rng: random.Random, name: str, things: Things) -> tuple[str, str, int]:
    item, container, containers = things
    count, price, paid_extra = rng.randint(2, 9), rng.randint(2, 15), rng.randint(1, 20)
    cost = count * price
    paid = cost + paid_extra
    question = (
        f"At a market, one {container} of {item} costs ${price}. {name} buys {count} {containers} and pays with "
        f"${paid}. How much change, in dollars, does {name} get?"
    )
    answer = (
        f"{count} {containers} cost {count} * {price} = ${cost}.\n"
        f"The change is {paid} - {cost} = ${paid_extra}.\n#### {paid_extra}"
    )
    return question, answer, paid_extra


def _problem_share(rng: random.Random, name: str, things: Things) -> tuple[str, str, int]:
    item = things[0]
    friends, each, kept = rng.randint(2, 8), rng.randint(2, 9), rng.randint(1, 10)
    total = friends * each + kept
    question = (
        f"{name} shares {total} {item} among {friends} friends so that each friend gets the same number and "
        f"{kept} are left for {name}. How many {item} does each friend get?"
    )
    answer = (
        f"Without the {kept} that {name} keeps, {total} - {kept} = {total - kept} {item} are shared.\n"
        f"Each friend gets {total - kept} / {friends} = {each}.\n#### {each}"
    )
    return question, answer, each


def _problem_weeks(rng: random.Random, name: str, things: Things) -> tuple[str, str, int]:
    item = things[0]
    per_day, days, weeks = rng.randint(2, 12), rng.randint(2, 6), rng.randint(2, 5)
    per_week = per_day * days
    total = per_week * weeks
    question = (
        f"{name} packs {per_day} {item} a day, {days} days a week. How many {item} does {name} pack in {weeks} weeks?"
    )
    answer = (
        f"In one week {name} packs {per_day} * {days} = {per_week} {item}.\n"
        f"In {weeks} weeks that is {per_week} * {weeks} = {total}.\n#### {total}"
    )
    return question, answer, total


EVAL_PROBLEMS = [_problem_buy_give, _problem_price, _problem_share, _problem_weeks]


def build_eval_rows(seed: int = DEFAULT_SEED, n: int = EVAL_ROWS) -> list[dict[str, str]]:
    """``n`` word problems with worked answers ending in ``#### N`` and ``N`` as the gold ``answer``.

    A random stream of its own (seed + 1), so adding or changing this set never changes ``sample.jsonl``.
    """
    rng = random.Random(seed + 1)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    while len(rows) < n:
        make = EVAL_PROBLEMS[len(rows) % len(EVAL_PROBLEMS)]
        question, answer, value = make(rng, rng.choice(EVAL_NAMES), rng.choice(EVAL_ITEMS))
        if question in seen:
            continue
        seen.add(question)
        rows.append(
            {"id": f"eval-{len(rows) + 1:03d}", "instruction": question, "output": answer, "answer": str(value)}
        )
    return rows


def write_jsonl(rows: list[dict[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the sample instruction dataset.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output JSONL path")
    parser.add_argument("--eval-out", type=Path, default=DEFAULT_EVAL_OUT, help="evaluation set JSONL path")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    args = parser.parse_args(argv)
    rows = build_rows(args.seed)
    write_jsonl(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}")
    eval_rows = build_eval_rows(args.seed)
    write_jsonl(eval_rows, args.eval_out)
    print(f"wrote {len(eval_rows)} evaluation rows to {args.eval_out}")
    for topic, count in sorted(Counter(row["topic"] for row in rows).items()):
        print(f"  {topic:<20} {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
