"""``python -m sftlabel``."""

from sftlabel.cli import main

if __name__ == "__main__":
    main()
