"""Turn a clone of github.com/nisarahmedrana/BIQ2021 into our dataset layout (train.csv, test.csv).

    git clone https://github.com/nisarahmedrana/BIQ2021 ../data/biq2021
    python scripts/prepare_biq2021.py ../data/biq2021

Every row whose listed name differs in letter case from the file on disk is printed as a warning
and recorded in prepare_report.json (see edge_iqa/data/biq2021.py).
"""

from __future__ import annotations

import argparse
import sys

from edge_iqa.data.biq2021 import prepare_biq2021
from edge_iqa.errors import EdgeIQAError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clone", help="folder of the BIQ2021 clone (holds Images/ and the two CSVs)")
    parser.add_argument("--out", help="where train.csv / test.csv go (default: the clone)")
    args = parser.parse_args(argv)
    try:
        splits = prepare_biq2021(args.clone, args.out)
    except EdgeIQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for split in splits:
        for fix in split.case_fixes:
            print(f"warning: {split.name}: the CSV lists {fix.listed.name!r} but the file is "
                  f"{fix.on_disk.name!r} (case differs); {split.csv.name} names the file on disk", file=sys.stderr)
        print(f"{split.csv}: {split.images} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
