"""How much more does the first ``fit`` call in a process cost than the next ones?

Trains LeNet-5 for one epoch on 4,096 MNIST images three times in one process and prints
the seconds of each call; ``--profile`` adds a cProfile of the first call (the 25 most
expensive entries by cumulative time).

    COURSE_DATA=<data> python benchmarks/first_call_warmup.py [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from course_utils.data import load_data
from course_utils.models import get_model
from course_utils.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: load_data's search)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    train, test = load_data("mnist", root=args.root, image_size=32, batch_size=128,
                            subset=4096, test_subset=1024)
    profiler = cProfile.Profile() if args.profile else None
    seconds = []
    for call in range(3):
        model = get_model("lenet5")
        start = time.perf_counter()
        if profiler and call == 0:
            profiler.enable()
        fit(model, train, test, epochs=1, progress=False)
        if profiler and call == 0:
            profiler.disable()
        seconds.append(time.perf_counter() - start)
    print("fit seconds per call:", [round(s, 3) for s in seconds],
          f"| first minus the fastest later call: {seconds[0] - min(seconds[1:]):.3f} s")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
