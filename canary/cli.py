"""Retrospective analysis from the command line: judge recorded baseline and canary samples.

    deployer analyze --baseline B.json --canary C.json [--config FILE] [--json]

Exit codes: 0 pass, 1 fail, 3 inconclusive, 2 bad input (one clear line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from .config import DEFAULT_CONFIG, load_canary_config_file
from .exceptions import CanaryError, InvalidSamples
from .judge import replay
from .report import explain_text, to_json
from .samples import Samples
from .verdict import Result

EXIT_CODES = {Result.PASS: 0, Result.FAIL: 1, Result.INCONCLUSIVE: 3}
EXIT_BAD_INPUT = 2


class _UsageError(Exception):
    """Raised instead of argparse's exit so the caller gets a return code, not SystemExit."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports errors by raising."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting."""
        raise _UsageError(message)


def build_parser(prog: str = "deployer analyze") -> argparse.ArgumentParser:
    """Return the argument parser of the analyze command."""
    parser = _Parser(prog=prog, description="Judge a canary against its baseline on recorded samples, "
                     "replaying the watch interval by interval.")
    parser.add_argument("--baseline", required=True, metavar="B.json",
                        help='baseline samples: {"interval_s": 2, "series": {"requests": [...], ...}}')
    parser.add_argument("--canary", required=True, metavar="C.json", help="canary samples, same format")
    parser.add_argument("--config", metavar="FILE", help="analysis configuration (YAML); default: built-in")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    return parser


def _read_samples(path: str, role: str) -> Samples:
    """Load one samples file; errors name the file and the field."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CanaryError(f"--{role} {path}: cannot read the file ({exc.strerror or exc}); check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CanaryError(f"--{role} {path}: not valid JSON ({exc}); give a samples object") from None
    try:
        return Samples.from_json(data)
    except InvalidSamples as exc:
        raise CanaryError(f"--{role} {path}: {exc}") from None


def analyze_main(argv: list[str] | None = None) -> int:
    """Run the analyze command; return its exit code (0 pass, 1 fail, 3 inconclusive, 2 bad input)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["analyze"]:
        args_list = args_list[1:]
    parser = build_parser()
    try:
        if any(a in ("-h", "--help") for a in args_list):
            parser.print_help()
            return 0
        args = parser.parse_args(args_list)
        config = load_canary_config_file(args.config) if args.config else DEFAULT_CONFIG
        baseline = _read_samples(args.baseline, "baseline")
        canary = _read_samples(args.canary, "canary")
        if baseline.interval_s != canary.interval_s:
            raise CanaryError(f"interval_s differs: baseline {baseline.interval_s:g}s, canary "
                              f"{canary.interval_s:g}s; record both at the same interval")
        if len(baseline) != len(canary):
            raise CanaryError(f"baseline has {len(baseline)} intervals but canary has {len(canary)}; "
                              "give both the same window")
        verdict = replay(config, baseline, canary)
    except _UsageError as exc:
        print(f"{parser.prog}: {exc} (see --help)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CanaryError as exc:
        message = str(exc).replace("\n", "; ")
        print(f"{parser.prog}: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(to_json(verdict), indent=None, sort_keys=False))
    else:
        print(explain_text(verdict))
    return EXIT_CODES.get(verdict.result, EXIT_CODES[Result.INCONCLUSIVE])


def main() -> NoReturn:
    """Entry point of ``python -m canary.cli``."""
    sys.exit(analyze_main())


if __name__ == "__main__":
    main()
