"""A task module that fails to import (the runner must say so, not crash)."""

BROKEN = 1 / 0
