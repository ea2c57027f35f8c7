"""Risk flags by rules: legal, safety, security, outage, press, abuse.

Rules, not a model: a flag must be explainable to the agent who sees it, and each one names
the phrase that raised it. Patterns match whole words in lower-cased text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PATTERNS: Mapping[str, tuple[str, ...]] = {
    "legal": (
        r"lawyers?",
        r"attorneys?",
        r"solicitors?",
        r"su(e|ing)",
        r"lawsuit",
        r"legal action",
        r"small claims",
        r"class action",
        r"ombudsman",
        r"trading standards",
        r"regulator",
        r"(ftc|fcc|cfpb|ofcom|ofgem|bbb)",
        r"consumer protection",
        r"court",
        r"(report|reporting) (you|this) to",
        r"breach of contract",
        r"illegal(ly)?",
    ),
    "safety": (
        r"injur(y|ies|ed)",
        r"hurt (me|myself|my)",
        r"burn(s|t|ed)?",
        r"(on|caught|started a) fire",
        r"fire hazard",
        r"smoke (coming|pouring)",
        r"explod(e|ed|ing)",
        r"caught fire",
        r"food poisoning",
        r"allergic reaction",
        r"hospital",
        r"a&e",
        r"ambulance",
        r"choking",
        r"electric shock",
        r"unsafe",
        r"dangerous",
        r"crash(ed)? (into|on)",
        r"fell off",
        r"brakes? (failed|failure|gave out)",
        r"glass in",
        r"(sick|ill) after (eating|drinking)",
        r"(product|safety) recall",
        r"undercooked",
        r"raw (chicken|meat|in the middle)",
        r"foreign object",
        r"found (a|an|some) \w+ in my (food|meal|burger|drink|salad|sandwich)",
    ),
    "security": (
        r"hack(ed|er|ers)?",
        r"fraud(ulent)?",
        r"scam(med|mer)?",
        r"phishing",
        r"unauthori[sz]ed",
        r"stolen (card|identity|account|details)",
        r"identity theft",
        r"sim swap",
        r"data (breach|leak)",
        r"leaked",
        r"someone (logged|accessed|used) (in|my)",
        r"(charges?|transactions?) i (didn.?t|did not|never) make",
        r"compromised",
        r"password (reset|changed) (without|that i)",
        r"2fa|two.factor",
        r"password reset emails?",
        r"(opened|taken out|requested|ordered) in my name",
        r"(replacement|new) sim (card )?in my name",
        r"i never (requested|ordered|authori[sz]ed|signed up for) (that|this|it|them)",
    ),
    "outage": (
        r"(is|are) (it|you|\w+) down",
        r"(service|network|site|app|website|server)s? (is |are )?down",
        r"outage",
        r"no (signal|service|internet|connection|network)",
        r"not loading",
        r"nationwide",
        r"everyone.{0,20}(same|too)",
        r"down (again|for everyone|everywhere)",
        r"502|503|504",
    ),
    "press": (
        r"journalist",
        r"reporter",
        r"newsroom",
        r"the press",
        r"writing (a|an) (story|article|piece)",
        r"for (a|an|my) (story|article|piece)",
        r"(tell|contact|go to) the (media|press|news)",
        r"going viral",
        r"bbc|cnn|reuters|watchdog",
        r"request for comment",
        r"comment on the record",
    ),
    "abuse": (
        r"f+u+c+k+ (you|u|off)",
        r"fuckers",
        r"idiots?",
        r"morons?",
        r"scum",
        r"imbeciles?",
        r"bastards?",
        r"pricks?",
        r"cunts?",
        r"wankers?",
        r"kill (you|yourselves)",
        r"die in a",
        r"(you|u) (all )?suck",
        r"clowns",
        r"incompetent (idiots|fools|morons)",
    ),
}

_COMPILED = {
    flag: re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)", re.IGNORECASE)
    for flag, patterns in PATTERNS.items()
}


def risk_flags(text: str) -> dict[str, str]:
    """Each flag raised by ``text``, with the phrase that raised it."""
    found: dict[str, str] = {}
    for flag, pattern in _COMPILED.items():
        match = pattern.search(text)
        if match:
            found[flag] = match.group(0)
    return found
