"""The heuristic flags' rules: when a response looks cut off, and when an example repeats another.

Both are cheap (pure Python, no model) and are read by ``HeuristicsScorer`` (:mod:`core.score.scorers`).
They are written against real data, where a first version misfired: a response ending without a full stop
was "cut off" (so were complete code, GSM8K's ``#### 42`` answer lines, lists, poems and labels), and an
embedding neighbour at cosine >= 0.95 was a "near duplicate" (so were different problems sharing a
template). docs/algorithms.md 1.7 states the rules; docs/benchmarks.md measures them.
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from collections.abc import Sequence

import numpy as np


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_WORD = re.compile(r"\w+")
# Words a finished sentence does not end on: a response that stops on one was cut mid-sentence.
_DANGLING_WORDS = _word_set(
    "a an the and or but nor of to with for in on at by from into onto than that which who whose whom because "
    "while when whereas where whether what how why if as is are was were be been being can could would should "
    "must its their his her our your my this these those such"
)
# In code, ``a`` ends many a statement as a variable (``return a``).
_CODE_DANGLING_WORDS = _DANGLING_WORDS - {"a"}
_DANGLING_MARKS = ",:(="
_DASHES = frozenset({"-", "--", "–", "—"})
_TERMINAL_MARKS = ".!?。…\"'”’)]*`"
_LIST_ITEM = re.compile(r"^\s*(?:[-*•+>|#]|\d+[.)]|[a-zA-Z][.)]\s)")
_SENTENCE_BREAK = re.compile(r"[.!?][\"')\]]?\s+[A-Z0-9\"']")
_CLOSING = re.compile(r"\b(?:yours|sincerely|regards|best wishes|respectfully|cheers)\b[^.!?]*$", re.IGNORECASE)
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import|#include|#!|<\?php|<[a-zA-Z/!]|(?:public|private|static) |"
    r"function\b|const |let |var |return\b|(?:SELECT|INSERT|UPDATE|CREATE) |echo |print\(|console\.)"
    r"|[;{}]\s*$|^\s*[\w.\[\]]+\s*[-+*/]?=\s*\S",  # case-sensitive: "Let x be" is prose, "let x" is code
)
_STRING_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'')  # one line; brackets in it do not count
_OPEN_CODE_END = ",(=\\:+-/"
_PYTHON = re.compile(r"^\s*(?:(?:def|class)\s+\w+.*:|import\s+\w+|from\s+\S+\s+import\b)", re.MULTILINE)
# Below this many words an unpunctuated single sentence reads as a short answer (a label, a title, a list
# of words), not as prose that stopped: a cut-off is then told only by its last word or an open bracket.
SHORT_ANSWER_WORDS = 12
# A shorter one is prose of the responder's own when under this share of its words come from the prompt.
PROMPT_WORD_SHARE = 0.6
_SHORT_WORDS = _word_set(
    "a i am an as at be by do go he hi if in is it me my no of oh ok on or so to up us we ye "
    "pm km cm mm kg mg ml lb oz ft hr vs id tv pc uk eu ya yo ah eh uh um ha lo ma pa ox"
)


def looks_cut_off(text: str, prompt: str = "") -> bool:
    """Whether a response stops where a finished one cannot: an open code block or bracket, a dangling word
    or mark (``and``, ``the``, a comma), or prose whose last sentence lacks its closing punctuation.

    Complete code (Python that compiles, other code with balanced brackets), list items, line-based text
    (poems, tables, ``#### 42`` answer lines), short answers and answers made of the prompt's own words
    (labels, extracted spans, sorted word lists; ``prompt`` is the instruction and input) are not cut off.
    docs/algorithms.md 1.7 gives the rule in full; docs/benchmarks.md its rates per source.
    """
    stripped = text.rstrip()
    if not stripped:
        return False  # empty responses have their own flag
    if stripped.count("```") % 2:
        return True  # a code block opened and never closed
    if _parses_as_python(stripped):
        return False  # complete Python, or a one-word or numeric answer
    if stripped[-1] in ".!?":
        return False  # a closed sentence (a stray bracket before it is a typo)
    last_line = stripped.splitlines()[-1].strip()
    if _is_code(stripped):
        return _code_cut_off(stripped, last_line)
    if _is_sorted_words(stripped):
        return False  # a word-sorting answer
    last_token, last_word = last_line.split()[-1], _last_word(last_line)
    if _unclosed_brackets(stripped) or stripped[-1] in _DANGLING_MARKS or last_token in _DASHES:
        return True
    if not stripped[-1].isalnum() or last_token[0] in "#@":
        return False  # closing punctuation, an emoji, a symbol, a hashtag
    if last_word in _DANGLING_WORDS or _is_fragment(last_token):
        return True
    if _is_prompt_span(stripped, prompt):
        return False  # a label or a span taken from the prompt
    return _unfinished_sentence(stripped, last_line, prompt)


def _parses_as_python(text: str) -> bool:
    """Whether ``text`` (dedented: a function body counts) parses as a Python module; the syntax warnings
    that prose can raise (``"is" with a literal``) are not shown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = ast.parse(textwrap.dedent(text))
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
            return False
    return bool(module.body)  # not only comments: C's "#include ..." on one line is a Python comment


def _unclosed_brackets(text: str) -> bool:
    """More ( [ { than ) ] }: the text stopped inside a bracket (an emoticon such as ``:(`` would fool it)."""
    opened = sum(text.count(c) for c in "([{")
    return opened > sum(text.count(c) for c in ")]}")


def _is_code(text: str) -> bool:
    """At least a third of the non-empty lines look like code: keywords, assignments, ``;``/``{``/``}`` ends.
    (Formulas are not code here: worked arithmetic is prose with numbers, and is cut off as prose is.)"""
    lines = [line for line in text.splitlines() if line.strip()]
    return sum(bool(_CODE_LINE.search(line)) for line in lines) * 3 >= len(lines)


def _code_cut_off(text: str, last_line: str) -> bool:
    """Code is cut off when a bracket is left open (also once string literals are removed: a lone bracket in
    a string, or an apostrophe read as a quote, does not count), when its last line is an unterminated
    string or ends in one of ``_OPEN_CODE_END``, when Python breaks on its last line, when C-family code
    (lines ending in ``;``, braces) stops on a letter or digit, or when it ends on an English word no
    sentence ends on (in a comment or a string: ``and``, ``the``)."""
    if _unclosed_brackets(text) and _unclosed_brackets(_STRING_LITERAL.sub("", text)):
        return True
    if last_line.count('"') % 2 == 1 or last_line[-1] in _OPEN_CODE_END or _python_broken_at_end(text):
        return True
    c_family = "{" in text and any(line.rstrip().endswith(";") for line in text.splitlines())
    statement = len(last_line.split()) >= 2 and not any(mark in last_line for mark in ("//", "#", "--", "/*", "@"))
    if c_family and statement and last_line[-1].isalnum():
        return True  # not a comment, a printed output or an ``@end``: a statement without its ``;``
    return len(last_line.split()) >= 3 and _last_word(last_line) in _CODE_DANGLING_WORDS


def _python_broken_at_end(text: str) -> bool:
    """Python (a ``def``, ``class`` or import line) whose first syntax error is on its last line, an indented
    one, as when a statement in a block is cut (``if ne``). An error earlier is Python 2 or another language,
    and an unindented last line is often an output shown after the code (``// Output: 9``)."""
    last_line = text.splitlines()[-1]
    if not _PYTHON.search(text) or not last_line[:1].isspace():
        return False
    source = textwrap.dedent(text)
    try:
        ast.parse(source)
    except SyntaxError as error:
        return (error.lineno or 0) >= len(source.splitlines())
    except (ValueError, RecursionError, MemoryError, OverflowError):
        return False
    return False


def _is_sorted_words(text: str) -> bool:
    """One line of four or more words in alphabetical order: a word-sorting answer."""
    words = _WORD.findall(text.lower())
    return "\n" not in text and len(words) >= 4 and words == sorted(words)


def _is_prompt_span(text: str, prompt: str) -> bool:
    """One line whose words all come from the prompt: a label, an option, an extracted span."""
    words = _WORD.findall(text.lower())
    if "\n" in text or not words:
        return False
    return set(words) <= set(_WORD.findall(prompt.lower()))


def _is_fragment(word: str) -> bool:
    """A last token of one or two lowercase letters that English does not have: a word cut in half (``wh``)."""
    return word.isascii() and word.isalpha() and word.islower() and len(word) <= 2 and word not in _SHORT_WORDS


def _last_word(line: str) -> str:
    """The last word, lower-cased; an option letter (``A``) is not the article ``a``."""
    words = _WORD.findall(line)
    return "" if not words or words[-1] == "A" else words[-1].lower()


def _unfinished_sentence(text: str, last_line: str, prompt: str) -> bool:
    """The last line ends on a letter or digit. It is cut off if its peers (the other list items when it is
    one, the other lines of prose when not) mostly close their sentences; alone, if it is the last sentence
    after a finished one, or a single unpunctuated sentence that is long or that reads as the response's own
    (capitalised, not a title, mostly new words)."""
    n_words = len(last_line.split())
    others = [line.strip() for line in text.splitlines()[:-1] if line.strip()]
    is_item = bool(_LIST_ITEM.match(last_line))
    peers = [line for line in others if bool(_LIST_ITEM.match(line)) == is_item]
    if is_item and peers:  # a list whose items close their sentences: the last item should too
        return _mostly_closed(peers)
    if n_words <= 3 or _CLOSING.search(last_line) or (others and others[-1][-1] == "," and n_words <= 6):
        return False  # an answer line (``#### 42``), a letter's closing, the name under "Yours faithfully,"
    if peers:  # poems and tables do not close their lines: their last line need not either
        return _mostly_closed(peers)
    if is_item and others:
        return False  # a list's only item of its kind
    if _SENTENCE_BREAK.search(last_line):
        return True
    return n_words >= SHORT_ANSWER_WORDS or (n_words >= 5 and _reads_as_own_sentence(last_line, prompt))


def _mostly_closed(lines: list[str]) -> bool:
    """More than half the (stripped, non-empty) lines end in closing punctuation."""
    return sum(line[-1] in _TERMINAL_MARKS for line in lines) * 2 > len(lines)


def _reads_as_own_sentence(line: str, prompt: str) -> bool:
    """Capitalised like a sentence (not like a title) and mostly in words the prompt does not have: prose
    the responder wrote, not a label, a headline or a span copied from the prompt."""
    words = line.split()
    if not words[0][0].isupper() or sum(w[0].isupper() for w in words) * 2 > len(words):
        return False
    lowered = _WORD.findall(line.lower())
    known = set(_WORD.findall(prompt.lower()))
    return sum(w in known for w in lowered) < PROMPT_WORD_SHARE * len(lowered)


# Near duplicates: how many embedding neighbours are compared as text, how alike two texts must be (Jaccard
# of character trigrams; MBPP's "remove lowercase substrings" and "remove uppercase substrings" solutions,
# two different tasks, score 0.898, a rewording of one task 0.947), and the response length below which an
# equal response proves nothing by itself.
NEIGHBOURS = 10
TEXT_SIMILARITY = 0.9
SHORT_RESPONSE_WORDS = 8
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def near_duplicates(
    embeddings: np.ndarray, threshold: float, prompts: Sequence[str], responses: Sequence[str]
) -> np.ndarray:
    """1.0 for each row that repeats another, else 0.0: of its ``NEIGHBOURS`` nearest rows (unit vectors),
    one at cosine >= ``threshold`` is the same example in nearly the same words (``_Texts.same_example``).

    Only the nearest neighbours are compared, because a range search could return thousands of rows per row
    on templated data; a repeat ranked below ten rows of its own template is missed.
    """
    import faiss

    data = np.ascontiguousarray(embeddings, dtype=np.float32)
    flags = np.zeros(len(data))
    if len(data) < 2:
        return flags
    index = faiss.IndexFlatIP(data.shape[1])
    index.add(data)
    similarities, neighbours = index.search(data, min(NEIGHBOURS + 1, len(data)))
    texts = _Texts(prompts, responses)
    for row, column in zip(*np.nonzero(similarities >= threshold - 1e-6), strict=True):
        other = int(neighbours[row, column])
        if other != row and other >= 0 and not flags[row] and texts.same_example(int(row), other):
            flags[row] = flags[other] = 1.0
    return flags


class _Texts:
    """The prompts and responses of a scored set, with each text's trigrams and numbers computed once."""

    def __init__(self, prompts: Sequence[str], responses: Sequence[str]):
        self.prompts, self.responses = list(prompts), list(responses)
        self._cache: dict[tuple[str, int], tuple[frozenset[str], list[str]]] = {}

    def same_example(self, a: int, b: int) -> bool:
        """Nearly the same response (same numbers, same last word, similar words: a rationale that ends in
        "yes" for one claim and "no" for another is two examples); for short responses, where equal answers
        are common (labels, yes/no, numbers), nearly the same prompt too."""
        if not self._alike("response", a, b) or _last_word(self.responses[a]) != _last_word(self.responses[b]):
            return False
        short = min(len(self.responses[a].split()), len(self.responses[b].split())) < SHORT_RESPONSE_WORDS
        return not short or self._alike("prompt", a, b)

    def _alike(self, field: str, a: int, b: int) -> bool:
        grams_a, numbers_a = self._features(field, a)
        grams_b, numbers_b = self._features(field, b)
        return numbers_a == numbers_b and text_similarity(grams_a, grams_b) >= TEXT_SIMILARITY

    def _features(self, field: str, row: int) -> tuple[frozenset[str], list[str]]:
        if (field, row) not in self._cache:
            text = (self.responses if field == "response" else self.prompts)[row]
            normal = " " + " ".join(text.lower().split()) + " "
            grams = frozenset(normal[i : i + 3] for i in range(len(normal) - 2))
            self._cache[field, row] = (grams, sorted(_NUMBER.findall(normal)))
        return self._cache[field, row]


def text_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two sets of character trigrams (1.0 for two empty texts)."""
    return len(a & b) / len(a | b) if a or b else 1.0


# Gibberish: text in no language. Two cheap tests agree before a text is flagged: few of its words are common
# function words (every sentence of English, French, Spanish, German, Italian or Portuguese uses some), and
# many of its words cannot be pronounced (no vowel, a long consonant run, a letter pair English spells
# with no word). Short texts (labels, names, numbers), code and text mostly in other scripts are not judged.
GIBBERISH_MIN_WORDS = 5
GIBBERISH_COMMON_SHARE = 0.12
GIBBERISH_ODD_SHARE = 0.2
_COMMON_WORDS = _word_set(
    # English
    "a an the and or but if of to in on at by for with from as is are was were be been am it its this that these "
    "those there here i you he she we they me him her us them my your his our their what which who when where why "
    "how not no yes do does did have has had will would can could should may might must so than then too very "
    "all any some one two each more most other such only also just about into over after before up down out off "
    "again now new first like get make use used way time many much well even because while both same own "
    # French, Spanish, Italian, Portuguese, German
    "le la les un une des du de et est en que qui pour pas sur avec dans ce il elle nous vous ils sont au aux "
    "el los las y es del por con para una lo se su al como mas pero sus le ya muy "
    "il di che non per una sono gli della con del alla anche come "
    "o os um uma da do em que com não por mais para como "
    "der die das und ist nicht ein eine zu den mit sich des auf für im dem von sie es auch"
)
_VOWELS = frozenset("aeiouy")
_CONSONANT_RUN = re.compile(r"[^aeiouy]{5,}")
# Letter pairs no common English word spells (q not before u, j/v/x/z doubled or before a consonant): the
# keyboard-mash strings of spam and broken generations are full of them.
_ODD_PAIR = re.compile(r"q[^u]|q$|[jvxz][bcdfgjkmnpqstvwxz]|[bcfgkmpt][jqxz]|([jvkqwx])\1")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_URL = re.compile(r"(?:https?://|www\.)\S*")  # no \S* before it: quadratic on a long word


def looks_gibberish(text: str) -> bool:
    """Whether ``text`` reads as no language: at least ``GIBBERISH_MIN_WORDS`` Latin-letter words, under
    ``GIBBERISH_COMMON_SHARE`` of them common function words, and at least ``GIBBERISH_ODD_SHARE`` of them
    unpronounceable (:func:`_odd_word`). Code and text mostly outside the Latin alphabet are not judged."""
    text = _URL.sub(" ", text)  # a link's path is letters of no language, and no defect
    words = [word.lower() for word in _LATIN_WORD.findall(text)]
    if len(words) < GIBBERISH_MIN_WORDS:
        return False
    letters = sum(ch.isalpha() for ch in text)
    if letters and sum(len(word) for word in words) < 0.8 * letters:
        return False  # mostly another script: nothing here to judge it by
    common = sum(word in _COMMON_WORDS for word in words)
    if common >= GIBBERISH_COMMON_SHARE * len(words) or _is_code(text):
        return False
    return sum(_odd_word(word) for word in words) >= GIBBERISH_ODD_SHARE * len(words)


_ABBREVIATIONS = _word_set("tbsp tsp lbs qt pt hrs mph kph mpg cwt pkg std btw nth")


def _odd_word(word: str) -> bool:
    """A word of three or more letters with no vowel, five consonants in a row or a pair English never spells
    (two-letter words are too often units, notes or initials: ``ml``, ``Db``, ``JS``)."""
    if len(word) < 3 or word in _ABBREVIATIONS:
        return False
    return not (_VOWELS & set(word)) or bool(_CONSONANT_RUN.search(word) or _ODD_PAIR.search(word))
