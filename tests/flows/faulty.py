"""The flow of the fault-injection test and bench (read as text: NAME is filled in per copy)."""
import os
import time
import flowkit as fk

def pause(times=1):
    time.sleep(times * float(os.environ.get("FAULT_PAUSE", "0")))

@fk.step
def source(salt: int) -> list:
    pause()
    return list(range(salt, salt + 1000))

@fk.step
def shared() -> list:
    return list(range(3000))

@fk.step
def square(xs: list, k: int) -> list:
    pause()
    return [x * x + k for x in xs]

@fk.step
def total(xs: list) -> int:
    pause()
    return sum(xs)

@fk.step
def combine(*totals: int, extra: int = 0) -> dict:
    if extra:
        pause(5)
    return {"sum": sum(totals) + extra, "n": len(totals)}

@fk.flow(name=NAME)
def faulty(salt: int = 0, extra: int = 0):
    src = source(salt)
    parts = [total(square(src, k)) for k in range(3)] + [total(square(shared(), 7))]
    return combine(*parts, extra=extra)

def expected(salt: int, extra: int = 0) -> dict:
    """Every node's value, from plain Python: what the flow must give (the test and the bench check it)."""
    src, base = list(range(salt, salt + 1000)), list(range(3000))
    squares = [[x * x + k for x in src] for k in range(3)] + [[x * x + 7 for x in base]]
    totals = [sum(s) for s in squares]
    values = {"source": src, "shared": base, "combine": {"sum": sum(totals) + extra, "n": 4}}
    for i, (sq, tot) in enumerate(zip(squares, totals)):
        suffix = "" if i == 0 else f"-{i + 1}"
        values[f"square{suffix}"], values[f"total{suffix}"] = sq, tot
    return values
