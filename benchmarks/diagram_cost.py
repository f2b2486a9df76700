"""How long drawing takes: DOT and Mermaid text, then SVG and PNG rendering.

Run: ``.venv/bin/python benchmarks/diagram_cost.py [--repeat N]``

For the bare lifecycle and every installed channel it reports the best of N
runs of: building the picture and its DOT source (``to_dot``), its Mermaid
text (``to_mermaid``), and rendering that DOT to SVG and PNG with the
renderer this machine has (the system ``dot`` if present, else
``graphviz-pure``). Text generation is pure Python; rendering is one
subprocess per diagram, so it dominates ``linkstate diagram --all``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from linkstate.diagrams import diagram_names, find_renderer, picture_for, render, to_dot, to_mermaid


def best_ms(work: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs of ``work``, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (default 5)")
    args = parser.parse_args()
    renderer = find_renderer()
    print(f"renderer: {renderer.executable}")
    print(f"{'diagram':<12} {'dot ms':>8} {'mermaid ms':>11} {'svg ms':>8} {'png ms':>8}")
    for name in diagram_names():
        source = to_dot(picture_for(name))
        dot = best_ms(lambda: to_dot(picture_for(name)), args.repeat)  # noqa: B023
        mermaid = best_ms(lambda: to_mermaid(picture_for(name)), args.repeat)  # noqa: B023
        svg = best_ms(lambda: render(source, "svg", renderer), args.repeat)  # noqa: B023
        png = best_ms(lambda: render(source, "png", renderer), args.repeat)  # noqa: B023
        print(f"{name:<12} {dot:>8.2f} {mermaid:>11.2f} {svg:>8.1f} {png:>8.1f}")


if __name__ == "__main__":
    main()
