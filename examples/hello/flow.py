"""The quick start: three steps, one parameter, every unchanged step cached."""

import flowkit as fk


def shout(text: str) -> str:
    """A helper: change it and `flowkit plan` says `code changed: helper shout()`."""
    return text.upper() + "!"


@fk.step
def greet(name: str) -> str:
    return f"Hello, {name}"


@fk.step
def emphasise(greeting: str) -> str:
    return shout(greeting)


@fk.step
def count_letters(text: str) -> dict:
    letters = sum(ch.isalpha() for ch in text)
    fk.log_metric("letters", letters)
    return {"text": text, "letters": letters}


@fk.flow
def hello(name: str = "world"):
    greeting = greet(name)
    loud = emphasise(greeting)
    return count_letters(loud)
