"""``python -m simulators [--host H] [--social-port N] [--community-port N]``."""

from __future__ import annotations

import argparse

from simulators.runner import main_simulate


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the simulated source systems.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--social-port", type=int, default=8101)
    parser.add_argument("--community-port", type=int, default=8102)
    args = parser.parse_args()
    main_simulate(args.host, args.social_port, args.community_port)


if __name__ == "__main__":
    main()
