"""``python -m pgingest`` runs the command line."""

from pgingest.cli.app import run

if __name__ == "__main__":
    run()
