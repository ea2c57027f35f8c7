"""The shipped classifiers end to end, and `earful classify` as a user runs it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import build_classifier
from bot.config import load_settings
from bot.models import Author, Classification, ContactSnapshot, Mention, Platform

FIXTURES = Path(__file__).parent / "fixtures"
Earful = Callable[..., subprocess.CompletedProcess[str]]  # the `earful` fixture (conftest)
NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def classify():
    """The default classifier, loaded once for the module."""
    classifier = build_classifier(load_settings(environ={}))

    def run(*texts: str, reply: bool = False) -> list[Classification]:
        batch = [
            (
                Mention(
                    platform=Platform.X,
                    external_id=str(i),
                    text=text,
                    created_at=NOW,
                    author=Author(handle="someone", followers=100),
                    in_reply_to="1" if reply else None,
                ),
                ContactSnapshot(contact_id=None),
            )
            for i, text in enumerate(texts)
        ]
        return classifier.classify(batch)

    return run


def test_sentiment_and_intent_of_clear_cases(classify) -> None:
    """Reads a furious complaint as negative, warm thanks as positive, and a cancellation as a churn threat."""
    angry, happy, leaving, asking = classify(
        "@NorthwindMobile dropped 4 calls today and charged me for roaming I never used. Furious.",
        "Thank you so much @Brightcart, the driver was lovely and everything arrived perfect!",
        "That's it, I'm cancelling my contract and switching to another carrier next week.",
        "Hi, do you deliver to Leeds on Sundays?",
    )
    assert angry.sentiment.label == "negative"
    assert angry.intent.label == "complaint"
    assert happy.sentiment.label == "positive"
    assert happy.intent.label == "praise"
    assert leaving.intent.label == "churn_threat"
    assert asking.intent.label == "question"
    assert all(c.classified and c.language == "en" for c in (angry, happy, leaving, asking))


def test_spam_and_foreign_language(classify) -> None:
    """Marks a crypto giveaway as spam, and still classifies a Spanish complaint, naming its language.

    The shipped sentiment model learned English tweets only; the label of a Spanish text is
    not asserted here (README lists this limit).
    """
    spam, spanish = classify(
        "FREE BTC giveaway!!! follow back and claim now http://x.example http://y.example http://z.example",
        "Mi pedido lleva tres semanas de retraso y nadie me responde. Es una vergüenza.",
    )
    assert spam.intent.label == "spam"
    assert spanish.classified
    assert spanish.language == "es"


@pytest.mark.parametrize(
    "text",
    [
        "😡😡😡🔥",
        "Привет, my order 注文 is late — متأخر",
        "bad\x00\x07 control\x1b chars",
        " ",
        "x" * 100_000,
    ],
)
def test_odd_text_is_classified_not_crashed(classify, text: str) -> None:
    """Classifies emoji-only, mixed-script, control-character, blank and 100 KB texts without crashing."""
    [result] = classify(text)
    assert result.classified
    assert result.sentiment.label in ("negative", "neutral", "positive")
    assert 0.0 <= result.sentiment.score <= 1.0


def test_classify_command_follows_the_contract(earful: Earful, env: dict[str, str]) -> None:
    """Answers one JSON line per input line, knows CRM customers, rejects bad lines by number, writes nothing."""
    assert (
        earful("contacts", "import", str(FIXTURES / "crm" / "customers.csv"), env=env).returncode
        == 0
    )
    before = json.loads(earful("status", "--json", env=env).stdout)
    lines = [
        json.dumps(
            {
                "id": "a",
                "text": "My last two deliveries were missing items. Really disappointed.",
                "platform": "x",
                "author": {"handle": "elenavarga", "followers": 2380},
            }
        ),
        "this is not json",
        json.dumps({"id": "c", "text": ""}),
        json.dumps({"id": "d", "text": "y" * 30_000}),
        json.dumps({"id": "e", "text": "love the new app update!", "platform": "telegram"}),
    ]
    result = earful("classify", env=env, stdin="\n".join(lines) + "\n")
    assert result.returncode == 1, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 5, result.stderr
    first = out[0]
    assert set(first) >= {
        "id",
        "sentiment",
        "intent",
        "flags",
        "language",
        "influence",
        "value",
        "decision",
        "priority",
        "reasons",
        "channel",
        "playbook",
        "suggestions",
    }
    assert first["id"] == "a"
    assert first["sentiment"]["label"] == "negative"
    assert first["value"]["tier"] == "vip"
    assert out[1] == {"line": 2, "error": "stdin:2: not valid JSON (Expecting value at column 1)"}
    assert out[2]["error"].startswith("stdin:3: text")
    assert "30,000 characters; the limit is 20,000" in out[3]["error"]
    assert out[4]["influence"]["tier"] == "unknown"
    assert out[4]["value"]["tier"] == "unknown"
    assert json.loads(earful("status", "--json", env=env).stdout) == before


def test_classify_plain_text(earful: Earful, env: dict[str, str], tmp_path: Path) -> None:
    """With --text, reads one mention per line from a file and writes JSON Lines to --out."""
    source, target = tmp_path / "in.txt", tmp_path / "out.jsonl"
    source.write_text("great service, thanks!\n\nworst airline ever, lost my bag again\n")
    result = earful("classify", "--text", "--in", str(source), "--out", str(target), env=env)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in target.read_text().splitlines()]
    assert [o["id"] for o in out] == ["1", "3"]
    assert [o["sentiment"]["label"] for o in out] == ["positive", "negative"]


def test_any_hugging_face_model_with_a_label_map(tmp_path: Path) -> None:
    """Loads a sequence-classification model from a path, maps its labels, and keeps the shipped embedding."""
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    from classifiers.text_model import BUNDLED_SENTIMENT

    directory = tmp_path / "tiny-sentiment"
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label={0: "NEG", 1: "NEU", 2: "POS"},
        label2id={"NEG": 0, "NEU": 1, "POS": 2},
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(BUNDLED_SENTIMENT / "tokenizer.json"),
        pad_token="[PAD]",
        unk_token="[UNK]",
    )
    tokenizer.save_pretrained(directory)
    settings = load_settings(
        environ={
            "EARFUL_SENTIMENT_MODEL": str(directory),
            "EARFUL_SENTIMENT_LABELS": "NEG=negative,NEU=neutral,POS=positive",
        }
    )
    classifier = build_classifier(settings)
    mention = Mention(
        platform=Platform.X,
        external_id="1",
        text="love it",
        created_at=NOW,
        author=Author(handle="a"),
    )
    [result] = classifier.classify([(mention, ContactSnapshot(contact_id=None))])
    assert result.sentiment.label in ("negative", "neutral", "positive")
    assert result.intent is not None


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"EARFUL_SENTIMENT_MODEL": "some-org/some-model"}, "needs EARFUL_SENTIMENT_LABELS"),
        (
            {
                "EARFUL_SENTIMENT_MODEL": "some-org/some-model",
                "EARFUL_SENTIMENT_LABELS": "A=negative,B=happy",
            },
            "must be LABEL=one of",
        ),
        (
            {
                "EARFUL_SENTIMENT_MODEL": "some-org/some-model",
                "EARFUL_SENTIMENT_LABELS": "A=negative,B=neutral",
            },
            "must cover negative, neutral, positive",
        ),
    ],
)
def test_bad_sentiment_configuration_is_explained(environ: dict[str, str], message: str) -> None:
    """Refuses a hub model without a complete, valid label map, saying what is wrong."""
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        build_classifier(load_settings(environ=environ))
